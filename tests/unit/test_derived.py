"""A derived value is computed once per instance and leaves equality and hashing alone."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.model.derived import derived
from reconciler.model.reference import Reference, parse_reference


@dataclass(frozen=True)
class Counted:
    value: int
    calls: list[int] = field(default_factory=list, compare=False, hash=False)

    @derived
    def doubled(self) -> int:
        """Twice the value."""
        self.calls.append(self.value)
        return self.value * 2


def test_a_derived_value_is_computed_on_first_use_only() -> None:
    counted = Counted(21)
    assert counted.calls == []
    assert (counted.doubled, counted.doubled) == (42, 42)
    assert counted.calls == [21]


def test_a_derived_value_is_kept_per_instance_and_ignored_by_equality_and_hash() -> None:
    first, second = Counted(3), Counted(3)
    assert first.doubled == 6
    assert first == second and hash(first) == hash(second)
    assert second.calls == []


def test_the_class_attribute_is_the_descriptor_with_its_docstring() -> None:
    assert isinstance(Counted.__dict__["doubled"], derived)
    assert Counted.doubled.__doc__ == "Twice the value."


def test_references_keep_their_derived_forms() -> None:
    ref = parse_reference("nginx:1.25")
    assert ref.familiar() == "nginx:1.25" and ref.canonical() == "docker.io/library/nginx:1.25"
    assert {"name", "familiar_name", "_canonical", "_familiar"} <= set(vars(ref))
    assert ref == Reference("docker.io", "library/nginx", "1.25")
