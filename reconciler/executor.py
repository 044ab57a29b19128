"""Carry out a plan against the daemon: the only module that changes images.

Safety rules, each from a way Docker tooling has hurt people:
- ``force`` is never sent to image delete: it removes images that stopped
  containers still need. A conflict is reported, not overridden.
- Before every destructive step the image is read again: a tag that moved, an
  image that gained a tag or a container since the plan is skipped and said so.
- A pull is streamed and any error in the stream fails it (docker-py's
  high-level pull can hand back the old image instead), under a deadline.
- One step failing does not stop the others; steps that depend on it are skipped.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import docker
import requests

from reconciler.daemon import TRANSPORT_ERRORS
from reconciler.plan import Action, Plan, Step
from reconciler.reference import Reference, parse_reference
from reconciler.report import Outcome, Report, StepResult

DEFAULT_PULL_TIMEOUT = 900.0  # seconds for one whole pull

StepCallback = Callable[[StepResult], None]


class StepFailed(Exception):
    """A step could not be done; the message is the sentence for the report."""


class StepSkipped(Exception):
    """A step was not run for safety; the message says why."""


class Executor:
    def __init__(self, api: docker.APIClient, pull_timeout: float = DEFAULT_PULL_TIMEOUT) -> None:
        self.api = api
        self.pull_timeout = pull_timeout

    def apply(self, plan: Plan, on_result: StepCallback | None = None) -> Report:
        """Run every step of ``plan`` in order and report each outcome."""
        failed_refs: set[str] = set()
        results = []
        for step in plan.steps:
            result = self._run(step, failed_refs)
            if result.outcome is not Outcome.DONE and step.action in (Action.PULL, Action.TAG):
                failed_refs.add(_key(step.ref))
            results.append(result)
            if on_result:
                on_result(result)
        return Report(results=tuple(results), host=plan.host, manifest_path=plan.manifest_path)

    def _run(self, step: Step, failed_refs: set[str]) -> StepResult:
        if step.blocked:
            return self._blocked(step)
        if step.source and _key(step.source) in failed_refs:
            return StepResult(step, Outcome.SKIPPED, f"{step.source} was not fetched, so nothing was tagged")
        handler = {
            Action.PULL: self._pull,
            Action.TAG: self._tag,
            Action.UNTAG: self._untag,
            Action.REMOVE: self._remove,
        }[step.action]
        try:
            return handler(step)
        except StepSkipped as exc:
            return StepResult(step, Outcome.SKIPPED, str(exc))
        except StepFailed as exc:
            return StepResult(step, Outcome.FAILED, str(exc))
        except docker.errors.APIError as exc:
            return StepResult(step, Outcome.FAILED, _api_message(exc))
        except TRANSPORT_ERRORS as exc:
            return StepResult(step, Outcome.FAILED, f"lost the connection to the daemon: {exc}")

    def _blocked(self, step: Step) -> StepResult:
        """A blocked step is not run; a blocked removal may still untag if the image is kept anyway."""
        if step.action is Action.REMOVE and step.image_id:
            try:
                image = self._inspect(step.image_id)
                untagged = self._untag_if_kept(step, image) if image else None
            except (StepSkipped, docker.errors.APIError, *TRANSPORT_ERRORS):
                untagged = None
            if untagged:
                return untagged
        assert step.blocked is not None
        return StepResult(step, Outcome.SKIPPED, step.blocked)

    # --- pull and tag ---------------------------------------------------------

    def _pull(self, step: Step) -> StepResult:
        ref = parse_reference(step.ref)
        for _chunk in self._pull_stream(ref, step.platform):
            pass
        image = self._inspect(ref.familiar())
        if image is None:
            raise StepFailed(f"the daemon reported the pull of {step.ref} as done, but has no such image")
        if step.expected_digest and not _has_digest(image, ref.name, step.expected_digest):
            raise StepFailed(f"{step.ref} was pulled but its content is not {step.expected_digest}")
        detail = "pulled" if image["Id"] != step.image_id else "pulled; the image did not change"
        return StepResult(step, Outcome.DONE, detail, image_id=image["Id"], bytes=int(image.get("Size") or 0))

    def _pull_stream(self, ref: Reference, platform: str | None) -> Iterator[Mapping[str, Any]]:
        """Stream ``POST /images/create``; raise on any error chunk or when the deadline passes."""
        api = self.api
        params: dict[str, str] = {"fromImage": ref.name, "tag": ref.digest or ref.tag or "latest"}
        if platform:
            params["platform"] = platform
        headers = {}
        auth_header = docker.auth.get_config_header(api, ref.domain)
        if auth_header:
            headers["X-Registry-Auth"] = auth_header
        response = api._post(api._url("/images/create"), params=params, headers=headers, stream=True, timeout=None)
        # No read timeout on the stream: a watchdog closes it at the deadline instead.
        watchdog = threading.Timer(self.pull_timeout, response.close)
        watchdog.daemon = True
        started = time.monotonic()
        watchdog.start()
        try:
            api._raise_for_status(response)
            for line in response.iter_lines():
                if not line:
                    continue
                chunk = json.loads(line)
                error = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message")
                if error:
                    raise StepFailed(f"pull of {ref.familiar()} failed: {_pull_error(str(error))}")
                yield chunk
        except (requests.exceptions.RequestException, AttributeError, ValueError) as exc:
            if time.monotonic() - started >= self.pull_timeout:
                raise StepFailed(f"pull of {ref.familiar()} did not finish within {self.pull_timeout:g}s") from exc
            if isinstance(exc, docker.errors.APIError):
                raise StepFailed(f"pull of {ref.familiar()} failed: {_pull_error(_api_message(exc))}") from exc
            raise
        finally:
            watchdog.cancel()
            response.close()

    def _tag(self, step: Step) -> StepResult:
        assert step.source is not None
        source = self._inspect(step.source)
        if source is None:
            raise StepFailed(f"{step.source} is not on the host, so {step.ref} cannot point at it")
        if step.image_id and source["Id"] != step.image_id:
            raise StepSkipped(f"{step.source} now points at {_short(source['Id'])}, not at the planned image; plan again")
        target = parse_reference(step.ref)
        assert target.tag is not None
        self.api.tag(source["Id"], target.name, target.tag)
        return StepResult(step, Outcome.DONE, f"now points at {_short(source['Id'])}", image_id=source["Id"])

    # --- untag and remove -----------------------------------------------------

    def _untag(self, step: Step) -> StepResult:
        image = self._inspect(step.ref)
        if image is None:
            return StepResult(step, Outcome.DONE, "already gone")
        if image["Id"] != step.image_id:
            raise StepSkipped(f"{step.ref} now points at {_short(image['Id'])}, not at the planned image; plan again")
        others = _tags(image) - {_key(step.ref)}
        if not others:
            raise StepSkipped(f"{step.ref} is now the image's last tag: untagging it would remove the image; plan again")
        self.api.remove_image(step.ref, force=False, noprune=False)
        return StepResult(step, Outcome.DONE, "untagged; the image keeps its other tags")

    def _remove(self, step: Step) -> StepResult:
        assert step.image_id is not None
        image = self._inspect(step.image_id)
        if image is None:
            return StepResult(step, Outcome.DONE, "already gone")
        untagged = self._untag_if_kept(step, image)
        if untagged:
            return untagged
        self._check_removable(step, image)
        deleted = self._delete(step.ref)
        if step.image_id not in deleted:
            deleted += self._delete_leftover_digests(step)
        if step.image_id not in deleted:
            raise StepFailed(f"untagged {step.ref}, but the daemon kept image {_short(step.image_id)}")
        return StepResult(step, Outcome.DONE, "removed", deleted=deleted, bytes=step.bytes)

    def _untag_if_kept(self, step: Step, image: Mapping[str, Any]) -> StepResult | None:
        """Drop just the reference when the image gained another tag since the plan.

        A pull in this very run can land on the image a removal targets; the reference
        still goes, but deleting it now only untags and the image stays, as Docker does.
        """
        kept_by = _tags(image) - {_key(step.ref)}
        if not kept_by or _key(step.ref) not in _tags(image):
            return None
        self._delete(step.ref)
        names = ", ".join(sorted(parse_reference(k).familiar() for k in kept_by))
        return StepResult(step, Outcome.DONE, f"untagged; the image stays, as it now also carries {names}", bytes=0)

    def _check_removable(self, step: Step, image: Mapping[str, Any]) -> None:
        """Refuse a removal when the image changed since the plan: new tags or new containers."""
        extra = _tags(image) - {_key(step.ref)}
        if extra:
            names = ", ".join(sorted(parse_reference(k).familiar() for k in extra))
            raise StepSkipped(f"the image now also carries {names}; plan again")
        users = self.api.containers(all=True, filters={"ancestor": step.image_id})
        users = [c for c in users if c.get("ImageID") == step.image_id]
        if users:
            names = ", ".join(f"{(c.get('Names') or ['?'])[0].lstrip('/')} ({c['Id'][:12]})" for c in users)
            raise StepSkipped(f"in use by container {names}; an image a container uses is never removed")

    def _delete(self, ref: str) -> tuple[str, ...]:
        """``DELETE /images/{ref}`` without force; returns the ids the daemon deleted."""
        try:
            answer = self.api.remove_image(ref, force=False, noprune=False)
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise StepSkipped(f"the daemon refused: {_api_message(exc)}") from exc
            raise
        return tuple(str(item["Deleted"]) for item in answer or () if item.get("Deleted"))

    def _delete_leftover_digests(self, step: Step) -> tuple[str, ...]:
        """Digest references of other repositories keep an untagged image; drop them too."""
        assert step.image_id is not None
        image = self._inspect(step.image_id)
        if image is None:
            return (step.image_id,)
        if _tags(image):
            return ()
        deleted: tuple[str, ...] = ()
        for ref in sorted(image.get("RepoDigests") or ()):
            deleted += self._delete(ref)
        return deleted

    def _inspect(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.api.inspect_image(name))
        except docker.errors.ImageNotFound:
            return None


def _key(text: str) -> str:
    return parse_reference(text).canonical() if not text.startswith("sha256:") else text


def _tags(image: Mapping[str, Any]) -> set[str]:
    return {_key(t) for t in image.get("RepoTags") or () if t != "<none>:<none>"}


def _has_digest(image: Mapping[str, Any], name: str, digest: str) -> bool:
    for text in image.get("RepoDigests") or ():
        ref = parse_reference(text)
        if ref.name == name and ref.digest == digest:
            return True
    return False


def _api_message(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc).strip()


def _pull_error(message: str) -> str:
    lowered = message.lower()
    if "pull access denied" in lowered or "repository does not exist" in lowered or "not found" in lowered:
        return f"{message} (the registry may also say this when access is denied; nothing was removed)"
    return message


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]
