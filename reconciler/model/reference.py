"""Docker image references, parsed and normalised as Docker itself does.

A port of the Go package ``distribution/reference``: its grammar
(``reference.go``, ``regexp.go``) and its normalisation (``normalize.go``:
``ParseNormalizedNamed``, ``FamiliarName``, ``FamiliarString``,
``TagNameOnly``). ``nginx``, ``docker.io/nginx`` and
``index.docker.io/library/nginx`` all parse to the same :class:`Reference`,
so a reference written in a manifest compares equal to the one the daemon
lists.

Grammar::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain "/"] path-component ["/" path-component]*
    domain           := (domain-name | "[" IPv6 "]") [":" port]
    domain-name      := domain-component ["." domain-component]*
    domain-component := /[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]/
    path-component   := /[a-z0-9]+/ [separator /[a-z0-9]+/]*
    separator        := "." | "_" | "__" | /-+/
    tag              := /[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}/
    digest           := sha256:<64 hex> | sha384:<96 hex> | sha512:<128 hex>
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import NoReturn

from reconciler.errors import ExitCode, ReconcilerError
from reconciler.model.derived import derived

DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
# Counted over the whole name, registry included, as distribution v2 (which
# Docker Engine 20.10 vendors) does; distribution/reference v0.6 counts only the
# path. The stricter rule refuses nothing an older daemon would accept.
NAME_MAX_LENGTH = 255

_LEGACY_DOMAIN = "index.docker.io"
_OFFICIAL_PREFIX = "library/"
_LOCALHOST = "localhost"
# No valid reference comes near this length (name 255, tag 128, sha512 digest
# 135); refusing longer text early keeps regex work and error messages small.
_TEXT_MAX_LENGTH = 1024

# The patterns of regexp.go, composed the same way. Every one is used with
# fullmatch and re.ASCII: Python's `$` accepts a trailing newline, and `\w`
# matches non-ASCII letters unless re.ASCII is set.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6_ADDRESS = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6_ADDRESS})(?::[0-9]+)?"
_TAG = r"\w[\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_REMOTE_NAME}"

_REFERENCE_RE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_NAME_RE = re.compile(rf"(?:({_DOMAIN})/)?({_REMOTE_NAME})", re.ASCII)
_DOMAIN_RE = re.compile(_DOMAIN, re.ASCII)
_PATH_COMPONENT_RE = re.compile(_PATH_COMPONENT, re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_DIGEST_RE = re.compile(_DIGEST, re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}", re.ASCII)
_REMOTE_NAME_RE = re.compile(_REMOTE_NAME, re.ASCII)

# The algorithms Docker registers with go-digest, and their hex lengths.
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_LOWER_HEX_RE = re.compile(r"[a-f0-9]+", re.ASCII)

_TAG_RULE = (
    "a tag has 1 to 128 ASCII letters, digits, '_', '.' or '-', and does not start with '.' or '-'"
)
_PATH_RULE = (
    "a path component is lowercase ASCII letters and digits, separated by one '.', "
    "one or two '_', or any number of '-'"
)


class InvalidReference(ReconcilerError, ValueError):
    """Text that is not a valid Docker image reference, tag or digest."""

    exit_code = ExitCode.USAGE


@functools.total_ordering
@dataclass(frozen=True)
class Reference:
    """A normalised image reference: ``domain/path[:tag][@digest]``.

    Construct one with :func:`parse_reference`; the constructor refuses
    fields that are invalid or not in normalised form. ``domain`` is empty
    only in one corner Docker allows too: a first component with a dot that
    is no valid host name but a valid path component (``foo_bar.com/app``).
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        _check_field_types(self)
        text = _compose(self.name, self.tag, self.digest)
        if _parse_fields(text) != (self.domain, self.path, self.tag, self.digest):
            raise InvalidReference(
                f"{_show(text)} is not a normalised image reference; build references "
                "with parse_reference()."
            )

    # The derived forms are kept once made (the instance is immutable): a large host's plan asks
    # for them several times per reference.
    @derived
    def name(self) -> str:
        """The full repository name, such as ``docker.io/library/nginx``."""
        return _full_name(self.domain, self.path)

    @derived
    def familiar_name(self) -> str:
        """The name as ``docker image ls`` shows it, such as ``nginx``.

        As in Docker, ``docker.io/a.b/c`` shows as ``a.b/c``, which reads
        back as registry ``a.b``; Docker Hub namespaces have no dots.
        """
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        official = self.path.removeprefix(_OFFICIAL_PREFIX)
        return official if "/" not in official else self.path

    def canonical(self) -> str:
        """``name@digest`` when a digest is set, else ``name:tag`` (``latest`` by default)."""
        return self._canonical

    def familiar(self) -> str:
        """Like :meth:`canonical`, with the familiar name: ``nginx:latest``."""
        return self._familiar

    @derived
    def listed_forms(self) -> tuple[str, ...]:
        """The texts a daemon lists this reference as, each of which parses back to it: the full
        form (Podman's ``docker.io/library/nginx:latest``) and the familiar one (Docker's
        ``nginx:latest``) where it differs, unless it reads as another registry (``a.b/c``)."""
        if self.domain == DEFAULT_DOMAIN and _familiar_reads_back(self):
            return (self._canonical, self._familiar)
        return (self._canonical,)

    @derived
    def _canonical(self) -> str:
        return _compose_pinned(self.name, self.tag, self.digest)

    @derived
    def _familiar(self) -> str:
        return _compose_pinned(self.familiar_name, self.tag, self.digest)

    def with_tag(self, tag: str) -> Reference:
        """The same repository with this tag and no digest."""
        if not is_valid_tag(tag):
            raise InvalidReference(f"{_show(tag)} is not a valid tag: {_TAG_RULE}.")
        return _checked_tagged(self.name, self.domain, self.path, tag)

    def with_digest(self, digest: str) -> Reference:
        """The same repository with this digest and no tag."""
        problem = _digest_problem(digest)
        if problem:
            raise InvalidReference(f"{_show(digest)} is not a valid digest: {problem}.")
        return Reference(self.domain, self.path, digest=digest)

    def repository(self) -> Reference:
        """The same repository without tag or digest."""
        return Reference(self.domain, self.path)

    def __str__(self) -> str:
        return self.familiar()

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Reference):
            return NotImplemented
        return self._sort_key() < other._sort_key()

    def _sort_key(self) -> tuple[str, str, str, str]:
        # None cannot be compared with str, and "" is never a valid tag or digest.
        return (self.domain, self.path, self.tag or "", self.digest or "")


def parse_reference(text: str) -> Reference:
    """Parse any valid image reference, normalised like ``ParseNormalizedNamed``.

    Raises :class:`InvalidReference` for anything else, including text that
    reads as an image id or a bare digest rather than a name. References are
    immutable, so the same text gives the same object (a plan reads each
    reference of a large host several times).
    """
    if type(text) is not str:
        return _checked(*_parse_fields(text))  # refused with its reason: not hashable, maybe
    return _parse_text(text)


@functools.lru_cache(maxsize=65_536)
def _parse_text(text: str) -> Reference:
    tagged = _tagged_name_fields(text)
    if tagged is None:
        return _checked(*_parse_fields(text))
    domain, path, tag, _ = tagged
    return _checked_tagged(_full_name(domain, path), domain, path, tag)


def listed_tag_repository(text: str) -> str | None:
    """The full repository name :func:`parse_reference` gives ``text`` when it is a tag in the shape
    Docker lists tags in (``registry/path:tag``, ``path:tag``), without making the reference; None
    for any other text, of which only the parser can tell."""
    tagged = _tagged_name_fields(text)
    return None if tagged is None else _full_name(tagged[0], tagged[1])


def _tagged_name_fields(text: str) -> tuple[str, str, str, None] | None:
    """The fields of text in the shape a daemon lists its tags in (``registry/path:tag``, or
    ``path:tag`` on Docker Hub), its name checked once per repository; None for any other shape,
    left to :func:`_parse_fields`, which gives the same fields for every text this accepts."""
    name, colon, tag = text.rpartition(":")
    if not colon or "/" in tag or _TAG_RE.fullmatch(tag) is None:
        return None
    repository = _tagged_name(name)
    if repository is None or ("/" not in name and _DIGEST_RE.fullmatch(text) is not None):
        return None  # the second: a digest alone (sha256:<hex>), which the full parser refuses
    return repository[0], repository[1], tag, None


@functools.lru_cache(maxsize=4_096)
def _tagged_name(name: str) -> tuple[str, str] | None:
    """(domain, path) of the name of a :func:`_tagged_name_fields` text; None for any other shape."""
    first, slash, rest = name.partition("/")
    if slash and _looks_like_domain(first):
        if first in (DEFAULT_DOMAIN, _LEGACY_DOMAIN) or _DOMAIN_RE.fullmatch(first) is None:
            return None
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if _REMOTE_NAME_RE.fullmatch(path) is None:
        return None
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = _OFFICIAL_PREFIX + path
    if len(domain) + 1 + len(path) > NAME_MAX_LENGTH:
        return None
    return domain, path


def _checked(domain: str, path: str, tag: str | None, digest: str | None) -> Reference:
    """A Reference of fields already known valid and normalised (parsed, or a valid repository with a
    valid tag), made without parsing them a second time as the public constructor does."""
    ref = object.__new__(Reference)
    ref.__dict__.update(domain=domain, path=path, tag=tag, digest=digest)
    return ref


def _checked_tagged(name: str, domain: str, path: str, tag: str) -> Reference:
    """:func:`_checked` of ``name:tag`` (``name`` is the repository's full name), its canonical form
    made with it: the daemon lists thousands of tags, and a plan asks each for its canonical form."""
    ref = object.__new__(Reference)
    ref.__dict__.update(
        domain=domain, path=path, tag=tag, digest=None, name=name, _canonical=_compose_pinned(name, tag, None)
    )
    return ref


def parse_repository(text: str) -> Reference:
    """Parse a repository name; a tag or digest in ``text`` is an error."""
    ref = parse_reference(text)
    if ref.digest is not None:
        raise InvalidReference(
            f"{_show(text)} has a digest ({ref.digest}); only a repository name is allowed here."
        )
    if ref.tag is not None:
        raise InvalidReference(
            f"{_show(text)} has a tag ({ref.tag!r}); only a repository name is allowed here."
            + _registry_hint(text, ref.tag)
        )
    return ref


def is_valid_tag(text: str) -> bool:
    """Whether ``text`` is a valid tag, such as ``1.23`` or ``latest``."""
    return isinstance(text, str) and _TAG_RE.fullmatch(text) is not None


def is_valid_digest(text: str) -> bool:
    """Whether ``text`` is a digest Docker accepts, such as ``sha256:<64 hex>``."""
    return _digest_problem(text) is None


def _parse_fields(text: object) -> tuple[str, str, str | None, str | None]:
    """Split ``text`` into normalised (domain, path, tag, digest), or raise."""
    text = _checked_text(text)
    if _IDENTIFIER_RE.fullmatch(text):
        _fail(text, "64 hexadecimal characters read as an image id, not a repository name")
    if is_valid_digest(text):
        _fail(text, "it is a digest without a repository name; write it as name@digest")
    domain, remainder = _split_docker_domain(text)
    remote = remainder.partition(":")[0]
    match = None
    if remote == remote.lower():
        match = _REFERENCE_RE.fullmatch(f"{domain}/{remainder}")
    if match is None:
        _fail(text, _explain(text))
    name, tag, digest = match.group(1, 2, 3)
    if len(name) > NAME_MAX_LENGTH:
        _fail(text, f"the name {_show(name)} is longer than {NAME_MAX_LENGTH} characters")
    if digest is not None and (problem := _digest_problem(digest)):
        _fail(text, f"the digest is invalid: {problem}")
    name_match = _NAME_RE.fullmatch(name)
    assert name_match is not None  # name matched the same pattern inside _REFERENCE_RE
    return name_match.group(1) or "", name_match.group(2), tag, digest


def _split_docker_domain(text: str) -> tuple[str, str]:
    """splitDockerDomain: the registry, or docker.io, and the rest of ``text``."""
    first, slash, rest = text.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, _OFFICIAL_PREFIX + text
    if first == _LEGACY_DOMAIN:
        domain, remainder = DEFAULT_DOMAIN, rest
    elif _looks_like_domain(first):
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, text
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = _OFFICIAL_PREFIX + remainder
    return domain, remainder


def _looks_like_domain(component: str) -> bool:
    # Upper case is not allowed in paths, so Docker reads such a component as a registry.
    return (
        component == _LOCALHOST
        or "." in component
        or ":" in component
        or component.lower() != component
    )


def _digest_problem(text: object) -> str | None:
    """Why ``text`` is not a digest go-digest accepts, or None when it is one."""
    if not isinstance(text, str):
        return f"a digest is a string, not {type(text).__name__}"
    if _DIGEST_RE.fullmatch(text) is None:
        return "expected algorithm:hex, such as sha256: followed by 64 hexadecimal digits"
    algorithm, _, hex_part = text.partition(":")
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    if expected is None:
        return f"the algorithm {algorithm!r} is not supported (use sha256, sha384 or sha512)"
    if len(hex_part) != expected:
        return f"a {algorithm} digest has {expected} hexadecimal digits, not {len(hex_part)}"
    if _LOWER_HEX_RE.fullmatch(hex_part) is None:
        return "the hexadecimal digits must be lowercase"
    return None


def _explain(text: str) -> str:
    """Why ``text`` does not follow the grammar, as precisely as can be told."""
    if "://" in text:
        return "a reference has no URL scheme; leave out the part up to '://'"
    before_digest, at, digest = text.partition("@")
    if at and (problem := _digest_problem(digest)):
        return f"the digest is invalid: {problem}"
    name, tag = _split_tag(before_digest)
    if tag is not None and not is_valid_tag(tag):
        return f"the tag {tag!r} is invalid: {_TAG_RULE}" if tag else "the tag after ':' is empty"
    return _name_problem(name) or "it does not follow the form [registry/]path[:tag][@digest]"


def _split_tag(text: str) -> tuple[str, str | None]:
    """Split ``name:tag``; a ':' before the last '/' or inside [...] is not a tag's."""
    colon = text.find(":", max(text.rfind("/"), text.rfind("]")) + 1)
    return (text, None) if colon < 0 else (text[:colon], text[colon + 1 :])


def _name_problem(name: str) -> str | None:
    if not name:
        return "the repository name is empty"
    first, slash, rest = name.partition("/")
    if not slash and first.startswith("["):
        return f"the registry {first!r} needs a repository path after it: registry/path"
    domain = first if slash and (first == _LEGACY_DOMAIN or _looks_like_domain(first)) else None
    path = rest if domain is not None else name
    if (problem := _path_problem(path)) is not None:
        return problem
    if name.lower() != name and _matches_grammar(name.lower()):
        # Like Parse: when lower case would make the name valid, case is the problem.
        return f"the repository name {name!r} must be lowercase"
    return _domain_problem(domain)


def _matches_grammar(name: str) -> bool:
    domain, remainder = _split_docker_domain(name)
    return _REFERENCE_RE.fullmatch(f"{domain}/{remainder}") is not None


def _path_problem(path: str) -> str | None:
    if path.lower() != path:
        return f"the repository path {path!r} must be lowercase"
    for component in path.split("/"):
        if not component:
            return f"the repository path {path!r} has an empty component (a leading, trailing or doubled '/')"
        if _PATH_COMPONENT_RE.fullmatch(component) is None:
            return f"the path component {component!r} is invalid: {_PATH_RULE}"
    return None


def _domain_problem(domain: str | None) -> str | None:
    if domain is None or _DOMAIN_RE.fullmatch(domain):
        return None
    return (
        f"the registry {domain!r} is not a valid host name, [IPv6] address or host:port "
        "(letters, digits and inner '-' in dot-separated labels)"
    )


def _registry_hint(text: str, tag: str) -> str:
    host = text.rpartition(":")[0]
    if "/" in text or not tag.isdigit() or not _looks_like_domain(host):
        return ""
    return (
        f" Docker reads a single name before ':' as a repository, not a registry; if {host!r}"
        f" is a registry, write the repository after it, like '{text}/name'."
    )


def _checked_text(text: object) -> str:
    """``text`` itself when it is a string worth matching; raises otherwise."""
    if not isinstance(text, str):
        raise InvalidReference(f"An image reference must be a string, not {type(text).__name__}.")
    if not text:
        _fail(text, "it is empty")
    if text != text.strip():
        _fail(text, "it has leading or trailing whitespace")
    if len(text) > _TEXT_MAX_LENGTH:
        _fail(text, f"it is {len(text)} characters long, longer than any image reference can be")
    return text


def _check_field_types(ref: Reference) -> None:
    for field, value, optional in (
        ("domain", ref.domain, False),
        ("path", ref.path, False),
        ("tag", ref.tag, True),
        ("digest", ref.digest, True),
    ):
        if not isinstance(value, str) and not (optional and value is None):
            raise InvalidReference(
                f"The {field} of an image reference must be a string, not {type(value).__name__}."
            )


def _compose(name: str, tag: str | None, digest: str | None) -> str:
    return (
        name + (f":{tag}" if tag is not None else "") + (f"@{digest}" if digest is not None else "")
    )


def _full_name(domain: str, path: str) -> str:
    return f"{domain}/{path}" if domain else path


def _compose_pinned(name: str, tag: str | None, digest: str | None) -> str:
    # The digest decides what a reference pulls, so a tag next to it is left out.
    if digest is not None:
        return f"{name}@{digest}"
    return f"{name}:{tag or DEFAULT_TAG}"


def _show(text: str) -> str:
    """``text`` quoted for a message, cut short when it is long."""
    if len(text) <= 80:
        return repr(text)
    return f"{text[:60]!r}... ({len(text)} characters)"


def _fail(text: str, reason: str) -> NoReturn:
    raise InvalidReference(f"{_show(text)} is not a valid image reference: {reason}.")


def reference_key(text: str) -> str:
    """The one key of a reference however it is written (step, daemon, manifest): its canonical
    form, so ``nginx`` and ``docker.io/library/nginx:latest`` meet; an image id stays as it is."""
    return text if text.startswith("sha256:") else parse_reference(text).canonical()


def familiar_key(ref: Reference) -> str:
    """``reference_key(ref.familiar())`` without parsing it again where it reads back as ``ref``:
    everywhere but a Docker Hub path whose first component looks like a registry (``a.b/c``)."""
    if _familiar_reads_back(ref):
        return ref.canonical()
    return reference_key(ref.familiar())


def _familiar_reads_back(ref: Reference) -> bool:
    """Whether ``ref.familiar()`` parses as ``ref``: everywhere but a Docker Hub path whose first
    component looks like a registry (``docker.io/a.b/c`` is familiar ``a.b/c``, registry ``a.b``)."""
    return ref.domain != DEFAULT_DOMAIN or not _looks_like_domain(ref.familiar_name.partition("/")[0])


def tag_key(text: str) -> str | None:
    """The canonical ``name:tag`` of ``text``; None for a digest reference or what is no reference."""
    ref = tag_reference(text)
    return ref.canonical() if ref is not None else None


def tag_reference(text: str) -> Reference | None:
    """``text`` parsed when it names a tag; None for a digest reference or what is no reference."""
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return None
    return ref if ref.digest is None else None
