"""Fixtures that start real workers against the session's Kafka broker."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest

from bifrost.config import Settings
from tests.integration.harness import WorkerProcess, free_port, isolated_settings

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(kafka_bootstrap: str) -> Settings:
    return isolated_settings(kafka_bootstrap)


@pytest.fixture
def start_worker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `bifrost-opt worker` processes; all are stopped (and logs shown on failure) at the end."""
    workers: list[WorkerProcess] = []

    def start(settings: Settings, **overrides: Any) -> WorkerProcess:
        n = len(workers)
        values = {
            "web_port": free_port(),
            "data_dir": str(tmp_path / f"worker-{n}"),
            "warehouse_dir": str(tmp_path / "warehouse"),  # shared, like object storage
        }
        values.update(overrides)
        own = Settings.from_env(settings.to_env(), **values)
        worker = WorkerProcess(own, tmp_path / f"worker-{n}.log").start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for i, worker in enumerate(workers):
            print(f"----- worker {i} log tail -----\n{worker.log_tail()}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
