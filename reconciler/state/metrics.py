"""Prometheus text-format metrics of one apply, for node_exporter's textfile collector.

The file is replaced atomically (temporary file in the same directory, fsync,
rename), so a scrape never reads half a file. ``last_success`` survives a run
that did not succeed: it is read back from the file being replaced.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.model.plan import Action
from reconciler.model.report import Outcome, Report
from reconciler.state.atomic_file import write_atomically

_SAMPLE = re.compile(
    r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)(?:\s+\S+)?",
    re.ASCII,
)
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?', re.ASCII)

LAST_SUCCESS = "reconcile_last_success_timestamp_seconds"

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


@dataclass(frozen=True)
class RunMetrics:
    """What one apply run exports."""

    steps: Mapping[tuple[Action, Outcome], int] = field(default_factory=dict)
    bytes_freed: int = 0
    bytes_pulled: int = 0
    duration_seconds: float = 0.0
    finished_at: float = 0.0  # Unix time
    last_success_at: float | None = None  # Unix time; None when no run ever succeeded


def run_metrics(
    report: Report | None, *, finished: float, duration: float, previous_success: float | None
) -> RunMetrics:
    """Metrics of a run that produced ``report`` (None: it stopped before running steps).

    A run succeeded when it has a report and every step was done.
    """
    steps: dict[tuple[Action, Outcome], int] = {}
    for result in report.results if report else ():
        key = (result.step.action, result.outcome)
        steps[key] = steps.get(key, 0) + 1
    pulled = sum(
        r.bytes or 0
        for r in (report.results if report else ())
        if r.step.action is Action.PULL and r.outcome is Outcome.DONE
    )
    succeeded = report is not None and report.complete
    return RunMetrics(
        steps=steps,
        bytes_freed=report.bytes_freed if report else 0,
        bytes_pulled=pulled,
        duration_seconds=duration,
        finished_at=finished,
        last_success_at=finished if succeeded else previous_success,
    )


def metrics_text(metrics: RunMetrics | Mapping[str, RunMetrics]) -> str:
    """The exposition text: HELP and TYPE for each family, every action/outcome pair listed.

    One run's metrics, or those of several hosts by name: each sample then carries a ``host`` label.
    """
    per_host = metrics if isinstance(metrics, Mapping) else {"": metrics}
    lines = [
        "# HELP reconcile_last_run_steps Steps of the last apply, by action and outcome.",
        "# TYPE reconcile_last_run_steps gauge",
    ]
    for host, run in per_host.items():
        for action in Action:
            for outcome in Outcome:
                count = run.steps.get((action, outcome), 0)
                labels = _labels(host, f'action="{action.value}",outcome="{outcome.value}"')
                lines.append(f"reconcile_last_run_steps{labels} {count}")
    families: list[tuple[str, str, Callable[[RunMetrics], float | None]]] = [
        ("reconcile_last_run_freed_bytes", "Unique bytes freed by removals in the last apply.", lambda m: m.bytes_freed),
        ("reconcile_last_run_pulled_bytes", "Size of the images pulled by the last apply.", lambda m: m.bytes_pulled),
        ("reconcile_run_duration_seconds", "Wall time of the last apply.", lambda m: m.duration_seconds),
        ("reconcile_last_run_timestamp_seconds", "When the last apply ended (Unix time).", lambda m: m.finished_at),
        # Written from the first run on, 0 until a success: "success too old" alerts need no absent().
        (LAST_SUCCESS, "When an apply last ended with every step done (Unix time; 0: never).", lambda m: m.last_success_at or 0),
    ]
    for name, help_text, value_of in families:
        samples = [(host, value) for host, run in per_host.items() if (value := value_of(run)) is not None]
        if samples:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            lines += [f"{name}{_labels(host)} {_number(value)}" for host, value in samples]
    return "\n".join(lines) + "\n"


def _labels(host: str, more: str = "") -> str:
    """``{host="...",more}``; without a host, ``{more}`` or nothing."""
    escaped = host.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    parts = [f'host="{escaped}"'] if host else []
    parts += [more] if more else []
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def parse_metrics(text: str) -> Samples:
    """Samples of a text-format file, keyed by (name, sorted labels). Comments are skipped.

    Raises ValueError on a line that is not a sample.
    """
    samples: Samples = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _SAMPLE.fullmatch(line.strip())
        if not match:
            raise ValueError(f"line {number} is not a sample: {line!r}")
        labels = _LABEL.findall(match.group("labels") or "")
        samples[(match.group("name"), tuple(sorted(labels)))] = float(match.group("value"))
    return samples


def read_last_success(path: Path, host: str = "") -> float | None:
    """The last-success timestamp (of ``host``, for several) in an existing metrics file; None when absent or unreadable."""
    try:
        samples = parse_metrics(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    value = samples.get((LAST_SUCCESS, (("host", host),) if host else ()))
    return value if value is not None and math.isfinite(value) else None


def update_hosts_metrics_file(path: Path, runs: Sequence[tuple[str, Report | None, float]], *, now: float) -> None:
    """Write several hosts' metrics (name, report or None, seconds), each keeping its own last success."""
    per_host = {
        host: run_metrics(report, finished=now, duration=duration, previous_success=read_last_success(path, host))
        for host, report, duration in runs
    }
    write_atomically(path, metrics_text(per_host), mode=0o644)


def update_metrics_file(path: Path, report: Report | None, *, duration: float, now: float) -> None:
    """Write this run's metrics to ``path``, keeping the last success of earlier runs. Raises OSError."""
    metrics = run_metrics(report, finished=now, duration=duration, previous_success=read_last_success(path))
    write_atomically(path, metrics_text(metrics), mode=0o644)  # the collector runs as another user


class MetricsRun:
    """Times one apply and writes its metrics file (if it has a path) when :meth:`write` is called.

    A run that ends without :meth:`finished` (an error before or during the steps)
    is written as not successful.
    """

    def __init__(
        self,
        path: Path | None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._started = monotonic()
        self._report: Report | None = None
        self._hosts: list[tuple[str, Report | None, float]] = []

    def finished(self, report: Report) -> None:
        self._report = report

    def finished_hosts(self, runs: Sequence[tuple[str, Report | None, float]]) -> None:
        """The hosts' reports (None: that host gave none); one host's is the run's, without a host label."""
        if len(runs) == 1:
            if runs[0][1] is not None:
                self._report = runs[0][1]
        else:
            self._hosts = list(runs)

    def write(self) -> None:
        """Raises OSError when the file cannot be written."""
        if self.path is None:
            return
        duration = self._monotonic() - self._started
        if self._hosts:
            update_hosts_metrics_file(self.path, self._hosts, now=self._wall_clock())
            return
        update_metrics_file(self.path, self._report, duration=duration, now=self._wall_clock())
