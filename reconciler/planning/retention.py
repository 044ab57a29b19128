"""Retention: which images and tags a host may drop, as a pure function of plain data.

:func:`evaluate_retention` takes the ``retention:`` section
(:class:`~reconciler.model.manifest.RetentionSpec`), the images and containers of a
host, the references ``images:`` declares, the clock and usage history, and
returns a :class:`Verdict` for every image, each naming the rung or rule that
decided and its inputs. Nothing here reads a daemon, a file or the clock.

This module runs the rungs in order; they live beside it: rungs 1-4 and 6 in
:mod:`~reconciler.planning.retention_rungs`, the rules (rung 5) in
:mod:`~reconciler.planning.retention_rules`, the verdicts in
:mod:`~reconciler.planning.retention_verdicts`.

Precedence, tested in this order for each image:

1. An image any container uses, running or stopped, is kept.
   Next, an image a hold keeps (``held``: image id -> why, from
   :mod:`reconciler.planning.holds`) is kept until the hold expires.
2. An image holding a reference ``images:`` declares (tag, alias, digest pin,
   or its id) is kept.
3. An image with a reference matching a ``protect:`` pattern is kept.
4. An image that arrived on the host less than ``min_age`` ago (default 1h)
   is kept. Arrival is when the host got the image (pull, load, build, tag, or
   the first run that saw it: ``arrived``), not its creation: an image built a
   month ago and pulled a minute ago is a minute old here. An image ``arrived``
   does not know arrives ``now``.
   Rungs 1-4 keep the whole image with every tag it has.
5. Rules, in file order. A rule decides per tag: each tag goes to the first
   rule that selects it; an untagged image goes, as a whole, to the first rule
   with ``untagged: true`` that selects it. What no rule selects is kept, or
   dropped with ``unmatched: remove``. The tags dropped are untagged; an image
   whose every tag is dropped (or that is untagged and dropped) is removed,
   unless a ``keep_previous`` of some rule holds it, when it only loses its tags.
6. With ``disk:`` and a known disk usage: when, after the removals of step 5,
   images take more than ``max_total`` bytes or the disk is fuller than
   ``high`` percent, the least recently used images that rungs 1-4 allow are
   evicted (last use from ``last_used``, else creation time; ties by id)
   until images take at most ``max_total`` and the disk is at most ``low``
   percent full. Each eviction counts its unique bytes (its full size when the
   unique size is unknown, which can only evict less).

Selection (``select:``):

- ``repositories``: globs matched against the full normalised name
  (``docker.io/library/nginx``) and the familiar one (``nginx``); either
  matching is enough. ``*`` matches within one path segment, ``**`` as a whole
  segment matches any number of segments, zero included; every other
  character is literal. No ``repositories`` selects every repository.
- ``tags: {include, exclude}``: regexes matched against the whole tag
  (fullmatch). A tag is selected when it matches ``include`` (default: every
  tag) and does not match ``exclude``.
- ``labels``: image labels that must all hold for the image the tag (or untagged
  image) belongs to: a value (equal), presence, absence, or ``not`` a value. ``protect``
  takes such selectors too (rung 3). Decisions they make name the labels (``pattern``).
- ``untagged: true`` makes the rule select images with no tag instead of tags;
  their repositories are those of their digest references (``name@sha256:...``),
  and an image with none matches only a rule without ``repositories``.

Keep conditions of a rule, OR'ed (any one keeps):

- ``keep_last: N``: per repository, the N newest images among those the rule
  selects there, all their selected tags with them. Images rungs 1-4 keep count
  among the N: a declared newest image is one of "the three newest". ``order: created``
  (default) ranks by creation time; ``order: semver`` by the highest version
  among the image's selected tags (``v1.2.3``, ``1.2``, ``2``; build metadata
  ignored), every release before every pre-release, and images whose tags are
  no version last; creation time, then id, break ties.
- ``keep_within: D``: images created less than D ago (age <= D).
- ``keep_tags: REGEX``: tags matching it (fullmatch).
- ``keep_previous: N``: for every tag the rule selects, the N images the tag
  pointed at most recently before (``previous``, newest first) are kept,
  whatever rule selects them: the old image of a moved tag usually has no tag
  left, so no tag rule would reach it. An untagged image held so takes no
  ``keep_last`` slot.

A selected tag or untagged image that nothing keeps is dropped when it is
older than ``older_than`` (age > D), or whatever its age when ``older_than``
is not given.

The guard on how much a plan may remove is :mod:`reconciler.planning.removal_guard`,
applied to the whole plan, retention's steps included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from operator import attrgetter

from reconciler.model.host_facts import DiskUsage
from reconciler.model.inventory import ContainerRecord, ImageRecord
from reconciler.model.manifest import RetentionSpec
from reconciler.planning.retention_rules import RuleRound
from reconciler.planning.retention_rungs import RetentionContext, evict
from reconciler.planning.retention_verdicts import Fate, RetentionResult, Verdict


def evaluate_retention(
    spec: RetentionSpec,
    images: Sequence[ImageRecord],
    containers: Sequence[ContainerRecord],
    declared: Set[str],
    now: float,
    last_used: Mapping[str, float] | None = None,
    previous: Mapping[str, tuple[str, ...]] | None = None,
    disk: DiskUsage | None = None,
    arrived: Mapping[str, float] | None = None,
    held: Mapping[str, str] | None = None,
) -> RetentionResult:
    """Decide every image's fate under ``spec``; see the module docstring for the rules.

    ``declared`` holds canonical tag and digest references and image ids that
    ``images:`` claims. ``previous`` maps a canonical tag to the ids it pointed
    at before, newest first. ``arrived`` maps an image id to when it arrived on the
    host; an image it lacks arrives ``now``. Without it (``None``: a caller that keeps
    no usage state) min_age counts from creation. The same inputs, in any order, give
    the same result.
    """
    ordered = sorted(images, key=attrgetter("id"))
    context = RetentionContext(
        spec, now, declared, last_used or {}, previous or {}, containers, arrived, held
    )
    protection, keep = context.protection, Fate.KEEP
    verdicts: dict[str, Verdict] = {}
    open_images: list[ImageRecord] = []
    kept_anyway: list[ImageRecord] = []
    for image in ordered:
        found = protection(image)
        if found is None:
            open_images.append(image)
        else:
            kept_anyway.append(image)
            verdicts[image.id] = Verdict(image.id, keep, (found,))
    verdicts.update(RuleRound(context, open_images, kept_anyway).verdicts())
    budget = None
    if spec.disk is not None and disk is not None:
        evicted, budget = evict(context, spec.disk, disk, open_images, verdicts)
        verdicts.update(evicted)
    return RetentionResult.of(tuple([verdicts[image.id] for image in ordered]), budget)
