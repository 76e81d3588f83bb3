"""The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against a
real worker and the real broker.

A worker with a web token, public reads and a dashboard operator key gets simulated traffic
for one router; a canary runs (started with signed commands, as the CLI sends them). The
page must load without the token, draw its charts with data, and show the same figures as
the JSON view. Control actions without the token are refused (401) and nothing reaches
``rollout-commands``; with the token, pause and rollback reach the controller (read back from
Kafka) and the rollback shows up in the page's rollback list. The page is saved as
``bench/results/dashboard.png`` while the canary is paused (gates and blockers) and
``dashboard-rollback.png`` at the end (``BIFROST_DASHBOARD_SCREENSHOT`` overrides the path).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from bifrost.client.rollout import follow, new_command, wait_for_outcome
from bifrost.client.simulator import SimulationReport, TrafficConfig, anchored, simulate
from bifrost.config import Settings
from bifrost.router.keys import generate_private_key
from bifrost.schemas.command_signing import CommandSigner
from bifrost.schemas.rollout import CommandKind, Phase, RolloutState
from bifrost.streams.rollout.auth import public_line
from tests.integration.command_keys import CommandKeys, command_keys, mark_verified
from tests.integration.harness import WorkerProcess, arm_counts, eventually, simulated_traffic

pytestmark = pytest.mark.kafka

ROUTER = "router-a"
SPEED = 120.0  # one simulated minute (a window) every half second
TOKEN = "dashboard-test-token-0123456789"
CHROMIUM = os.environ.get("BIFROST_CHROMIUM", "/usr/bin/chromium")
# As the machine notes say: no background networking (the sandbox refuses it), a fresh profile.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = Path(os.environ.get("BIFROST_DASHBOARD_SCREENSHOT", ROOT / "bench" / "results" / "dashboard.png"))


@pytest.fixture
def keys(tmp_path: Path) -> CommandKeys:
    return command_keys(tmp_path / "keys")


def post(url: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """End offset of every partition of ``topic``: what has reached it so far."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=100)
        ends = await consumer.end_offsets(sorted(consumer.assignment()))
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def state_from_kafka(
    settings: Settings, accept: Callable[[RolloutState], bool], timeout: float = 60.0
) -> RolloutState:
    """The first rollout-state record of the router (from the beginning) that ``accept`` takes."""

    async def scan() -> RolloutState:
        async for state in follow(
            settings.kafka_bootstrap, settings.topics.rollout_state, RolloutState, routers={ROUTER}
        ):
            if accept(state):
                return state
        raise AssertionError("rollout-state ended")

    return await asyncio.wait_for(scan(), timeout)


@asynccontextmanager
async def traffic(settings: Settings) -> AsyncIterator[SimulationReport]:
    config = TrafficConfig(
        routers=(ROUTER,),
        arms={"v1": 1.0},
        rate_per_second=20.0,
        duration_seconds=3 * 3600,
        feedback_fraction=0.6,
        seed=5,
    )
    async with simulated_traffic(settings, config, speed=SPEED) as report:
        yield report


async def test_dashboard_in_chromium(
    settings: Settings, keys: CommandKeys, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium (apt-get install chromium)",
            pytrace=False,
        )

    dashboard = CommandSigner("dashboard", generate_private_key(tmp_path / "keys" / "dashboard.pem"))
    worker_settings = Settings.from_env(
        keys.worker(settings).to_env(),
        partitions=2,
        batch_within_seconds=0.05,
        rollout_min_stage_seconds=86400.0,  # the canary stays at 5% while the page is looked at
        web_token=TOKEN,
        web_public_read=True,
        command_keys=keys.allow_list + "\n" + public_line("dashboard", "operator", dashboard.key),
        dashboard_command_key_file=str(tmp_path / "keys" / "dashboard.pem"),
        dashboard_command_key_name="dashboard",
    )
    worker = start_worker(worker_settings)
    base = worker.url
    bootstrap, topics = worker_settings.kafka_bootstrap, worker_settings.topics
    await eventually(lambda: len(worker.owns_inputs()) == 2, timeout=90, what="worker ready")

    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 1300})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)

            async with traffic(worker_settings):
                await eventually(
                    lambda: arm_counts(worker, ROUTER, since="10m").get("v1", 0) >= 200,
                    timeout=90,
                    what="control traffic",
                )
                await mark_verified(worker_settings, keys, ROUTER, "v2")
                started = await wait_for_outcome(
                    bootstrap, topics, keys.operator.sign(new_command(ROUTER, CommandKind.START, artifact="v2"))
                )
                assert started is not None and started.phase is Phase.CANARY, started
                await eventually(
                    lambda: arm_counts(worker, ROUTER, since="10m").get("v2", 0) >= 300,
                    timeout=60,
                    what="canary traffic",
                )

                # 1. The page loads without a token (/ redirects to it) and draws every chart with both arms.
                await page.goto(base + "/")
                assert page.url == base + "/dashboard"
                await page.wait_for_selector("#rollout-phase[data-phase=canary]", timeout=30_000)
                charts = ["rate", "error_rate", "p50_ms", "p95_ms", "cost_per_task", "win_rate"]
                for chart in charts:
                    await page.locator(f'#chart-grid .chart[data-chart="{chart}"] canvas').first.wait_for(
                        timeout=30_000
                    )
                    await page.wait_for_function(
                        """(name) => { const b = document.querySelector(`.chart[data-chart="${name}"]`);
                                       return b && b.dataset.series === "v1,v2" && Number(b.dataset.points) > 0; }""",
                        arg=chart,
                        timeout=30_000,
                    )
                assert await page.locator("#chart-grid canvas").count() >= len(charts)
                assert "no token" in await page.inner_text("#token-state")
                note = await page.inner_text("#control-note")
                assert 'operator key "dashboard"' in note and "Enter the bearer token" in note, note

            # 2. Traffic stopped: once the JSON view is still, the page shows the same figures.
            async def settled() -> dict[str, Any] | None:
                first = worker.get(f"/v1/routers/{ROUTER}/metrics?since=1h")[1]
                await asyncio.sleep(2.0)
                second = worker.get(f"/v1/routers/{ROUTER}/metrics?since=1h")[1]
                return second if first == second and isinstance(second, dict) else None

            metrics = await eventually(settled, timeout=60, interval=0.1, what="metrics to settle")
            arms = metrics["arms"]
            assert set(arms) == {"v1", "v2"} and arms["v2"]["count"] > 0

            async def shown(arm: str, field: str) -> str | None:
                return await page.get_attribute(f'#arms-table td[data-arm="{arm}"][data-field="{field}"]', "data-value")

            async def page_matches() -> bool:
                return all([await shown(arm, "count") == str(arms[arm]["count"]) for arm in arms])

            await eventually(page_matches, timeout=30, what="the page to show the settled counts")
            for arm, figures in arms.items():
                for field in ("error_rate", "p50_ms", "p95_ms", "cost_per_task", "cost_usd", "win_rate"):
                    value = await shown(arm, field)
                    expected = figures[field]
                    assert (
                        value == "" if expected is None else float(value or "nan") == pytest.approx(expected, rel=1e-12)
                    ), (arm, field, value, expected)
                count_text = await page.inner_text(f'#arms-table td[data-arm="{arm}"][data-field="count"]')
                assert count_text == f"{figures['count']:,}"
            assert await shown("v2", "weight") == "0.05"
            # The optimizer's panel reads GET /v1/recommendations (public read) without an error.
            await page.wait_for_function(
                "() => (document.querySelector('#recommendations-note') || {}).textContent.startsWith('from ')",
                timeout=30_000,
            )

            # 3. Without the token, an action is refused (401) and nothing reaches the controller.
            before_offsets = await end_offsets(bootstrap, topics.rollout_commands)
            before = worker.get(f"/v1/routers/{ROUTER}/rollout")[1]
            await page.click('#control-buttons button[data-action="pause"]')
            await page.wait_for_selector('#control-result[data-status="401"]', timeout=15_000)
            assert "refused (401)" in await page.inner_text("#control-result")
            assert post(f"{base}/v1/routers/{ROUTER}/commands", {"action": "pause"})[0] == 401
            assert post(f"{base}/v1/routers/{ROUTER}/commands", {"action": "pause"}, "wrong-token-0123456789")[0] == 401
            assert post(f"{base}/v1/retrain", {"since": "1d"})[0] == 401
            await asyncio.sleep(2.0)
            assert await end_offsets(bootstrap, topics.rollout_commands) == before_offsets
            after = worker.get(f"/v1/routers/{ROUTER}/rollout")[1]
            assert (
                (after["phase"], after["revision"])
                == (before["phase"], before["revision"])
                == ("canary", before["revision"])
            )

            # 4. With the token: pause reaches the controller, signed with the dashboard's key.
            await page.fill("#token", TOKEN)
            await page.click("#token-use")
            await page.wait_for_function(
                "() => document.getElementById('token-state').textContent.includes('token set')"
            )
            await page.click('#control-buttons button[data-action="pause"]')
            await page.wait_for_selector('#control-result[data-status="200"]', timeout=45_000)
            await page.wait_for_selector("#rollout-phase[data-phase=paused]", timeout=15_000)
            paused = await state_from_kafka(worker_settings, lambda s: s.phase is Phase.PAUSED)
            assert paused.last_command is not None and paused.last_command.kind is CommandKind.PAUSE
            assert paused.last_command.accepted and paused.last_command.issued_by == "dashboard"
            # The paused canary's gates and what blocks promotion, as the controller left them.
            assert await page.locator("#gates-table tr[data-gate]").count() == len(paused.gates) > 0
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT), full_page=True)

            # A rollback needs a reason; with one, it reaches the controller and the rollbacks list.
            await page.click('#control-buttons button[data-action="rollback"]')
            assert "needs a reason" in await page.inner_text("#control-result")
            await page.fill("#action-reason", "dashboard test: forced rollback")
            await page.click('#control-buttons button[data-action="rollback"]')
            await page.wait_for_selector("#rollout-phase[data-phase=rolled_back]", timeout=45_000)
            rolled_back = await state_from_kafka(worker_settings, lambda s: s.phase is Phase.ROLLED_BACK)
            assert rolled_back.weights.get("v2", 0.0) == 0.0 and rolled_back.weights["v1"] == 1.0
            assert rolled_back.last_command is not None
            assert rolled_back.last_command.issued_by == "dashboard"
            await page.wait_for_selector('#rollbacks-table tr[data-canary="v2"]', timeout=30_000)
            assert "dashboard test: forced rollback" in await page.inner_text("#rollbacks-table")

            # Retrain publishes a manual trigger, shown among the trainer runs.
            await page.click("#retrain")
            await page.wait_for_selector('#control-result[data-status="202"]', timeout=30_000)
            await page.wait_for_selector('#runs-table tr[data-trigger^="manual-"]', timeout=30_000)
            assert "dashboard" in await page.inner_text("#runs-table")

            assert not problems, problems
            await page.fill("#action-reason", "")
            await page.screenshot(path=str(SCREENSHOT.with_name(SCREENSHOT.stem + "-rollback.png")), full_page=True)
        finally:
            await browser.close()


def get(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


async def test_router_list_spans_workers(settings: Settings, start_worker: Callable[..., WorkerProcess]) -> None:
    """``/v1/routers`` lists one worker's routers; the page's list asks the other workers too (with the token)."""
    own = Settings.from_env(settings.to_env(), partitions=4, web_token=TOKEN)
    workers = [start_worker(own), start_worker(own)]
    await eventually(
        lambda: all(w.owns_inputs() for w in workers) and sum(len(w.owns_inputs()) for w in workers) == 4,
        timeout=120,
        what="two workers sharing the inputs",
    )
    routers = tuple(f"router-{i:02d}" for i in range(12))
    config = anchored(
        TrafficConfig(routers=routers, arms={"v1": 1.0}, rate_per_second=24.0, duration_seconds=600, seed=3),
        speed=SPEED,
        now=time.time(),
    )
    await simulate(own.kafka_bootstrap, own.topics, config, speed=SPEED, follow_rollouts=False)

    def held() -> list[set[str]]:
        return [set(get(f"{w.url}/v1/routers", TOKEN)[1]["routers"]) for w in workers]

    await eventually(lambda: set.union(*held()) == set(routers), timeout=90, what="every router held by some worker")
    assert all(h and h != set(routers) for h in held()), f"each worker should hold some routers, not all: {held()}"
    for worker in workers:
        status, body = get(f"{worker.url}/v1/dashboard/routers", TOKEN)
        assert status == 200 and body["routers"] == sorted(routers), body
        assert len(body["workers"]) == 2 and not any(w["error"] for w in body["workers"]), body["workers"]
        assert get(f"{worker.url}/v1/dashboard/routers")[0] == 401
