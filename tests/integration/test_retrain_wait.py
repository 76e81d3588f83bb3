"""`bifrost-opt retrain --wait` on the real broker: the trainer's outcome, or plainly no answer.

The full path (published → the worker's canary start answered) runs in test_trainer_loop.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bifrost.config import Settings
from bifrost.router.keys import generate_private_key
from tests.integration.harness import settings_env

pytestmark = pytest.mark.kafka


def retrain(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bifrost.cli.main", "retrain", "--router", "web", *args],
        capture_output=True,
        text=True,
        env=settings_env(settings),
        timeout=300,
    )


def test_retrain_wait_reports_the_outcome_or_that_nobody_answered(settings: Settings, tmp_path: Path) -> None:
    nobody = retrain(settings, "--wait", "3")
    assert nobody.returncode == 3 and "no trainer answered within 3 s" in nobody.stderr, nobody.stderr
    sent = retrain(settings)
    assert sent.returncode == 0 and "not waiting" in sent.stdout

    key = tmp_path / "signing.pem"
    generate_private_key(key)
    env = {
        **settings_env(settings),
        "BIFROST_ARTIFACT_STORE": str(tmp_path / "empty-store"),
        "BIFROST_TRAINER_RUNS_DIR": str(tmp_path / "runs"),
        "BIFROST_SIGNING_KEY_FILE": str(key),
    }
    log = tmp_path / "trainer.log"
    trainer = subprocess.Popen(
        [sys.executable, "-m", "bifrost.cli.main", "trainer"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # The two triggers above are queued for the trainer; this one is followed to its end: with no current
        # artifact in the store the trainer skips it, and says why.
        followed = retrain(settings, "--wait", "240", "--json")
        assert followed.returncode == 1, followed.stderr + log.read_text(errors="replace")[-2000:]
        answer = json.loads(followed.stdout)
        assert answer["outcome"]["outcome"] == "skipped" and "no current artifact" in answer["outcome"]["reason"]
        assert answer["finished"] and answer["exit_code"] == 1 and "Traceback" not in followed.stderr
        text = retrain(settings, "--wait", "240")
        assert text.returncode == 1 and "trainer: skipped: no current artifact" in text.stdout, text.stdout
        assert "bifrost-opt: error: skipped: no current artifact" in text.stderr
    finally:
        os.killpg(trainer.pid, signal.SIGTERM)
        trainer.wait(timeout=30)
