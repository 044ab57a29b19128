"""Fleet benchmark: ``reconcile apply`` over K sandbox daemons, ``--forks 10`` against ``--forks 1``
and against ``xargs -P 8`` of ``docker -H ... pull``; a no-change ``plan`` over all of them.

Starts K extra dockerds (``scripts/sandbox extra``), pushes PULLS small images and one "old"
image to the sandbox registry; before each timed run every daemon is reset to the old image
only, so each run pulls PULLS images and removes one on each host. Runs against the registry on
loopback, then through ``tests/integration/registry_proxy.py`` adding RTT ms to every
connection and request. Also one run with a host stopped (SIGSTOP) before it starts, under
``--host-timeout``, and the peak RSS of reconcile at the largest K. Prints a table; asserts nothing.

    eval "$(scripts/sandbox env)"; .venv/bin/python bench/fleet_bench.py [--counts 5,20,40] [--pulls 10] [--rtt-ms 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from docker import APIClient  # noqa: E402
from pull_bench import delete_from_registry, docker_cli, make_images  # noqa: E402

from tests.integration.registry_proxy import RegistryProxy  # noqa: E402

SANDBOX = REPO_ROOT / "scripts" / "sandbox"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="5,20,40", help="numbers of daemons (default 5,20,40)")
    parser.add_argument("--pulls", type=int, default=10, help="images each host pulls (default 10)")
    parser.add_argument("--size-kb", type=int, default=256, help="size of each image's layer (default 256)")
    parser.add_argument("--rtt-ms", type=float, default=200.0, help="emulated registry round trip (default 200)")
    parser.add_argument("--host-timeout", type=float, default=20.0, help="for the run with a stopped host")
    parser.add_argument("--keep", action="store_true", help="leave the extra daemons running")
    return parser.parse_args(argv)


def sandbox(*args: str) -> str:
    return subprocess.run(["bash", str(SANDBOX), *args], check=True, capture_output=True, text=True).stdout


def start_daemons(count: int) -> list[tuple[str, str]]:
    """(name, DOCKER_HOST) of ``count`` extra daemons."""
    daemons = []
    for index in range(count):
        name = f"bench-fleet-{index}"
        sandbox("extra", "up", name)
        daemons.append((name, sandbox("extra", "env", name).strip().removeprefix("export DOCKER_HOST=")))
    return daemons


def dockerd_pid(name: str) -> int:
    return int((Path(os.environ["RECONCILE_SANDBOX_DIR"]) / "extra" / name / "dockerd.pid").read_text())


def reset(hosts: Sequence[str], registries: Sequence[str], refs: Sequence[str], old: str) -> None:
    """Each host: none of the bench images (under any registry address), the old image present."""
    for address in hosts:
        client = APIClient(base_url=address, timeout=120)
        try:
            names = {r.split("/", 1)[1] for r in refs}
            for image in client.images():
                for tag in image.get("RepoTags") or ():
                    if tag.split("/", 1)[-1] in names and tag.split("/", 1)[0] in registries:
                        client.remove_image(tag)
            client.pull(old.rsplit(":", 1)[0], tag=old.rsplit(":", 1)[1])
        finally:
            client.close()


def manifest(workdir: Path, registry: str, refs: Sequence[str], old: str) -> Path:
    path = workdir / f"images-{uuid.uuid4().hex[:6]}.yaml"
    entries = "".join(f'  - name: {registry}/{r.split("/", 1)[1].rsplit(":", 1)[0]}\n    tags: ["1.0"]\n' for r in refs)
    entries += f"  - name: {old.rsplit(':', 1)[0]}\n    state: absent\n"
    path.write_text(f"version: 1\nimages:\n{entries}")
    return path


def timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Wall seconds, exit code and peak RSS (KiB) of one child process."""
    started = time.monotonic()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    return time.monotonic() - started, os.waitstatus_to_exitcode(status), usage.ru_maxrss


def reconcile(command: str, path: Path, hosts: Sequence[str], *more: str) -> list[str]:
    argv = [sys.executable, "-m", "reconciler", command, str(path), "-q"]
    for address in hosts:
        argv += ["-H", address]
    return [*argv, *more]


def xargs_pulls(workdir: Path, hosts: Sequence[str], registry: str, refs: Sequence[str], old: str) -> str:
    """A shell line: every host's pulls and its one removal through ``xargs -P 8``."""
    lines = [f"-H {h} pull -q {registry}/{r.split('/', 1)[1]}" for h in hosts for r in refs]
    lines += [f"-H {h} image rm {old}" for h in hosts]
    listing = workdir / f"xargs-{uuid.uuid4().hex[:6]}.txt"
    listing.write_text("\n".join(lines) + "\n")
    return f"xargs -P 8 -L 1 {docker_cli()} <{listing} >/dev/null"


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    counts = sorted(int(c) for c in args.counts.split(","))
    real = os.environ["RECONCILE_SANDBOX_REGISTRY"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "RECONCILE_STATE_DIR": tempfile.mkdtemp(prefix="fleet-bench-")}
    print(f"starting {counts[-1]} extra daemons ...", flush=True)
    daemons = start_daemons(counts[-1])
    workdir = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    refs = make_images(real, args.pulls, args.size_kb, workdir)
    old = make_images(real, 1, args.size_kb, workdir)[0]
    rows: list[tuple[str, int, str, float, int]] = []
    peak = 0
    try:
        for label, delay in (("loopback", 0.0), (f"+{args.rtt_ms:g} ms", args.rtt_ms / 1000)):
            with RegistryProxy(real, delay=delay) as proxy:
                registry = proxy.address if delay else real
                registries = (real, proxy.address)
                path = manifest(workdir, registry, refs, old)
                for count in counts:
                    hosts = [address for _, address in daemons[:count]]
                    for what, command in (
                        ("apply --forks 10", reconcile("apply", path, hosts, "--forks", "10")),
                        ("apply --forks 1", reconcile("apply", path, hosts, "--forks", "1")),
                    ):
                        reset(hosts, registries, refs, old)
                        seconds, code, rss = timed(command, env)
                        rows.append((label, count, what, seconds, code))
                        peak = max(peak, rss) if count == counts[-1] else peak
                        print(f"{label:>10} K={count:<3} {what:<22} {seconds:7.1f}s  exit {code}", flush=True)
                    seconds, code, _ = timed(reconcile("plan", path, hosts, "--forks", "10"), env)
                    rows.append((label, count, "plan, no change", seconds, code))
                    print(f"{label:>10} K={count:<3} {'plan, no change':<22} {seconds:7.1f}s  exit {code}", flush=True)
                    reset(hosts, registries, refs, old)
                    seconds, code, _ = timed(["sh", "-c", xargs_pulls(workdir, hosts, registry, refs, old)], env)
                    rows.append((label, count, "xargs -P 8 docker pull", seconds, code))
                    print(f"{label:>10} K={count:<3} {'xargs -P 8 docker pull':<22} {seconds:7.1f}s  exit {code}", flush=True)
                if delay:
                    continue
                # One host stopped before the run: it costs the run its --host-timeout, no more.
                count = counts[min(1, len(counts) - 1)]
                hosts = [address for _, address in daemons[:count]]
                reset(hosts, registries, refs, old)
                stopped = dockerd_pid(daemons[0][0])
                os.kill(stopped, signal.SIGSTOP)
                try:
                    command = reconcile("apply", path, hosts, "--forks", "10", "--host-timeout", f"{args.host_timeout:g}")
                    seconds, code, _ = timed(command, env)
                finally:
                    os.kill(stopped, signal.SIGCONT)
                what = f"apply, 1 stopped ({args.host_timeout:g}s)"
                rows.append((label, count, what, seconds, code))
                print(f"{label:>10} K={count:<3} {what:<22} {seconds:7.1f}s  exit {code}", flush=True)
    finally:
        delete_from_registry(real, [*refs, old])
        if not args.keep:
            for name, _ in daemons:
                subprocess.run(["bash", str(SANDBOX), "extra", "down", name], capture_output=True, check=False)
    print()
    print(f"{'registry':>10}  {'K':>3}  {'run':<30} {'seconds':>8}  exit")
    for label, count, what, seconds, code in rows:
        print(f"{label:>10}  {count:>3}  {what:<30} {seconds:8.1f}  {code}")
    print(f"\npeak RSS of reconcile apply at K={counts[-1]}: {peak / 1024:.0f} MiB")
    print(f"(this process's own peak: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
