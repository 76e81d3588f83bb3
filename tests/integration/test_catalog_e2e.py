"""End to end on the real broker: a planted price change → catalog-changes → training trigger → trainer → new artifact.

Processes, as deployed: ``bifrost-opt refresher`` (schedules + webhook delivery; its
start-up refresh writes the first snapshot), ``bifrost-opt catalog refresh`` (after the
price change), ``bifrost-opt trainer``. Provider APIs and a webhook receiver are served by
this test (OpenRouter's published format). Logged traffic is the bundled dataset's real
prompts replayed through the current artifact, written to the warehouse with the sink's
own writer (file layout, offsets) instead of through a worker, to keep the test short.

1. The current artifact sends every request to one large model (0.90 USD per 1M tokens).
2. OpenRouter raises that model's price by 12% (to 1.008); the next refresh publishes a
   ``price`` change (significant), marks the artifact invalidated, sends a
   ``catalog_drift`` trigger and an alert, which the refresher's deliverer POSTs, signed,
   to the receiver.
3. The trainer takes the trigger, re-prices the logged requests at the catalog's prices,
   retrains and publishes a new artifact whose cost model for that model predicts the new
   price per token (and whose training report names it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.catalog.snapshots import SnapshotStore
from bifrost.client.simulator.replay import ReplayConfig, ReplayTraffic
from bifrost.config import Settings
from bifrost.router import ReferenceRouter
from bifrost.router.artifact import Artifact, Thresholds, encode, sign
from bifrost.router.features import FeatureExtractor
from bifrost.router.keys import generate_private_key
from bifrost.router.prompt_models import PromptScorer
from bifrost.schemas.artifacts import ArtifactPublished
from bifrost.schemas.catalog import CatalogChange, ChangeKind
from bifrost.schemas.triggers import OutcomeKind, TrainingOutcome
from bifrost.storage.artifact_store import ArtifactStore
from bifrost.storage.dataset import FullInfoDataset, load_dataset
from bifrost.streams.warehouse.files import write_atomically
from bifrost.streams.warehouse.layout import FileSpan, file_path, hour_of
from bifrost.trainer.bootstrap import BootstrapConfig, bootstrap_artifact
from bifrost.webhooks import verify
from tests.catalog.providers import ProviderServer
from tests.datasets import routing_eval
from tests.integration.harness import collect, eventually, settings_env

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio(loop_scope="session")]

LARGE_MODEL = "llama-3.3-nemotron-super-49b-v1"
LARGE_SLUG = "nvidia/llama-3.3-nemotron-super-49b-v1"
OLD_PRICE, NEW_PRICE = 0.9, 1.008  # +12%
EVENTS_PER_HOUR, HOURS, PARTITIONS = 30_000, 2, 4
SECRET = "whsec_" + base64.b64encode(b"end-to-end-webhook-secret-32byte").decode()


@pytest.fixture(scope="module")
def dataset() -> FullInfoDataset:
    return load_dataset(routing_eval())


def expensive_parent(dataset: FullInfoDataset, key: Ed25519PrivateKey) -> Artifact:
    """A first artifact that sends everything to one large model (as the trainer-loop test's)."""
    base, _ = bootstrap_artifact(dataset, trials=20, seed=0, signing_key=key, config=BootstrapConfig(clusters=24))
    return msgspec.structs.replace(
        base,
        version="v-expensive",
        alpha=1.0,
        thresholds=Thresholds(cheap=1.0, hard=0.0),
        penalties={m: 0.0 if m == LARGE_MODEL else 1.0 for m in base.models},
    ).check()


def write_warehouse(dataset: FullInfoDataset, parent: Artifact, root: Path, topic: str, end: float) -> int:
    """Replay the dataset through ``parent`` (30% exploration) and write it as the warehouse sink does."""
    replay = ReplayTraffic(dataset, {parent.version: ReferenceRouter(parent)}, split="train")
    config = ReplayConfig(
        arms={parent.version: 1.0},
        routers=("router-a",),
        exploration=0.3,
        rate_per_second=EVENTS_PER_HOUR / 3600,
        duration_seconds=HOURS * 3600,
        start_ts=end - HOURS * 3600,
        seed=3,
    )
    files: dict[tuple[int, str], list[dict[str, Any]]] = {}
    offsets = [0] * PARTITIONS
    written = 0
    for item in replay.generate(config):
        if item.event is None:
            continue
        partition = zlib.crc32(item.event.request_id.encode()) % PARTITIONS
        row = msgspec.to_builtins(item.event)
        row["_partition"], row["_offset"] = partition, offsets[partition]
        offsets[partition] += 1
        files.setdefault((partition, hour_of(item.event.ts)), []).append(row)
        written += 1
    for (partition, hour), rows in files.items():
        span = FileSpan(partition, int(rows[0]["_offset"]), int(rows[-1]["_offset"]))
        write_atomically(file_path(root, topic, hour, span), rows)
    return written


class Receiver:
    """A webhook receiver that keeps what verifies."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []  # JSON bodies
        self.server: TestServer | None = None

    async def start(self) -> Receiver:
        app = web.Application()

        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            verify(SECRET, request.headers, body)  # raises → 500 → retried: a failure here shows in the test
            self.accepted.append(json.loads(body))
            return web.Response(status=204)

        app.router.add_post("/hook", hook)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self


@pytest.fixture
async def servers() -> AsyncIterator[tuple[ProviderServer, Receiver]]:
    providers = await ProviderServer().start()
    receiver = await Receiver().start()
    yield providers, receiver
    await providers.close()
    assert receiver.server is not None
    await receiver.server.close()


@pytest.fixture
def processes() -> Iterator[list[asyncio.subprocess.Process]]:
    started: list[asyncio.subprocess.Process] = []
    yield started
    for process in started:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)


async def spawn(
    settings: Settings, args: list[str], log: Path, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    handle = log.open("ab")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bifrost.cli.main",
        *args,
        env={**settings_env(settings), **(env or {})},
        stdout=handle,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )


async def test_planted_price_change_reaches_a_new_artifacts_cost_model(
    settings: Settings,
    dataset: FullInfoDataset,
    servers: tuple[ProviderServer, Receiver],
    tmp_path: Path,
    processes: list[asyncio.subprocess.Process],
) -> None:
    providers, receiver = servers
    assert receiver.server is not None
    key_path = tmp_path / "keys" / "signing.pem"
    key = generate_private_key(key_path)
    parent = expensive_parent(dataset, key)
    store = ArtifactStore(tmp_path / "artifacts")
    data = encode(parent)
    store.publish(data, sign(data, key), reason="test parent")
    warehouse = tmp_path / "warehouse"
    events = await asyncio.to_thread(
        write_warehouse, dataset, parent, warehouse, settings.topics.routing_events, time.time() - 60
    )
    assert events > 50_000

    s = Settings.from_env(
        settings.to_env(),
        catalog_providers="openrouter",
        openrouter_base_url=providers.base("openrouter"),
        catalog_dir=str(tmp_path / "catalog"),
        artifact_store=str(store.root),
        warehouse_dir=str(warehouse),
        webhook_urls=str(receiver.server.make_url("/hook")),
        webhook_secret=SECRET,
        webhook_backoff_seconds=0.5,
        webhook_state_dir=str(tmp_path / "webhooks"),
        refresher_metrics_port=0,
    )
    logs = tmp_path / "logs"
    logs.mkdir()

    # The refresher service: its start-up refresh writes and publishes the first snapshot.
    processes.append(await spawn(s, ["refresher"], logs / "refresher.log"))
    snapshots = SnapshotStore(s.catalog_dir)
    first = await eventually(
        lambda: c if (c := snapshots.current()) is not None and c.published else None,
        timeout=120,
        what="the refresher's first snapshot",
    )
    assert first.trigger_id is None and any(e.slug == LARGE_SLUG for e in first.entries)
    await eventually(
        lambda: "event=webhooks.anchored" in (logs / "refresher.log").read_text(),
        timeout=60,
        what="the webhook deliverer in its group",
    )

    # The planted change, and a refresh from the CLI (as an operator or the next slot would).
    providers.set_price(LARGE_SLUG, NEW_PRICE)
    refresh = await spawn(s, ["catalog", "refresh", "--json"], logs / "refresh.log")
    assert await asyncio.wait_for(refresh.wait(), 120) == 0, (logs / "refresh.log").read_text()[-3000:]
    second = snapshots.require_current()
    (change,) = [c for c in second.changes if c.kind is ChangeKind.PRICE]
    assert change.slug == LARGE_SLUG and change.significant and change.after["price_in"] == NEW_PRICE
    assert change.used_as == [LARGE_MODEL] and second.trigger_id == f"catalog-drift-{second.version}"
    published = await collect(s.kafka_bootstrap, s.topics.catalog_changes, CatalogChange, 10_000, timeout=5)
    assert change.change_id in {c.change_id for c in published}
    assert store.invalidation(parent.version) is not None

    # The alert reaches the webhook receiver, signed (the receiver verified it).
    await eventually(lambda: receiver.accepted, timeout=60, what="the drift alert at the webhook receiver")
    assert receiver.accepted[0]["type"] == "alert.catalog_drift"
    assert receiver.accepted[0]["data"]["evidence"]["trigger_id"] == second.trigger_id

    # The trainer retrains on the catalog's prices.
    runs = tmp_path / "trainer"
    env = {
        "BIFROST_ARTIFACT_STORE": str(store.root),
        "BIFROST_TRAINER_RUNS_DIR": str(runs),
        "BIFROST_SIGNING_KEY_FILE": str(key_path),
        "BIFROST_TRAINER_TRIALS": "60",
        "BIFROST_WAREHOUSE_DIR": str(warehouse),
        "BIFROST_TRAINER_METRICS_PORT": "0",
    }
    processes.append(await spawn(s, ["trainer"], logs / "trainer.log", env))
    outcomes = await collect(s.kafka_bootstrap, s.topics.training_outcomes, TrainingOutcome, 1, timeout=420)
    assert outcomes, (logs / "trainer.log").read_text()[-4000:]
    (outcome,) = outcomes
    assert outcome.trigger_id == second.trigger_id
    assert outcome.outcome is OutcomeKind.PUBLISHED, (outcome, (logs / "trainer.log").read_text()[-4000:])
    announced = await collect(s.kafka_bootstrap, s.topics.artifacts, ArtifactPublished, 1, timeout=30)
    assert announced and announced[0].version == outcome.version and announced[0].trigger_id == second.trigger_id
    new = store.verify(outcome.version or "", key.public_key())
    assert new.parent == parent.version and store.current() == new.version and store.invalidation(new.version) is None

    # The new artifact's training report names the catalog price; its cost model predicts it.
    prices = new.reports.training["catalog_prices"]
    assert prices[LARGE_MODEL]["price_in"] == NEW_PRICE and prices[LARGE_MODEL]["entry"] == f"openrouter:{LARGE_SLUG}"
    assert prices[LARGE_MODEL]["repriced"] > 1000
    prompts = [dataset.prompts[r] for r in np.flatnonzero(dataset.splits == "test")[:300]]
    extractor = FeatureExtractor(new.gbdt.feature_schema, new.centroids)
    X = np.array([extractor.extract(p)[0] for p in prompts])
    column = list(new.gbdt.feature_schema.names).index(new.prompt_models.cost_per)

    def usd_per_million(artifact: Artifact) -> float:
        predictions = PromptScorer(artifact).predict(X)
        j = artifact.models.index(LARGE_MODEL)
        return float(np.median(predictions.cost_usd(artifact.prompt_models.cost_unit_usd)[:, j] / X[:, column]) * 1e6)

    assert usd_per_million(parent) == pytest.approx(OLD_PRICE, rel=0.03)
    assert usd_per_million(new) == pytest.approx(NEW_PRICE, rel=0.03)
    assert "Catalog prices" in next(runs.glob("runs/catalog-drift-*/report.md")).read_text()
