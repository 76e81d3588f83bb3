"""Every ```python block of README.md runs as printed against a real broker.

A block preceded by the line ``<!-- snippet: no-run -->`` is skipped (it must say why).
Snippets read ``BIFROST_KAFKA_BOOTSTRAP`` (default 127.0.0.1:9092), which the test points at
the session's broker; they use the default topic prefix, as a reader would.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bifrost.client.rollout import router_key
from bifrost.schemas import RoutingEvent, Topics
from bifrost.schemas.codec import encode
from bifrost.schemas.rollout import Phase, RolloutState

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
NO_RUN = "<!-- snippet: no-run -->"
_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def snippets(text: str) -> list[tuple[int, str]]:
    """(line number, code) of every ```python block not marked no-run."""
    found = []
    for match in _BLOCK.finditer(text):
        before = text[: match.start()].rstrip("\n").splitlines()
        if before and before[-1].strip() == NO_RUN:
            continue
        found.append((text.count("\n", 0, match.start()) + 1, match.group(1)))
    return found


SNIPPETS = snippets((ROOT / "README.md").read_text())


def test_the_readme_has_snippets_and_the_extraction_honours_the_marker() -> None:
    assert len(SNIPPETS) >= 2
    marked = f"text\n{NO_RUN}\n```python\nraise SystemExit(1)\n```\n```python\nprint(1)\n```\n"
    assert [code for _, code in snippets(marked)] == ["print(1)\n"]


async def _prepare(bootstrap: str) -> None:
    """What the snippets expect to find: a router's rollout state to follow."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        state = RolloutState(router_id="web", phase=Phase.IDLE, control_version="v12", weights={"v12": 1.0})
        await producer.send_and_wait(Topics().rollout_state, encode(state), key=router_key("web"))
    finally:
        await producer.stop()


async def _published_request_ids(bootstrap: str) -> set[str]:
    consumer = AIOKafkaConsumer(
        Topics().routing_events,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        ids: set[str] = set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "req-123" not in ids:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                ids.update(msgspec.json.decode(r.value, type=RoutingEvent).request_id for r in records if r.value)
        return ids
    finally:
        await consumer.stop()


@pytest.mark.parametrize(("line", "code"), SNIPPETS, ids=[f"README.md:{line}" for line, _ in SNIPPETS])
def test_readme_snippet_runs_as_printed(line: int, code: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    asyncio.run(_prepare(kafka_bootstrap))
    script = tmp_path / f"snippet_{line}.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    env["BIFROST_KAFKA_BOOTSTRAP"] = kafka_bootstrap
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, f"README.md:{line} failed:\n{result.stderr}"
    if "publisher.publish(" in code:
        assert "req-123" in asyncio.run(_published_request_ids(kafka_bootstrap))
    if "follow(" in code:
        assert result.stdout.strip(), "the subscriber printed no state"
