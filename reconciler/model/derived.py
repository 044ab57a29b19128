"""A value derived from an immutable instance, computed on first use and kept in it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar, overload

_Owner = TypeVar("_Owner")
_Value = TypeVar("_Value")


class derived(Generic[_Owner, _Value]):
    """Like :func:`functools.cached_property`, without its lock.

    On Python 3.11 ``cached_property`` takes a lock shared by every instance on each first
    access; a large host's plan makes several hundred thousand references, and the lock
    was the largest single cost of retention's evaluation. Two threads that race on one
    instance both compute the same value of an immutable object, so no lock is needed. The
    value goes into the instance's ``__dict__``, which the next lookup finds first (this
    is a non-data descriptor); a frozen dataclass's fields, equality and hash ignore it.
    """

    def __init__(self, compute: Callable[[_Owner], _Value]) -> None:
        self.compute = compute
        self.attribute = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type[_Owner], name: str) -> None:
        self.attribute = name

    @overload
    def __get__(self, instance: None, owner: type[_Owner]) -> derived[_Owner, _Value]: ...

    @overload
    def __get__(self, instance: _Owner, owner: type[_Owner]) -> _Value: ...

    def __get__(
        self, instance: _Owner | None, owner: type[_Owner]
    ) -> derived[_Owner, _Value] | _Value:
        if instance is None:
            return self
        value = self.compute(instance)
        instance.__dict__[self.attribute] = value
        return value
