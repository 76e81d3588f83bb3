"""The CLI sends BIFROST_WEB_TOKEN to the worker's views and explains a 401; secrets stay out of its output."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.cli.test_cli_errors import run

TOKEN = "cli-token-0123456789abcdef"
METRICS = {"router_id": "a", "from_ts": 0, "to_ts": 60, "windows": 1, "arms": {}, "models": {}, "buckets": {}}
STATE = {"router_id": "a", "phase": "idle"}


class FakeWorker(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # http.server's name
        header = self.headers.get("Authorization")
        self.seen.append((self.path, header))
        if header != f"Bearer {TOKEN}":
            self._send(401, {"error": "missing or wrong bearer token"})
        elif self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.end_headers()
        else:
            self._send(200, METRICS if "/metrics" in self.path else STATE)

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def worker_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeWorker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeWorker.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_metrics_and_rollout_status_send_the_token(worker_url: str, tmp_path: Path) -> None:
    env = {"BIFROST_WORKER_URL": worker_url, "BIFROST_WEB_TOKEN": TOKEN}
    metrics = run("metrics", "--router", "a", "--json", env=env)
    assert metrics.returncode == 0, metrics.stderr
    assert json.loads(metrics.stdout)["router_id"] == "a"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    status = run(
        "rollout",
        "status",
        "--router",
        "a",
        "--json",
        env={"BIFROST_WORKER_URL": worker_url, "BIFROST_WEB_TOKEN_FILE": str(token_file)},
    )
    assert status.returncode == 0, status.stderr
    assert [header for _, header in FakeWorker.seen] == [f"Bearer {TOKEN}"] * 2
    assert TOKEN not in metrics.stderr + status.stderr + status.stdout


@pytest.mark.parametrize("args", [("metrics", "--router", "a"), ("rollout", "status", "--router", "a")])
def test_a_401_says_which_variable_to_set(worker_url: str, args: tuple[str, ...]) -> None:
    missing = run(*args, env={"BIFROST_WORKER_URL": worker_url})
    assert missing.returncode == 2 and "requires a token" in missing.stderr and "BIFROST_WEB_TOKEN" in missing.stderr
    wrong = run(*args, env={"BIFROST_WORKER_URL": worker_url, "BIFROST_WEB_TOKEN": "wrong-token-0123456789"})
    assert wrong.returncode == 2 and "refused the token" in wrong.stderr
    assert "wrong-token-0123456789" not in wrong.stderr
    assert "Traceback" not in missing.stderr + wrong.stderr


def test_the_token_does_not_follow_a_redirect(worker_url: str) -> None:
    import urllib.error

    from bifrost.cli.worker_http import open_worker

    with pytest.raises(urllib.error.HTTPError) as info:
        open_worker(f"{worker_url}/redirect", TOKEN, timeout=5)
    assert info.value.code == 302
    assert [path for path, _ in FakeWorker.seen] == ["/redirect"]


def test_a_malformed_token_is_a_usage_error_that_does_not_echo_it(worker_url: str) -> None:
    result = run("metrics", "--router", "a", env={"BIFROST_WORKER_URL": worker_url, "BIFROST_WEB_TOKEN": "short tok"})
    assert result.returncode == 2 and "BIFROST_WEB_TOKEN" in result.stderr and "short tok" not in result.stderr
    assert FakeWorker.seen == []


def test_config_never_prints_secrets() -> None:
    result = run("config", env={"BIFROST_WEB_TOKEN": TOKEN, "BIFROST_KAFKA_SASL_PASSWORD": "sasl-secret-value"})
    assert result.returncode == 0
    assert "BIFROST_WEB_TOKEN" in result.stdout and "BIFROST_WEB_TOKEN_FILE" in result.stdout
    assert "BIFROST_ARTIFACT_STORE" in result.stdout
    assert TOKEN not in result.stdout + result.stderr and "sasl-secret-value" not in result.stdout


def test_config_says_when_a_secret_file_is_missing_unreadable_or_empty(tmp_path: Path) -> None:
    secret = "file-secret-0123456789abcdef"
    (tmp_path / "token").write_text(secret + "\n")
    (tmp_path / "empty").write_text("\n")
    env = {
        "BIFROST_WEB_TOKEN_FILE": str(tmp_path / "token"),
        "BIFROST_WEBHOOK_SECRET_FILE": str(tmp_path / "missing"),
        "BIFROST_OPENAI_API_KEY_FILE": str(tmp_path / "empty"),
        "BIFROST_GEMINI_API_KEY_FILE": str(tmp_path),  # a folder: cannot be read as a file
    }
    result = run("config", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {row["variable"]: row for row in json.loads(result.stdout)}
    assert rows["BIFROST_WEB_TOKEN"]["value"] == "(set, hidden)"
    assert rows["BIFROST_WEB_TOKEN"]["source"] == f"file {tmp_path / 'token'}"
    assert rows["BIFROST_WEBHOOK_SECRET"]["value"] == "(file missing)"
    assert rows["BIFROST_OPENAI_API_KEY"]["value"] == "(file empty)"
    assert rows["BIFROST_GEMINI_API_KEY"]["value"].startswith("(file unreadable: ")
    assert secret not in result.stdout + result.stderr


class SlowWorker(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server's name
        threading.Event().wait(3.0)  # longer than the client's timeout below

    def log_message(self, *args: object) -> None:
        pass


def test_a_slow_worker_is_a_timeout_and_a_non_url_is_a_usage_error() -> None:
    from bifrost.cli.errors import Unavailable, UsageError
    from bifrost.cli.worker_http import get_json

    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowWorker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(Unavailable, match=r"did not answer /v1/routers/a/analysis within 0.5 s"):
            get_json(base, "/v1/routers/a/analysis?x=1", "", timeout=0.5)
    finally:
        server.shutdown()
    for bad in ("notaurl", "localhost:6066", "ftp://127.0.0.1:6066"):
        with pytest.raises(UsageError, match="is not an http"):
            get_json(bad, "/health", "", timeout=1.0)
    notaurl = run("analyze", "--router", "a", "--worker-url", "notaurl")
    assert notaurl.returncode == 2 and "is not an http(s) URL" in notaurl.stderr and "Traceback" not in notaurl.stderr
