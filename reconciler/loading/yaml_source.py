"""Read YAML text into plain data, remembering where every value was written.

PyYAML is used only to compose nodes with a ``SafeLoader``; nothing is
constructed by it. Scalars are converted here, by rules close to the YAML 1.2
core schema, so a tag such as ``1.10`` or ``on`` stays the text the user wrote.
Size, node count (after alias expansion) and nesting depth are bounded before
any value is converted, so a hostile file is refused quickly.

The common document (no anchor, alias, tag or duplicate key) is read in one pass
over libyaml's events, straight into plain data (:mod:`yaml_events`); any other is composed into nodes
first, and every refusal and diagnostic comes from that path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeAlias

import yaml
import yaml.cyaml
from yaml.composer import Composer
from yaml.error import Mark, MarkedYAMLError, YAMLError
from yaml.events import (
    AliasEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import Reader, ReaderError

from reconciler.errors import Diagnostic, ManifestError
from reconciler.loading.manifest_file import MAX_BYTES
from reconciler.loading.yaml_syntax import syntax_message

MAX_NODES = 100_000
MAX_DEPTH = 50

YamlPath: TypeAlias = tuple[str | int, ...]
Position: TypeAlias = tuple[int, int]  # 1-based line and column
Plain: TypeAlias = dict[str, "Plain"] | list["Plain"] | str | int | float | bool | None

# Given by our resolver to every plain (unquoted, untagged) scalar, so that
# ``_plain_scalar`` decides its type instead of PyYAML's YAML 1.1 rules.
_PLAIN_TAG = "tag:reconciler,2024:plain"
_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"

_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_INTEGER = re.compile(r"[-+]?(?:0|[1-9][0-9]*)", re.ASCII)
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))(?:[eE][-+]?[0-9]+)?", re.ASCII)


@dataclass(frozen=True)
class SourceDocument:
    """A YAML document as plain data, with the position of every value and key.

    ``marks`` maps a path such as ``("images", 2, "tags", 0)`` to the position
    of that value; ``key_marks`` maps the path of a mapping value to the
    position of its key. ``scalar_texts`` keeps the text of plain scalars that
    became a number, boolean or null, to quote them back in messages. Decimals stay
    text (a tag ``1.10`` must not become 1.1); ``plain_decimals`` says which were unquoted.
    ``diagnostics`` holds problems that did not stop the reading.
    """

    filename: str
    data: dict[str, Plain]
    marks: Mapping[YamlPath, Position]
    key_marks: Mapping[YamlPath, Position] = field(default_factory=dict)
    scalar_texts: Mapping[YamlPath, str] = field(default_factory=dict)
    diagnostics: tuple[Diagnostic, ...] = ()
    plain_decimals: frozenset[YamlPath] = frozenset()  # unquoted `2.5`, `1e1`: kept as text

    def position(self, path: YamlPath, *, at_key: bool = False) -> Position:
        """Where ``path`` was written, or its nearest written ancestor.

        With ``at_key``, the position of the key naming the value, when any.
        """
        if at_key and path in self.key_marks:
            return self.key_marks[path]
        for end in range(len(path), -1, -1):
            found = self.marks.get(path[:end])
            if found is not None:
                return found
        return (1, 1)

    def diagnostic(self, path: YamlPath, message: str, *, at_key: bool = False) -> Diagnostic:
        """A diagnostic for ``path`` in this document."""
        line, column = self.position(path, at_key=at_key)
        return Diagnostic(self.filename, format_path(path), line, column, message)


def format_path(path: YamlPath) -> str:
    """Render a path as ``images[2].tags[0]``; the document itself is ``""``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def read_yaml_bytes(data: bytes, filename: str) -> SourceDocument:
    """Like :func:`read_yaml`, for the raw bytes of a file, which must be UTF-8."""
    if len(data) > MAX_BYTES:
        _refuse(filename, (0, 0), _too_large_message())
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        _refuse(filename, _byte_position(data, exc.start), _not_utf8_message(data, exc.start))
    return read_yaml(text, filename)


def read_yaml(text: str, filename: str) -> SourceDocument:
    """Parse one YAML document whose top level is a mapping.

    Raises :class:`ManifestError` when the text is too large, malformed,
    empty, holds several documents, is not a mapping, or expands through
    aliases beyond the bounds of this module.
    """
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        _refuse(filename, (0, 0), _too_large_message())
    if _FastLoader is not None and not Reader.NON_PRINTABLE.search(text):
        from reconciler.loading.yaml_events import EventReader  # it builds on this module

        document = EventReader(filename).read(text, _FastLoader)
        if document is not None:
            return document
    root, aliased = _compose(text, filename)
    if aliased:  # without aliases, composing bounded the nodes and the depth already
        _check_expansion(root, filename)
    return _Converter(filename).document(root)


class _Refusal(Exception):
    """Internal: stop reading; ``mark`` locates the reason."""

    def __init__(self, message: str, mark: Mark | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _Bounded:
    """Composition that leaves plain scalars untyped and bounds nesting and size.

    Mixed before a parser: PyYAML's pure-Python ``SafeLoader``, or its libyaml
    ``CParser`` (about seven times faster on a large manifest). Only ``compose``
    is used: no Python object is ever constructed by PyYAML.
    """

    _depth = 0
    _composed = 0
    aliased = False  # an alias was met: only then can the expanded document outgrow the composed one

    def resolve(self, kind: type[Node], value: str | None, implicit: tuple[bool, bool]) -> str:
        # Called only for nodes without an explicit tag; no path resolvers exist.
        if kind is ScalarNode:
            return _PLAIN_TAG if implicit[0] else _STR_TAG
        return _SEQ_TAG if kind is SequenceNode else _MAP_TAG

    def descend_resolver(self, current_node: Node | None, current_index: object) -> None:
        return None  # no path resolvers

    def ascend_resolver(self) -> None:
        return None

    def next_mark(self) -> Mark | None:
        """Position of the next event, to locate a refusal."""
        event = self.peek_event()  # type: ignore[attr-defined]
        mark: Mark | None = getattr(event, "start_mark", None)
        return mark

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        # PyYAML composes recursively: bound the depth before Python's stack is at risk.
        if self._depth >= MAX_DEPTH:
            raise _Refusal(_too_deep_message(), self.next_mark())
        self._composed += 1
        if self._composed > MAX_NODES:
            raise _Refusal(_too_many_nodes_message(aliases=False), self.next_mark())
        if not self.aliased and self.check_event(AliasEvent):  # type: ignore[attr-defined]
            self.aliased = True
        self._depth += 1
        try:
            node: Node | None = Composer.compose_node(self, parent, index)  # type: ignore[arg-type]
            return node
        finally:
            self._depth -= 1


class _ComposingLoader(_Bounded, yaml.SafeLoader):
    """The pure-Python reader: the reference, whose words every refusal uses."""


_CParser: Any = getattr(yaml.cyaml, "CParser", None) if getattr(yaml, "__with_libyaml__", False) else None
_FastLoader: type | None = None
if _CParser is not None:

    class _LibyamlComposer(_Bounded, Composer, _CParser):  # type: ignore[misc]
        """libyaml's events, composed by PyYAML's own composer (and so into the same nodes)."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            Composer.__init__(self)

    _FastLoader = _LibyamlComposer


def _compose(text: str, filename: str) -> tuple[Node, bool]:
    """Compose the single document of ``text``, refusing what cannot be a manifest.

    libyaml composes when it is there and the text holds no character the YAML reader
    refuses; anything it does not accept is read again by the pure-Python reader, so
    every refusal is worded and placed the same, whichever reader ran first.
    """
    if _FastLoader is not None and not Reader.NON_PRINTABLE.search(text):
        try:
            fast = _FastLoader(text)
            try:
                root = _compose_single(fast)
            finally:
                fast.dispose()
        except (_Refusal, YAMLError):
            pass
        else:
            if root is not None and isinstance(root, MappingNode):
                return root, fast.aliased
    return _compose_python(text, filename)


def _compose_python(text: str, filename: str) -> tuple[Node, bool]:
    try:
        loader = _ComposingLoader(text)
    except ReaderError as exc:
        _refuse(filename, _char_position(text, exc.position), _reader_message(exc))
    try:
        root = _compose_single(loader)
    except _Refusal as exc:
        _refuse(filename, _mark_position(exc.mark), exc.message)
    except MarkedYAMLError as exc:
        _refuse(filename, _mark_position(exc.problem_mark), syntax_message(exc))
    except YAMLError as exc:
        _refuse(filename, (0, 0), f"invalid YAML: {exc}.")
    finally:
        loader.dispose()
    if root is None or _is_empty_scalar(root):
        _refuse(filename, (1, 1), "the file is empty; start it with `version: 1`.")
    if not isinstance(root, MappingNode):
        kind = "a list" if isinstance(root, SequenceNode) else "a single value"
        message = f"the top level must be a mapping of keys such as `version: 1`, not {kind}."
        _refuse(filename, _mark_position(root.start_mark), message)
    return root, loader.aliased


def _compose_single(loader: Any) -> Node | None:
    if not loader.check_node():
        return None
    root: Node = loader.get_node()
    if loader.check_node():
        message = "the file holds several YAML documents; a manifest is a single document."
        raise _Refusal(message, loader.next_mark())
    return root


def _is_empty_scalar(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _PLAIN_TAG and node.value in _NULL


def _check_expansion(root: Node, filename: str) -> None:
    """Refuse a document too deep or too large once aliases are expanded.

    Works on the composed graph, where an alias is a shared node, and counts
    each shared node once with its memoised size: a billion-laughs file is
    measured in as many steps as it has distinct nodes.
    """
    try:
        _Expansion().measure(root, 1)
    except _Refusal as exc:
        _refuse(filename, _mark_position(exc.mark), exc.message)


class _Expansion:
    """Node count and height of every subtree, as if aliases were copied."""

    def __init__(self) -> None:
        self.known: dict[int, tuple[int, int]] = {}
        self.open: set[int] = set()
        self.shared = False

    def measure(self, node: Node, depth: int) -> tuple[int, int]:
        """Return (nodes, height) of ``node`` met at ``depth``; refuse past the bounds."""
        known = self.known.get(id(node))
        if known is None:
            known = self._measure_new(node, depth)
        else:
            self.shared = True
        if depth + known[1] - 1 > MAX_DEPTH:
            raise _Refusal(_too_deep_message(), node.start_mark)
        return known

    def _measure_new(self, node: Node, depth: int) -> tuple[int, int]:
        if id(node) in self.open:
            message = "an alias refers to a node that contains it; YAML recursion is not allowed."
            raise _Refusal(message, node.start_mark)
        if depth > MAX_DEPTH:
            raise _Refusal(_too_deep_message(), node.start_mark)
        self.open.add(id(node))
        count, height = 1, 1
        for child in _children(node):
            child_count, child_height = self.measure(child, depth + 1)
            count += child_count
            height = max(height, child_height + 1)
            if count > MAX_NODES:
                raise _Refusal(_too_many_nodes_message(aliases=self.shared), node.start_mark)
        self.open.discard(id(node))
        self.known[id(node)] = (count, height)
        return count, height


def _children(node: Node) -> Iterator[Node]:
    if isinstance(node, SequenceNode):
        yield from node.value
    elif isinstance(node, MappingNode):
        for key, value in node.value:
            yield key
            yield value


class DocumentParts:
    """What reading a document records beside its data: positions, the exact text of scalars
    typing changed, unquoted decimals; shared by the converter and the event reader."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.marks: dict[YamlPath, Position] = {}
        self.key_marks: dict[YamlPath, Position] = {}
        self.scalar_texts: dict[YamlPath, str] = {}
        self.plain_decimals: set[YamlPath] = set()

    def _plain(self, text: str, path: YamlPath) -> Plain:
        """An unquoted scalar, typed; its text kept where typing changed it."""
        value = _plain_scalar(text)
        if not isinstance(value, str):
            self.scalar_texts[path] = text
        elif _DECIMAL.fullmatch(text):
            self.plain_decimals.add(path)
        return value

    def _source(self, data: dict[str, Plain], diagnostics: tuple[Diagnostic, ...] = ()) -> SourceDocument:
        return SourceDocument(
            filename=self.filename,
            data=data,
            marks=self.marks,
            key_marks=self.key_marks,
            scalar_texts=self.scalar_texts,
            plain_decimals=frozenset(self.plain_decimals),
            diagnostics=diagnostics,
        )


class _Converter(DocumentParts):
    """Turn composed nodes into plain data, recording positions and problems."""

    def __init__(self, filename: str) -> None:
        super().__init__(filename)
        self.diagnostics: list[Diagnostic] = []

    def document(self, root: Node) -> SourceDocument:
        data = self.convert(root, ())
        assert isinstance(data, dict)  # _compose refused every other top level
        return self._source(data, tuple(self.diagnostics))

    def convert(self, node: Node, path: YamlPath) -> Plain:
        self.marks[path] = _mark_position(node.start_mark)
        if isinstance(node, MappingNode):
            self._check_tag(node, _MAP_TAG, path)
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            self._check_tag(node, _SEQ_TAG, path)
            return [self.convert(item, (*path, index)) for index, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: MappingNode, path: YamlPath) -> dict[str, Plain]:
        result: dict[str, Plain] = {}
        first_seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self._report(key_node, path, "a key must be a single word, not a list or mapping.")
                continue
            key = str(key_node.value)
            first = first_seen.get(key)
            if first is not None:
                self._report(key_node, (*path, key), _duplicate_key_message(key, first))
                continue
            first_seen[key] = key_node
            self.key_marks[(*path, key)] = _mark_position(key_node.start_mark)
            result[key] = self.convert(value_node, (*path, key))
        return result

    def _scalar(self, node: Node, path: YamlPath) -> Plain:
        text = str(node.value)
        if node.tag == _PLAIN_TAG:
            return self._plain(text, path)
        self._check_tag(node, _STR_TAG, path)
        return text

    def _check_tag(self, node: Node, expected: str, path: YamlPath) -> None:
        if node.tag != expected:
            message = f"the YAML tag {_short_tag(node.tag)} is not supported; remove it."
            self._report(node, path, message)

    def _report(self, node: Node, path: YamlPath, message: str) -> None:
        line, column = _mark_position(node.start_mark)
        self.diagnostics.append(Diagnostic(self.filename, format_path(path), line, column, message))


def _plain_scalar(text: str) -> str | int | bool | None:
    """Type an unquoted scalar: true/false, null, decimal integers; all else is text."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if text in _NULL:
        return None
    if _INTEGER.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # longer than Python's int-from-text limit: keep it as written
            return text
    return text


def _short_tag(tag: str) -> str:
    return (
        "!!" + tag.removeprefix("tag:yaml.org,2002:")
        if tag.startswith("tag:yaml.org,2002:")
        else tag
    )


def _duplicate_key_message(key: str, first: Node) -> str:
    line, _ = _mark_position(first.start_mark)
    return f"duplicate key '{key}' (first at line {line}); YAML would silently keep the last one."


def _too_large_message() -> str:
    return f"the file is larger than 1 MiB ({MAX_BYTES} bytes), the most a manifest may be."


def _too_deep_message() -> str:
    return f"the document nests deeper than {MAX_DEPTH} levels; a manifest needs only a few."


def _too_many_nodes_message(*, aliases: bool) -> str:
    if aliases:
        return f"the document expands to more than {MAX_NODES} nodes through YAML aliases."
    return f"the document has more than {MAX_NODES} nodes; split it into smaller manifests."


def _reader_message(exc: ReaderError) -> str:
    character = exc.character if isinstance(exc.character, int) else 0
    return f"invalid YAML: the character U+{character:04X} is not allowed in a YAML file."


def _not_utf8_message(data: bytes, offset: int) -> str:
    return f"the file is not UTF-8: byte 0x{data[offset]:02x} cannot be decoded; save it as UTF-8."


def _line_of(mark: Mark | None) -> int:
    return -1 if mark is None else mark.line


def _mark_position(mark: Mark | None) -> Position:
    return (0, 0) if mark is None else (mark.line + 1, mark.column + 1)


def _char_position(text: str, offset: int) -> Position:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def _byte_position(data: bytes, offset: int) -> Position:
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def _refuse(filename: str, position: Position, message: str) -> NoReturn:
    line, column = position
    raise ManifestError([Diagnostic(filename, "", line, column, message)])


