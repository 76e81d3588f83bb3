"""The worker: the ingest loop plus the Faust app (per-router tables, controllers, views)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import faust

from bifrost.common.errors import ExitCode
from bifrost.config import Settings
from bifrost.config.settings import SettingsError
from bifrost.kafka.preflight import require_kafka
from bifrost.kafka.topics import TopicSpec, ensure_topics
from bifrost.streams import observability as obs
from bifrost.streams.alerts.publisher import AlertProducer
from bifrost.streams.artifacts.listener import ArtifactListener, check_verify_key
from bifrost.streams.ingest.service import IngestService, ingest_topics
from bifrost.streams.lag.agent import register_lag_monitor
from bifrost.streams.metrics.collector import ProductCollector, install
from bifrost.streams.metrics.dlq_monitor import DlqSurgeMonitor
from bifrost.streams.metrics.rollout import RolloutBoard
from bifrost.streams.optimizer.agent import optimizer_topics, register_optimizer
from bifrost.streams.rollout.agent import RolloutStates, command_keyring, register_router_loop
from bifrost.streams.rollup.store import RouterWindows
from bifrost.streams.triggers.agent import register_triggers
from bifrost.streams.warehouse.sink import WarehouseSink
from bifrost.streams.web.auth import token_middleware
from bifrost.streams.web.bad_requests import quiet_bad_requests
from bifrost.streams.web.catalog_view import register_catalog_view
from bifrost.streams.web.dashboard import mount_dashboard, root_redirect
from bifrost.streams.web.views import register_views

log = logging.getLogger("bifrost.worker")
T = TypeVar("T")

EXIT_INGEST_FAILED = int(ExitCode.SOFTWARE)  # state recovery failed or the ingest loop crashed


@dataclass(frozen=True, slots=True)
class Worker:
    """A configured app and handles to its parts (for tests and views)."""

    app: faust.App
    ingest: IngestService
    windows: RouterWindows
    states: RolloutStates


ROUTER_WINDOWS_TABLE = "router-windows"
ROLLOUT_STATE_TABLE = "rollout-state"
TABLE_NAMES = (ROUTER_WINDOWS_TABLE, ROLLOUT_STATE_TABLE)
"""Faust tables of a worker; each has a changelog topic ``<app_id>-<table>-changelog``."""


def create_app(settings: Settings) -> Worker:
    """Build the worker's Faust app from ``settings``."""
    quiet_bad_requests()  # a malformed request: one log line and aiohttp's 400, no traceback
    app = faust.App(
        settings.app_id,
        # bifrost:// is Faust's aiokafka transport with read_committed consumers.
        broker=[f"bifrost://{host.strip()}" for host in settings.kafka_bootstrap.split(",")],
        store=settings.store,
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_host=settings.web_host,
        web_bind=settings.web_host,  # listen on this interface only (Faust's default is all)
        web_port=settings.web_port,
        web_application_options=_web_options(settings),
        canonical_url=_canonical_url(settings),
        autodiscover=False,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval_seconds,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        web_enabled=True,
        consumer_group_instance_id=settings.group_instance_id,
        broker_credentials=settings.kafka_security.faust_credentials(),
    )
    topics = settings.topics
    n = settings.partitions
    # Keys are text (JSON-serialized so routing by key matches the topic keys); values
    # are encoded bytes, decoded only when needed. Faust derives the changelog
    # serializers from key_type/value_type, so both are given.
    state_schema: faust.Schema[str, bytes] = faust.Schema(
        key_type=str, value_type=bytes, key_serializer="json", value_serializer="raw"
    )

    def table(name: str) -> faust.Table[str, bytes]:
        created = app.Table(name, schema=state_schema, key_type=str, value_type=bytes, partitions=n)
        assert isinstance(created, faust.Table)  # what app.Table makes; its declared type is the interface
        return created

    router_table = table(ROUTER_WINDOWS_TABLE)
    ingest = IngestService(settings)

    @app.task
    async def run_ingest() -> None:
        # Stage 1 runs beside the Faust agents, in the same process and event loop.
        try:
            await ingest.run()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - any end of ingest other than shutdown is fatal
            exit_on_ingest_failure(exc)

    # Product metrics on /metrics: per router and arm (fed by ingest), rollout gauges (fed
    # by the controllers here), and the DLQ surge check with its alerts.
    board = RolloutBoard(settings.metrics_max_routers)
    install(obs.REGISTRY, ProductCollector(ingest.traffic, board))
    alert_producer = AlertProducer(settings)
    surge = DlqSurgeMonitor(
        ingest.dlq_window,
        subject=f"{settings.app_id}-ingest/{settings.group_instance_id}",
        publish=alert_producer.publish,
    )

    @app.task
    async def run_dlq_surge_monitor() -> None:
        try:
            await surge.run()
        finally:
            await alert_producer.close()

    if settings.warehouse_enabled:
        sink = WarehouseSink(settings, Path(settings.warehouse_dir), max_age_s=settings.warehouse_flush_seconds)

        @app.task
        async def run_warehouse() -> None:
            await sink.run()

    listener = ArtifactListener(settings)

    @app.task
    async def run_artifact_listener() -> None:
        await listener.run()

    rollout_table = table(ROLLOUT_STATE_TABLE)

    def router_keyed(*names: str, compacting: bool | None = None) -> faust.types.TopicT:
        return app.topic(
            *names,
            key_type=str,
            key_serializer="json",
            value_serializer="raw",
            partitions=n,
            internal=True,
            compacting=compacting,
        )

    loop_topic = router_keyed(topics.window_partials, topics.rollout_commands)
    state_topic = router_keyed(topics.rollout_state, compacting=True)
    rollbacks_topic = router_keyed(topics.rollbacks)
    windows = RouterWindows(
        router_table, window_seconds=settings.window_seconds, retention_seconds=settings.retention_seconds
    )
    states = RolloutStates(rollout_table)
    triggers = register_triggers(app, settings)
    optimizer = register_optimizer(
        app,
        settings,
        windows=windows,
        router_table=router_table,
        keyring=command_keyring(settings),
        publish_alert=alert_producer.publish,
        emit_trigger=triggers.emit,
    )
    register_router_loop(
        app,
        settings,
        loop_topic=loop_topic,
        state_topic=state_topic,
        rollbacks_topic=rollbacks_topic,
        windows=windows,
        states=states,
        triggers=triggers,
        board=board,
        on_progress=optimizer.on_progress,
    )
    register_views(app, windows=windows, states=states, ingest=ingest.status, router_table=router_table)
    register_lag_monitor(app, settings)  # every worker samples; the leader alerts
    mount_dashboard(app, settings, windows=windows, router_table=router_table)
    register_catalog_view(app, settings)  # GET /v1/catalog: catalog freshness and last drift (README "Catalog")
    return Worker(app=app, ingest=ingest, windows=windows, states=states)


def _web_options(settings: Settings) -> dict[str, object]:
    """aiohttp options: ``/`` → the dashboard, and the bearer-token check when ``BIFROST_WEB_TOKEN(_FILE)`` is set."""
    token = settings.web_token_value()
    checks = [token_middleware(token, public_read=settings.web_public_read)] if token else []
    return {"middlewares": [root_redirect, *checks]}


def _canonical_url(settings: Settings) -> str:
    """The URL other workers use to reach this one (Faust forwards table_route requests there).

    ``BIFROST_WEB_CANONICAL_URL`` when set (each replica its own, e.g. ``http://worker-2:6066``);
    else from the bind address, where a wildcard (0.0.0.0, ::) is not reachable from elsewhere:
    the host name is.
    """
    if settings.web_canonical_url:
        if not settings.web_canonical_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"BIFROST_WEB_CANONICAL_URL={settings.web_canonical_url!r} is not an http(s):// URL "
                "(e.g. http://worker-2:6066)"
            )
        return settings.web_canonical_url.rstrip("/")
    host = settings.web_host
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.web_port}"


def worker_topics(settings: Settings) -> list[TopicSpec]:
    """Every topic a worker reads or writes that Faust does not create itself."""
    t, n = settings.topics, settings.partitions
    # Faust's table changelogs too: created here, before Faust starts, the cluster's metadata
    # already lists their partitions when Faust checks them (a changelog Faust creates itself
    # can read as 0 partitions for a moment, and Faust then raises PartitionsMismatch).
    changelogs = [TopicSpec(f"{settings.app_id}-{table}-changelog", n, compacted=True) for table in TABLE_NAMES]
    return [
        *ingest_topics(settings),
        TopicSpec(t.rollout_commands, n),
        TopicSpec(t.rollout_state, n, compacted=True),
        TopicSpec(t.rollbacks, n),
        *optimizer_topics(settings),
        *changelogs,
    ]


def _run_in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    # Before Faust owns this thread's event loop, so no loop is left set or closed here.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def exit_on_ingest_failure(error: BaseException) -> NoReturn:
    """Stop the whole process, loudly, when stage 1 cannot go on.

    A worker whose ingest loop died must not keep answering /health while its partitions
    stall. Exiting at once is safe: every batch's effects and offsets were committed in
    one transaction, so nothing half-done survives the process.
    """
    log.critical("event=worker.fatal component=ingest exit_code=%d error=%r", EXIT_INGEST_FAILED, error)
    logging.shutdown()
    os._exit(EXIT_INGEST_FAILED)


def run_worker(settings: Settings, *, preflight_timeout: float = 15.0) -> None:
    """Run a worker in the foreground until SIGTERM/SIGINT.

    Checks first that the artifact verification key is not a private key (a worker
    needs only the public one) and that Kafka answers, so a wrong address fails fast
    with a clear message instead of a worker that retries forever.
    """
    check_verify_key(settings)
    require_kafka(settings.kafka_bootstrap, settings.kafka_security, timeout=preflight_timeout)
    # Faust creates its data dir without parents; a fresh checkout has no var/.
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    # Stage 2 subscribes at start: a topic stage 1 had not created yet was ignored
    # ("Ignoring missing topic") and its views stayed empty until a restart.
    _run_in_thread(
        ensure_topics(
            settings.kafka_bootstrap,
            worker_topics(settings),
            replication_factor=settings.replication_factor,
            client_options=settings.kafka_options(),
        )
    )
    worker = create_app(settings)
    faust.Worker(
        worker.app,
        loglevel=settings.log_level,
    ).execute_from_commandline()
