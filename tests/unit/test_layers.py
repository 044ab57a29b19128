"""Freed-space accounting over shared layers: plain data in, bytes out."""

from __future__ import annotations

import hashlib

from reconciler.model.inventory import HistoryEntry, ImageRecord, Inventory
from reconciler.model.plan import Action, Plan, Step
from reconciler.planning.freed_space import (
    ImageLayers,
    chain_ids,
    freed_by_image,
    layer_sizes,
)
from reconciler.planning.sizing import sized_plan


def diff(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def stack(image_id: str, *layers: tuple[str, int]) -> ImageLayers:
    chains = chain_ids([diff(name) for name, _ in layers])
    return ImageLayers(image_id, tuple(zip(chains, (size for _, size in layers), strict=True)))


def test_chain_ids_follow_the_oci_rule() -> None:
    a, b = diff("a"), diff("b")
    first, second = chain_ids([a, b])
    assert first == a
    assert second == "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    # The same diff on another base is another layer.
    assert chain_ids([b])[0] != second


def test_layers_shared_only_by_removed_images_are_freed_once() -> None:
    base = ("base", 100)
    child1 = stack("c1", base, ("x", 10))
    child2 = stack("c2", base, ("y", 20))
    layers = {"c1": child1, "c2": child2}
    assert freed_by_image(["c1", "c2"], layers, kept_chains=()) == {"c1": 110, "c2": 20}


def test_layers_a_kept_image_uses_are_not_freed() -> None:
    base = ("base", 100)
    child = stack("c1", base, ("x", 10))
    kept = stack("k", base, ("z", 5))
    assert freed_by_image(["c1"], {"c1": child}, kept_chains=kept.chain_ids) == {"c1": 10}


def test_layer_sizes_skip_history_entries_that_made_no_layer() -> None:
    history = [
        HistoryEntry(100, "/bin/sh -c #(nop) ADD file:abc in /"),
        HistoryEntry(0, "/bin/sh -c #(nop)  CMD [\"sh\"]"),
        HistoryEntry(0, "/bin/sh -c touch /empty"),  # a real layer of zero bytes
        HistoryEntry(7, "/bin/sh -c echo hi > /x"),
    ]
    assert layer_sizes([diff("1"), diff("2"), diff("3")], history) == (100, 0, 7)
    assert layer_sizes([diff("1"), diff("2")], history) == (100, 7)  # fall back to sized entries
    assert layer_sizes([diff("1")], history) is None


def test_plan_removals_take_the_freed_bytes() -> None:
    plan = Plan(
        steps=(
            Step(action=Action.REMOVE, ref="a:1", image_id="c1", reason="r", bytes=1),
            Step(action=Action.REMOVE, ref="b:1", image_id="c2", reason="r", bytes=1, blocked="in use"),
        )
    )
    # The blocked removal frees nothing this run; it shows its image's unique size.
    inventory = Inventory(images=(ImageRecord(id="c2", size=1, shared_size=0),))
    sized = sized_plan(plan, inventory, {"c1": 110, "c2": 20})
    assert [s.bytes for s in sized.steps] == [110, 1]
