"""Benchmark ``reconcile plan`` on a host with many images, against ``docker image ls``.

Fills the sandbox daemon with N labelled images (one ``docker load`` of a generated
archive), then runs each scenario ``--repeat`` times and prints the median wall time
and peak RSS of the child, and its Engine API calls: the ``Calling`` lines dockerd
--debug appends to its log during the run, fewest over the runs, since other clients of
the daemon can only add lines. Figures only: nothing is asserted.

    python bench/plan_bench.py [--images N] [--tags-per-image 3] [--repeat 3]
                               [--scaling] [--keep] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from image_factory import BENCH_LABEL, REPOSITORY_PREFIX, BenchImage, bench_images, write_archive

REPO_ROOT = Path(__file__).resolve().parent.parent
SMALL_MANIFEST_IMAGES = 10
SCALING_FIRST = 100
BATCH = 100
RUN_TIMEOUT = 600.0
LOAD_TIMEOUT = 900.0
_CALL = re.compile(r"Calling (\w+) (?:/v[\d.]+)?([^\s?\"]+)")


class BenchError(Exception):
    """A problem that stops the bench; its text is for people."""


@dataclass(frozen=True)
class Sandbox:
    docker_host: str
    dockerd_log: Path
    docker: str


@dataclass(frozen=True)
class Sample:
    wall_s: float
    peak_rss_mib: float
    api_calls: int
    endpoints: dict[str, int]
    exit_code: int
    stdout: str
    stderr: str


@dataclass
class Result:
    scenario: str
    images: int
    wall_s: float
    api_calls: int
    peak_rss_mib: float
    check: str
    endpoints: dict[str, int]
    samples: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Fill:
    images: int
    tags: int
    loaded: int
    untagged: int
    seconds: float


# --- set-up ------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=_positive, default=1000, help="bench images (1000)")
    parser.add_argument("--tags-per-image", type=_positive, default=3, help="tags each (3)")
    parser.add_argument("--repeat", type=_positive, default=3, help="runs per scenario (3)")
    parser.add_argument(
        "--scaling", action="store_true", help=f"measure at {SCALING_FIRST} images first, then N"
    )
    parser.add_argument("--keep", action="store_true", help="leave the bench images on the host")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def sandbox_from_env() -> Sandbox:
    """The sandbox daemon named by ``scripts/sandbox env``; refuse any other daemon."""
    host = os.environ.get("DOCKER_HOST", "")
    log = os.environ.get("RECONCILE_SANDBOX_DOCKERD_LOG", "")
    state = os.environ.get("RECONCILE_SANDBOX_DIR", "")
    hint = 'run `make bench` or `eval "$(scripts/sandbox env)"` first'
    if not (host and log and state):
        raise BenchError(f"the sandbox environment is not set ({hint}).")
    if not host.startswith(f"unix://{state.rstrip('/')}/"):
        raise BenchError(f"DOCKER_HOST={host} is not the sandbox daemon ({hint}).")
    if not Path(log).is_file():
        raise BenchError(f"no dockerd log at {log}; is the sandbox up? (`scripts/sandbox up`)")
    docker = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else shutil.which("docker")
    if not docker:
        raise BenchError("no docker client found (Debian's docker.io provides /usr/bin/docker).")
    return Sandbox(docker_host=host, dockerd_log=Path(log), docker=docker)


def docker(sandbox: Sandbox, *args: str) -> str:
    """Run the docker client; its stdout, or BenchError with its stderr."""
    done = subprocess.run(
        [sandbox.docker, *args], capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    if done.returncode != 0:
        raise BenchError(f"docker {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def bench_references(sandbox: Sandbox) -> set[str]:
    """Every tag of a bench-labelled image that sits in a bench repository."""
    out = docker(
        sandbox,
        *("image", "ls", "--filter", f"label={BENCH_LABEL}=1"),
        *("--format", "{{.Repository}}:{{.Tag}}"),
    )
    return {line for line in out.split() if line.startswith(REPOSITORY_PREFIX)}


def fill(sandbox: Sandbox, images: list[BenchImage]) -> Fill:
    """Make the bench tags on the host exactly those of ``images``: load, untag extras."""
    started = time.perf_counter()
    present = bench_references(sandbox)
    wanted = {ref for image in images for ref in image.references()}
    missing = [image for image in images if not set(image.references()) <= present]
    if missing:
        load(sandbox, missing)
    extra = sorted(present - wanted)
    remove(sandbox, extra)
    left = wanted - bench_references(sandbox)
    if left:
        raise BenchError(
            f"{len(left)} bench tags still missing after docker load, e.g. {min(left)}"
        )
    return Fill(len(images), len(wanted), len(missing), len(extra), time.perf_counter() - started)


def load(
    sandbox: Sandbox, images: Sequence[Any], writer: Callable[[IO[bytes], Any], None] = write_archive
) -> None:
    """One ``docker load``, its archive (``writer``'s) streamed from memory through stdin."""
    _progress(f"loading {len(images)} images with one docker load")
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            [sandbox.docker, "load", "-q"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        assert child.stdin is not None
        try:
            with contextlib.suppress(BrokenPipeError), child.stdin:
                writer(child.stdin, images)  # a broken pipe: docker load says why
            code = child.wait(timeout=LOAD_TIMEOUT)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        if code != 0:
            raise BenchError(f"docker load failed: {_read(err).strip()}")


def remove(sandbox: Sandbox, names: Sequence[str]) -> None:
    """``docker image rm`` in batches: a tag is untagged (the image goes with its last
    tag), an id removes an untagged image. Every batch runs; failures are raised at the end.
    """
    errors = []
    for start in range(0, len(names), BATCH):
        try:
            docker(sandbox, "image", "rm", *names[start : start + BATCH])
        except BenchError as error:
            errors.append(str(error))
    if errors:
        raise BenchError("\n".join(errors))


def remove_bench_images(sandbox: Sandbox) -> None:
    """Untag every bench tag, then remove bench-labelled images left untagged; no force.

    An image someone tagged elsewhere, or a container uses, stays and is reported.
    """
    refs = sorted(bench_references(sandbox))
    _progress(f"removing the bench images ({len(refs)} tags)")
    try:
        remove(sandbox, refs)
        out = docker(
            sandbox,
            *("image", "ls", "--no-trunc", "--filter", f"label={BENCH_LABEL}=1"),
            *("--filter", "dangling=true", "--format", "{{.ID}}"),
        )
        remove(sandbox, sorted(set(out.split())))
    except BenchError as error:
        _progress(f"some bench images stay: {error}")


# A policy evaluated over every bench image that keeps them all: the plan stays empty,
# but retention, its events read and the disk budget's usage read are all on the path.
RETENTION_POLICY = [
    "retention:",
    "  min_age: 1h",
    "  disk: {max_total: 1TB}",
    "  rules:",
    '    - {name: bench, select: {repositories: ["reconciler-bench/**"]}, keep_last: 2, keep_within: 36500d}',
]


def write_manifest(
    path: Path, images: Sequence[BenchImage], extra: Sequence[str] = ()
) -> Path:
    """A manifest declaring exactly ``images`` and their tags, with pruning on."""
    lines = ["version: 1", "images:"]
    for image in images:
        tags = ", ".join(f'"{tag}"' for tag in image.tags)
        lines.append(f"  - {{name: {image.repository}, tags: [{tags}]}}")
    lines += ["prune:", "  unlisted_tags: true", "  dangling: true", *extra, ""]
    path.write_text("\n".join(lines))
    return path


# --- measuring ---------------------------------------------------------------


def run_once(sandbox: Sandbox, command: Sequence[str]) -> Sample:
    """Run ``command`` once: wall time, its own peak RSS (wait4) and the API calls logged."""
    offset = sandbox.dockerd_log.stat().st_size
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, cwd=REPO_ROOT)
        timer = threading.Timer(RUN_TIMEOUT, child.kill)
        timer.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        timer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
        endpoints = api_calls_since(sandbox.dockerd_log, offset)
        return Sample(
            wall_s=wall,
            peak_rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
            api_calls=sum(endpoints.values()),
            endpoints=dict(sorted(endpoints.items())),
            exit_code=child.returncode,
            stdout=_read(out),
            stderr=_read(err),
        )


def api_calls_since(log: Path, offset: int) -> Counter[str]:
    """``METHOD /path`` of each call dockerd logged after ``offset`` (from 0 if the log rotated)."""
    with log.open("rb") as handle:
        if handle.seek(0, os.SEEK_END) >= offset:
            handle.seek(offset)
        else:
            handle.seek(0)
        appended = handle.read().decode(errors="replace")
    return Counter(f"{m[1]} {m[2]}" for m in _CALL.finditer(appended))


def measure(
    sandbox: Sandbox,
    scenario: str,
    images: int,
    command: Sequence[str],
    check: Callable[[Sample], str],
    repeat: int,
) -> Result:
    """Run ``command`` ``repeat`` times: medians (fewest API calls), every sample, the worst check."""
    _progress(f"{scenario}, {images} images: {repeat} runs")
    samples = [run_once(sandbox, command) for _ in range(repeat)]
    return Result(
        scenario=scenario,
        images=images,
        wall_s=statistics.median(s.wall_s for s in samples),
        api_calls=min(s.api_calls for s in samples),
        peak_rss_mib=statistics.median(s.peak_rss_mib for s in samples),
        check=_first_unexpected([check(s) for s in samples]),
        endpoints=min(samples, key=lambda s: s.api_calls).endpoints,
        samples=[
            {"wall_s": s.wall_s, "api_calls": s.api_calls, "peak_rss_mib": s.peak_rss_mib}
            for s in samples
        ],
    )


def plan_check(sample: Sample) -> str:
    """ "no changes", else what the plan or the error says (another client may have left a
    dangling image, which ``prune.dangling`` then removes)."""
    if sample.exit_code == 0 and "No changes" in sample.stdout:
        return "no changes"
    lines = (sample.stderr + sample.stdout).strip().splitlines()
    summary = next((line for line in lines if line.startswith("Plan:")), lines[0] if lines else "")
    return f"UNEXPECTED exit {sample.exit_code}: {summary or 'no output'}"


def listing_check(expected: int) -> Callable[[Sample], str]:
    def check(sample: Sample) -> str:
        if sample.exit_code != 0:
            return f"UNEXPECTED exit {sample.exit_code}: {sample.stderr.strip()[:200]}"
        listed = sum(line.startswith(REPOSITORY_PREFIX) for line in sample.stdout.splitlines())
        return f"{listed} bench tags listed" + ("" if listed == expected else f" of {expected}")

    return check


def _first_unexpected(checks: list[str]) -> str:
    return next((check for check in checks if check.startswith("UNEXPECTED")), checks[-1])


def bench_size(
    sandbox: Sandbox, images: list[BenchImage], workdir: Path, repeat: int
) -> list[Result]:
    """The scenarios on a host holding exactly ``images`` as bench images."""
    plan = [sys.executable, "-m", "reconciler", "plan"]
    count = len(images)
    full = write_manifest(workdir / f"bench-{count}.yaml", images)
    small = write_manifest(workdir / f"bench-{count}-small.yaml", images[:SMALL_MANIFEST_IMAGES])
    policy = write_manifest(
        workdir / f"bench-{count}-policy.yaml", images[:SMALL_MANIFEST_IMAGES], RETENTION_POLICY
    )
    tags = sum(len(image.tags) for image in images)
    declared_small = min(count, SMALL_MANIFEST_IMAGES)
    return [
        measure(
            sandbox, "reconcile plan, all declared", count, [*plan, str(full)], plan_check, repeat
        ),
        measure(
            sandbox,
            "docker image ls",
            count,
            [sandbox.docker, "image", "ls"],
            listing_check(tags),
            repeat,
        ),
        measure(
            sandbox,
            f"reconcile plan, {declared_small} declared",
            count,
            [*plan, str(small)],
            plan_check,
            repeat,
        ),
        measure(
            sandbox,
            f"reconcile plan, {declared_small} declared + retention policy",
            count,
            [*plan, str(policy)],
            plan_check,
            repeat,
        ),
    ]


# --- output ------------------------------------------------------------------


def table(fills: Sequence[Fill], results: Sequence[Result]) -> str:
    header = ("scenario", "N", "wall s", "API calls", "peak RSS MiB", "check")
    rows = [header] + [
        (
            r.scenario,
            str(r.images),
            f"{r.wall_s:.3f}",
            _calls_cell(r),
            f"{r.peak_rss_mib:.1f}",
            r.check,
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [_fill_line(f) for f in fills] + [""]
    for row in rows:
        cells = [
            cell.rjust(w) if 0 < i < 5 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines += ["", "API calls of the run with the fewest:"]
    lines += [f"  {r.scenario}, N={r.images}: {_endpoints(r.endpoints)}" for r in results]
    if any(_calls_cell(r) != str(r.api_calls) for r in results):
        lines += ["Call counts varied between runs: other clients used the daemon meanwhile."]
    return "\n".join(lines)


def _calls_cell(result: Result) -> str:
    """The fewest calls; the most too when runs differ (other clients of the daemon)."""
    most = max(sample["api_calls"] for sample in result.samples)
    return f"{result.api_calls}" + (f" (max {most:g})" if most != result.api_calls else "")


def _fill_line(f: Fill) -> str:
    action = f"loaded {f.loaded}" if f.loaded else "already present"
    extra = f", untagged {f.untagged} extra tags" if f.untagged else ""
    return f"fill N={f.images} ({f.tags} tags): {action}{extra}, {f.seconds:.1f} s"


def _endpoints(endpoints: dict[str, int]) -> str:
    return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in endpoints.items()) or "none"


def _progress(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def _read(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode(errors="replace")


# --- main --------------------------------------------------------------------


def run(args: argparse.Namespace, sandbox: Sandbox) -> tuple[list[Fill], list[Result]]:
    sizes = (
        [SCALING_FIRST, args.images]
        if args.scaling and args.images > SCALING_FIRST
        else [args.images]
    )
    fills: list[Fill] = []
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        for size in sizes:
            images = bench_images(size, args.tags_per_image)
            fills.append(fill(sandbox, images))
            _progress(_fill_line(fills[-1]))
            results += bench_size(sandbox, images, Path(tmp), args.repeat)
    return fills, results


def as_json(
    args: argparse.Namespace, sandbox: Sandbox, fills: list[Fill], results: list[Result]
) -> dict[str, object]:
    return {
        "docker_host": sandbox.docker_host,
        "tags_per_image": args.tags_per_image,
        "repeat": args.repeat,
        "fills": [asdict(f) for f in fills],
        "results": [asdict(r) for r in results],
    }


@contextlib.contextmanager
def cleanup_unless(keep: bool, sandbox: Sandbox) -> Iterator[None]:
    try:
        yield
    finally:
        if not keep:
            remove_bench_images(sandbox)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        sandbox = sandbox_from_env()
        with cleanup_unless(args.keep, sandbox):
            fills, results = run(args, sandbox)
    except (BenchError, subprocess.TimeoutExpired) as error:
        print(f"plan_bench: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(as_json(args, sandbox, fills, results), indent=2))
    else:
        print(table(fills, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
