"""The common manifest read straight from libyaml's events, without composing nodes.

About twice as fast as composing and converting: a single document whose top level is a
mapping, within :mod:`yaml_source`'s bounds, with no anchor, alias, explicit tag, duplicate key
or key that is not a scalar. Anything else is left to :mod:`yaml_source`, which composes and
converts it, so every refusal and diagnostic is worded and placed there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from yaml.error import YAMLError
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from reconciler.loading.yaml_source import (
    MAX_DEPTH,
    MAX_NODES,
    DocumentParts,
    Plain,
    SourceDocument,
    YamlPath,
)


class _Unusual(Exception):
    """Internal: the document holds something only the composer and the converter handle."""


class EventReader(DocumentParts):
    """The common document read straight from libyaml's events, without composing nodes.

    A single document whose top level is a mapping, within the bounds, with no anchor, alias,
    explicit tag, duplicate key or key that is not a scalar: the same data and positions the
    converter gives its composed nodes, in one pass. Anything else answers None, and the
    document is composed and converted as before, so every refusal and diagnostic is theirs.
    """

    def __init__(self, filename: str) -> None:
        super().__init__(filename)
        self.nodes = 0
        self.next_event: Callable[[], Any] = lambda: None

    def read(self, text: str, parser_class: Any) -> SourceDocument | None:
        """The document of ``text`` through ``parser_class`` (libyaml's parser); None: compose it."""
        parser = parser_class(text)
        try:
            self.next_event = parser.get_event
            data = self._document()
        except (_Unusual, YAMLError):
            return None
        finally:
            parser.dispose()
        return self._source(data)

    def _document(self) -> dict[str, Plain]:
        self.next_event()  # the stream's start
        if type(self.next_event()) is not DocumentStartEvent:
            raise _Unusual  # no document at all
        root = self.next_event()
        if type(root) is not MappingStartEvent:
            raise _Unusual
        data = self._value(root, (), 1)
        if type(self.next_event()) is not DocumentEndEvent or type(self.next_event()) is not StreamEndEvent:
            raise _Unusual  # several documents
        assert isinstance(data, dict)
        return data

    # Events are typed Any: libyaml gives each a start mark, which the stubs allow to be None.
    def _value(self, event: Any, path: YamlPath, depth: int) -> Plain:
        self.nodes += 1
        if self._unusual(event, depth):
            raise _Unusual
        mark = event.start_mark
        self.marks[path] = (mark.line + 1, mark.column + 1)
        kind = type(event)
        if kind is ScalarEvent:
            text: str = event.value
            if not event.implicit[0]:
                return text  # quoted
            return self._plain(text, path)
        next_event = self.next_event
        if kind is SequenceStartEvent:
            items: list[Plain] = []
            while type(item := next_event()) is not SequenceEndEvent:
                items.append(self._value(item, (*path, len(items)), depth + 1))
            return items
        if kind is not MappingStartEvent:
            raise _Unusual  # an alias
        result: dict[str, Plain] = {}
        while type(key_event := next_event()) is not MappingEndEvent:
            if type(key_event) is not ScalarEvent:
                raise _Unusual
            self.nodes += 1
            if self._unusual(key_event, depth + 1):
                raise _Unusual
            key: str = key_event.value
            if key in result:
                raise _Unusual  # a duplicate key, for the converter to report
            key_path = (*path, key)
            key_mark: Any = key_event.start_mark
            self.key_marks[key_path] = (key_mark.line + 1, key_mark.column + 1)
            result[key] = self._value(next_event(), key_path, depth + 1)
        return result

    def _unusual(self, event: Any, depth: int) -> bool:
        """Past a bound (composing refuses it, in its words), or an alias (whose anchor it
        names), an anchor or a tag."""
        return (
            depth > MAX_DEPTH
            or self.nodes > MAX_NODES
            or event.anchor is not None
            or event.tag is not None
        )
