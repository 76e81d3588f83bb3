"""The model catalog on the wire: normalized entries (``catalog``) and drift events (``catalog-changes``).

The catalog refresher (``bifrost.catalog``) reads the model lists of OpenRouter, OpenAI
and Gemini and normalizes each model to one :class:`CatalogEntry`; it publishes them on
the compacted ``catalog`` topic keyed by :attr:`CatalogEntry.id` (``<source>:<slug>``: the
same model listed by two APIs is two entries, since their prices and availability differ)
and every drift against the previous snapshot as a :class:`CatalogChange` on
``catalog-changes`` (keyed by the slug).

:func:`match_entry` is the contract between a routing event's ``model`` field and the
catalog: the trainer prices logged requests with it, the refresher decides with it
which models the current artifact uses. It is pure (no I/O), like everything here.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated

import msgspec

EntryId = Annotated[str, msgspec.Meta(min_length=3, max_length=300)]
Slug = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
PricePerMillion = Annotated[float, msgspec.Meta(ge=0.0, le=1_000_000.0)]
Tokens = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]


class Source(str, enum.Enum):
    """Which provider API an entry was read from."""

    OPENROUTER = "openrouter"
    OPENAI = "openai"
    GEMINI = "gemini"


class Pricing(msgspec.Struct, frozen=True, kw_only=True):
    """USD per 1M tokens, input (prompt) and output (completion)."""

    input: PricePerMillion = msgspec.field(name="in")
    output: PricePerMillion = msgspec.field(name="out")


class Params(msgspec.Struct, frozen=True, kw_only=True):
    """Capabilities that change what a router may send: a thinking/reasoning mode, JSON output."""

    thinking: bool = False
    json: bool = False


class CatalogEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One model as one provider API lists it, normalized.

    ``pricing`` is None when the source publishes no price and the repository's price
    table has none either. ``stale`` marks an entry carried over from an earlier snapshot
    because its source failed (``stale_since``: when the first failed refresh was);
    ``available`` is False once the source stopped listing the model (``listed`` False too)
    or lists it as unavailable (e.g. past OpenRouter's ``expiration_date``). ``fetched_at`` is
    when the values were last read from the source.

    Example:
        >>> e = CatalogEntry(id="openai:openai/gpt-4o", source=Source.OPENAI, slug="openai/gpt-4o", provider="openai",
        ...                  family="gpt-4o", ctx_in=128000, pricing=Pricing(input=2.5, output=10.0))
        >>> e.name, e.pricing.output
        ('gpt-4o', 10.0)
    """

    id: EntryId
    source: Source
    slug: Slug
    provider: str
    family: str
    ctx_in: Tokens = 0
    max_out: Tokens | None = None
    params: Params = Params()
    pricing: Pricing | None = None
    available: bool = True
    listed: bool = True
    stale: bool = False
    stale_since: float | None = None
    fetched_at: float = 0.0
    display_name: str = ""

    @property
    def name(self) -> str:
        """The slug without its vendor prefix (``openai/gpt-4o`` → ``gpt-4o``)."""
        return self.slug.rsplit("/", 1)[-1]


def entry_id(source: Source, slug: str) -> str:
    """The catalog key of a model listed by ``source``."""
    return f"{source.value}:{slug}"


class ChangeKind(str, enum.Enum):
    """What drifted between two snapshots."""

    ADDED = "added"
    REMOVED = "removed"  # no longer listed by its source
    UNAVAILABLE = "unavailable"  # listed, but marked unavailable by its source
    RESTORED = "restored"  # available again after removed/unavailable
    PRICE = "price"  # input or output price moved by at least the threshold (default 10%)
    CONTEXT = "context"  # input context window changed
    CAPABILITY = "capability"  # thinking or JSON support changed


class CatalogChange(msgspec.Struct, frozen=True, kw_only=True):
    """One drift of one entry, on ``catalog-changes`` keyed by the slug.

    ``before``/``after`` hold only the fields that changed (``price_in``, ``price_out``,
    ``ctx_in``, ``thinking``, ``json``, ``available``); ``relative`` the largest relative
    price move (+0.12 = 12% dearer; ``inf`` from a price of 0). ``in_use``: the current
    artifact routes to this model (its name resolves to this entry with
    :func:`match_entry`); ``significant``: in use and of a kind that invalidates the
    artifact and triggers a retrain. ``change_id`` is idempotent (snapshot, entry, kind).
    """

    change_id: Annotated[str, msgspec.Meta(min_length=1, max_length=400)]
    kind: ChangeKind
    entry_id: EntryId
    slug: Slug
    source: Source
    snapshot: str
    previous_snapshot: str | None = None
    before: dict[str, float | bool | None] = {}
    after: dict[str, float | bool | None] = {}
    relative: float | None = None
    in_use: bool = False
    used_as: list[str] = []
    significant: bool = False
    artifact_version: str | None = None
    detected_at: float = 0.0


def parse_aliases(text: str) -> dict[str, str]:
    """``model=slug`` pairs (comma or newline separated) → {model: slug or entry id}.

    Example:
        >>> parse_aliases("fast=openai/gpt-4o-mini, big=openrouter:anthropic/claude-3.5-sonnet")
        {'fast': 'openai/gpt-4o-mini', 'big': 'openrouter:anthropic/claude-3.5-sonnet'}
    """
    pairs: dict[str, str] = {}
    for item in (part.strip() for part in text.replace("\n", ",").split(",")):
        if not item:
            continue
        model, sep, target = (s.strip() for s in item.partition("="))
        if not sep or not model or not target:
            raise ValueError(f"alias {item!r} is not MODEL=SLUG")
        pairs[model] = target
    return pairs


def parse_sources(text: str) -> tuple[Source, ...]:
    """Comma-separated source names, in order of preference (unknown names are an error)."""
    found: list[Source] = []
    for name in (part.strip().lower() for part in text.split(",")):
        if not name:
            continue
        try:
            source = Source(name)
        except ValueError:
            known = ", ".join(s.value for s in Source)
            raise ValueError(f"unknown catalog provider {name!r}; choose from {known}") from None
        if source not in found:
            found.append(source)
    return tuple(found)


def match_entry(
    model: str,
    entries: Iterable[CatalogEntry],
    *,
    aliases: Mapping[str, str] | None = None,
    preference: Sequence[Source] = tuple(Source),
) -> CatalogEntry | None:
    """The catalog entry a routing event's ``model`` name refers to, or None.

    In order: an alias (``aliases[model]``, a slug or an entry id) wins; then an entry
    whose id or slug equals the name; then one whose slug ends in ``/<model>`` (the
    name without its vendor: ``gpt-4o`` is ``openai/gpt-4o``). Among several, the
    source earliest in ``preference`` wins (then the available one, then the slug).

    Example:
        >>> e = CatalogEntry(id="openrouter:meta/llama-3.1-8b-instruct", source=Source.OPENROUTER,
        ...                  slug="meta/llama-3.1-8b-instruct", provider="meta", family="llama-3.1")
        >>> match_entry("llama-3.1-8b-instruct", [e]) is e
        True
    """
    target = (aliases or {}).get(model, model)
    candidates = list(entries)
    tests: tuple[Callable[[CatalogEntry], bool], ...] = (
        lambda e: e.id == target,
        lambda e: e.slug == target,
        lambda e: e.name == target or e.slug.endswith("/" + target),
    )
    for test in tests:
        found = [e for e in candidates if test(e)]
        if found:
            rank = {s: i for i, s in enumerate(preference)}
            return min(found, key=lambda e: (rank.get(e.source, len(rank)), not e.available, e.slug))
    return None


def resolve_models(
    models: Iterable[str],
    entries: Sequence[CatalogEntry],
    *,
    aliases: Mapping[str, str] | None = None,
    preference: Sequence[Source] = tuple(Source),
) -> dict[str, CatalogEntry]:
    """{model name: its entry} for every name that resolves (see :func:`match_entry`)."""
    resolved: dict[str, CatalogEntry] = {}
    for model in models:
        entry = match_entry(model, entries, aliases=aliases, preference=preference)
        if entry is not None:
            resolved[model] = entry
    return resolved
