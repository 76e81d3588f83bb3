"""The repository's price table, for provider APIs whose model list carries no prices.

OpenAI's ``/v1/models`` lists ids only, and Gemini's ``/v1beta/models`` lists context
windows and thinking support but no prices. ``prices.json`` (shipped in the package, next
to this module) holds their published list prices per 1M tokens, with context windows
and capabilities for OpenAI, and the date they were read (``as_of``). Maintain it by
editing the file when a provider changes its price page; ``BIFROST_CATALOG_PRICE_TABLE``
points at another copy (e.g. a mounted file updated without a release). A change in the
table shows up as price drift at the next refresh, like a change in an API.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import msgspec

from bifrost.schemas.catalog import PricePerMillion, Source, Tokens

BUNDLED = "prices.json"


class PriceTableError(ValueError):
    """The price table cannot be read or does not have the expected shape."""


class PriceRow(msgspec.Struct, frozen=True, kw_only=True):
    """One model's list price (USD per 1M tokens) and what the API does not tell."""

    input: PricePerMillion = msgspec.field(name="in")
    output: PricePerMillion = msgspec.field(name="out")
    ctx_in: Tokens = 0
    max_out: Tokens | None = None
    thinking: bool = False
    json: bool = True


class PriceTable(msgspec.Struct, frozen=True, kw_only=True):
    """``{as_of, urls {source: price page}, openai {model: row}, gemini {model: row}}``."""

    as_of: str
    urls: dict[str, str] = {}
    openai: dict[str, PriceRow] = {}
    gemini: dict[str, PriceRow] = {}

    def rows(self, source: Source) -> dict[str, PriceRow]:
        """The rows for one source (empty for sources that list their own prices)."""
        return {Source.OPENAI: self.openai, Source.GEMINI: self.gemini}.get(source, {})


def load_price_table(path: str | Path | None = None) -> PriceTable:
    """The table at ``path``, or the one shipped with bifrost when ``path`` is empty."""
    try:
        if path:
            data = Path(path).read_bytes()
            where = str(path)
        else:
            data = resources.files("bifrost.catalog").joinpath(BUNDLED).read_bytes()
            where = f"bifrost/catalog/{BUNDLED}"
    except OSError as exc:
        raise PriceTableError(f"price table {path} cannot be read: {exc.strerror or type(exc).__name__}") from None
    try:
        return msgspec.json.decode(data, type=PriceTable)
    except msgspec.DecodeError as exc:
        raise PriceTableError(f"price table {where}: {exc}") from None
