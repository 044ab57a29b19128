"""The cyclic garbage collector's settings for the ``reconcile`` process.

Planning a large host makes millions of small objects that live until the command ends
(references, decisions, verdicts, steps), and almost none of them form cycles. Under the
default thresholds (700, 10, 10) the collector examines them again and again: at 100,000
images about a third of the retention evaluation went to it. Set once, process-wide, at
start-up, so hosts planned in threads at the same time see one setting and nothing has to
turn the collector back on.
"""

from __future__ import annotations

import gc

# A young-generation collection per 100,000 net allocations instead of 700: cycles are still
# collected (``watch`` runs for days), at most a few megabytes of them wait meanwhile.
YOUNG_THRESHOLD = 100_000


def tune_collector() -> None:
    """Freeze what start-up made (modules, classes, compiled patterns) out of the collector's
    reach and collect the young generation far less often; the older ones keep their ratios."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
