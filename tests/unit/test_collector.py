"""The reconcile process collects its young generation rarely and leaves start-up frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from reconciler.cli.collector import YOUNG_THRESHOLD, tune_collector
from reconciler.cli.commands import main


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


@pytest.mark.usefixtures("restored_collector")
def test_tune_collector_raises_only_the_young_threshold_and_freezes_start_up() -> None:
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    tune_collector()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() > 0
    assert gc.isenabled()


@pytest.mark.usefixtures("restored_collector")
def test_the_command_entry_point_tunes_the_collector() -> None:
    gc.set_threshold(700, 10, 10)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
