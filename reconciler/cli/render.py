"""Plans and reports as text for people and as JSON for machines. Pure: returns strings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reconciler.cli.markup import escape
from reconciler.model.inventory import short_id
from reconciler.model.plan import Action, Plan, Step
from reconciler.model.units import format_size
from reconciler.planning.stale_containers import StaleContainer

if TYPE_CHECKING:
    from reconciler.model.report import Report, StepResult

NO_CHANGES = "No changes. The host matches {manifest}."

_SIGN = {
    Action.PULL: "+",
    Action.BUILD: "+",
    Action.LOAD: "+",
    Action.TAG: "+",
    Action.UNTAG: "-",
    Action.REMOVE: "-",
    Action.PRUNE_CACHE: "-",
}
_STYLE = {
    Action.PULL: "green",
    Action.BUILD: "green",
    Action.LOAD: "green",
    Action.TAG: "green",
    Action.UNTAG: "yellow",
    Action.REMOVE: "red",
    Action.PRUNE_CACHE: "red",
}
_OUTCOME_STYLE = {  # by Outcome's values: a plan's output never imports model.report
    "done": "green",
    "skipped": "yellow",
    "failed": "red bold",
    "stale": "magenta",
}


def human_bytes(count: int | None) -> str:
    """Decimal units, as ``docker image ls`` prints them."""
    return format_size(count)


# --- plan -----------------------------------------------------------------------


def plan_text(plan: Plan) -> str:
    """Rich markup: one line a step, then the totals; or the no-change sentence."""
    if not plan.steps:
        return NO_CHANGES.format(manifest=escape(_name(plan.manifest_path)))
    lines = [f"Plan for {escape(_name(plan.manifest_path))} on {escape(plan.host)}:", ""]
    lines += [_step_line(step) for step in plan.steps]
    lines += ["", plan_summary_text(plan)]
    return "\n".join(lines)


def _step_line(step: Step) -> str:
    target = escape(step.ref)
    if step.action is Action.TAG and step.source:
        target = f"{target} -> {escape(step.source)}"
    extra = []
    if step.image_id and step.action is not Action.PULL:
        extra.append(short_id(step.image_id))
    if step.action in (Action.REMOVE, Action.PRUNE_CACHE) and not step.blocked:
        extra.append(f"frees {human_bytes(step.bytes)}")
    if step.platform:
        extra.append(step.platform)
    detail = f" ({', '.join(extra)})" if extra else ""
    if step.blocked:
        return (
            f"  [yellow]! blocked {step.action.value:<6}[/] {target}{detail}\n"
            f"      {escape(step.reason)}; {escape(step.blocked)}"
        )
    style = _STYLE[step.action]
    return f"  [{style}]{_SIGN[step.action]} {step.action.value:<6}[/] {target}{detail}\n      {escape(step.reason)}"


def plan_summary_text(plan: Plan) -> str:
    counts = [f"{plan.count(a)} to {a.value}" for a in Action if plan.count(a)]
    blocked = f", {len(plan.blocked)} blocked" if plan.blocked else ""
    pulls = plan.count(Action.PULL)
    download = (
        f"{pulls} image{'s' if pulls != 1 else ''}, size known once pulled" if pulls else "nothing"
    )
    if not plan.count(Action.REMOVE):
        free = "nothing"
    else:
        free = human_bytes(plan.bytes_to_free) if plan.bytes_to_free_known else "unknown"
    cache = plan.count(Action.PRUNE_CACHE)
    cache_text = f" Build cache to free: {human_bytes(plan.cache_bytes_to_free)}." if cache else ""
    return f"Plan: {', '.join(counts) or 'nothing to run'}{blocked}. To download: {download}. To free: {free}.{cache_text}"


def plan_json(plan: Plan, images: list[dict[str, Any]] | None = None) -> str:
    """The plan's steps and summary; with ``images`` (``plan --explain``) each image's verdict too."""
    return _dump(plan_document(plan, images))


def plan_document(plan: Plan, images: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"steps": [s.as_dict() for s in plan.steps]}
    if images is not None:
        data["images"] = images
    data["summary"] = plan_summary(plan)
    return data


def hosts_json(documents: list[dict[str, Any]]) -> str:
    """Several daemons' plans or reports, each as its one-daemon document with its host."""
    return _dump({"hosts": documents})


def plan_summary(plan: Plan) -> dict[str, Any]:
    return {
        "manifest": plan.manifest_path,
        "host": plan.host,
        "changes": plan.has_runnable,
        **{a.value: plan.count(a) for a in Action},
        "blocked": len(plan.blocked),
        "bytes_to_free": plan.bytes_to_free if plan.bytes_to_free_known else None,
        "cache_bytes_to_free": plan.cache_bytes_to_free,
        "bytes_to_download": None,  # the daemon cannot tell before it pulls
    }


# --- report ---------------------------------------------------------------------


def result_line(result: StepResult) -> str:
    from reconciler.model.report import Outcome  # reports only (see _OUTCOME_STYLE)

    step = result.step
    style = _OUTCOME_STYLE[result.outcome.value]
    target = escape(step.ref)
    if step.action is Action.TAG and step.source:
        target = f"{target} -> {escape(step.source)}"
    detail = result.detail
    if step.action is Action.PULL and result.outcome is Outcome.DONE:
        detail += pull_cost_text(result)
    return (
        f"  [{style}]{result.outcome.value:<7}[/] {step.action.value:<6} {target}: {escape(detail)}"
    )


def pull_cost_text(result: StepResult) -> str:
    """`` (4.2 MB; downloaded 3.1 MB in 1.2s)``: the image's size, what came over the wire, how long."""
    parts = [human_bytes(result.bytes)] if result.bytes else []
    took = f" in {result.seconds:.1f}s" if result.seconds is not None else ""
    if result.all_layers_present:
        parts.append("all layers already present" + took)
    elif result.downloaded_bytes is not None:
        parts.append(f"downloaded {human_bytes(result.downloaded_bytes)}{took}")
    elif took:
        parts.append(took.strip())
    return f" ({'; '.join(parts)})" if parts else ""


def _pulled_text(report: Report) -> str:
    """`` Pulled 2 images (9 MB): downloaded 4 MB.``, or nothing when nothing was pulled."""
    pulled = report.pulled
    if not pulled:
        return ""
    distinct = report.pulled_images
    images = f"{len(distinct)} image{'s' if len(distinct) != 1 else ''}"
    if len(distinct) != len(pulled):
        images += f" for {len(pulled)} tags"
    total = sum(r.bytes or 0 for r in distinct)
    size = f" ({human_bytes(total)})" if total else ""
    downloaded = report.bytes_downloaded
    if all(r.all_layers_present for r in pulled):
        fetched = ": all layers already present"
    elif downloaded is not None:
        fetched = f": downloaded {human_bytes(downloaded)}"
    else:
        fetched = ""
    return f" Pulled {images}{size}{fetched}."


def report_summary_text(report: Report) -> str:
    from reconciler.model.report import Outcome  # reports only (see _OUTCOME_STYLE)

    done = len(report.with_outcome(Outcome.DONE))
    skipped = len(report.with_outcome(Outcome.SKIPPED))
    failed = len(report.with_outcome(Outcome.FAILED))
    verdict = "Apply complete" if report.complete else "Apply incomplete"
    freed = _freed_text(report)
    stale = len(report.with_outcome(Outcome.STALE))
    refused = f", {stale} stale" if stale else ""
    cache = _cache_freed(report)
    cache_text = (
        f" Build cache freed: {human_bytes(cache)} (as the daemon measured)."
        if cache is not None
        else ""
    )
    fetched = _pulled_text(report)
    text = f"{verdict}: {done} done, {skipped} skipped, {failed} failed{refused}.{fetched}{freed}{cache_text}"
    if skipped or failed:
        text += " Skipped and failed steps are listed above; nothing else was touched."
    if stale:
        text += " The host changed since the plan was made: run `reconcile plan` again."
    return text


def _freed_text(report: Report) -> str:
    """The predicted freed space, and what the daemon's disk usage really lost when measured."""
    if report.measured_freed is None:
        return f" Freed {human_bytes(report.bytes_freed)}." if report.bytes_freed else ""
    return f" Freed {human_bytes(report.measured_freed)} (predicted {human_bytes(report.bytes_freed)})."


def _cache_freed(report: Report) -> int | None:
    """Bytes the daemon reclaimed pruning build cache records; None when the plan pruned none."""
    from reconciler.model.report import Outcome  # reports only (see _OUTCOME_STYLE)

    pruned = [r for r in report.results if r.step.action is Action.PRUNE_CACHE]
    return sum(r.bytes or 0 for r in pruned if r.outcome is Outcome.DONE) if pruned else None


def report_json(report: Report) -> str:
    return _dump(report_document(report))


def report_document(report: Report) -> dict[str, Any]:
    return {"steps": [result_dict(r) for r in report.results], "summary": report_summary(report)}


def result_dict(result: StepResult) -> dict[str, Any]:
    return {
        **result.step.as_dict(),
        "outcome": result.outcome.value,
        "detail": result.detail,
        "result_image_id": result.image_id,
        "deleted": list(result.deleted),
        "result_bytes": result.bytes,
        **(
            {
                "seconds": None if result.seconds is None else round(result.seconds, 3),
                "downloaded_bytes": result.downloaded_bytes,
                "all_layers_present": result.all_layers_present,
            }
            if result.step.action is Action.PULL
            else {}
        ),
    }


def report_summary(report: Report) -> dict[str, Any]:
    from reconciler.model.report import Outcome  # reports only (see _OUTCOME_STYLE)

    return {
        "manifest": report.manifest_path,
        "host": report.host,
        "complete": report.complete,
        **{o.value: len(report.with_outcome(o)) for o in Outcome},
        "images_deleted": len(report.images_deleted),
        "images_pulled": len(report.pulled_images),
        "tags_pulled": len(report.pulled),
        "bytes_downloaded": report.bytes_downloaded,
        "bytes_freed": report.bytes_freed,
        "bytes_freed_measured": report.measured_freed,
        "cache_bytes_freed": _cache_freed(report),
    }


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


def _name(path: str) -> str:
    return path or "the manifest"


def stale_text(stale: Sequence[StaleContainer]) -> str:
    """Containers running an image a declared tag no longer points at; reconcile leaves them be."""
    lines = [
        "",
        "Containers running an image a declared tag no longer points at (recreate them to run the new one):",
    ]
    for found in stale:
        # Before the pull only the registry's digest of the new image is known.
        new = (
            f"the registry's {found.new_image[:19]}" if found.pending else short_id(found.new_image)
        )
        when = "will point at" if found.pending else "points at"
        lines.append(
            f"  ~ {escape(found.container)} ({found.container_id[:12]}): runs {short_id(found.old_image)};"
            f" {escape(found.tag)} {when} {new}"
        )
    return "\n".join(lines)
