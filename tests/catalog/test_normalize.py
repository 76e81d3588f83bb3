"""Normalization of each provider's published format, checked field by field (pure, no I/O)."""

from __future__ import annotations

import pytest

from bifrost.catalog.normalize import (
    MalformedListing,
    family_of,
    normalize_gemini,
    normalize_openai,
    normalize_openrouter,
    price_per_million,
)
from bifrost.catalog.prices import load_price_table
from bifrost.schemas.catalog import CatalogEntry, Params, Pricing, Source
from tests.catalog.providers import default_gemini, default_openai, default_openrouter, gemini_model, openrouter_model

NOW = 1_760_000_000.0
TABLE = load_price_table()


def by_slug(entries: list[CatalogEntry]) -> dict[str, CatalogEntry]:
    return {e.slug: e for e in entries}


def test_openrouter_entries_are_exact() -> None:
    listing = normalize_openrouter({"data": default_openrouter()}, now=NOW)
    entries = by_slug(listing.entries)
    assert listing.skipped == 0
    assert "openai/gpt-image-1" not in entries  # image output: not routed to
    assert entries["meta/llama-3.1-8b-instruct"] == CatalogEntry(
        id="openrouter:meta/llama-3.1-8b-instruct",
        source=Source.OPENROUTER,
        slug="meta/llama-3.1-8b-instruct",
        provider="meta",
        family="llama-3.1",
        ctx_in=131072,
        max_out=8192,
        params=Params(thinking=False, json=True),
        pricing=Pricing(input=0.2, output=0.2),
        available=True,
        fetched_at=NOW,
        display_name="meta: llama-3.1-8b-instruct",
    )
    r1 = entries["deepseek/deepseek-r1"]
    assert (r1.params, r1.pricing, r1.max_out, r1.ctx_in) == (
        Params(thinking=True, json=True),
        Pricing(input=0.4, output=2.0),
        None,
        163840,
    )
    assert entries["openai/gpt-4o-mini"].pricing == Pricing(input=0.15, output=0.6)  # exact decimal conversion
    assert entries["openrouter/auto"].pricing is None  # "-1": variable price
    assert entries["openrouter/auto"].provider == "openrouter"


def test_openrouter_past_expiration_is_unavailable_and_bad_items_are_skipped() -> None:
    doc = {
        "data": [
            openrouter_model("old/model-1", price_in=1, price_out=2, expiration_date="2020-01-01"),
            openrouter_model("new/model-2", price_in=1, price_out=2, expiration_date="2999-01-01"),
            {"name": "no id"},
            "not an object",
            {"id": "x/y", "pricing": "free"},
            {"id": "x/z", "context_length": -5},
        ]
    }
    listing = normalize_openrouter(doc, now=NOW)
    entries = by_slug(listing.entries)
    assert not entries["old/model-1"].available and entries["new/model-2"].available
    assert listing.skipped == 4 and set(entries) == {"old/model-1", "new/model-2"}


@pytest.mark.parametrize("doc", [[], {"models": []}, {"data": "x"}, "text", None])
def test_malformed_openrouter_documents_are_refused_whole(doc: object) -> None:
    with pytest.raises(MalformedListing):
        normalize_openrouter(doc, now=NOW)


def test_openai_keeps_text_models_priced_from_the_table() -> None:
    listing = normalize_openai({"object": "list", "data": default_openai()}, TABLE, now=NOW)
    entries = by_slug(listing.entries)
    assert set(entries) == {
        "openai/gpt-4o",
        "openai/gpt-4o-2024-08-06",
        "openai/gpt-4o-mini",
        "openai/o3-mini",
        "openai/gpt-5-preview-x",
    }
    assert entries["openai/gpt-4o"] == CatalogEntry(
        id="openai:openai/gpt-4o",
        source=Source.OPENAI,
        slug="openai/gpt-4o",
        provider="openai",
        family="gpt-4o",
        ctx_in=128000,
        max_out=16384,
        params=Params(thinking=False, json=True),
        pricing=Pricing(input=2.5, output=10.0),
        available=True,
        fetched_at=NOW,
        display_name="gpt-4o",
    )
    assert entries["openai/gpt-4o-2024-08-06"].pricing == Pricing(input=2.5, output=10.0)  # dated snapshot → base row
    assert entries["openai/o3-mini"].params.thinking
    unknown = entries["openai/gpt-5-preview-x"]  # listed, not in the table: kept without a price
    assert unknown.pricing is None and unknown.ctx_in == 0


def test_gemini_reads_every_page_and_only_generate_content_models() -> None:
    models = default_gemini()
    pages = [
        {"models": models[:2], "nextPageToken": "2"},
        {"models": models[2:4], "nextPageToken": "4"},
        {"models": models[4:]},
    ]
    listing = normalize_gemini(pages, TABLE, now=NOW)
    entries = by_slug(listing.entries)
    assert set(entries) == {
        "google/gemini-2.5-pro",
        "google/gemini-2.5-flash",
        "google/gemini-2.0-flash",
        "google/gemini-1.5-flash-002",
        "google/gemma-3-27b-it",
    }
    assert entries["google/gemini-2.5-flash"] == CatalogEntry(
        id="gemini:google/gemini-2.5-flash",
        source=Source.GEMINI,
        slug="google/gemini-2.5-flash",
        provider="google",
        family="gemini-2.5",
        ctx_in=1048576,
        max_out=65536,
        params=Params(thinking=True, json=True),
        pricing=Pricing(input=0.3, output=2.5),
        available=True,
        fetched_at=NOW,
        display_name="Gemini 2.5 Flash",
    )
    assert entries["google/gemini-1.5-flash-002"].pricing == Pricing(input=0.075, output=0.3)  # -002 → base row
    assert not entries["google/gemini-2.0-flash"].params.thinking  # the API's flag wins
    assert entries["google/gemma-3-27b-it"].pricing is None


def test_gemini_malformed_items_and_pages() -> None:
    bad = gemini_model("gemini-x", context=10, output=10)
    bad["supportedGenerationMethods"] = "generateContent"
    listing = normalize_gemini([{"models": [bad, {"displayName": "nameless"}]}], TABLE, now=NOW)
    assert listing.entries == [] and listing.skipped == 2
    with pytest.raises(MalformedListing):
        normalize_gemini([{"models": []}, {"error": {"code": 500}}], TABLE, now=NOW)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.0000002", 0.2),
        ("0.00001", 10.0),
        ("0", 0.0),
        (0.000003, 3.0),
        ("-1", None),
        ("abc", None),
        (None, None),
        (True, None),
        ("NaN", None),
        ("1e9", None),
    ],
)
def test_price_per_million(value: object, expected: float | None) -> None:
    assert price_per_million(value) == expected


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("openai/gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4.1-nano", "gpt-4.1"),
        ("google/gemini-1.5-flash-002", "gemini-1.5"),
        ("o4-mini", "o4"),
        ("meta/llama3-70b-instruct", "llama3"),
        ("nvidia/llama-3.3-nemotron-super-49b-v1", "llama-3.3"),
    ],
)
def test_family(name: str, family: str) -> None:
    assert family_of(name) == family
