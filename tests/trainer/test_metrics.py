"""The trainer's Prometheus figures: runs by outcome, durations, artifact version, its endpoint."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from bifrost.trainer import metrics


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_runs_are_counted_and_timed_by_outcome_and_a_raising_run_is_failed() -> None:
    before = value("bifrost_trainer_runs_total", outcome="published")
    with metrics.training_run() as run:
        assert value("bifrost_trainer_run_in_progress") == 1
        run.outcome = "published"
    assert value("bifrost_trainer_runs_total", outcome="published") == before + 1
    assert value("bifrost_trainer_run_duration_seconds_count", outcome="published") >= 1
    assert value("bifrost_trainer_run_in_progress") == 0
    failed = value("bifrost_trainer_runs_total", outcome="failed")
    with pytest.raises(RuntimeError), metrics.training_run() as run:
        run.outcome = "rejected"
        raise RuntimeError("boom")
    assert value("bifrost_trainer_runs_total", outcome="failed") == failed + 1
    assert value("bifrost_trainer_last_run_timestamp_seconds", outcome="failed") > 0


def test_current_artifact_is_one_series() -> None:
    metrics.set_current_artifact("v1")
    metrics.set_current_artifact("v2")
    assert value("bifrost_trainer_artifact_info", version="v2") == 1
    assert metrics.REGISTRY.get_sample_value("bifrost_trainer_artifact_info", {"version": "v1"}) is None
    metrics.set_current_artifact(None)
    assert metrics.REGISTRY.get_sample_value("bifrost_trainer_artifact_info", {"version": "v2"}) is None


def test_endpoint_off_taken_and_served(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics.ENDPOINT, "serving", None)
    assert metrics.serve("127.0.0.1", 0) is False
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert metrics.serve("127.0.0.1", taken.getsockname()[1]) is False
    assert "event=trainer.metrics.unavailable" in caplog.text
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert metrics.serve("127.0.0.1", port) is True
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "bifrost_trainer_runs_total" in body and "bifrost_trainer_run_duration_seconds_bucket" in body
