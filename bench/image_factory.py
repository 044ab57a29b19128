"""Many tiny, labelled images as one ``docker save``-format archive, for ``docker load``.

Every image has its own small layer (so its own id and size), a config with the
bench label, and a ``created`` time of its own. One image in ``SHARED_BASE_EVERY``
also sits on a common base layer, so shared and unique sizes differ. The same
index always gives the same bytes, hence the same image id: loading twice is harmless.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import random
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

BENCH_LABEL = "reconciler.bench"
REPOSITORY_PREFIX = "reconciler-bench/app-"
SHARED_BASE_EVERY = 25
BASE_LAYER_BYTES = 256 * 1024
FIRST_CREATED = datetime(2020, 1, 1, tzinfo=UTC)
CREATED_STEP = timedelta(hours=6)

_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


@dataclass(frozen=True)
class BenchImage:
    """One bench image: its repository and tags."""

    index: int
    tags: tuple[str, ...]

    @property
    def repository(self) -> str:
        return f"{REPOSITORY_PREFIX}{self.index:05d}"

    def references(self) -> list[str]:
        return [f"{self.repository}:{tag}" for tag in self.tags]


@dataclass(frozen=True)
class _Layer:
    blob: bytes

    @property
    def diff_id(self) -> str:
        return "sha256:" + hashlib.sha256(self.blob).hexdigest()

    @property
    def member(self) -> str:
        return f"{self.diff_id.removeprefix('sha256:')}/layer.tar"


def bench_images(count: int, tags_per_image: int) -> list[BenchImage]:
    """Images 0..count-1, each tagged t1..tN."""
    tags = tuple(f"t{k}" for k in range(1, tags_per_image + 1))
    return [BenchImage(index, tags) for index in range(count)]


def write_archive(out: IO[bytes], images: Sequence[BenchImage]) -> None:
    """Stream the archive of ``images`` to ``out`` (a pipe will do: nothing seeks)."""
    base = _layer("base/shared.bin", _pseudo_random("base", BASE_LAYER_BYTES))
    entries: list[dict[str, Any]] = []
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        if any(_shares_base(image) for image in images):
            _add(archive, base.member, base.blob)
        for image in images:
            own = _own_layer(image)
            layers = [base, own] if _shares_base(image) else [own]
            _add(archive, own.member, own.blob)
            entries.append(_add_config(archive, image, layers))
        _add(archive, "manifest.json", json.dumps(entries).encode())


def _add_config(
    archive: tarfile.TarFile, image: BenchImage, layers: list[_Layer]
) -> dict[str, Any]:
    """Add the image's config; return its ``manifest.json`` entry."""
    config = _config_json(image, layers)
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    _add(archive, config_name, config)
    return {
        "Config": config_name,
        "RepoTags": image.references(),
        "Layers": [layer.member for layer in layers],
    }


def _shares_base(image: BenchImage) -> bool:
    return image.index % SHARED_BASE_EVERY == 0


def _own_layer(image: BenchImage) -> _Layer:
    size = 1024 + (image.index * 7919) % 7168  # 1 to 8 KiB, varied
    return _layer(f"bench/app-{image.index:05d}.bin", _pseudo_random(image.index, size))


def _config_json(image: BenchImage, layers: list[_Layer]) -> bytes:
    created = (FIRST_CREATED + image.index * CREATED_STEP).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "architecture": _ARCHITECTURES.get(platform.machine(), "amd64"),
        "os": "linux",
        "created": created,
        "config": {"Labels": {BENCH_LABEL: "1"}, "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": created, "created_by": "reconciler bench"} for _ in layers],
    }
    return json.dumps(config, sort_keys=True).encode()


def _layer(path: str, content: bytes) -> _Layer:
    """A layer tar holding one file under one directory, with fixed metadata."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directory = tarfile.TarInfo(path.rsplit("/", 1)[0])
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o755
        tar.addfile(directory)
        _add(tar, path, content)
    return _Layer(buffer.getvalue())


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def _pseudo_random(seed: int | str, size: int) -> bytes:
    return random.Random(f"reconciler-bench:{seed}").randbytes(size)


# --- the scale host: many images on one shared layer --------------------------------

SCALE_LABEL = "reconciler.scale"
SCALE_PREFIX = "reconciler-scale/app-"
SCALE_REPOSITORIES = 100


@dataclass(frozen=True)
class ScaleImage:
    """One image of the scale host: its config alone is its own (a label ``n``), its one layer shared by all."""

    index: int

    @property
    def repository(self) -> str:
        return f"{SCALE_PREFIX}{self.index % SCALE_REPOSITORIES:03d}"

    @property
    def tags(self) -> tuple[str, ...]:
        return (f"n{self.index:05d}",)

    def references(self) -> list[str]:
        return [f"{self.repository}:{tag}" for tag in self.tags]


def scale_images(count: int) -> list[ScaleImage]:
    """Images 0..count-1 in SCALE_REPOSITORIES repositories, one tag each."""
    return [ScaleImage(index) for index in range(count)]


def write_scale_archive(out: IO[bytes], images: Sequence[ScaleImage]) -> None:
    """Stream a ``docker load`` archive of ``images``, all on one small layer: the daemon applies
    that layer once and then only stores a config and a tag per image."""
    shared = _layer("scale/shared.bin", _pseudo_random("scale", 4096))
    entries: list[dict[str, Any]] = []
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        _add(archive, shared.member, shared.blob)
        for image in images:
            created = (FIRST_CREATED + image.index * CREATED_STEP).strftime("%Y-%m-%dT%H:%M:%SZ")
            config = json.dumps({
                "architecture": _ARCHITECTURES.get(platform.machine(), "amd64"),
                "os": "linux",
                "created": created,
                "config": {"Labels": {SCALE_LABEL: "1", "n": str(image.index)}, "Cmd": ["/bin/true"]},
                "rootfs": {"type": "layers", "diff_ids": [shared.diff_id]},
                "history": [{"created": created, "created_by": "reconciler scale bench"}],
            }, sort_keys=True).encode()
            config_name = hashlib.sha256(config).hexdigest() + ".json"
            _add(archive, config_name, config)
            entries.append({"Config": config_name, "RepoTags": image.references(), "Layers": [shared.member]})
        _add(archive, "manifest.json", json.dumps(entries).encode())
