"""Wiring the optimizer into the worker: its topics, tasks, views and the router loop's hook."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import faust

from bifrost.config import Settings
from bifrost.kafka.topics import TopicSpec, ensure_topics
from bifrost.schemas.alerts import Alert
from bifrost.schemas.triggers import TrainingTrigger
from bifrost.streams.optimizer.commands import ApplyListener
from bifrost.streams.optimizer.service import Optimizer
from bifrost.streams.optimizer.views import register_optimizer_views
from bifrost.streams.rollout.auth import Keyring
from bifrost.streams.rollup.store import RouterWindows

log = logging.getLogger("bifrost.optimizer")
RETENTION_PERIODS = 4  # the recommendations topic keeps this many dedup periods


def optimizer_topics(settings: Settings) -> list[TopicSpec]:
    """The optimizer's topics (one partition each: few records, one order; outcomes compacted by recommendation)."""
    t = settings.topics
    retention_ms = int(max(RETENTION_PERIODS * settings.recommendation_period_seconds, 7 * 86400) * 1000)
    return [
        TopicSpec(t.recommendations, 1, configs={"retention.ms": str(retention_ms)}),
        TopicSpec(t.recommendation_commands, 1),
        TopicSpec(t.recommendation_outcomes, 1, compacted=True),
    ]


def register_optimizer(
    app: faust.App,
    settings: Settings,
    *,
    windows: RouterWindows,
    router_table: faust.Table,
    keyring: Keyring,
    publish_alert: Callable[[Alert], Awaitable[None]],
    emit_trigger: Callable[[TrainingTrigger], Awaitable[None]],
) -> Optimizer:
    """Create the optimizer; the caller passes :meth:`Optimizer.on_progress` to the router loop."""
    optimizer = Optimizer(settings, windows, publish_alert=publish_alert, emit_trigger=emit_trigger)
    listener = ApplyListener(settings, keyring, optimizer.recommendations)

    @app.task
    async def run_optimizer() -> None:
        s = settings
        options = s.kafka_options()
        await ensure_topics(
            s.kafka_bootstrap, optimizer_topics(s), replication_factor=s.replication_factor, client_options=options
        )
        # The alerts topic may exist with another layout (it is created by whoever alerts first).
        await ensure_topics(
            s.kafka_bootstrap,
            [TopicSpec(s.topics.alerts, 1)],
            replication_factor=s.replication_factor,
            client_options=options,
            check_partitions=False,
        )
        tasks = [
            asyncio.ensure_future(optimizer.recommendations.run()),
            asyncio.ensure_future(optimizer.alerts.run()),
            asyncio.ensure_future(listener.run()),
        ]
        log.info(
            "event=optimizer.started interval_s=%.0f period_s=%.0f",
            s.optimizer_interval_seconds,
            s.recommendation_period_seconds,
        )
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await optimizer.close()

    # mode types handlers with mypy_extensions' NamedArg, which no def matches under mypy 2
    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_on_revoke(sender: object, revoked: set[object], **_: object) -> None:
        optimizer.forget()

    register_optimizer_views(app, optimizer, router_table=router_table)
    return optimizer
