"""`bifrost-opt init` (compose's bootstrap): each key where only its audience reads it; idempotent."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bifrost.cli import init_cmd
from bifrost.cli.init_cmd import ALLOW_LIST, OPERATOR_KEY, PIPELINE_KEY, SIGNING_PUBLIC, WEB_TOKEN, InitPlan, initialize
from bifrost.router.keys import holds_private_key, load_private_key, public_key_pem
from bifrost.streams.rollout.auth import Keyring


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []

    def fake(dataset: Path, store: Path, key_file: Path, trials: int) -> list[str]:
        calls.append(store)
        return [f"trained {store}"]

    monkeypatch.setattr(init_cmd, "_first_artifact", fake)
    return calls


def test_keys_land_with_their_audience_and_a_second_run_keeps_them(tmp_path: Path, no_training: list[Path]) -> None:
    plan = InitPlan(
        signing_key=tmp_path / "signing" / "artifact-signing.pem",
        worker_keys=tmp_path / "worker",
        operator_keys=tmp_path / "operator",
        store=tmp_path / "store",
    )
    initialize(plan, tmp_path / "dataset.jsonl.gz")
    worker_files = sorted(p.name for p in plan.worker_keys.iterdir())
    assert worker_files == sorted([SIGNING_PUBLIC, ALLOW_LIST, PIPELINE_KEY, WEB_TOKEN])
    assert not holds_private_key((plan.worker_keys / SIGNING_PUBLIC).read_bytes())  # only the public half
    assert (plan.worker_keys / SIGNING_PUBLIC).read_bytes() == public_key_pem(load_private_key(plan.signing_key))
    assert sorted(p.name for p in plan.operator_keys.iterdir()) == sorted([OPERATOR_KEY, WEB_TOKEN])
    keyring = Keyring.parse(((plan.worker_keys / ALLOW_LIST).read_text(), "test"))
    assert {(k.name, k.role.value) for k in keyring} == {("pipeline", "pipeline"), ("operator", "operator")}
    token = (plan.worker_keys / WEB_TOKEN).read_text()
    assert len(token) == 64 and (plan.operator_keys / WEB_TOKEN).read_text() == token
    for private in (
        plan.signing_key,
        plan.worker_keys / PIPELINE_KEY,
        plan.operator_keys / OPERATOR_KEY,
        plan.worker_keys / WEB_TOKEN,
    ):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    again = initialize(plan, tmp_path / "dataset.jsonl.gz")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert any(line.startswith("kept    ") and line.endswith(OPERATOR_KEY) for line in again)
    assert no_training == [plan.store, plan.store]  # the real one keeps a store that has a current artifact


def test_private_keys_cannot_be_placed_with_the_workers(tmp_path: Path) -> None:
    shared = InitPlan(
        signing_key=tmp_path / "keys" / "s.pem",
        worker_keys=tmp_path / "keys",
        operator_keys=tmp_path / "keys",
        store=tmp_path / "store",
    )
    assert len(shared.overlaps()) == 2


def test_init_misuse_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bifrost.cli.main import main

    code = main(
        [
            "init",
            "--dataset",
            str(tmp_path / "missing.jsonl.gz"),
            "--worker-keys",
            str(tmp_path / "w"),
            "--operator-keys",
            str(tmp_path / "w"),
            "--signing-key",
            str(tmp_path / "s.pem"),
        ]
    )
    assert code == 2 and "does not exist" in capsys.readouterr().err
    (tmp_path / "d.jsonl.gz").write_bytes(b"")
    code = main(
        [
            "init",
            "--dataset",
            str(tmp_path / "d.jsonl.gz"),
            "--worker-keys",
            str(tmp_path / "w"),
            "--operator-keys",
            str(tmp_path / "w"),
            "--signing-key",
            str(tmp_path / "s.pem"),
        ]
    )
    assert code == 2 and "must differ" in capsys.readouterr().err
