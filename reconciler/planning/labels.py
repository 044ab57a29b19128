"""Image labels against a manifest's ``labels:`` selector. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.model.manifest import LabelCondition, LabelSelector, LabelTest


def condition_holds(condition: LabelCondition, labels: Mapping[str, str]) -> bool:
    found = labels.get(condition.key)
    if condition.test is LabelTest.EQUALS:
        return found == condition.value
    if condition.test is LabelTest.PRESENT:
        return found is not None
    if condition.test is LabelTest.ABSENT:
        return found is None
    return found != condition.value


def labels_match(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Every condition holds (an empty selector matches every image)."""
    return all(condition_holds(c, labels) for c in selector.conditions)


def describe_selector(selector: LabelSelector) -> str:
    """``label com.example.keep=true, no label com.example.tmp``: what decided, for explanations."""
    return ", ".join(c.describe() for c in selector.conditions)
