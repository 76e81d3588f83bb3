"""A service whose producer cannot start stops its consumer again (it leaked before).

The trainer and the artifact listener started their consumer and then their producer
outside their ``try/finally``: a producer that failed to start left the consumer running
(its group membership, its connections). The producer's start failure is injected; the
consumer is a real one on the real broker.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.config import Settings
from bifrost.streams.artifacts import listener
from bifrost.trainer import service
from bifrost.trainer.settings import TrainerSettings

pytestmark = pytest.mark.kafka


class _Refused(RuntimeError):
    pass


async def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise _Refused("producer cannot start")


def _recording_consumer(stopped: list[AIOKafkaConsumer]) -> type[AIOKafkaConsumer]:
    class Recording(AIOKafkaConsumer):  # a real consumer that notes when it is stopped
        async def stop(self) -> None:
            await super().stop()
            stopped.append(self)

    return Recording


async def test_trainer_stops_its_consumer_when_its_producer_cannot_start(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped: list[AIOKafkaConsumer] = []
    monkeypatch.setattr(service, "AIOKafkaConsumer", _recording_consumer(stopped))
    monkeypatch.setattr(service, "start_producer", _refuse)
    settings = TrainerSettings.from_env(
        {},
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"pf-{uuid.uuid4().hex[:8]}",
        artifact_store=str(tmp_path / "store"),
        runs_dir=str(tmp_path / "runs"),
        metrics_port=0,
    )
    with pytest.raises(_Refused):
        await service.TrainerService(settings, Ed25519PrivateKey.generate()).run(stop_after=1)
    assert len(stopped) == 1


async def test_artifact_listener_stops_its_consumer_when_its_producer_cannot_start(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped: list[AIOKafkaConsumer] = []
    monkeypatch.setattr(listener, "AIOKafkaConsumer", _recording_consumer(stopped))
    monkeypatch.setattr(listener, "start_producer", _refuse)
    monkeypatch.setattr(listener, "pipeline_signer", lambda settings: object())  # the listener runs
    settings = Settings.from_env({}, kafka_bootstrap=kafka_bootstrap, topic_prefix=f"pf-{uuid.uuid4().hex[:8]}")
    with pytest.raises(_Refused):
        await listener.ArtifactListener(settings).run()
    assert len(stopped) == 1
