"""Re-pricing logged requests at the catalog's current prices (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from bifrost.schemas.catalog import CatalogEntry, Pricing, Source
from bifrost.storage.logged import LoggedData
from bifrost.trainer.catalog_prices import reprice


def logged(
    models: tuple[str, ...], model: list[int], tokens_in: list[float], tokens_out: list[float] | None, cost: list[float]
) -> LoggedData:
    n = len(model)
    f = np.zeros(n)
    return LoggedData(
        models=models,
        request_ids=np.array([str(i) for i in range(n)], dtype=object),
        ts=f,
        router_ids=np.array(["r"] * n, dtype=object),
        arms=np.array(["v1"] * n, dtype=object),
        model=np.array(model),
        bucket=np.zeros(n, dtype=np.int64),
        cluster=np.zeros(n, dtype=np.int64),
        features=np.zeros((n, 1), dtype=np.float32),
        features_ok=np.ones(n, dtype=bool),
        tokens_in=np.array(tokens_in, dtype=float),
        cost=np.array(cost, dtype=float),
        latency=f,
        success=np.ones(n, dtype=bool),
        propensity=np.ones(n),
        quality=f,
        tokens_out=None if tokens_out is None else np.array(tokens_out, dtype=float),
    )


def priced(slug: str, price_in: float, price_out: float, source: Source = Source.OPENROUTER) -> CatalogEntry:
    return CatalogEntry(
        id=f"{source.value}:{slug}",
        source=source,
        slug=slug,
        provider=slug.split("/")[0],
        family="f",
        pricing=Pricing(input=price_in, output=price_out),
        fetched_at=5.0,
    )


def test_requests_are_repriced_from_their_tokens_at_the_catalog_price() -> None:
    data = logged(
        ("llama-3.1-8b-instruct", "unknown-model", "fast"),
        [0, 0, 1, 2, 0],
        [1000, 500, 1000, 2000, np.nan],
        [100, np.nan, 0, 10, np.nan],
        [0.0002, 0.0001, 0.5, 0.7, 0.3],
    )
    entries = [
        priced("meta/llama-3.1-8b-instruct", 0.224, 0.448),
        priced("openai/gpt-4o-mini", 0.15, 0.6),
        priced("openai/gpt-4o-mini", 0.2, 0.8, Source.OPENAI),
    ]
    new, used = reprice(
        data, entries, aliases={"fast": "openai/gpt-4o-mini"}, preference=(Source.OPENAI, Source.OPENROUTER)
    )
    assert new.cost == pytest.approx(
        [(1000 * 0.224 + 100 * 0.448) / 1e6, 500 * 0.224 / 1e6, 0.5, (2000 * 0.2 + 10 * 0.8) / 1e6, 0.3]
    )  # no tokens: logged cost kept
    assert set(used) == {"llama-3.1-8b-instruct", "fast"}
    assert used["fast"].entry == "openai:openai/gpt-4o-mini"  # the preferred source's price
    assert (used["llama-3.1-8b-instruct"].rows, used["llama-3.1-8b-instruct"].repriced) == (3, 2)
    assert data.cost[0] == 0.0002  # the input is not changed


def test_no_catalog_no_change_and_older_files_without_tokens_out() -> None:
    data = logged(("m",), [0, 0], [100, 200], None, [1.0, 2.0])
    assert reprice(data, []) == (data, {})
    new, used = reprice(data, [priced("v/m", 1.0, 100.0)])
    assert new.cost == pytest.approx([100 / 1e6, 200 / 1e6]) and used["m"].price_out == 100.0
    assert reprice(
        data, [CatalogEntry(id="openrouter:v/m", source=Source.OPENROUTER, slug="v/m", provider="v", family="f")]
    ) == (data, {})  # no price known
