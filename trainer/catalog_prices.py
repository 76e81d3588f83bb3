"""The catalog's current prices in the trainer's cost model.

Logged ``cost_usd`` is what a request cost on the day it was served. When a provider
changes a price, the next artifact must weigh models by today's price, or it keeps
routing by the old one. So before training, the trainer reads the compacted ``catalog``
topic (the refresher's newest entry per model; :func:`read_catalog`) and re-prices every
logged request whose model resolves to a catalog entry with a price
(:func:`bifrost.schemas.catalog.match_entry`; ``BIFROST_CATALOG_ALIASES`` for other
names) from its logged tokens (:func:`reprice`, pure)::

    cost_usd = tokens_in × price_in / 1e6 + tokens_out × price_out / 1e6

Requests without logged tokens, and models without a catalog price, keep their logged
cost. The prices used are written into the run report and the artifact's training
report (``catalog_prices``). No catalog topic (no refresher) means no re-pricing.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence

import msgspec
import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition

from bifrost.schemas.catalog import CatalogEntry, Source, resolve_models
from bifrost.storage.logged import LoggedData
from bifrost.trainer.settings import TrainerSettings

log = logging.getLogger("bifrost.trainer")

PER_MILLION = 1_000_000.0


class ModelPrice(msgspec.Struct, frozen=True, kw_only=True):
    """The catalog price a model's logged requests were re-priced with, and what that changed."""

    entry: str
    price_in: float
    price_out: float
    fetched_at: float
    rows: int
    repriced: int
    logged_mean_usd: float
    repriced_mean_usd: float


def reprice(
    data: LoggedData,
    entries: Sequence[CatalogEntry],
    *,
    aliases: Mapping[str, str] | None = None,
    preference: Sequence[Source] = tuple(Source),
) -> tuple[LoggedData, dict[str, ModelPrice]]:
    """``data`` with ``cost`` re-priced at the catalog's prices; and, per model re-priced, what was used (pure)."""
    if len(data) == 0 or not entries:
        return data, {}
    resolved = resolve_models(data.models, entries, aliases=aliases, preference=preference)
    cost = data.cost.copy()
    tokens_in = np.where(np.isfinite(data.tokens_in) & (data.tokens_in > 0), data.tokens_in, 0.0)
    out = data.tokens_out if data.tokens_out is not None else np.zeros(len(data))
    tokens_out = np.where(np.isfinite(out) & (out > 0), out, 0.0)
    counted = (tokens_in + tokens_out) > 0
    used: dict[str, ModelPrice] = {}
    for j, model in enumerate(data.models):
        entry = resolved.get(model)
        if entry is None or entry.pricing is None:
            continue
        rows = data.model == j
        target = rows & counted
        if not target.any():
            continue
        cost[target] = (
            tokens_in[target] * entry.pricing.input + tokens_out[target] * entry.pricing.output
        ) / PER_MILLION
        used[model] = ModelPrice(
            entry=entry.id,
            price_in=entry.pricing.input,
            price_out=entry.pricing.output,
            fetched_at=entry.fetched_at,
            rows=int(rows.sum()),
            repriced=int(target.sum()),
            logged_mean_usd=float(np.nanmean(data.cost[target])),
            repriced_mean_usd=float(np.mean(cost[target])),
        )
    if not used:
        return data, {}
    return dataclasses.replace(data, cost=cost), used


async def read_catalog(settings: TrainerSettings, *, timeout_seconds: float = 30.0) -> list[CatalogEntry]:
    """The newest entry per key of the compacted ``catalog`` topic (empty when the topic does not exist).

    Read without a consumer group, from the beginning to the end offsets taken at the
    start; tombstones remove their key; an undecodable record is skipped with a log line.
    """
    topic = settings.topics.catalog
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        client_id=f"{settings.app_id}-trainer-catalog",
        **settings.kafka_options(),
    )
    await consumer.start()
    try:
        # A consumer without subscriptions learns no topics' partitions: ask the cluster (as streams/web/feed.py does).
        cluster = await consumer._client.fetch_all_metadata()  # noqa: SLF001 - no public call gives partitions
        partitions = [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        latest: dict[bytes, CatalogEntry] = {}
        deadline = time.monotonic() + timeout_seconds
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {timeout_seconds:.0f} s")
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    key = record.key or b""
                    if record.value is None:
                        latest.pop(key, None)
                        continue
                    try:
                        latest[key] = msgspec.json.decode(record.value, type=CatalogEntry)
                    except (msgspec.DecodeError, RecursionError) as exc:
                        log.warning(
                            "event=trainer.catalog.bad_entry topic=%s offset=%d error=%r",
                            topic,
                            record.offset,
                            str(exc)[:200],
                        )
        return list(latest.values())
    finally:
        await consumer.stop()
