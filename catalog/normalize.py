"""Provider model lists → :class:`~bifrost.schemas.catalog.CatalogEntry` (pure: no I/O, no clock).

One function per provider API, each taking the decoded JSON document(s) exactly as the
API returns them:

* OpenRouter ``GET /api/v1/models`` — ``{"data": [{id, name, context_length, pricing
  {prompt, completion} (USD per token, as decimal strings), top_provider
  {max_completion_tokens}, supported_parameters, architecture {output_modalities},
  expiration_date}]}``. Prices are converted with :class:`~decimal.Decimal`, so
  ``"0.0000025"`` is exactly 2.5 per 1M tokens; ``"-1"`` (variable price, e.g. the
  auto router) is "no price".
* OpenAI ``GET /v1/models`` — ``{"object": "list", "data": [{id, object, created,
  owned_by}]}``: no prices, context or capabilities, so those come from the repository's
  price table (:mod:`bifrost.catalog.prices`); only text-generation models are kept.
* Gemini ``GET /v1beta/models`` — pages of ``{"models": [{name: "models/…", baseModelId,
  version, displayName, inputTokenLimit, outputTokenLimit, supportedGenerationMethods,
  thinking}], "nextPageToken"}``: context and thinking from the API, prices (and JSON
  support where the table knows better) from the price table; only models that
  ``generateContent``.

A document of the wrong shape raises :class:`MalformedListing` (the whole listing is
unusable, so nothing may be concluded about removals); a single malformed item is
skipped and counted in :attr:`Listing.skipped`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from bifrost.catalog.prices import PriceRow, PriceTable
from bifrost.schemas.catalog import CatalogEntry, Params, Pricing, Source, entry_id

MAX_PRICE_PER_MILLION = 1_000_000.0
MAX_TOKENS = 1_000_000_000
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4}|\d{2}-\d{4}|\d{2}-\d{2})$")
_VERSION_SUFFIX = re.compile(r"-(\d{3}|latest|exp(-\d+)?|preview(-[\w-]+)?)$")
_VERSION_TOKEN = re.compile(r"^v?\d+(\.\d+)*[a-z]?$")
_SIZE_TOKEN = re.compile(r"^\d+(\.\d+)?[bmk]$|^\d+x\d+[bm]$")
_OPENAI_TEXT = re.compile(r"^(gpt-|o\d|chatgpt-)")
_OPENAI_NOT_TEXT = (
    "embedding",
    "tts",
    "whisper",
    "dall-e",
    "audio",
    "realtime",
    "transcribe",
    "image",
    "moderation",
    "search",
    "davinci",
    "babbage",
    "computer-use",
    "codex",
)


class MalformedListing(ValueError):
    """A provider's answer does not have the documented shape (e.g. no ``data`` list)."""


@dataclass(slots=True)
class Listing:
    """What one provider listed: its entries, and how many items were skipped as malformed."""

    source: Source
    entries: list[CatalogEntry] = field(default_factory=list)
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    invalid_prices: dict[str, str] = field(default_factory=dict)  # entry id → why its listed price is unusable

    def skip(self, problem: str) -> None:
        self.skipped += 1
        if len(self.problems) < 5:
            self.problems.append(problem[:200])

    def bad_price(self, entry: str, problem: str) -> None:
        """An entry whose price is malformed: it keeps its last known price, marked stale (see drift.merge)."""
        self.invalid_prices[entry] = problem[:200]


def family_of(name: str) -> str:
    """The model family of a model name: its base name and version, without size, tier or date.

    Example:
        >>> names = ("gpt-4o-mini-2024-07-18", "llama-3.1-8b-instruct", "gemini-2.5-flash", "claude-3.5-sonnet",
        ...          "o3-mini", "mixtral-8x7b-instruct-v0.1", "qwen2.5-7b-instruct")
        >>> [family_of(n) for n in names]
        ['gpt-4o', 'llama-3.1', 'gemini-2.5', 'claude-3.5', 'o3', 'mixtral', 'qwen2.5']
    """
    base = name.rsplit("/", 1)[-1].lower().split(":", 1)[0]
    base = _DATE_SUFFIX.sub("", base)
    tokens = [t for t in base.split("-") if t]
    if not tokens:
        return name
    family = tokens[0]
    if (
        len(tokens) > 1
        and _VERSION_TOKEN.match(tokens[1])
        and not _SIZE_TOKEN.match(tokens[1])
        and not tokens[1].startswith("v")
    ):
        family += "-" + tokens[1]
    return family


def price_per_million(value: object) -> float | None:
    """USD per token (a decimal string or number) → USD per 1M tokens; None for missing, negative or absurd.

    Example:
        >>> price_per_million("0.0000025"), price_per_million("-1"), price_per_million("0")
        (2.5, None, 0.0)
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        per_token = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not per_token.is_finite() or per_token < 0:
        return None
    per_million = float(per_token * 1_000_000)
    return per_million if per_million <= MAX_PRICE_PER_MILLION else None


def price_problem(value: object) -> str | None:
    """Why a listed per-token price is malformed (not a number, NaN, negative but not ``-1``, absurd); None if usable.

    A missing price and ``"-1"`` (variable price) are not malformed: they mean "no price".

    Example:
        >>> [price_problem(v) is None for v in ("0.0000002", "-1", None, "abc", "NaN", "-0.5", "1e308")]
        [True, True, True, False, False, False, False]
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return f"price {value!r} is not a number"
    try:
        per_token = Decimal(str(value).strip())
    except InvalidOperation:
        return f"price {str(value)[:40]!r} is not a number"
    if not per_token.is_finite():
        return f"price {str(value)[:40]!r} is not finite"
    if per_token == -1:
        return None
    if per_token < 0:
        return f"price {str(value)[:40]!r} is negative"
    if per_token * 1_000_000 > Decimal(MAX_PRICE_PER_MILLION):
        return f"price {str(value)[:40]!r} is beyond {MAX_PRICE_PER_MILLION:g} USD/1M"
    return None


def _tokens(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value or value < 0 or value > MAX_TOKENS:  # NaN, negative, absurd
        return None
    return int(value)


def _expired(value: object, now: float) -> bool:
    """OpenRouter's ``expiration_date`` (YYYY-MM-DD) is in the past."""
    if not isinstance(value, str) or not value:
        return False
    try:
        day = datetime.strptime(value[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return False
    return day.timestamp() <= now


def _items(doc: object, key: str, source: Source) -> list[Any]:
    if not isinstance(doc, Mapping):
        raise MalformedListing(f"{source.value}: expected a JSON object, got {type(doc).__name__}")
    items = doc.get(key)
    if not isinstance(items, list):
        raise MalformedListing(f"{source.value}: the answer has no {key!r} list")
    return items


def normalize_openrouter(doc: object, *, now: float) -> Listing:
    """Entries of an OpenRouter ``/api/v1/models`` answer (text-output models)."""
    listing = Listing(Source.OPENROUTER)
    for item in _items(doc, "data", Source.OPENROUTER):
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str) or not item["id"].strip():
            listing.skip(f"item without an id: {str(item)[:80]}")
            continue
        slug = item["id"].strip()
        architecture = arch if isinstance(arch := item.get("architecture"), Mapping) else {}
        outputs = architecture.get("output_modalities")
        if isinstance(outputs, list) and outputs and "text" not in outputs:
            continue  # image or audio generators are not routed to
        pricing_doc = item.get("pricing")
        pricing = None
        if isinstance(pricing_doc, Mapping):
            problems = [
                f"{key} {problem}"
                for key in ("prompt", "completion")
                if (problem := price_problem(pricing_doc.get(key))) is not None
            ]
            if problems:
                listing.bad_price(entry_id(Source.OPENROUTER, slug), f"{slug}: " + "; ".join(problems))
            else:
                price_in, price_out = (
                    price_per_million(pricing_doc.get("prompt")),
                    price_per_million(pricing_doc.get("completion")),
                )
                if price_in is not None and price_out is not None:
                    pricing = Pricing(input=price_in, output=price_out)
        elif pricing_doc is not None:
            listing.skip(f"{slug}: pricing is not an object")
            continue
        context = _tokens(item.get("context_length"))
        if item.get("context_length") is not None and context is None:
            listing.skip(f"{slug}: context_length {item.get('context_length')!r} is not a token count")
            continue
        top = top_doc if isinstance(top_doc := item.get("top_provider"), Mapping) else {}
        parameters = item.get("supported_parameters")
        parameters = {p for p in parameters if isinstance(p, str)} if isinstance(parameters, list) else set()
        listing.entries.append(
            CatalogEntry(
                id=entry_id(Source.OPENROUTER, slug),
                source=Source.OPENROUTER,
                slug=slug,
                provider=slug.split("/", 1)[0] if "/" in slug else "openrouter",
                family=family_of(slug),
                ctx_in=context or _tokens(top.get("context_length")) or 0,
                max_out=_tokens(top.get("max_completion_tokens")),
                params=Params(
                    thinking=bool(parameters & {"reasoning", "include_reasoning"}),
                    json=bool(parameters & {"response_format", "structured_outputs"}),
                ),
                pricing=pricing,
                available=not _expired(item.get("expiration_date"), now),
                fetched_at=now,
                display_name=str(item.get("name") or "")[:200],
            )
        )
    return listing


def is_openai_text_model(model_id: str) -> bool:
    """Whether an OpenAI model id names a text-generation model (not embeddings, speech, images…)."""
    lowered = model_id.lower()
    return bool(_OPENAI_TEXT.match(lowered)) and not any(word in lowered for word in _OPENAI_NOT_TEXT)


def _table_row(table: Mapping[str, PriceRow], name: str, *fallbacks: str, versions: bool = False) -> PriceRow | None:
    """The row of ``name``, of ``name`` without a date suffix, (``versions``) without ``-001``/``-latest``…,
    or a fallback."""
    stripped = (_VERSION_SUFFIX.sub("", name),) if versions else ()
    for candidate in (name, _DATE_SUFFIX.sub("", name), *stripped, *fallbacks):
        if candidate and candidate in table:
            return table[candidate]
    return None


def _from_table(row: PriceRow | None) -> tuple[Pricing | None, int, int | None, Params]:
    if row is None:
        return None, 0, None, Params()
    return (
        Pricing(input=row.input, output=row.output),
        row.ctx_in,
        row.max_out,
        Params(thinking=row.thinking, json=row.json),
    )


def normalize_openai(doc: object, table: PriceTable, *, now: float) -> Listing:
    """Entries of an OpenAI ``/v1/models`` answer, priced from the repository's table.

    Text models the table does not know are kept with no price (``pricing`` None), so a
    new model shows up in the catalog (as ``added``) before the table learns its price.
    """
    listing = Listing(Source.OPENAI)
    rows = table.rows(Source.OPENAI)
    for item in _items(doc, "data", Source.OPENAI):
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str) or not item["id"].strip():
            listing.skip(f"item without an id: {str(item)[:80]}")
            continue
        model_id = item["id"].strip()
        row = _table_row(rows, model_id)
        if row is None and not is_openai_text_model(model_id):
            continue
        pricing, ctx_in, max_out, params = _from_table(row)
        slug = f"openai/{model_id}"
        listing.entries.append(
            CatalogEntry(
                id=entry_id(Source.OPENAI, slug),
                source=Source.OPENAI,
                slug=slug,
                provider="openai",
                family=family_of(model_id),
                ctx_in=ctx_in,
                max_out=max_out,
                params=params,
                pricing=pricing,
                available=True,
                fetched_at=now,
                display_name=model_id,
            )
        )
    return listing


def normalize_gemini(pages: Sequence[object], table: PriceTable, *, now: float) -> Listing:
    """Entries of every page of a Gemini ``/v1beta/models`` listing (models that generateContent)."""
    listing = Listing(Source.GEMINI)
    rows = table.rows(Source.GEMINI)
    seen: set[str] = set()
    for page in pages:
        for item in _items(page, "models", Source.GEMINI):
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"].strip():
                listing.skip(f"item without a name: {str(item)[:80]}")
                continue
            name = item["name"].strip().removeprefix("models/")
            methods = item.get("supportedGenerationMethods")
            if not isinstance(methods, list):
                listing.skip(f"{name}: supportedGenerationMethods is not a list")
                continue
            if "generateContent" not in methods or name in seen:
                continue
            context, out = _tokens(item.get("inputTokenLimit")), _tokens(item.get("outputTokenLimit"))
            if context is None:
                listing.skip(f"{name}: inputTokenLimit {item.get('inputTokenLimit')!r} is not a token count")
                continue
            seen.add(name)
            base = base_id if isinstance(base_id := item.get("baseModelId"), str) else ""
            row = _table_row(rows, name, base, versions=True)
            pricing, _, _, table_params = _from_table(row)
            thinking = item.get("thinking")
            params = Params(
                thinking=bool(thinking) if isinstance(thinking, bool) else table_params.thinking,
                json=table_params.json if row is not None else True,
            )
            slug = f"google/{name}"
            listing.entries.append(
                CatalogEntry(
                    id=entry_id(Source.GEMINI, slug),
                    source=Source.GEMINI,
                    slug=slug,
                    provider="google",
                    family=family_of(name),
                    ctx_in=context,
                    max_out=out,
                    params=params,
                    pricing=pricing,
                    available=True,
                    fetched_at=now,
                    display_name=str(item.get("displayName") or "")[:200],
                )
            )
    return listing
