"""Export: an inventory as images.yaml text that the loader reads back and the planner finds matching."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from reconciler.loading.loader import load_manifest_text
from reconciler.model.inventory import Inventory
from reconciler.planning.export import export_manifest
from reconciler.planning.images import plan_changes

from .planning_data import container, digest, image

CREATED = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)
PINNED = digest("pinned")
IMAGES = (
    image("web-new", "web:1.10", "web:latest", "registry.example:5000/team/web:on", digests=(f"web@{digest('w')}",)),
    image("web-old", "web:1.9"),
    image("tool", "localhost:5000/tools/tool:010"),
    image("by-digest", digests=(f"pinned@{PINNED}",)),
    image("dangling"),
    image("two", digests=(f"pair@{digest('b')}",)),
    image("one", digests=(f"pair@{digest('a')}",)),
    image("both", "mixed:1", digests=(f"mixed@{digest('m1')}",)),
    image("mixed-untagged", digests=(f"mixed@{digest('m2')}",)),
)
INVENTORY = Inventory(images=IMAGES, containers=(container("c", "web-old"),), host="unix:///d.sock")


def test_export_is_a_sorted_quoted_manifest_with_a_header() -> None:
    text = export_manifest(INVENTORY, CREATED)
    assert text.splitlines()[0] == (
        "# Images on unix:///d.sock on 2026-01-31T12:00:00Z, written by `reconcile export`."
    )
    body = text[text.index("version: 1") :]
    assert body == (
        "version: 1\n"
        "images:\n"
        '  - name: "localhost:5000/tools/tool"\n'
        '    tags: ["010"]\n'
        '  - name: "mixed"\n'
        '    tags: ["1"]\n'
        '  - name: "pair"\n'
        f'    digest: "{digest("a") if digest("a") < digest("b") else digest("b")}"\n'
        '  - name: "pinned"\n'
        f'    digest: "{PINNED}"\n'
        '  - name: "registry.example:5000/team/web"\n'
        '    tags: ["on"]\n'
        '  - name: "web"\n'
        '    tags: ["1.10", "1.9", "latest"]\n'
    )


def test_what_version_1_cannot_say_is_named_in_comments() -> None:
    text = export_manifest(INVENTORY, CREATED)
    assert "# Not listed: 1 untagged image (no tag, no digest)." in text
    assert f"# Not listed, version 1 has no way to say it: mixed@{digest('m2')}" in text
    second = max(digest("a"), digest("b"))
    assert f"# Not listed, version 1 has no way to say it: pair@{second}" in text


def test_export_reads_back_as_the_same_strings() -> None:
    manifest = load_manifest_text(export_manifest(INVENTORY, CREATED), "exported.yaml", environ={})
    tags = {spec.repository.familiar_name: spec.tags for spec in manifest.images}
    assert tags["web"] == ("1.10", "1.9", "latest")  # 1.10 is not the number 1.1
    assert tags["localhost:5000/tools/tool"] == ("010",)  # nor 8
    assert tags["registry.example:5000/team/web"] == ("on",)  # nor true


def test_exporting_then_planning_gives_no_changes() -> None:
    manifest = load_manifest_text(export_manifest(INVENTORY, CREATED), "exported.yaml", environ={})
    assert plan_changes(manifest, INVENTORY).steps == ()


def test_export_is_deterministic_whatever_the_listing_order() -> None:
    shuffled = list(IMAGES)
    random.Random(7).shuffle(shuffled)
    again = Inventory(images=tuple(shuffled), host="unix:///d.sock")
    assert export_manifest(again, CREATED) == export_manifest(INVENTORY, CREATED)


def test_empty_host_exports_an_empty_valid_manifest() -> None:
    text = export_manifest(Inventory(host="tcp://h:2375"), CREATED)
    assert load_manifest_text(text, "empty.yaml", environ={}).images == ()
