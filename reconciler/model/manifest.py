"""The desired state: what a user declared in images.yaml, validated and normalised.

Plain frozen data. Built by :mod:`reconciler.loading.loader`; read by the planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from reconciler.model.derived import derived
from reconciler.model.reference import Reference


class PullPolicy(StrEnum):
    IF_MISSING = "if-missing"  # pull only when the tag is not on the host
    ALWAYS = "always"  # re-pull when the registry's digest for the tag moved
    NEVER = "never"  # never contact a registry; a missing tag is a problem


class ImageState(StrEnum):
    PRESENT = "present"
    ABSENT = "absent"  # every local tag of the repository goes


class ImageSource(StrEnum):
    PULL = "pull"  # from a registry
    BUILD = "build"  # built on the host from a Dockerfile
    LOAD = "load"  # loaded from a `docker save` archive


class Builder(StrEnum):
    LEGACY = "legacy"  # the Engine API's own builder (POST /build)
    BUILDKIT = "buildkit"  # BuildKit, through the docker CLI (the API's BuildKit path needs a gRPC session)


@dataclass(frozen=True)
class BuildRecipe:
    """How a ``source: build`` entry's first tag is made; paths absolute once loaded."""

    context: str
    dockerfile: str = "Dockerfile"  # relative to the context
    args: tuple[tuple[str, str], ...] = ()  # sorted by name
    target: str | None = None
    builder: Builder = Builder.LEGACY


@dataclass(frozen=True)
class Source:
    """Where a declaration stands in the manifest, for messages."""

    file: str
    path: str  # e.g. ``images[1]``
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column} ({self.path})"


@dataclass(frozen=True)
class ImageSpec:
    """One entry of ``images:``.

    ``repository`` is a name without tag or digest. ``aliases`` are full
    references (with a tag) that must point at the image of the first tag.
    """

    repository: Reference
    tags: tuple[str, ...] = ()
    aliases: tuple[Reference, ...] = ()
    digest: str | None = None
    platform: str | None = None
    pull: PullPolicy = PullPolicy.IF_MISSING
    state: ImageState = ImageState.PRESENT
    source: Source | None = field(default=None, compare=False)
    build: BuildRecipe | None = None  # ``source: build``
    archive: str | None = None  # ``source: load``: the `docker save` archive, an absolute path

    @property
    def origin(self) -> ImageSource:
        """Where the entry's first tag comes from."""
        if self.build is not None:
            return ImageSource.BUILD
        if self.archive is not None:
            return ImageSource.LOAD
        return ImageSource.PULL

    def tag_references(self) -> tuple[Reference, ...]:
        """The references ``repository:tag`` for every declared tag, in order."""
        return self._tag_references

    @derived
    def _tag_references(self) -> tuple[Reference, ...]:
        # Made once: loading, the declared set, the planner and the digest lookups each ask.
        return tuple(self.repository.with_tag(tag) for tag in self.tags)


@dataclass(frozen=True)
class PruneSpec:
    unlisted_tags: bool = False  # untag local tags of declared repositories that are not listed
    dangling: bool = False  # remove images with no tag that no container uses


class Order(StrEnum):
    """How ``keep_last`` ranks the images of a repository, newest first."""

    CREATED = "created"  # by image creation (build) time
    SEMVER = "semver"  # by the highest version among the image's tags; releases before pre-releases


class Unmatched(StrEnum):
    KEEP = "keep"  # a tag or untagged image no rule selects stays
    REMOVE = "remove"  # ... goes, unless a protection holds it


@dataclass(frozen=True)
class TagFilter:
    """Regexes matched against the whole tag (fullmatch); None matches every tag."""

    include: str | None = None
    exclude: str | None = None


class LabelTest(StrEnum):
    EQUALS = "equals"  # ``key: "value"``: the label is there with exactly this value
    PRESENT = "present"  # ``key: true``: the label is there, any value
    ABSENT = "absent"  # ``key: false``: the label is not there
    NOT_EQUALS = "not-equals"  # ``key: {not: "value"}``: not there, or with another value


@dataclass(frozen=True)
class LabelCondition:
    key: str
    test: LabelTest
    value: str = ""

    def describe(self) -> str:
        """As Docker's filters write it: ``label=k=v``, ``label=k``, ``label!=k``, ``label!=k=v``."""
        return {
            LabelTest.EQUALS: f"label {self.key}={self.value}",
            LabelTest.PRESENT: f"label {self.key}",
            LabelTest.ABSENT: f"no label {self.key}",
            LabelTest.NOT_EQUALS: f"label {self.key} not {self.value}",
        }[self.test]


@dataclass(frozen=True)
class LabelSelector:
    """Image labels that must all hold (``labels:`` in a rule's ``select`` or in ``protect``)."""

    conditions: tuple[LabelCondition, ...] = ()


@dataclass(frozen=True)
class Selector:
    """What a rule selects: tags (``untagged`` false) or untagged images (``untagged`` true).

    ``repositories`` are globs; empty selects every repository. ``labels``, when given, must
    all hold for the image the tag belongs to.
    """

    repositories: tuple[str, ...] = ()
    tags: TagFilter = TagFilter()
    untagged: bool = False
    labels: LabelSelector | None = None


@dataclass(frozen=True)
class Rule:
    """One entry of ``retention.rules``; durations in seconds. See :mod:`reconciler.planning.retention`."""

    name: str
    select: Selector = Selector()
    keep_last: int | None = None
    order: Order = Order.CREATED
    keep_within: int | None = None
    keep_tags: str | None = None
    keep_previous: int | None = None
    older_than: int | None = None


@dataclass(frozen=True)
class DiskBudget:
    """Evict when images exceed ``max_total`` bytes or the disk is over ``high`` percent."""

    max_total: int | None = None
    high: float | None = None
    low: float | None = None  # evict down to this percent; given together with high


@dataclass(frozen=True)
class RetentionSpec:
    """The ``retention:`` section. Defaults are those of an empty section."""

    min_age: int = 3600  # seconds: images that arrived on the host since are never removed
    protect: tuple[str, ...] = ()
    protect_labels: tuple[LabelSelector, ...] = ()  # ``protect: [{labels: {...}}]`` entries
    unmatched: Unmatched = Unmatched.KEEP
    max_removal_percent: float = 50.0
    disk: DiskBudget | None = None
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class BuildCacheSpec:
    """The ``build_cache:`` section: BuildKit records unused for ``unused_for`` seconds go, then the
    least recently used until the cache takes at most ``keep_storage`` bytes."""

    keep_storage: int | None = None
    unused_for: int | None = None


@dataclass(frozen=True)
class DeclaredReferences:
    """Every reference ``images:`` wants kept, as canonical strings: what nothing may remove."""

    tags: frozenset[str]  # declared tags and aliases
    pins: frozenset[str]  # declared digest pins (name@digest)
    # The texts a daemon lists those tags as (Reference.listed_forms): a listed tag whose text is
    # here is a declared tag without being parsed. Empty: every listed tag is parsed.
    tag_texts: frozenset[str] = frozenset()

    @property
    def all(self) -> frozenset[str]:
        return self.tags | self.pins


@dataclass(frozen=True)
class Manifest:
    images: tuple[ImageSpec, ...] = ()
    prune: PruneSpec = PruneSpec()
    retention: RetentionSpec | None = None
    build_cache: BuildCacheSpec | None = None
    path: str = "<memory>"
    digest: str = ""  # sha256 of the manifest file's bytes, to detect a changed file

    def present(self) -> tuple[ImageSpec, ...]:
        return tuple(spec for spec in self.images if spec.state is ImageState.PRESENT)

    def absent(self) -> tuple[ImageSpec, ...]:
        return tuple(spec for spec in self.images if spec.state is ImageState.ABSENT)

    @cached_property
    def declared(self) -> DeclaredReferences:
        """The tags, aliases and digest pins of every present entry."""
        tags: set[str] = set()
        texts: set[str] = set()
        pins: set[str] = set()
        for spec in self.present():
            for ref in (*spec.tag_references(), *spec.aliases):
                tags.add(ref.canonical())
                texts.update(ref.listed_forms)
            if spec.digest:
                pins.add(spec.repository.with_digest(spec.digest).canonical())
        return DeclaredReferences(frozenset(tags), frozenset(pins), frozenset(texts))
