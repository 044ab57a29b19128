"""Saved plans: a plan written to a versioned JSON file, read back exactly, and checked before use.

A saved plan records what each step expects to find on the host (``expect``),
the daemon it was made for and the manifest's sha256, so that ``apply`` can
refuse what went stale instead of acting on a host that moved on.

File format, version 2::

    {"format": "reconciler-plan", "version": 2, "digest": "sha256:...",
     "manifest": {"path": "images.yaml", "digest": "sha256:..."},
     "host": "unix:///var/run/docker.sock", "engine": "engine ID ..., name ..., data root ...",
     "created": "2026-01-31T12:00:00Z",
     "steps": [{"action": "remove", "ref": "old:1", "reason": "...", "bytes": 524000,
                "source": null, "platform": null, "expected_digest": null, "blocked": null,
                "expect": {"image_id": "sha256:...", "containers": 0}}]}

``expect.image_id`` is the image ``ref`` pointed at when planned (null: not on
the host); a tag step records ``expect.source_image_id`` instead, the image its
source pointed at (null when an earlier pull of the plan fetches it). A remove
expects no container to use the image.

``digest`` is the sha256 of every other field as canonical JSON (sorted keys, no
whitespace, ASCII), so a file edited by hand (a step pointed at another image, a
step added) is refused, while re-indenting it is not. It is a checksum, not a
signature: whoever can write the file can recompute it. What makes a pipeline
safe is pinning the digest of the reviewed plan (``apply --require-digest``).
Version 1 had no digest and is no longer read: a saved plan lives minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.errors import PlanFileError, StalePlanError, UsageError
from reconciler.model.manifest import Builder, BuildRecipe
from reconciler.model.plan import Action, Plan, Step
from reconciler.state.atomic_file import write_atomically

FORMAT = "reconciler-plan"
VERSION = 2
DIGEST_KEY = "digest"
DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")
# Far larger than any plan; a bound so that a wrong file is refused, not read whole.
MAX_BYTES = 64 * 1024 * 1024
PLAN_AGAIN = "run `reconcile plan` again"
# Our format key in a file that does not parse: what marks a damaged plan, as opposed to a manifest.
_FORMAT_KEY = re.compile(rb'"format"\s*:\s*"' + re.escape(FORMAT.encode()) + rb'"')


@dataclass(frozen=True)
class SavedPlan:
    plan: Plan
    created: str  # ISO 8601, UTC
    engine: str | None = None  # the daemon's identity (lock.daemon_identity) when the plan was made
    digest: str = ""  # the file's own digest, checked when read (see plan_digest)


# --- writing ----------------------------------------------------------------


def dump_plan(plan: Plan, created: datetime, engine: str | None = None) -> str:
    """The saved-plan JSON text of ``plan``, made at ``created`` on the daemon ``engine``, with its digest."""
    return _dump(_plan_document(plan, created, engine))


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def _plan_document(plan: Plan, created: datetime, engine: str | None) -> dict[str, Any]:
    content = {
        "format": FORMAT,
        "version": VERSION,
        "manifest": {"path": plan.manifest_path, "digest": plan.manifest_digest},
        "host": plan.host,
        "engine": engine,
        "created": _timestamp(created),
        "steps": [_step_document(step) for step in plan.steps],
    }
    # The digest near the top, where a reviewer sees it.
    return {"format": FORMAT, "version": VERSION, DIGEST_KEY: plan_digest(content), **content}


def plan_digest(document: dict[str, Any]) -> str:
    """``sha256:<hex>`` of ``document`` without its digest field, as canonical JSON.

    Canonical: sorted keys, no whitespace, ASCII escapes; so the digest is the same for
    any indentation or key order of one content, and a JSON value's every change shows.
    """
    content = {key: value for key, value in document.items() if key != DIGEST_KEY}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _step_document(step: Step) -> dict[str, Any]:
    # What the step expects of the host travels in "expect", not as the step's image_id.
    fields = {key: value for key, value in step.as_dict().items() if key != "image_id"}
    return {**fields, "expect": _expectation(step)}


def _expectation(step: Step) -> dict[str, Any]:
    if step.action is Action.TAG:
        return {"source_image_id": step.image_id}
    if step.action is Action.REMOVE:
        # A blocked removal never runs; the planner saw containers on it.
        return {"image_id": step.image_id, "containers": None if step.blocked else 0}
    return {"image_id": step.image_id}


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def save_plan(path: str | os.PathLike[str], plan: Plan, created: datetime, engine: str | None = None) -> str:
    """Write ``plan`` to ``path`` atomically and return its digest; a path that cannot be written is a usage error."""
    document = _plan_document(plan, created, engine)
    write_or_explain(path, _dump(document), "the plan")
    return str(document[DIGEST_KEY])


def write_or_explain(path: str | os.PathLike[str], text: str, what: str) -> None:
    """:func:`write_atomically`, with an OSError turned into a sentence (exit 64)."""
    try:
        write_atomically(path, text)
    except OSError as exc:
        raise UsageError(f"Cannot write {what} to {os.fspath(path)}: {exc.strerror or exc}.") from exc


# --- reading ----------------------------------------------------------------


def is_plan_text(data: bytes) -> bool:
    """True when ``data`` is a saved plan: a JSON object whose ``format`` is ours.

    Decided by content, not by file name, and by parsing, not by a substring: a
    manifest in JSON syntax may well name a repository ``reconciler-plan``. A
    file that starts like JSON and has our ``format`` key but does not parse
    (truncated or badly edited) still counts, so that it is refused as a plan
    rather than read as a manifest.
    """
    if not data.lstrip().startswith(b"{"):
        return False
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):  # not JSON (a YAML flow mapping?), or a damaged plan
        return _FORMAT_KEY.search(data) is not None
    return isinstance(document, dict) and document.get("format") == FORMAT


def saved_plan_at(path: str | os.PathLike[str]) -> SavedPlan | None:
    """The saved plan at ``path``, or None when the file is something else (a manifest)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError:
        return None  # the manifest loader explains what is wrong with the file
    return _checked_plan(data, os.fspath(path)) if is_plan_text(data) else None


def read_plan_file(path: str | os.PathLike[str]) -> SavedPlan:
    """Read and check the saved plan at ``path``; raises PlanFileError when unusable."""
    filename = os.fspath(path)
    try:
        with open(filename, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise PlanFileError(f"Cannot read the saved plan {filename}: {exc.strerror or exc}.") from exc
    return _checked_plan(data, filename)


def _checked_plan(data: bytes, filename: str) -> SavedPlan:
    if len(data) > MAX_BYTES:
        raise _unusable(filename, f"it is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    return load_plan(data, filename)


def load_plan(data: bytes, filename: str) -> SavedPlan:
    """Parse saved-plan bytes; every field is checked, nothing is guessed."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _unusable(filename, f"it is not valid JSON ({exc})") from exc
    except RecursionError:
        raise _unusable(filename, "it is nested too deeply to be a plan") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _unusable(filename, f'it has no "format": "{FORMAT}" key')
    version = document.get("version")
    if version == 1:
        raise PlanFileError(
            f"{filename} is a saved plan of format version 1, which carries no digest to show it was not "
            f"changed after it was saved; this reconcile reads version {VERSION} only. Make the plan again "
            "with this reconcile: `reconcile plan FILE --out PLAN`."
        )
    if version != VERSION:
        raise PlanFileError(
            f"{filename} is a saved plan of format version {json.dumps(version)}; this reconcile reads "
            f"version {VERSION} only. Make the plan again with this reconcile: `reconcile plan FILE --out PLAN`."
        )
    digest = _verified_digest(document, filename)
    try:
        manifest = _field(document, "manifest", dict)
        plan = Plan(
            steps=tuple(_step(raw, index) for index, raw in enumerate(_field(document, "steps", list))),
            manifest_path=_field(manifest, "path", str, "manifest."),
            manifest_digest=_field(manifest, "digest", str, "manifest."),
            host=_field(document, "host", str),
        )
        created = _field(document, "created", str)
        engine = document.get("engine")
        if engine is not None and not isinstance(engine, str):
            raise _BadField("engine is not a string")
    except _BadField as exc:
        raise _unusable(filename, str(exc)) from exc
    return SavedPlan(plan=plan, created=created, engine=engine, digest=digest)


def _verified_digest(document: dict[str, Any], filename: str) -> str:
    """The document's digest, when it matches its content; else the file was edited: refused."""
    recorded = document.get(DIGEST_KEY)
    try:
        actual = plan_digest(document)
    except ValueError:  # NaN or Infinity: never written by us
        actual = None
    if actual is not None and recorded == actual:
        return actual
    why = "it has no digest" if recorded is None else "its content no longer matches its digest"
    raise PlanFileError(
        f"{filename} was changed after it was saved ({why}); nothing was changed. A saved plan runs only "
        f"as `reconcile plan --out` wrote it: {PLAN_AGAIN} and review the new plan."
    )


def check_required_digest(saved: SavedPlan, required: str, filename: str) -> None:
    """Refuse ``saved`` unless its digest is ``required``: the plan that was reviewed, and no other."""
    if saved.digest != required.lower():
        raise PlanFileError(
            f"{filename} is not the plan that was reviewed: its digest is {saved.digest}, not the required "
            f"{required}; nothing was changed. Apply the file `reconcile plan --out` saved with that digest, "
            f"or {PLAN_AGAIN} and review it."
        )


class _BadField(Exception):
    pass


def _step(raw: object, index: int) -> Step:
    where = f"steps[{index}]."
    if not isinstance(raw, dict):
        raise _BadField(f"steps[{index}] is not an object")
    text = _field(raw, "action", str, where)
    try:
        action = Action(text)
    except ValueError:
        raise _BadField(f"{where}action {text!r} is not one of {', '.join(a.value for a in Action)}") from None
    expect = _field(raw, "expect", dict, where)
    key = "source_image_id" if action is Action.TAG else "image_id"
    return Step(
        action=action,
        ref=_field(raw, "ref", str, where),
        reason=_field(raw, "reason", str, where),
        image_id=_optional(expect, key, str, f"{where}expect."),
        bytes=_optional(raw, "bytes", int, where),
        source=_optional(raw, "source", str, where),
        platform=_optional(raw, "platform", str, where),
        expected_digest=_optional(raw, "expected_digest", str, where),
        blocked=_optional(raw, "blocked", str, where),
        build=_recipe(raw.get("build"), f"{where}build."),
        archive=_optional(raw, "archive", str, where) if "archive" in raw else None,
        inputs=_optional(raw, "inputs", str, where) if "inputs" in raw else None,
    )


def _recipe(raw: object, where: str) -> BuildRecipe | None:
    """A build step's recipe, as :meth:`Step.as_dict` writes it."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _BadField(f"{where.rstrip('.')} is not an object")
    args = _field(raw, "args", dict, where)
    if not all(isinstance(value, str) for value in args.values()):
        raise _BadField(f"{where}args has a value that is not a string")
    try:
        builder = Builder(_field(raw, "builder", str, where))
    except ValueError:
        raise _BadField(f"{where}builder is not one of {', '.join(b.value for b in Builder)}") from None
    return BuildRecipe(
        context=_field(raw, "context", str, where),
        dockerfile=_field(raw, "dockerfile", str, where),
        args=tuple(sorted(args.items())),
        target=_optional(raw, "target", str, where),
        builder=builder,
    )


def _field(data: dict[str, Any], key: str, kind: type[Any], where: str = "") -> Any:
    if key not in data:
        raise _BadField(f"{where}{key} is missing")
    value = data[key]
    # bool is an int to Python, never to us.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _BadField(f"{where}{key} is not a{'n' if kind.__name__[0] in 'aeiou' else ''} {kind.__name__}")
    return value


def _optional(data: dict[str, Any], key: str, kind: type[Any], where: str) -> Any:
    if data.get(key, ...) is None:
        return None
    return _field(data, key, kind, where)


def _unusable(filename: str, why: str) -> PlanFileError:
    return PlanFileError(
        f"{filename} is not a usable saved plan: {why}. Make it again with `reconcile plan FILE --out {filename}`."
    )


# --- before use -------------------------------------------------------------


def check_applicable(saved: SavedPlan, host: str, engine: str | None = None) -> None:
    """Refuse the whole plan when it was made for another daemon or from a manifest that changed since.

    The daemon is the same when its identity (``engine``, see :func:`~reconciler.state.lock_dir.daemon_identity`:
    engine ID, name and data root) is, whatever address reaches it; a plan without one is matched by address.
    """
    plan = saved.plan
    same_daemon = saved.engine == engine if saved.engine and engine else plan.host == host
    if not same_daemon:
        # One address can reach another daemon than it did (a machine cloned or replaced).
        if plan.host != host:
            which = f"at {plan.host}, not {host}"
        else:
            which = f"{saved.engine}, not the one now at {host} ({engine})"
        raise StalePlanError(
            f"The plan was made for the daemon {which}; nothing was changed. "
            f"To change {host}, {PLAN_AGAIN} with --host {host}."
        )
    problem = manifest_change(plan)
    if problem:
        raise StalePlanError(f"{problem}; nothing was changed. Review it and {PLAN_AGAIN}.")


def manifest_change(plan: Plan) -> str | None:
    """Why the manifest at the recorded path is no longer the one planned from; None when it is."""
    try:
        data = Path(plan.manifest_path).read_bytes()
    except OSError as exc:
        return f"The manifest {plan.manifest_path} the plan was made from cannot be read ({exc.strerror or exc})"
    if "sha256:" + hashlib.sha256(data).hexdigest() != plan.manifest_digest:
        return f"The manifest {plan.manifest_path} changed since the plan was made"
    return None
