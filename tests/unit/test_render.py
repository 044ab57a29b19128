"""Rendering of plans and reports: plain data in, text and JSON out."""

from __future__ import annotations

import json

from reconciler.cli import render
from reconciler.model.plan import Action, Plan, Step
from reconciler.model.report import Outcome, Report, StepResult

PULL = Step(action=Action.PULL, ref="nginx:latest", reason="the tag is not on the host")
REMOVE = Step(
    action=Action.REMOVE, ref="old:1", image_id="sha256:" + "ab" * 32, reason="old is declared absent", bytes=2_500_000
)
BLOCKED = Step(
    action=Action.REMOVE, ref="busy:1", image_id="sha256:" + "cd" * 32, reason="r", bytes=10, blocked="in use by web"
)


def test_empty_plan_says_the_host_matches() -> None:
    assert render.plan_text(Plan(manifest_path="images.yaml")) == "No changes. The host matches images.yaml."


def test_plan_text_reads_like_a_diff_with_totals() -> None:
    text = render.plan_text(Plan(steps=(PULL, REMOVE, BLOCKED), manifest_path="images.yaml", host="h"))
    assert "+ pull  [/] nginx:latest" in text
    assert "- remove[/] old:1 (abababababab, frees 2.5 MB)" in text
    assert "! blocked remove" in text and "in use by web" in text
    assert text.endswith(
        "Plan: 1 to pull, 1 to remove, 1 blocked. To download: 1 image, size known once pulled. To free: 2.5 MB."
    )


def test_plan_json_has_the_documented_fields() -> None:
    data = json.loads(render.plan_json(Plan(steps=(PULL, REMOVE), manifest_path="m.yaml")))
    assert [s["action"] for s in data["steps"]] == ["pull", "remove"]
    assert {"action", "ref", "image_id", "reason", "bytes"} <= set(data["steps"][0])
    assert data["summary"]["bytes_to_free"] == 2_500_000
    assert data["summary"]["pull"] == 1 and data["summary"]["remove"] == 1


def test_report_summary_counts_outcomes_and_freed_bytes() -> None:
    report = Report(
        results=(
            StepResult(PULL, Outcome.DONE, "pulled", bytes=12_300_000),
            StepResult(REMOVE, Outcome.DONE, "removed", bytes=2_500_000),
            StepResult(BLOCKED, Outcome.SKIPPED, "in use by web"),
        )
    )
    assert not report.complete
    assert render.report_summary_text(report).startswith(
        "Apply incomplete: 2 done, 1 skipped, 0 failed. Pulled 1 image (12.3 MB). Freed 2.5 MB."
    )
    assert render.result_line(report.results[0]).endswith("nginx:latest: pulled (12.3 MB)")
    assert json.loads(render.report_json(report))["summary"]["skipped"] == 1


def test_report_gives_each_pulls_size_download_and_time_and_the_totals() -> None:
    cached = Step(action=Action.PULL, ref="redis:7", reason="the tag is not on the host")
    report = Report(
        results=(
            StepResult(PULL, Outcome.DONE, "pulled", bytes=12_300_000, seconds=2.04, downloaded_bytes=4_100_000),
            StepResult(cached, Outcome.DONE, "pulled", bytes=5_000_000, seconds=0.31, downloaded_bytes=0,
                       all_layers_present=True),
            StepResult(REMOVE, Outcome.DONE, "removed", bytes=2_500_000),
        )
    )
    lines = [render.result_line(r) for r in report.results[:2]]
    assert lines[0].endswith("nginx:latest: pulled (12.3 MB; downloaded 4.1 MB in 2.0s)")
    assert lines[1].endswith("redis:7: pulled (5 MB; all layers already present in 0.3s)")
    assert "(0 B)" not in lines[1]
    assert render.report_summary_text(report) == (
        "Apply complete: 3 done, 0 skipped, 0 failed. Pulled 2 images (17.3 MB): downloaded 4.1 MB. Freed 2.5 MB."
    )
    data = json.loads(render.report_json(report))
    assert [(s["seconds"], s["downloaded_bytes"], s["all_layers_present"]) for s in data["steps"][:2]] == [
        (2.04, 4_100_000, False),
        (0.31, 0, True),
    ]
    assert "seconds" not in data["steps"][2]
    assert (data["summary"]["images_pulled"], data["summary"]["bytes_downloaded"]) == (2, 4_100_000)


def test_human_bytes_uses_decimal_units_like_docker() -> None:
    assert [render.human_bytes(n) for n in (0, 999, 1000, 1_234_567, 5 * 10**12)] == [
        "0 B",
        "999 B",
        "1 kB",
        "1.23 MB",
        "5 TB",
    ]
    assert render.human_bytes(None) == "unknown"


def test_two_tags_of_one_image_pulled_at_once_count_as_one_image_and_one_download() -> None:
    """`web:1.1` and `web:latest` are one image: dockerd fetches its layers once while both pull
    streams report them, so the summary counts the image and its download once."""
    one = Step(action=Action.PULL, ref="web:1.1", reason="the tag is not on the host")
    other = Step(action=Action.PULL, ref="web:latest", reason="the tag is not on the host")
    report = Report(
        results=(
            StepResult(one, Outcome.DONE, "pulled", image_id="sha256:aa", bytes=369_000, downloaded_bytes=369_500),
            StepResult(other, Outcome.DONE, "pulled", image_id="sha256:aa", bytes=369_000, downloaded_bytes=369_400),
        )
    )
    assert render.report_summary_text(report) == (
        "Apply complete: 2 done, 0 skipped, 0 failed. Pulled 1 image for 2 tags (369 kB): downloaded 370 kB."
    )
    summary = json.loads(render.report_json(report))["summary"]
    assert (summary["images_pulled"], summary["bytes_downloaded"]) == (1, 369_500)
