"""Time the digest of a build's inputs, which every plan of a ``source: build`` entry reads first.

A synthetic context of ``--files`` small files in directories of 100, and as many again under
a directory ``.dockerignore`` excludes (``node_modules``, as a Node build would have). Prints
the median wall time of ``--repeat`` digests with and without the ignored tree walked, and the
files digested. Figures only: nothing is asserted.

    .venv/bin/python bench/build_inputs_bench.py [--files 5000] [--size 1024] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from reconciler.loading.build_context import read_build_inputs
from reconciler.model.manifest import BuildRecipe


def make_context(root: Path, files: int, size: int) -> None:
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    for tree in ("src", "node_modules"):
        for number in range(files):
            directory = root / tree / f"d{number // 100}"
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"f{number}.txt").write_bytes(os.urandom(size))


def timed(recipe: BuildRecipe, repeat: int) -> tuple[float, int]:
    times = []
    count = 0
    for _ in range(repeat):
        started = time.perf_counter()
        inputs = read_build_inputs(recipe)
        times.append(time.perf_counter() - started)
        count = len(inputs.files)
    return statistics.median(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        make_context(root, args.files, args.size)
        recipe = BuildRecipe(context=str(root))
        (root / ".dockerignore").write_text("node_modules\n")
        pruned, kept = timed(recipe, args.repeat)
        (root / ".dockerignore").write_text("node_modules\n!node_modules/never-there\n")  # an exception: the tree is walked
        walked, _ = timed(recipe, args.repeat)
        (root / ".dockerignore").unlink()
        everything, all_files = timed(recipe, args.repeat)
    print(f"context: {args.files} files of {args.size} B kept, {args.files} more under an ignored node_modules/")
    print(f"ignored tree skipped:        {pruned * 1000:8.1f} ms ({kept} entries digested)")
    print(f"ignored tree walked (a !):   {walked * 1000:8.1f} ms")
    print(f"no .dockerignore:            {everything * 1000:8.1f} ms ({all_files} entries digested)")


if __name__ == "__main__":
    main()
