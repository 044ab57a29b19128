"""Pull benchmark: ``reconcile apply --parallelism N`` against sequential ``docker pull``s.

Pushes COUNT small images to the sandbox registry, then, for the registry as it is
and behind a proxy that adds a round trip (50 ms by default) to every connection and
request, times: reconcile with --parallelism 1 and N, and COUNT ``docker pull`` one
after another. Local copies are removed before each run. Prints a table; asserts nothing.

    eval "$(scripts/sandbox env)"; .venv/bin/python bench/pull_bench.py [--count 20] [--parallelism 4]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.integration.registry_proxy import RegistryProxy  # noqa: E402

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="images to pull (default 20)")
    parser.add_argument(
        "--parallelism", type=int, default=4, help="reconcile --parallelism (default 4)"
    )
    parser.add_argument(
        "--size-kb", type=int, default=1024, help="size of each image's layer (default 1024)"
    )
    parser.add_argument(
        "--rtt-ms", type=float, default=50.0, help="emulated round trip (default 50)"
    )
    return parser.parse_args(argv)


def docker_cli() -> str:
    # Debian's client matches the sandbox daemon; a newer one elsewhere may not.
    return (
        "/usr/bin/docker"
        if os.access("/usr/bin/docker", os.X_OK)
        else (shutil.which("docker") or "docker")
    )


def run(*argv: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True, env=env)


def make_images(registry: str, count: int, size_kb: int, workdir: Path) -> list[str]:
    """Import and push ``count`` one-layer images of random bytes; return their references."""
    namespace = f"pullbench{uuid.uuid4().hex[:6]}"
    refs = []
    for index in range(count):
        ref = f"{registry}/{namespace}/app{index:02d}:1.0"
        tarball = workdir / f"{index}.tar"
        with tarfile.open(tarball, "w") as tar:
            data = os.urandom(size_kb * 1024)
            info = tarfile.TarInfo(f"data/{index}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        run(docker_cli(), "import", str(tarball), ref)
        run(docker_cli(), "push", "-q", ref)
        run(docker_cli(), "image", "rm", ref)
        refs.append(ref)
    return refs


def remove_local(refs: Sequence[str]) -> None:
    subprocess.run([docker_cli(), "image", "rm", *refs], capture_output=True, check=False)


def delete_from_registry(registry: str, refs: Sequence[str]) -> None:
    for ref in refs:
        path, _, tag = ref.removeprefix(f"{registry}/").rpartition(":")
        head = urllib.request.Request(
            f"http://{registry}/v2/{path}/manifests/{tag}",
            method="HEAD",
            headers={"Accept": MANIFEST_V2},
        )
        try:
            with urllib.request.urlopen(head, timeout=10) as answer:
                digest = answer.headers["Docker-Content-Digest"]
            urllib.request.urlopen(
                urllib.request.Request(
                    f"http://{registry}/v2/{path}/manifests/{digest}", method="DELETE"
                ),
                timeout=10,
            ).close()
        except urllib.error.URLError:
            pass  # best effort: the bench namespace is unique


def time_reconcile(refs: Sequence[str], parallelism: int, workdir: Path) -> float:
    manifest = workdir / f"images-{uuid.uuid4().hex[:6]}.yaml"
    entries = "".join(f'  - name: {ref.rsplit(":", 1)[0]}\n    tags: ["1.0"]\n' for ref in refs)
    manifest.write_text(f"version: 1\nimages:\n{entries}", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    started = time.monotonic()
    answer = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "apply",
            str(manifest),
            "-o",
            "json",
            "--parallelism",
            str(parallelism),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    elapsed = time.monotonic() - started
    if answer.returncode != 0:
        raise SystemExit(
            f"reconcile apply exited {answer.returncode}: {answer.stderr or answer.stdout}"
        )
    return elapsed


def time_docker_pulls(refs: Sequence[str]) -> float:
    started = time.monotonic()
    for ref in refs:
        run(docker_cli(), "pull", "-q", ref)
    return time.monotonic() - started


def measure(
    label: str, refs: Sequence[str], parallelism: int, workdir: Path
) -> list[tuple[str, str, float]]:
    rows = []
    methods: list[tuple[str, Callable[[], float]]] = [
        (
            f"reconcile apply --parallelism {parallelism}",
            lambda: time_reconcile(refs, parallelism, workdir),
        ),
        ("reconcile apply --parallelism 1", lambda: time_reconcile(refs, 1, workdir)),
        (f"{len(refs)} x docker pull, one after another", lambda: time_docker_pulls(refs)),
    ]
    for name, timed in methods:
        remove_local(refs)
        rows.append((label, name, timed()))
    remove_local(refs)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    registry = os.environ.get("RECONCILE_SANDBOX_REGISTRY")
    if not registry or not os.environ.get("DOCKER_HOST"):
        raise SystemExit('The sandbox environment is not set: eval "$(scripts/sandbox env)" first.')
    with tempfile.TemporaryDirectory(prefix="pull-bench-") as tmp:
        workdir = Path(tmp)
        print(
            f"pushing {args.count} images of {args.size_kb} KiB to {registry} ...", file=sys.stderr
        )
        refs = make_images(registry, args.count, args.size_kb, workdir)
        rows: list[tuple[str, str, float]] = []
        try:
            rows += measure("registry on loopback", refs, args.parallelism, workdir)
            with RegistryProxy(registry, delay=args.rtt_ms / 1000) as proxy:
                slow = [ref.replace(registry, proxy.address, 1) for ref in refs]
                rows += measure(
                    f"+{args.rtt_ms:g} ms per connection and request",
                    slow,
                    args.parallelism,
                    workdir,
                )
        finally:
            remove_local(refs)
            delete_from_registry(registry, refs)
    width = max(len(r[1]) for r in rows)
    print(f"\n{args.count} images of {args.size_kb} KiB, each missing before each run\n")
    print(f"{'registry':<34} {'method':<{width}} {'seconds':>8} {'per image':>10}")
    for label, name, seconds in rows:
        print(f"{label:<34} {name:<{width}} {seconds:8.2f} {seconds / args.count:9.2f}s")


if __name__ == "__main__":
    main()
