"""`bifrost-opt keys`: a private key only its owner reads, public lines the allow-list accepts, public PEMs."""

from __future__ import annotations

import stat
from pathlib import Path

from bifrost.router.keys import load_private_key, load_public_key
from bifrost.schemas.command_signing import CommandSigner
from bifrost.schemas.rollout import CommandKind, RolloutCommand
from bifrost.streams.rollout.auth import Keyring, Role
from tests.cli.test_cli_errors import run


def test_create_writes_a_private_key_and_prints_its_allow_list_line(tmp_path: Path) -> None:
    created = run("keys", "create", "--name", "alice", "--out", str(tmp_path / "keys"))
    assert created.returncode == 0, created.stderr
    path = tmp_path / "keys" / "alice.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and b"PRIVATE KEY" in path.read_bytes()
    line = created.stdout.strip()
    assert line.startswith("alice:operator:") and "BIFROST_OPERATOR_KEY_FILE" in created.stderr
    keyring = Keyring.parse((line, "stdout"))
    key = keyring.get("alice")
    assert key is not None and key.role is Role.OPERATOR
    # The line's key verifies what the file's key signs.
    from bifrost.schemas.command_signing import signature_valid

    signed = CommandSigner("alice", load_private_key(path)).sign(
        RolloutCommand(command_id="c", router_id="r", kind=CommandKind.PAUSE)
    )
    assert signature_valid(signed, key.public_key)
    again = run("keys", "create", "--name", "alice", "--out", str(tmp_path / "keys"))
    assert again.returncode == 2 and "already exists" in again.stderr  # never overwritten


def test_export_public_prints_the_line_or_writes_a_public_pem(tmp_path: Path) -> None:
    assert run("keys", "create", "--name", "ci", "--role", "pipeline", "--out", str(tmp_path)).returncode == 0
    private = tmp_path / "ci.pem"
    line = run("keys", "export-public", "--key", str(private), "--role", "pipeline")
    assert line.returncode == 0 and line.stdout.startswith("ci:pipeline:")
    named = run("keys", "export-public", "--key", str(private), "--name", "deploy-bot")
    assert named.stdout.startswith("deploy-bot:operator:") and named.stdout.split(":")[2] == line.stdout.split(":")[2]
    out = tmp_path / "pub" / "ci.pub.pem"
    pem = run("keys", "export-public", "--key", str(private), "--pem", "--out", str(out))
    assert pem.returncode == 0 and pem.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert b"PRIVATE" not in out.read_bytes()
    assert load_public_key(out) == load_private_key(private).public_key()


def test_up_creates_the_operator_and_pipeline_keys_once(tmp_path: Path) -> None:
    from bifrost.cli.up import _command_keys

    allow_list, operator, pipeline = _command_keys(tmp_path / "keys")
    assert (operator.name, pipeline.name) == ("operator.pem", "pipeline.pem")
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (operator, pipeline))
    keyring = Keyring.parse((allow_list, "up"))
    assert {(k.name, k.role) for k in keyring} == {("operator", Role.OPERATOR), ("pipeline", Role.PIPELINE)}
    entry = keyring.get("operator")
    assert entry is not None and entry.public_key == load_private_key(operator).public_key()
    assert _command_keys(tmp_path / "keys") == (allow_list, operator, pipeline)  # reused, not replaced
