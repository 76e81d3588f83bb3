"""Every failure a command can end with carries its exit code; the CLIs only word the message."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bifrost.cli.errors import explain
from bifrost.client.publisher import PublishError
from bifrost.common.envsettings import SettingsError
from bifrost.common.errors import ExitCode, NotAuthorized, Unavailable, UsageError, exit_code_of, run_guarded
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
        (FileNotFoundError(2, "No such file or directory", "x.jsonl"), ExitCode.USAGE),  # a missing input
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


def _fails(exc: BaseException) -> Callable[[], int]:
    def run() -> int:
        raise exc

    return run


class _Report:
    def to_markdown(self) -> str:
        return "# report\n\nrows: 3\n"


class _Refused(UsageError):
    report = _Report()


def test_the_one_guard_prints_one_line_and_returns_the_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_guarded(lambda: 0) == 0 and run_guarded(lambda: 3) == 3
    assert run_guarded(_fails(PublishError("no broker")), prefix="bifrost-opt: error: ") == 3
    assert run_guarded(_fails(FileNotFoundError(2, "No such file or directory", "x.jsonl"))) == 2
    assert run_guarded(_fails(KeyboardInterrupt())) == 130
    assert run_guarded(_fails(KeyboardInterrupt()), interrupted=None) == 130  # bifrost-opt says nothing
    assert capsys.readouterr().err.splitlines() == [
        f"bifrost-opt: error: no broker ({PublishError.hint})",
        "error: [Errno 2] No such file or directory: 'x.jsonl'",
        "interrupted",
    ]


def test_the_guard_prints_a_report_before_its_line_and_lets_bugs_through(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_guarded(_fails(_Refused("too few rows")), report_note="; nothing was published") == 2
    assert capsys.readouterr().err == "# report\n\nrows: 3\nerror: too few rows; nothing was published\n"
    with pytest.raises(ZeroDivisionError):
        run_guarded(_fails(ZeroDivisionError("a bug")))
    with pytest.raises(SystemExit):  # --help: the caller decides
        run_guarded(_fails(SystemExit(0)))
