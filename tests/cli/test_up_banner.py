"""`up` replays under its own router id, warns about real-time producers, and names a CLI that runs."""

from __future__ import annotations

import stat
from pathlib import Path

from bifrost.cli.main import _parser
from bifrost.cli.up import DEMO_ROUTER, banner, cli_command
from bifrost.config import Settings


def test_the_replay_router_is_not_one_a_real_producer_would_use() -> None:
    assert _parser().parse_args(["up"]).router == DEMO_ROUTER == "demo-replay"


def test_banner_names_the_router_warns_and_uses_a_runnable_cli(tmp_path: Path) -> None:
    text = banner(
        Settings.from_env({}),
        tmp_path,
        True,
        tmp_path / "artifacts",
        tmp_path / "keys" / "operator.pem",
        router="demo-replay",
        speed=10.0,
        cli=".venv/bin/bifrost-opt",
    )
    assert "demo router  demo-replay: real prompts replayed with event time compressed 10x" in text
    assert "WARNING" in text and "too_late" in text and "publish under your own router id" in text
    commands = [line.strip() for line in text.splitlines() if "metrics --router" in line or "rollout status" in line]
    assert commands and all(c.startswith(".venv/bin/bifrost-opt ") for c in commands)
    assert "--router router-a" not in text and "/v1/routers/demo-replay/metrics" in text
    assert " bifrost-opt " not in f" {text} ".replace(".venv/bin/bifrost-opt", "")  # never the bare name


def test_cli_command_prefers_what_runs(tmp_path: Path) -> None:
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    python = venv_bin / "python"
    script = venv_bin / "bifrost-opt"
    script.write_text("#!/bin/sh\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    assert cli_command(str(python), cwd=tmp_path, on_path=None) == ".venv/bin/bifrost-opt"
    assert cli_command(str(python), cwd=tmp_path / "elsewhere", on_path=None) == str(script)
    assert cli_command(str(python), cwd=tmp_path, on_path=str(script)) == "bifrost-opt"  # the venv is activated
    bare = tmp_path / "system" / "python3"
    assert cli_command(str(bare), cwd=tmp_path, on_path=None) == f"{bare} -m bifrost.cli.main"
