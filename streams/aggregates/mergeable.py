"""Small mergeable aggregate kinds, and a base whose ``merge`` is derived from them.

A statistics record is a composition of aggregates; each field declares its kind in its
annotation, and :class:`Mergeable` builds ``merge`` from those declarations, so a new
metric is one annotated line (plus the line that folds inputs into it) and cannot be left
out of the merge:

- :data:`Count` / :data:`Sum`: added (``int`` / ``float``);
- :data:`Sketch`: a :class:`~bifrost.streams.aggregates.sketch.QuantileSketch`, merged in place;
- :data:`Keyed` ``[T]``: a ``dict[str, T]`` of mergeables, merged key by key;
- :data:`Distinct`: a ``set`` of seen values (e.g. window starts).

The kinds are annotations only (``typing.Annotated`` metadata): msgspec ignores them,
so a struct's fields, defaults and encoded bytes are those of the plain types.

Every kind's merge is commutative and associative (float sums up to rounding; a
sketch exactly while it holds at most ``max_bins`` buckets), which is what lets partials
from any partition, in any order, be combined.

Example:
    >>> import msgspec
    >>> class Tally(Mergeable, msgspec.Struct, kw_only=True):
    ...     requests: Count = 0
    ...     cost: Sum = 0.0
    >>> total = Tally(requests=2, cost=0.5)
    >>> total.merge(Tally(requests=3, cost=0.25))
    >>> total
    Tally(requests=5, cost=0.75)
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable
from typing import Annotated, Any, ClassVar, Protocol, TypeVar

from bifrost.streams.aggregates.sketch import QuantileSketch

T = TypeVar("T")
M = TypeVar("M", bound="Mergeable")


class Kind(Protocol):
    """How two partial values of one field combine."""

    def merge(self, mine: Any, theirs: Any) -> Any:
        """The combination of ``mine`` and ``theirs`` (``mine`` may be updated and returned)."""
        ...


class _Add:
    def merge(self, mine: Any, theirs: Any) -> Any:
        return mine + theirs

    def __repr__(self) -> str:
        return "ADD"


class _MergeInPlace:
    """For values with their own ``merge(other)`` that updates them (sketches, mergeables)."""

    def merge(self, mine: Any, theirs: Any) -> Any:
        mine.merge(theirs)
        return mine

    def __repr__(self) -> str:
        return "MERGE"


class _MergeOptional:
    """Like MERGE for a value that may be absent (``None``): absent on one side takes the other's."""

    def merge(self, mine: Any, theirs: Any) -> Any:
        if theirs is None:
            return mine
        if mine is None:
            return theirs.copy()
        mine.merge(theirs)
        return mine

    def __repr__(self) -> str:
        return "MERGE_OPTIONAL"


class _KeyWise:
    """A ``dict`` of mergeables: a key missing on this side starts from an empty value."""

    def merge(self, mine: dict[Any, Any], theirs: dict[Any, Any]) -> dict[Any, Any]:
        merge_keyed(mine, theirs)
        return mine

    def __repr__(self) -> str:
        return "KEYED"


class _SetUnion:
    def merge(self, mine: set[Any], theirs: set[Any]) -> set[Any]:
        mine |= theirs
        return mine

    def __repr__(self) -> str:
        return "UNION"


ADD: Kind = _Add()
MERGE: Kind = _MergeInPlace()
MERGE_OPTIONAL: Kind = _MergeOptional()
KEYED: Kind = _KeyWise()
UNION: Kind = _SetUnion()

Count = Annotated[int, ADD]
"""A number of things (requests, errors, wins…): partials add up."""
Sum = Annotated[float, ADD]
"""A sum of values (cost, squared cost, grades…): partials add up."""
Sketch = Annotated[QuantileSketch, MERGE]
"""A latency (or any positive value) distribution: bucket counts add up."""
OptionalSketch = Annotated[QuantileSketch | None, MERGE_OPTIONAL]
"""A sketch kept only where it is read (``None`` elsewhere: nothing to fold, merge or store)."""
Keyed = Annotated[dict[str, T], KEYED]
"""Named mergeables (per arm, model, bucket): merged name by name."""
Distinct = Annotated[set[int], UNION]
"""Seen values (e.g. window starts): the union."""


class MissingKind(TypeError):
    """A field of a :class:`Mergeable` declares no aggregate kind."""


class Mergeable:
    """Mixin: ``merge`` combines every field by the kind its annotation declares.

    Works with ``msgspec.Struct`` (list it first: ``class S(Mergeable, msgspec.Struct)``)
    and with dataclasses. Every field must declare a kind — an undeclared one raises
    :class:`MissingKind` when the class is defined, not a wrong figure later.
    """

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Replacing a method is what this mixin is for; mypy checks the declared one below.
        cls.merge = _derive_merge(cls.__name__, aggregate_kinds(cls))  # type: ignore[method-assign,assignment]

    def merge(self, other: typing.Self) -> None:
        """Add ``other`` into this one (commutative and associative)."""
        raise NotImplementedError  # every subclass gets its own, derived from its fields


def _derive_merge(owner: str, kinds: dict[str, Kind]) -> Callable[[Any, Any], None]:
    """``merge`` as straight-line code, one statement per field, as ``dataclasses`` builds
    ``__init__``: the same statements as the hand-written list it replaces (a loop over the
    fields with ``getattr``/``setattr`` was 20% slower on the stage-2 read path)."""
    lines = [_merge_statement(name, kind) for name, kind in kinds.items()]
    source = "def merge(self, other):\n" + "\n".join(lines or ["    pass"])
    namespace: dict[str, Any] = {"kinds": kinds}
    exec(source, namespace)  # the source holds field names (identifiers) only
    merge: Callable[[Any, Any], None] = namespace["merge"]
    merge.__qualname__ = f"{owner}.merge"
    merge.__doc__ = Mergeable.merge.__doc__
    return merge


def _merge_statement(name: str, kind: Kind) -> str:
    if kind is ADD:
        return f"    self.{name} += other.{name}"
    if kind is MERGE:
        return f"    self.{name}.merge(other.{name})"
    return f"    self.{name} = kinds[{name!r}].merge(self.{name}, other.{name})"


def aggregate_kinds(cls: type) -> dict[str, Kind]:
    """Each field of ``cls`` → the aggregate kind its annotation declares, in field order.

    Raises:
        MissingKind: a field's annotation carries no kind.
    """
    hints = typing.get_type_hints(cls, include_extras=True)
    kinds: dict[str, Kind] = {}
    for name, hint in hints.items():
        if typing.get_origin(hint) is ClassVar:
            continue
        declared = [m for m in getattr(hint, "__metadata__", ()) if hasattr(m, "merge")]
        if len(declared) != 1:
            raise MissingKind(
                f"{cls.__name__}.{name}: declare how it merges with one of Count, Sum, Sketch, "
                f"Keyed[...], Distinct (got {hint!r})"
            )
        kinds[name] = declared[0]
    return kinds


def merge_keyed(target: dict[Any, M], source: dict[Any, M]) -> None:
    """Merge each of ``source``'s values into ``target``'s value of the same key.

    A key only ``source`` has gets a new empty value of the same type (never ``source``'s
    object itself, so later merges into ``target`` leave ``source`` alone).
    """
    for name, value in source.items():
        total = target.get(name)
        if total is None:
            total = target[name] = type(value)()
        total.merge(value)


def merged_all(empty: type[M], parts: Iterable[M]) -> M:
    """A new ``empty()`` with every one of ``parts`` merged in."""
    total = empty()
    for part in parts:
        total.merge(part)
    return total
