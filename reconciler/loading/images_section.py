"""Checks of ``images:`` that a schema cannot express, and the specs of the entries that pass.

On entries the schema accepted: the reference grammar of names, tags, aliases
and digests; keys that mean nothing for an absent repository; a repository
declared twice; an alias claimed twice, also a declared tag, or in an absent
repository; the keys of ``source: build`` and ``source: load`` (which other keys they exclude).
Whether their paths exist is :mod:`reconciler.loading.local_sources`' business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.errors import Diagnostic
from reconciler.loading.plain_values import as_text, as_texts
from reconciler.loading.yaml_source import Plain, SourceDocument, YamlPath, format_path
from reconciler.model.manifest import (
    Builder,
    BuildRecipe,
    ImageSource,
    ImageSpec,
    ImageState,
    PullPolicy,
    Source,
)
from reconciler.model.reference import (
    InvalidReference,
    Reference,
    is_valid_digest,
    is_valid_tag,
    parse_reference,
    parse_repository,
)

_TAG_RULE = (
    "a tag has 1 to 128 ASCII letters, digits, '_', '.' or '-', and does not start with '.' or '-'"
)
_BUILD_KEYS = ("context", "dockerfile", "args", "target", "builder")
_ABSENT_ONLY_KEYS = (
    "tags",
    "aliases",
    "digest",
    "platform",
    "pull",
    "source",
    *_BUILD_KEYS,
    "archive",
)
_PULL_ONLY_KEYS = ("digest", "pull", "platform")
# The source each local key belongs to, and the key each local source needs.
_OWNERS = {**{key: ImageSource.BUILD for key in _BUILD_KEYS}, "archive": ImageSource.LOAD}
_NEEDS = {ImageSource.BUILD: "context", ImageSource.LOAD: "archive"}


@dataclass(frozen=True)
class _Declared:
    """Where a repository, tag or alias was declared, to name it in a message."""

    index: int
    line: int

    def __str__(self) -> str:
        return f"images[{self.index}] (line {self.line})"


class Semantics:
    """Checks a schema cannot express, on entries the schema accepted."""

    def __init__(self, document: SourceDocument) -> None:
        self.document = document
        self.diagnostics: list[Diagnostic] = []

    def check(
        self, images: Plain, skip: set[int]
    ) -> tuple[tuple[ImageSpec, ...], list[Diagnostic]]:
        """Build the specs of the valid entries; report what stands in the way."""
        entries = images if isinstance(images, list) else []
        specs = {
            index: spec
            for index, raw in enumerate(entries)
            if index not in skip and isinstance(raw, dict)
            if (spec := self._entry(index, raw)) is not None
        }
        self._check_repositories(specs)
        self._check_aliases(specs)
        return tuple(specs.values()), self.diagnostics

    def _report(self, path: YamlPath, message: str, *, at_key: bool = False) -> None:
        self.diagnostics.append(self.document.diagnostic(path, message, at_key=at_key))

    def _entry(self, index: int, raw: dict[str, Plain]) -> ImageSpec | None:
        path: YamlPath = ("images", index)
        before = len(self.diagnostics)
        line, column = self.document.position(path)
        source = Source(self.document.filename, format_path(path), line, column)
        state = ImageState(as_text(raw.get("state")) or ImageState.PRESENT.value)
        repository = self._repository(path, as_text(raw.get("name")) or "")
        if state is ImageState.ABSENT:
            self._check_absent_keys(path, raw)
            spec = None if repository is None else ImageSpec(repository, state=state, source=source)
        else:
            spec = self._present(path, raw, repository, source)
        return None if len(self.diagnostics) > before else spec

    def _present(
        self, path: YamlPath, raw: dict[str, Plain], repository: Reference | None, source: Source
    ) -> ImageSpec | None:
        tags = self._tags(path, as_texts(raw.get("tags")))
        aliases = self._aliases(path, as_texts(raw.get("aliases")))
        digest = self._digest(path, as_text(raw.get("digest")))
        build, archive = self._local_source(path, raw)
        if repository is None:
            return None
        return ImageSpec(
            repository=repository,
            tags=tags or (() if digest is not None else ("latest",)),  # as `docker pull` does
            aliases=aliases,
            digest=digest,
            platform=as_text(raw.get("platform")),
            pull=PullPolicy(as_text(raw.get("pull")) or PullPolicy.IF_MISSING.value),
            source=source,
            build=build,
            archive=archive,
        )

    def _local_source(
        self, path: YamlPath, raw: dict[str, Plain]
    ) -> tuple[BuildRecipe | None, str | None]:
        """The recipe of ``source: build``, the archive of ``source: load`` (paths as written)."""
        source = ImageSource(as_text(raw.get("source")) or ImageSource.PULL.value)
        if source is ImageSource.PULL and raw.keys().isdisjoint(_OWNERS):
            return None, None  # the common entry: nothing below applies to it
        if source is not ImageSource.PULL:
            for key in _PULL_ONLY_KEYS:
                if key in raw:
                    self._report(
                        (*path, key),
                        f"'{key}' is about pulling from a registry, and source: {source.value} makes the image"
                        " on this host; remove it (or the source).",
                        at_key=True,
                    )
        needs = _NEEDS.get(source)
        if needs is not None and needs not in raw:
            self._report((*path, "source"), f"source: {source.value} needs '{needs}'; add it.")
        for key, owner in _OWNERS.items():
            if key in raw and source is not owner:
                self._report(
                    (*path, key),
                    f"'{key}' belongs to source: {owner.value}, and this entry's source is {source.value};"
                    f" add source: {owner.value} or remove '{key}'.",
                    at_key=True,
                )
        if source is ImageSource.BUILD:
            args = raw.get("args")
            pairs = (
                sorted((k, v) for k, v in args.items() if isinstance(v, str))
                if isinstance(args, dict)
                else []
            )
            recipe = BuildRecipe(
                context=as_text(raw.get("context")) or ".",
                dockerfile=as_text(raw.get("dockerfile")) or "Dockerfile",
                args=tuple(pairs),
                target=as_text(raw.get("target")),
                builder=Builder(as_text(raw.get("builder")) or Builder.LEGACY.value),
            )
            return recipe, None
        if source is ImageSource.LOAD:
            return None, as_text(raw.get("archive"))
        return None, None

    def _repository(self, path: YamlPath, name: str) -> Reference | None:
        name_path = (*path, "name")
        try:
            reference = parse_reference(name)
        except InvalidReference as exc:
            self._report(name_path, str(exc))
            return None
        if reference.tag is not None or reference.digest is not None:
            self._report(name_path, _name_suffix_message(reference))
            return None
        try:
            return parse_repository(name)
        except InvalidReference as exc:
            self._report(name_path, str(exc))
            return None

    def _check_absent_keys(self, path: YamlPath, raw: dict[str, Plain]) -> None:
        for key in _ABSENT_ONLY_KEYS:
            if key in raw:
                message = (
                    f"'{key}' has no meaning with state: absent, which removes every local tag"
                    " of the repository; remove it."
                )
                self._report((*path, key), message, at_key=True)

    def _tags(self, path: YamlPath, tags: Sequence[str]) -> tuple[str, ...]:
        for index, tag in enumerate(tags):
            if not is_valid_tag(tag):
                self._report((*path, "tags", index), f"{tag!r} is not a valid tag: {_TAG_RULE}.")
        return tuple(tags)

    def _aliases(self, path: YamlPath, texts: Sequence[str]) -> tuple[Reference, ...]:
        aliases: list[Reference] = []
        for index, text in enumerate(texts):
            alias_path = (*path, "aliases", index)
            try:
                alias = parse_reference(text)
            except InvalidReference as exc:
                self._report(alias_path, str(exc))
                continue
            if alias.digest is not None:
                message = f"alias {text!r} has a digest; an alias is a name with a tag"
                self._report(alias_path, message + ", as `docker tag` makes.")
                continue
            aliases.append(alias if alias.tag is not None else alias.with_tag("latest"))
        return tuple(aliases)

    def _digest(self, path: YamlPath, digest: str | None) -> str | None:
        if digest is not None and not (is_valid_digest(digest) and digest.startswith("sha256:")):
            message = (
                f"{digest!r} is not a valid digest; write sha256: followed by 64 lower-case"
                " hexadecimal digits."
            )
            self._report((*path, "digest"), message)
        return digest

    def _check_repositories(self, specs: Mapping[int, ImageSpec]) -> None:
        """Each repository is declared once, whether present or absent."""
        first: dict[Reference, int] = {}
        for index, spec in specs.items():
            earlier_index = first.setdefault(spec.repository, index)
            if earlier_index == index:
                continue
            earlier = specs[earlier_index]
            where = self._where(("images", earlier_index, "name"))
            name = spec.repository.familiar_name
            if earlier.state is spec.state:
                message = (
                    f"repository {name} is already declared by {where}; merge the two entries."
                )
            else:
                message = (
                    f"repository {name} is declared {spec.state.value} here and"
                    f" {earlier.state.value} by {where}; keep one of them."
                )
            self._report(("images", index, "name"), message)

    def _check_aliases(self, specs: Mapping[int, ImageSpec]) -> None:
        """An alias names one image: not claimed twice, not a declared tag, not absent."""
        present = {i: spec for i, spec in specs.items() if spec.state is ImageState.PRESENT}
        # Only the tags of a repository some alias is in can be an alias too.
        aliased = {(alias.domain, alias.path) for spec in present.values() for alias in spec.aliases}
        tags: dict[Reference, YamlPath] = {
            reference: ("images", i, "tags", position)
            for i, spec in present.items()
            if (spec.repository.domain, spec.repository.path) in aliased
            for position, reference in enumerate(spec.tag_references())
        }
        absent: dict[tuple[str, str], YamlPath] = {  # by domain and path: no Reference to make per alias
            (spec.repository.domain, spec.repository.path): ("images", i, "name")
            for i, spec in specs.items()
            if spec.state is ImageState.ABSENT
        }
        claimed: dict[Reference, YamlPath] = {}
        for i, spec in present.items():
            for position, alias in enumerate(spec.aliases):
                here: YamlPath = ("images", i, "aliases", position)
                message = self._alias_conflict(alias, claimed, tags, absent)
                if message:
                    self._report(here, message)
                else:
                    claimed[alias] = here

    def _alias_conflict(
        self,
        alias: Reference,
        claimed: Mapping[Reference, YamlPath],
        tags: Mapping[Reference, YamlPath],
        absent: Mapping[tuple[str, str], YamlPath],
    ) -> str | None:
        shown = alias.familiar()
        if alias in claimed:
            return f"alias {shown} is already claimed by {self._where(claimed[alias])}."
        if alias in tags:
            return f"alias {shown} is already declared as a tag by {self._where(tags[alias])}; it cannot be both."
        if (alias.domain, alias.path) in absent:
            where = self._where(absent[alias.domain, alias.path])
            return (
                f"alias {shown} is in repository {alias.familiar_name}, which {where} declares absent."
            )
        return None

    def _where(self, path: YamlPath) -> _Declared:
        """Where the entry ``images[i]...`` at ``path`` was declared, for a message."""
        index = path[1]
        assert isinstance(index, int)
        return _Declared(index, self.document.position(path)[0])


def _name_suffix_message(reference: Reference) -> str:
    parts = []
    if reference.tag is not None:
        parts.append(f"a name takes no tag; move '{reference.tag}' to tags: [\"{reference.tag}\"]")
    if reference.digest is not None:
        parts.append(f'a name takes no digest; move it to digest: "{reference.digest}"')
    return "; ".join(parts) + "."
