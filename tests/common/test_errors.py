"""Every failure a command can end with carries its exit code; the CLIs only word the message."""

from __future__ import annotations

import pytest

from bifrost.cli.errors import explain
from bifrost.client.publisher import PublishError
from bifrost.common.envsettings import SettingsError
from bifrost.common.errors import ExitCode, NotAuthorized, Unavailable, UsageError, exit_code_of
from bifrost.devkafka import BrokerError
from bifrost.kafka.preflight import KafkaLoginRefused, KafkaUnreachable
from bifrost.router.artifact import ArtifactError, ArtifactVerificationError
from bifrost.router.keys import SigningKeyError
from bifrost.schemas.jsonschema import UnknownSchema
from bifrost.storage.artifact_store import StoreError
from bifrost.storage.dataset import DatasetError
from bifrost.trainer.evaluate import EvaluationError


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (UsageError("x"), ExitCode.USAGE),
        (SettingsError("x"), ExitCode.USAGE),
        (UnknownSchema("x"), ExitCode.USAGE),
        (Unavailable("x"), ExitCode.UNAVAILABLE),
        (PublishError("x"), ExitCode.UNAVAILABLE),
        (KafkaUnreachable("x"), ExitCode.UNAVAILABLE),
        (KafkaLoginRefused("x"), ExitCode.UNAUTHORIZED),
        (NotAuthorized("x"), ExitCode.UNAUTHORIZED),
        (BrokerError("x"), ExitCode.FAILURE),
        (DatasetError("x"), ExitCode.USAGE),
        (SigningKeyError("x"), ExitCode.USAGE),
        (StoreError("x"), ExitCode.USAGE),
        (ArtifactError("x"), ExitCode.FAILURE),
        (ArtifactVerificationError("x"), ExitCode.FAILURE),
        (EvaluationError("x"), ExitCode.FAILURE),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED),
    ],
)
def test_failures_carry_their_exit_code(exc: BaseException, code: int) -> None:
    assert exit_code_of(exc) == code


def test_explain_words_the_message_and_reraises_what_carries_no_code() -> None:
    assert explain(UnknownSchema("nope")) == (2, "nope")  # no KeyError quotes
    assert explain(PublishError("no broker at x:1")) == (
        3,
        "no broker at x:1 (is the broker running? `bifrost-opt kafka start`, or set BIFROST_KAFKA_BOOTSTRAP)",
    )
    with pytest.raises(ZeroDivisionError):
        explain(ZeroDivisionError("a bug"))
