"""reconcile next to the tools people use for the same jobs, on one populated sandbox daemon, in one run.

Fills the daemon with N bench images (``image_factory``: K tags each, 1 in 25 on a shared
base layer) and pushes a few small images to the sandbox registry, then times each scenario
against its peers: the median of ``--repeat`` runs, each after its prepare step (restoring
the inventory, emptying the cache), which is outside the timing. The peers run from a
virtualenv of their own (docker-custodian's ``dcgc``, Ansible's
``community.docker.docker_image_pull``), made in the sandbox directory on first use:

    eval "$(scripts/sandbox env)"; .venv/bin/python bench/peer_bench.py [--images 1000] [--repeat 5]
        [--pulls 20] [--rtt-ms 50] [--skip-apply] [--scale 10000]

Prints a table: scenario, tool, median seconds, and the ratio to the scenario's first row.
Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from image_factory import (
    CREATED_STEP,
    FIRST_CREATED,
    SCALE_LABEL,
    SCALE_PREFIX,
    ScaleImage,
    bench_images,
    scale_images,
    write_scale_archive,
)
from plan_bench import (
    Sandbox,
    docker,
    fill,
    load,
    remove,
    remove_bench_images,
    sandbox_from_env,
    write_manifest,
)
from pull_bench import delete_from_registry, make_images, remove_local

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from tests.integration.registry_proxy import RegistryProxy  # noqa: E402

RECONCILE = [sys.executable, "-m", "reconciler"]
REMOVED_SHARE = 0.45  # the age policy removes the oldest this share of the bench images
FLOOR_SCRIPT = """
import os, docker
client = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="auto")
images, containers = client.images(), client.containers(all=True)
print(len(images), len(containers))
"""


@dataclass(frozen=True)
class Contender:
    tool: str
    command: Sequence[str]
    prepare: Callable[[], None] | None = None
    env: dict[str, str] | None = None


@dataclass(frozen=True)
class Row:
    scenario: str
    tool: str
    seconds: float
    runs: int
    failed: str = ""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="bench images on the daemon (1000)")
    parser.add_argument("--tags-per-image", type=int, default=3, help="tags each (3)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per contender (5)")
    parser.add_argument("--apply-repeat", type=int, default=2, help="runs of each removal (2: each refills)")
    parser.add_argument("--pulls", type=int, default=20, help="images in the pull scenarios (20)")
    parser.add_argument("--rtt-ms", type=float, default=50.0, help="registry round trip added by the proxy (50)")
    parser.add_argument("--skip-apply", action="store_true", help="leave out the removal scenarios (minutes each)")
    parser.add_argument("--skip-pulls", action="store_true", help="leave out the pull scenarios")
    parser.add_argument("--scale", type=int, default=0, help="also plan on a host of this many images (10000: minutes)")
    parser.add_argument("--keep", action="store_true", help="leave the bench images on the host")
    return parser.parse_args(argv)


# --- the peers' virtualenv -------------------------------------------------------


def peers_venv(sandbox_dir: Path) -> Path:
    """A virtualenv with docker-custodian and ansible, made once; never the package's own."""
    venv = sandbox_dir / "peers"
    stamp = venv / ".installed"
    if not stamp.exists():
        print("bench: installing the peers (docker-custodian, ansible) into their own virtualenv", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "docker-custodian", "ansible"], check=True)
        stamp.touch()
    return venv


# --- timing ----------------------------------------------------------------------


def timed(contender: Contender, runs: int) -> tuple[float, str]:
    """Median wall seconds over ``runs``, each after its prepare step; the first failure's words."""
    samples: list[float] = []
    failed = ""
    for _ in range(runs):
        if contender.prepare is not None:
            contender.prepare()
        started = time.monotonic()
        answer = subprocess.run(
            contender.command, capture_output=True, text=True, env={**os.environ, **(contender.env or {})}, check=False
        )
        samples.append(time.monotonic() - started)
        if answer.returncode not in (0, 2) and not failed:
            failed = f"exit {answer.returncode}: {(answer.stderr or answer.stdout).strip().splitlines()[-1:]}"
    return statistics.median(samples), failed


def scenario(name: str, contenders: Sequence[Contender], runs: int) -> list[Row]:
    rows = []
    for contender in contenders:
        print(f"bench: {name}: {contender.tool} x{runs}", file=sys.stderr)
        seconds, failed = timed(contender, runs)
        rows.append(Row(name, contender.tool, seconds, runs, failed))
    return rows


def table(rows: Sequence[Row]) -> str:
    width = max(len(r.tool) for r in rows)
    lines = [f"{'scenario':<44} {'tool':<{width}} {'median s':>9} {'ratio':>7}  runs"]
    first: dict[str, float] = {}
    for row in rows:
        base = first.setdefault(row.scenario, row.seconds)
        ratio = row.seconds / base if base else 0.0
        note = f"  FAILED {row.failed}" if row.failed else ""
        lines.append(f"{row.scenario:<44} {row.tool:<{width}} {row.seconds:9.3f} {ratio:7.2f}  {row.runs}{note}")
    return "\n".join(lines)


# --- the scenarios ---------------------------------------------------------------


def age_policy(workdir: Path, images: int) -> tuple[Path, int, str]:
    """A manifest removing the oldest REMOVED_SHARE of the bench images, with dcgc's and prune's limits."""
    cut = FIRST_CREATED + CREATED_STEP * int(images * REMOVED_SHARE)
    age_s = int((datetime.now(UTC) - cut).total_seconds())
    days = age_s // 86_400
    path = workdir / "age.yaml"
    path.write_text(
        "version: 1\nimages: []\nretention:\n  min_age: 0s\n  rules:\n"
        f'    - {{name: old, select: {{repositories: ["reconciler-bench/**"]}}, older_than: {days}d}}\n'
    )
    return path, days, f"{days * 24}h"


def plan_scenarios(sandbox: Sandbox, venv: Path, workdir: Path, args: argparse.Namespace) -> list[Row]:
    images = bench_images(args.images, args.tags_per_image)
    declared = write_manifest(workdir / "all.yaml", images)
    small = workdir / "m20.yaml"
    small.write_text("version: 1\nimages:\n" + "".join(f'  - {{name: {i.repository}, tags: ["t1"]}}\n' for i in images[:20]))
    floor = workdir / "floor.py"
    floor.write_text(FLOOR_SCRIPT)
    age, days, hours = age_policy(workdir, args.images)
    warm = workdir / "warm-state"
    rows = scenario("validate, 20 images", [Contender("reconcile validate", [*RECONCILE, "validate", str(small)])], args.repeat)
    rows += scenario(
        f"no-change plan, {args.images} images",
        [
            Contender("reconcile plan", [*RECONCILE, "plan", str(declared)]),
            Contender("docker-py two-call script", [str(venv / "bin" / "python"), str(floor)]),
            Contender("docker image ls -a", [sandbox.docker, "image", "ls", "-a", "-q"]),
        ],
        args.repeat,
    )
    cold = workdir / "cold-state"
    rows += scenario(
        f"plan, age policy removing ~{int(args.images * REMOVED_SHARE)}",
        [
            Contender(
                "reconcile plan (cold layer cache)",
                [*RECONCILE, "plan", str(age), "--allow-large-removal", "--state-dir", str(cold)],
                prepare=lambda: shutil.rmtree(cold, ignore_errors=True),
            ),
            Contender(
                "reconcile plan (warm layer cache)",
                [*RECONCILE, "plan", str(age), "--allow-large-removal", "--state-dir", str(warm)],
                prepare=lambda: subprocess.run(
                    [*RECONCILE, "plan", str(age), "--allow-large-removal", "--state-dir", str(warm)],
                    capture_output=True, check=False,
                ),
            ),
            Contender("reconcile plan, no change (yardstick)", [*RECONCILE, "plan", str(declared)]),
            Contender("dcgc --dry-run", [str(venv / "bin" / "dcgc"), "--dry-run", "--max-image-age", f"{days} days"]),
        ],
        args.repeat,
    )
    if not args.skip_apply:
        restore = lambda: fill(sandbox, images)  # noqa: E731 - the removed images come back, outside the timing
        rows += scenario(
            f"apply, age policy removing ~{int(args.images * REMOVED_SHARE)}",
            [
                Contender(
                    "reconcile apply",
                    [*RECONCILE, "apply", str(age), "--allow-large-removal", "-q", "--state-dir", str(warm)],
                    prepare=restore,
                ),
                Contender(
                    "docker image prune -a --filter until=",
                    [sandbox.docker, "image", "prune", "-a", "-f", "--filter", f"until={hours}"],
                    prepare=restore,
                ),
                Contender(
                    "dcgc", [str(venv / "bin" / "dcgc"), "--max-image-age", f"{days} days"], prepare=restore
                ),
            ],
            args.apply_repeat,
        )
        restore()
    return rows


def pull_scenarios(sandbox: Sandbox, venv: Path, workdir: Path, args: argparse.Namespace, registry: str) -> list[Row]:
    refs = make_images(registry, args.pulls, 1024, workdir)
    rows: list[Row] = []
    try:
        with RegistryProxy(registry, delay=args.rtt_ms / 1000) as proxy:
            slow = [ref.replace(registry, proxy.address, 1) for ref in refs]
            listed = workdir / "refs.txt"
            listed.write_text("\n".join(slow) + "\n")
            absent = _pull_manifest(workdir / "pulls.yaml", slow, always=False)
            always = _pull_manifest(workdir / "always.yaml", slow, always=True)
            playbook = _playbook(workdir / "pull.yml", slow)
            xargs = ["sh", "-c", f"xargs -P4 -n1 {sandbox.docker} pull -q < {listed} > /dev/null"]
            sequential = ["sh", "-c", f"xargs -P1 -n1 {sandbox.docker} pull -q < {listed} > /dev/null"]
            gone = lambda: remove_local(slow)  # noqa: E731
            ansible_env = {"ANSIBLE_PYTHON_INTERPRETER": str(venv / "bin" / "python"), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
            label = f"+{args.rtt_ms:g} ms registry"
            rows += scenario(
                f"apply, {args.pulls} absent images ({label})",
                [
                    Contender("reconcile apply", [*RECONCILE, "apply", str(absent), "-q"], prepare=gone),
                    Contender("xargs -P4 docker pull", xargs, prepare=gone),
                    Contender("sequential docker pull", sequential, prepare=gone),
                    Contender(
                        "ansible docker_image_pull",
                        [str(venv / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
                        prepare=gone,
                        env=ansible_env,
                    ),
                ],
                max(1, args.repeat // 2),
            )
            rows += scenario(
                f"apply, {args.pulls} present pull: always tags ({label})",
                [
                    Contender("reconcile apply", [*RECONCILE, "apply", str(always), "-q"]),
                    Contender("xargs -P4 docker pull", xargs),
                    Contender("sequential docker pull", sequential),
                ],
                args.repeat,
            )
            remove_local(slow)
    finally:
        remove_local(refs)
        delete_from_registry(registry, refs)
    return rows


def _pull_manifest(path: Path, refs: Sequence[str], *, always: bool) -> Path:
    policy = ", pull: always" if always else ""
    entries = "".join(f'  - {{name: "{ref.rsplit(":", 1)[0]}", tags: ["1.0"]{policy}}}\n' for ref in refs)
    path.write_text(f"version: 1\nimages:\n{entries}")
    return path


def _playbook(path: Path, refs: Sequence[str]) -> Path:
    items = "".join(f"        - {ref}\n" for ref in refs)
    path.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - community.docker.docker_image_pull:\n"
        "        name: \"{{ item }}\"\n"
        f"        docker_host: \"{os.environ['DOCKER_HOST']}\"\n"
        "        pull: not_present\n"
        f"      loop:\n{items}"
    )
    return path


def scale_scenario(sandbox: Sandbox, venv: Path, workdir: Path, args: argparse.Namespace) -> list[Row]:
    """A no-change plan on a host of ``--scale`` images that differ only in their config (a label)."""
    images = scale_images(args.scale)
    fill_scale(sandbox, images)
    declared = write_scale_manifest(workdir / "scale.yaml", images)
    floor = workdir / "floor.py"
    floor.write_text(FLOOR_SCRIPT)
    return scenario(
        f"no-change plan, {args.scale} images",
        [
            Contender("reconcile plan", [*RECONCILE, "plan", str(declared)]),
            Contender("docker-py two-call script", [str(venv / "bin" / "python"), str(floor)]),
            Contender("docker image ls -a", [sandbox.docker, "image", "ls", "-a", "-q"]),
        ],
        args.repeat,
    )


def scale_references(sandbox: Sandbox) -> set[str]:
    out = docker(
        sandbox, "image", "ls", "--filter", f"label={SCALE_LABEL}=1", "--format", "{{.Repository}}:{{.Tag}}"
    )
    return {line for line in out.split() if line.startswith(SCALE_PREFIX)}


def fill_scale(sandbox: Sandbox, images: Sequence[ScaleImage]) -> None:
    """Make the scale tags exactly those of ``images``: what is missing in one ``docker load`` of
    configs on a single shared layer (the daemon stores the layer once; its tag store, rewritten
    for every tag, bounds the fill: a few minutes for 10,000), extra scale tags removed."""
    present = scale_references(sandbox)
    wanted = {ref for image in images for ref in image.references()}
    missing = [image for image in images if not set(image.references()) <= present]
    started = time.perf_counter()
    if missing:
        print(f"bench: loading {len(missing)} scale images (minutes)", file=sys.stderr)
        load(sandbox, missing, write_scale_archive)
    remove(sandbox, sorted(present - wanted))
    print(f"bench: scale host ready in {time.perf_counter() - started:.0f}s", file=sys.stderr)


def remove_scale_images(sandbox: Sandbox) -> None:
    remove(sandbox, sorted(scale_references(sandbox)))


def write_scale_manifest(path: Path, images: Sequence[ScaleImage]) -> Path:
    """Every scale repository with all its tags, pruning on: the plan is empty."""
    tags: dict[str, list[str]] = {}
    for image in images:
        tags.setdefault(image.repository, []).extend(image.tags)
    lines = ["version: 1", "images:"]
    lines += [f"  - {{name: {repo}, tags: [{', '.join(repr(t) for t in repo_tags)}]}}" for repo, repo_tags in tags.items()]
    lines += ["prune:", "  unlisted_tags: true", "  dangling: true", ""]
    path.write_text("\n".join(lines))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sandbox = sandbox_from_env()
    registry = os.environ.get("RECONCILE_SANDBOX_REGISTRY", "")
    venv = peers_venv(Path(os.environ["RECONCILE_SANDBOX_DIR"]))
    os.environ.setdefault("PYTHONPATH", str(REPO_ROOT))
    started = datetime.now(UTC)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp:
        workdir = Path(tmp)
        print(f"bench: filling {args.images} images", file=sys.stderr)
        fill(sandbox, bench_images(args.images, args.tags_per_image))
        # Scale images another run kept (--keep) make every scenario run on a larger host: say so.
        left_over = len(scale_references(sandbox))
        if left_over:
            print(f"bench: {left_over} scale images from an earlier run are on the host", file=sys.stderr)
        try:
            rows += plan_scenarios(sandbox, venv, workdir, args)
            if not args.skip_pulls and registry:
                rows += pull_scenarios(sandbox, venv, workdir, args, registry)
            if args.scale:
                rows += scale_scenario(sandbox, venv, workdir, args)
        finally:
            if not args.keep:
                remove_bench_images(sandbox)
                if args.scale:
                    remove_scale_images(sandbox)
    cores = os.cpu_count()
    host = f"; {left_over} scale images on the host besides" if left_over else ""
    print(f"\n{started:%Y-%m-%d %H:%M} UTC, {cores} cores{host}; ratio: to the scenario's first row\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
