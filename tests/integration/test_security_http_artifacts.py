"""The worker's attack surface on the real broker: where HTTP listens, who may read it, and
what an announcement on ``artifacts`` can make the worker read.

1. The worker listens only on BIFROST_WEB_HOST (127.0.0.1 here): the kernel's socket
   table shows that address alone, and other local addresses (127.0.0.2, the machine's
   own address) refuse connections.
2. With BIFROST_WEB_TOKEN set, every view but /health answers 401 without the token and
   200 with it; the CLI sends it. Odd query values are 400 with the reason, never 500.
3. Announcements pointing outside the artifact store (``../`` escapes, absolute paths,
   a NUL byte, FIFOs inside and outside, /dev/zero, a symlink inside the store leading
   out, the signing key itself) each end as exactly one ``unverified`` dead letter that
   says nothing about the foreign file; stale, missing and future publication times are
   refused with their reason; a good artifact inside the store is still accepted. /health
   answers within 1 s throughout (measured).
4. A worker given the private signing key to verify with refuses to start.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from bifrost.client import Publisher
from bifrost.config import Settings
from bifrost.router.artifact import encode, sha256_hex, sign
from bifrost.router.keys import generate_private_key, public_key_pem
from bifrost.schemas.artifacts import ArtifactPublished
from bifrost.schemas.dlq import RejectReason
from bifrost.streams.artifacts.confine import OUTSIDE
from tests.integration.command_keys import command_keys
from tests.integration.harness import WorkerProcess, eventually, read_dead_letters, settings_env
from tests.router.artifacts import make_artifact

pytestmark = pytest.mark.kafka

TOKEN = f"itest-{uuid.uuid4().hex}"


def http_get(base: str, path: str, token: str | None = None, *, timeout: float = 5.0) -> tuple[int, object]:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket in LISTEN state on ``port`` (from /proc/net/tcp{,6})."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == "0A" and int(port_hex, 16) == port:
                raw = bytes.fromhex(address)
                if width == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def other_local_addresses() -> list[str]:
    """127.0.0.2 (loopback, but not 127.0.0.1) and the machine's own IPv4 addresses."""
    addresses = ["127.0.0.2"]
    try:
        output = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        output = ""
    addresses += [a for a in output.split() if "." in a and not a.startswith("127.")]
    return addresses


def connection_refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:  # unreachable, timeout: not listening there either
        return True


class HealthProbe:
    """Polls /health every 100 ms in a thread; records (seconds taken, status)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status, _ = http_get(self.base, "/health", timeout=1.0)
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError):
                status = 0
            self.samples.append((time.monotonic() - started, status))
            self._stop.wait(0.1)


def announcement(
    version: str, location: str, *, sha256: str, signature: str, published_at: float | None = None
) -> bytes:
    return msgspec.json.encode(
        ArtifactPublished(
            version=version,
            sha256=sha256,
            signature=signature,
            location=location,
            router_ids=["router-sec"],
            published_at=time.time() if published_at is None else published_at,
        )
    )


async def test_http_listens_where_configured_and_needs_the_token(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(Settings.from_env(settings.to_env(), web_host="127.0.0.1", web_token=TOKEN))
    await eventually(lambda: worker.health() is not None, timeout=90, what="worker healthy")
    port = worker.settings.web_port

    # 1. Only 127.0.0.1 listens.
    assert listening_addresses(port) == {"127.0.0.1"}
    for address in other_local_addresses():
        assert connection_refused(address, port), f"the worker answers on {address}:{port}"

    # 2. The token: /health open, everything else 401 without it, 200 with it. (/health is
    # 503 while the ingest consumer recovers, which can start just after the first 200.)
    base = worker.url
    await eventually(lambda: http_get(base, "/health")[0] == 200, timeout=90, what="/health open without the token")
    for path in (
        "/v1/routers",
        "/metrics",
        "/v1/routers/router-x/metrics?since=1h",
        "/v1/routers/router-x/rollout",
        "/router/",
        "/table/router-windows/",
    ):
        status, body = http_get(base, path)
        assert status == 401, (path, status, body)
        assert http_get(base, path, "wrong-token-0123456789")[0] == 401
    assert http_get(base, "/v1/routers", TOKEN) == (200, {"routers": []})
    assert http_get(base, "/metrics", TOKEN)[0] == 200

    # Odd query values: 400 with the reason (after the token check).
    for query, fragment in (
        ("until=inf", "not finite"),
        ("until=nan", "not finite"),
        ("until=-1", "negative"),
        ("until=1e300", "after 2100"),
        ("since=" + "9" * 40, "longer than"),
        ("since=99999999999d", "longer than"),
        ("since=-5m", "not a duration"),
        ("until=soon", "not a number"),
    ):
        status, body = http_get(base, f"/v1/routers/router-x/metrics?{query}", TOKEN)
        assert status == 400 and isinstance(body, dict) and fragment in body["error"], (query, status, body)
    assert http_get(base, "/v1/routers/router-x/metrics?until=inf")[0] == 401

    # The CLI sends the token; without it, it says what to set.
    env = settings_env(Settings.from_env(worker.settings.to_env(), worker_url=base))
    with_token = subprocess.run(
        [sys.executable, "-m", "bifrost.cli.main", "metrics", "--router", "router-x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert with_token.returncode == 1 and "no metrics for router 'router-x'" in with_token.stderr, with_token.stderr
    env.pop("BIFROST_WEB_TOKEN")
    without = subprocess.run(
        [sys.executable, "-m", "bifrost.cli.main", "metrics", "--router", "router-x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert without.returncode == 2 and "requires a token" in without.stderr, without.stderr
    assert TOKEN not in worker.log_path.read_text(errors="replace")


async def test_announcements_can_only_point_inside_the_store(
    settings: Settings, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    store, outside, keys = tmp_path / "store", tmp_path / "outside", tmp_path / "keys"
    for folder in (store, outside):
        folder.mkdir()
    signing_key_file = keys / "artifact-signing.pem"
    key = generate_private_key(signing_key_file)
    public_key_file = keys / "artifact-signing.pub.pem"
    public_key_file.write_bytes(public_key_pem(key))

    def signed_artifact(folder: Path, version: str) -> tuple[str, str]:
        data = encode(make_artifact(version=version))
        folder.mkdir(parents=True)
        (folder / "artifact.json").write_bytes(data)
        return sha256_hex(data), sign(data, key)

    good_sha, good_signature = signed_artifact(store / "v-good", "v-good")
    # Correctly signed artifacts *outside* the store: reading them would verify, so only
    # the location check can refuse them.
    foreign = {v: signed_artifact(outside / v, v) for v in ("v-dotdot", "v-symlink", "v-absolute")}
    (store / "v-symlink").symlink_to(outside / "v-symlink")
    os.mkfifo(store / "fifo-inside")
    os.mkfifo(outside / "fifo-outside")
    key_bytes = signing_key_file.read_bytes()
    placeholder_sha, placeholder_signature = good_sha, good_signature

    now = time.time()
    unverified = {
        "v-dotdot": announcement(
            "v-dotdot", f"{store}/../outside/v-dotdot", sha256=foreign["v-dotdot"][0], signature=foreign["v-dotdot"][1]
        ),
        "v-relative": announcement(
            "v-relative",
            "../outside/v-dotdot/artifact.json",
            sha256=foreign["v-dotdot"][0],
            signature=foreign["v-dotdot"][1],
        ),
        "v-absolute": announcement(
            "v-absolute",
            str(outside / "v-absolute"),
            sha256=foreign["v-absolute"][0],
            signature=foreign["v-absolute"][1],
        ),
        "v-missing": announcement(
            "v-missing", str(outside / "no-such-file"), sha256=placeholder_sha, signature=placeholder_signature
        ),
        "v-etc": announcement("v-etc", "/etc/passwd", sha256=placeholder_sha, signature=placeholder_signature),
        "v-nul": announcement("v-nul", f"{store}/v-good\x00/artifact.json", sha256=good_sha, signature=good_signature),
        "v-fifo-in": announcement(
            "v-fifo-in", str(store / "fifo-inside"), sha256=placeholder_sha, signature=placeholder_signature
        ),
        "v-fifo-out": announcement(
            "v-fifo-out", str(outside / "fifo-outside"), sha256=placeholder_sha, signature=placeholder_signature
        ),
        "v-devzero": announcement("v-devzero", "/dev/zero", sha256=placeholder_sha, signature=placeholder_signature),
        "v-symlink": announcement(
            "v-symlink", str(store / "v-symlink"), sha256=foreign["v-symlink"][0], signature=foreign["v-symlink"][1]
        ),
        # The right digest of the key file: a worker that read it would confirm the guess.
        "v-signing-key": announcement(
            "v-signing-key", str(signing_key_file), sha256=sha256_hex(key_bytes), signature=placeholder_signature
        ),
    }
    timing = {
        "v-no-time": (
            announcement(
                "v-no-time", str(store / "v-good"), sha256=good_sha, signature=good_signature, published_at=0.0
            ),
            RejectReason.INVALID_VALUE,
        ),
        "v-future": (
            announcement(
                "v-future",
                str(store / "v-good"),
                sha256=good_sha,
                signature=good_signature,
                published_at=now + 365 * 86400,
            ),
            RejectReason.INVALID_VALUE,
        ),
        "v-ancient": (
            announcement(
                "v-ancient", str(store / "v-good"), sha256=good_sha, signature=good_signature, published_at=1.0
            ),
            RejectReason.TOO_LATE,
        ),
    }

    # The listener signs the commands of a verified artifact with the pipeline key.
    settings = command_keys(tmp_path / "command-keys").worker(settings)
    worker = start_worker(
        Settings.from_env(settings.to_env(), artifact_store=str(store), verify_key_file=str(public_key_file))
    )
    await eventually(lambda: worker.health() is not None, timeout=90, what="worker healthy")
    assert "event=artifact.verify_key key=ed25519:" in worker.log_path.read_text(errors="replace")

    with HealthProbe(worker.url) as probe:
        async with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
            for version, value in unverified.items():
                await publisher.send_raw(settings.topics.artifacts, version.encode(), value)
            for version, (value, _) in timing.items():
                await publisher.send_raw(settings.topics.artifacts, version.encode(), value)
            await publisher.send_raw(
                settings.topics.artifacts,
                b"v-good",
                announcement("v-good", str(store / "v-good"), sha256=good_sha, signature=good_signature),
            )
            await publisher.flush()
        # Announcements are handled in order: once the good one is accepted, all were handled.
        await eventually(
            lambda: "event=artifact.accepted version=v-good" in worker.log_path.read_text(errors="replace"),
            timeout=60,
            what="the good artifact accepted",
        )
        expected = len(unverified) + len(timing)
        letters = [
            d
            for d in await read_dead_letters(settings.kafka_bootstrap, settings.topics.dlq, expected, timeout=30)
            if d.source_topic == settings.topics.artifacts
        ]
        await asyncio.sleep(1.0)  # /health keeps being measured a little after the last announcement

    by_version: dict[str, list] = {}
    for letter in letters:
        by_version.setdefault(msgspec.json.decode(letter.original)["version"], []).append(letter)
    assert sorted(by_version) == sorted([*unverified, *timing]), "exactly the bad announcements were dead-lettered"
    assert all(len(found) == 1 for found in by_version.values()), {v: len(f) for v, f in by_version.items()}

    foreign_texts = (
        str(outside),
        "outside",
        "passwd",
        "/dev/zero",
        str(signing_key_file),
        "fifo-outside",
        "no-such-file",
        sha256_hex(key_bytes)[:16],
    )
    generic = {}
    for version in unverified:
        (letter,) = by_version[version]
        assert letter.reason is RejectReason.UNVERIFIED, (version, letter.reason, letter.error)
        assert not any(text in letter.error for text in foreign_texts), (version, letter.error)
        generic[version] = letter.error.replace(version, "V")
    # Outside the store, one message whether the file exists, is a FIFO, a device or a key.
    outside_versions = [v for v in unverified if v != "v-fifo-in"]
    assert {generic[v] for v in outside_versions} == {f"artifact V: {OUTSIDE}"}
    assert "fifo-inside in the artifact store is not a regular file" in by_version["v-fifo-in"][0].error
    for version, (_, reason) in timing.items():
        assert by_version[version][0].reason is reason, (version, by_version[version][0].error)

    # /health answered, quickly, the whole time.
    assert len(probe.samples) >= 10
    slowest = max(seconds for seconds, _ in probe.samples)
    assert all(status == 200 for _, status in probe.samples), probe.samples
    assert slowest < 1.0, f"/health took {slowest:.2f} s"
    assert worker.process is not None and worker.process.poll() is None
    assert "PRIVATE KEY" not in worker.log_path.read_text(errors="replace")


def test_a_worker_given_the_private_key_refuses_to_start(settings: Settings, tmp_path: Path) -> None:
    private = tmp_path / "artifact-signing.pem"
    generate_private_key(private)
    env = settings_env(Settings.from_env(settings.to_env(), verify_key_file=str(private)))
    result = subprocess.run(
        [sys.executable, "-m", "bifrost.cli.main", "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"BIFROST_VERIFY_KEY_FILE={private} holds the private signing key" in result.stderr
    assert "export-public" in result.stderr and "Traceback" not in result.stderr
