"""Figures for removing many images: ``reconcile apply`` against the docker CLI.

Loads N bench images (one ``docker load``), then times, each on a freshly loaded host:
- ``reconcile apply`` of a retention policy that removes every bench image;
- ``docker image rm`` of every bench tag in batches (what a clean-up script does);
- ``docker image prune -a -f --filter label=...`` (one API call; no per-image re-check).
Prints wall time, Engine API calls and images removed. Asserts nothing.

Run against the sandbox: ``eval "$(scripts/sandbox env)"; .venv/bin/python bench/apply_bench.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from image_factory import BENCH_LABEL, bench_images
from plan_bench import (
    BenchError,
    Sandbox,
    api_calls_since,
    bench_references,
    docker,
    fill,
    remove,
    remove_bench_images,
    sandbox_from_env,
)

REMOVE_ALL = """\
version: 1
retention:
  min_age: 0s
  rules:
    - name: bench
      select: {repositories: ["reconciler-bench/**"]}
"""


def timed(sandbox: Sandbox, action: Callable[[], None]) -> tuple[float, int]:
    """Wall seconds of ``action`` and the Engine API calls the daemon logged meanwhile."""
    offset = sandbox.dockerd_log.stat().st_size
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    return elapsed, sum(api_calls_since(sandbox.dockerd_log, offset).values())


def reconcile_apply(sandbox: Sandbox, manifest: Path, state_dir: Path) -> Callable[[], None]:
    def run() -> None:
        import subprocess

        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "apply", str(manifest), "-q", "--allow-large-removal",
             "--state-dir", str(state_dir)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise BenchError(f"reconcile apply exited {done.returncode}: {done.stdout[-400:]} {done.stderr[-400:]}")

    return run


def docker_rm_all(sandbox: Sandbox) -> Callable[[], None]:
    return lambda: remove(sandbox, sorted(bench_references(sandbox)))


def docker_prune(sandbox: Sandbox) -> Callable[[], None]:
    return lambda: docker(sandbox, "image", "prune", "-a", "-f", "--filter", f"label={BENCH_LABEL}=1") and None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--tags-per-image", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        sandbox = sandbox_from_env()
    except BenchError as error:
        print(f"apply_bench: {error}", file=sys.stderr)
        return 2
    images = bench_images(args.images, args.tags_per_image)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        manifest = Path(work) / "remove-all.yaml"
        manifest.write_text(REMOVE_ALL)
        scenarios = [
            ("reconcile apply (retention removes all)", reconcile_apply(sandbox, manifest, Path(work) / "state")),
            ("docker image rm, 100 refs a call", docker_rm_all(sandbox)),
            ("docker image prune -a --filter label", docker_prune(sandbox)),
        ]
        for name, action in scenarios:
            fill(sandbox, images)
            seconds, calls = timed(sandbox, action)
            left = len(bench_references(sandbox))
            rows.append((name, args.images, seconds, calls, args.images * args.tags_per_image - left))
        remove_bench_images(sandbox)
    print(f"{'scenario':<42} {'N':>5} {'wall s':>8} {'API calls':>10} {'tags gone':>10}")
    for name, count, seconds, calls, gone in rows:
        print(f"{name:<42} {count:>5} {seconds:>8.2f} {calls:>10} {gone:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
