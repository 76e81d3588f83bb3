"""Catalog refreshes on the real broker, against provider APIs served locally in their published formats.

One scenario, in order (each refresh diffs against the previous snapshot):

1. first refresh: every entry on ``catalog``, every model ``added`` on ``catalog-changes``,
   no trigger (nothing drifted yet);
2. a 12% price change of a model the current artifact uses → one ``price`` change
   (significant), the artifact marked invalidated in the store (still verifying), one
   ``catalog_drift`` training trigger and one ``catalog_drift`` alert; a 5% change of another
   model in use → nothing; a removed model nobody uses → ``removed``, not significant;
3. OpenAI answering 500s and Gemini timing out while a model in use is removed from
   OpenRouter → OpenRouter still refreshes (``removed``, significant, a second trigger);
   OpenAI and Gemini entries keep their values, marked stale, with no drift; nothing crashes;
4. ``bifrost-opt catalog rollback`` to the first snapshot → published as a new snapshot;
   ``list``, ``show``, ``diff``, ``snapshots`` read the folder; misuse is a one-line error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.catalog.refresher import Refresher
from bifrost.cli.main import main as cli
from bifrost.config import Settings
from bifrost.schemas.alerts import Alert, AlertKind
from bifrost.schemas.catalog import CatalogChange, CatalogEntry, ChangeKind
from bifrost.schemas.triggers import TrainingTrigger, TriggerReason
from bifrost.storage.artifact_store import ArtifactStore
from tests.catalog.providers import GEMINI_KEY, OPENAI_KEY, Fault, ProviderServer
from tests.integration.harness import WorkerProcess, collect, eventually
from tests.router.artifacts import make_artifact, signed

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio(loop_scope="session")]

KEY = Ed25519PrivateKey.generate()
# The test artifact routes to "large", "medium", "small": aliases name their catalog entries.
ALIASES = "large=meta/llama3-70b-instruct,medium=meta/llama-3.1-8b-instruct,small=google/gemma-2-9b-it"


@pytest.fixture
async def providers() -> AsyncIterator[ProviderServer]:
    server = await ProviderServer().start()
    yield server
    await server.close()


def catalog_settings(settings: Settings, providers: ProviderServer, tmp_path: Path) -> Settings:
    return Settings.from_env(
        settings.to_env(),
        openrouter_base_url=providers.base("openrouter"),
        openai_base_url=providers.base("openai"),
        gemini_base_url=providers.base("gemini"),
        openai_api_key=OPENAI_KEY,
        gemini_api_key=GEMINI_KEY,
        catalog_dir=str(tmp_path / "catalog"),
        artifact_store=str(tmp_path / "artifacts"),
        catalog_aliases=ALIASES,
        catalog_http_timeout_seconds=1.0,
        catalog_http_attempts=2,
        catalog_http_backoff_seconds=0.05,
        catalog_http_max_backoff_seconds=0.5,
        refresher_metrics_port=0,
    )


async def test_refresh_drift_invalidation_trigger_alert_faults_and_rollback(
    settings: Settings,
    providers: ProviderServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = catalog_settings(settings, providers, tmp_path)
    store = ArtifactStore(s.artifact_store)
    data, signature = signed(make_artifact(version="v1"), KEY)
    store.publish(data, signature)
    refresher = Refresher(s)
    bootstrap, topics = s.kafka_bootstrap, s.topics
    try:
        # 1. The first snapshot: entries published, everything "added", no trigger.
        first = await refresher.refresh()
        assert first is not None and first.published and first.trigger_id is None
        assert {p.source: p.outcome for p in first.providers} == {"openrouter": "ok", "openai": "ok", "gemini": "ok"}
        entries = await collect(bootstrap, topics.catalog, CatalogEntry, len(first.entries), timeout=30)
        assert {e.id for e in entries} == {e.id for e in first.entries} and len(entries) == 27
        added = await collect(bootstrap, topics.catalog_changes, CatalogChange, len(first.changes), timeout=30)
        assert {c.kind for c in added} == {ChangeKind.ADDED} and not any(c.significant for c in added)

        # 2. +12% on a model in use, +5% on another, a model nobody uses removed.
        providers.set_price("meta/llama-3.1-8b-instruct", 0.224)
        providers.set_price("google/gemma-2-9b-it", 0.105)
        providers.remove("deepseek/deepseek-r1")
        second = await refresher.refresh()
        assert second is not None and second.published
        kinds = {(c.kind, c.entry_id): c for c in second.changes}
        assert set(kinds) == {
            (ChangeKind.PRICE, "openrouter:meta/llama-3.1-8b-instruct"),
            (ChangeKind.REMOVED, "openrouter:deepseek/deepseek-r1"),
        }
        price = kinds[(ChangeKind.PRICE, "openrouter:meta/llama-3.1-8b-instruct")]
        assert price.significant and price.used_as == ["medium"] and price.relative == pytest.approx(0.12)
        assert not kinds[(ChangeKind.REMOVED, "openrouter:deepseek/deepseek-r1")].significant
        changes = await collect(bootstrap, topics.catalog_changes, CatalogChange, len(added) + 2, timeout=30)
        assert [c.change_id for c in changes[len(added) :]] == [c.change_id for c in second.changes]

        mark = store.invalidation("v1")
        assert mark is not None and "price +12.0%" in mark.reason and mark.details["snapshot"] == second.version
        assert store.verify("v1", KEY.public_key()).version == "v1"  # the mark does not touch the signed files
        triggers = await collect(bootstrap, topics.training_triggers, TrainingTrigger, 5, timeout=10)
        assert [t.trigger_id for t in triggers] == [f"catalog-drift-{second.version}"]
        trigger = triggers[0]
        assert trigger.reason is TriggerReason.CATALOG_DRIFT and trigger.router_id is None
        assert trigger.window_to - trigger.window_from == pytest.approx(7 * 86400)
        assert trigger.details["models"] == "medium" and trigger.details["artifact"] == "v1"
        alerts = await collect(bootstrap, topics.alerts, Alert, 5, timeout=10)
        assert [a.alert_id for a in alerts] == [f"catalog_drift:{second.version}"]
        assert alerts[0].kind is AlertKind.CATALOG_DRIFT and "price +12.0%" in alerts[0].message

        # 3. Two providers down while a model in use disappears from the third.
        providers.always_fail.add("openai")
        providers.fail("gemini", *[Fault(hang_seconds=1.5)] * 2)
        providers.remove("meta/llama3-70b-instruct")
        third = await refresher.refresh()
        assert third is not None and third.published
        assert {p.source: p.outcome for p in third.providers} == {
            "openrouter": "ok",
            "openai": "failed",
            "gemini": "failed",
        }
        assert [(c.kind, c.entry_id, c.significant) for c in third.changes] == [
            (ChangeKind.REMOVED, "openrouter:meta/llama3-70b-instruct", True)
        ]
        stale = [e for e in third.entries if e.stale]
        assert len(stale) == 10 and all(
            e.available and e.pricing == next(f.pricing for f in first.entries if f.id == e.id) for e in stale
        )
        triggers = await collect(bootstrap, topics.training_triggers, TrainingTrigger, 5, timeout=10)
        assert sorted(t.trigger_id for t in triggers) == [
            f"catalog-drift-{second.version}",  # several partitions
            f"catalog-drift-{third.version}",
        ]
        alerts = await collect(bootstrap, topics.alerts, Alert, 5, timeout=10)
        assert alerts[-1].severity.value == "critical"  # a model in use is gone
    finally:
        await refresher.close()

    # 4. The CLI: rollback (published), list, show, diff, snapshots; misuse is one line.
    for key, value in s.to_env().items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    # (in a thread: the command runs its own event loop, as from a shell)
    assert (
        await asyncio.to_thread(cli, ["catalog", "rollback", first.version, "--reason", "bad provider data", "--json"])
        == 0
    )
    rolled = json.loads(capsys.readouterr().out)
    assert rolled["rolled_back_to"] == first.version and rolled["mode"] == "rollback" and rolled["published"]
    moved = {(c["kind"], c["entry_id"]) for c in rolled["changes"]}
    assert ("price", "openrouter:meta/llama-3.1-8b-instruct") in moved
    assert ("restored", "openrouter:meta/llama3-70b-instruct") in moved
    assert ("restored", "openrouter:deepseek/deepseek-r1") in moved
    assert cli(["catalog", "show", "llama-3.1-8b-instruct", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["entries"]
    assert [e["pricing"] for e in shown] == [{"in": 0.2, "out": 0.2}]
    assert cli(["catalog", "list"]) == 0
    out = capsys.readouterr().out
    assert "openrouter:meta/llama-3.1-8b-instruct" in out and "openai:openai/gpt-4o " in out
    assert cli(["catalog", "diff", first.version, second.version]) == 0
    out = capsys.readouterr().out
    assert "* openrouter:meta/llama-3.1-8b-instruct price +12.0%" in out
    assert "  openrouter:google/gemma-2-9b-it price +5.0%" in out  # shown, not drift
    assert cli(["catalog", "snapshots"]) == 0
    assert capsys.readouterr().out.count("\n") == 4
    assert cli(["catalog", "diff", first.version, "no-such-snapshot"]) == 2
    assert "no catalog snapshot 'no-such-snapshot'" in capsys.readouterr().err
    assert cli(["catalog", "show", "no-such-model"]) == 2
    assert await asyncio.to_thread(cli, ["catalog", "rollback", rolled["version"]]) == 2  # already current
    err = capsys.readouterr().err
    assert "Traceback" not in err and "already the current" in err


async def test_the_worker_serves_catalog_freshness_and_last_changes(
    settings: Settings,
    providers: ProviderServer,
    tmp_path: Path,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    s = Settings.from_env(
        catalog_settings(settings, providers, tmp_path).to_env(),
        catalog_providers="openrouter,gemini",
        gemini_api_key=GEMINI_KEY,
    )
    worker = start_worker(s)
    await eventually(lambda: worker.health() is not None, timeout=120, what="worker up")
    refresher = Refresher(s)
    try:
        first = await refresher.refresh()
        providers.set_price("openai/gpt-4o-mini", 0.3)
        providers.always_fail.add("gemini")
        second = await refresher.refresh()
    finally:
        await refresher.close()
    assert first is not None and second is not None

    def catalog() -> dict[str, Any] | None:
        status, body = worker.get("/v1/catalog?limit=5")
        return body if status == 200 and body["entries"] == len(second.entries) and body["last_changes"] else None

    view = await eventually(catalog, timeout=60, what="/v1/catalog with both snapshots")
    assert view["sources"]["gemini"]["stale"] == 5 and view["sources"]["openrouter"]["stale"] == 0
    assert view["last_changes"][0]["kind"] == "price" and view["last_changes"][0]["slug"] == "openai/gpt-4o-mini"
    assert worker.get("/v1/catalog?limit=x")[0] == 400
