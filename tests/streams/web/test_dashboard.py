"""The dashboard's pure parts: who may pass without the token, action parsing, control status,
the activity buffers, and the page's files shipped in the package."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bifrost.config import Settings
from bifrost.router.keys import generate_private_key
from bifrost.schemas.artifacts import ArtifactPublished
from bifrost.schemas.command_signing import CommandSigner
from bifrost.schemas.rollout import RollbackEvent
from bifrost.schemas.triggers import OutcomeKind, TrainingOutcome, TrainingTrigger, TriggerReason
from bifrost.streams.rollout.auth import Keyring, public_line
from bifrost.streams.web.auth import auth_headers, open_without_token, token_middleware
from bifrost.streams.web.control import ACTIONS, BadAction, control_status, parse_action, parse_retrain
from bifrost.streams.web.dashboard import STATIC_FILES, root_redirect, same_origin, static_bytes
from bifrost.streams.web.feed import Activity

TOKEN = "0123456789abcdef-token"


@pytest.mark.parametrize(
    ("method", "path", "public_read", "open_"),
    [
        ("GET", "/health", False, True),
        ("GET", "/dashboard", False, True),
        ("GET", "/dashboard/static/dashboard.js", False, True),
        ("HEAD", "/dashboard/static/uPlot.min.css", False, True),
        ("POST", "/dashboard", False, False),
        ("GET", "/dashboard/static/../../metrics", False, False),
        ("GET", "/dashboard/static/.hidden", False, False),
        ("GET", "/dashboard/\n", False, False),
        ("GET", "/dashboard\n", False, False),
        ("GET", "/v1/routers", False, False),
        ("GET", "/v1/routers", True, True),
        ("GET", "/v1/routers/web/metrics", True, True),
        ("GET", "/v1/routers/web/series", True, True),
        ("GET", "/v1/routers/web/rollout", True, True),
        ("GET", "/v1/dashboard/config", True, True),
        ("GET", "/v1/dashboard/activity", True, True),
        ("GET", "/v1/dashboard/routers", True, True),
        ("GET", "/v1/lag", True, True),
        ("GET", "/v1/routers/a/b/metrics", True, False),
        ("POST", "/v1/routers/web/commands", True, False),
        ("GET", "/v1/routers/web/commands", True, False),
        ("POST", "/v1/retrain", True, False),
        ("GET", "/metrics", True, False),
        ("GET", "/table/router-windows/", True, False),
        ("GET", "/router/", True, False),
    ],
)
def test_what_passes_without_the_token(method: str, path: str, public_read: bool, open_: bool) -> None:
    assert open_without_token(method, path, public_read=public_read) is open_


async def test_public_read_opens_reads_only() -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    app = web.Application(middlewares=[root_redirect, token_middleware(TOKEN, public_read=True)])
    for path in (
        "/dashboard",
        "/v1/routers",
        "/v1/routers/{router}/metrics",
        "/metrics",
        "/v1/routers/{router}/commands",
    ):
        app.router.add_get(path, ok)
    app.router.add_post("/v1/routers/{router}/commands", ok)
    async with TestClient(TestServer(app)) as client:
        for path in ("/dashboard", "/v1/routers", "/v1/routers/r/metrics?since=1h"):
            assert (await client.get(path)).status == 200, path
        for path in (
            "/metrics",
            "/v1/routers/r/commands",
            "/v1/routers/../../metrics",
            "/v1/routers/r/../../../metrics",
        ):
            response = await client.get(path)
            assert response.status in (401, 404), path
            assert "bifrost_" not in await response.text()
        assert (await client.post("/v1/routers/r/commands")).status == 401
        assert (await client.post("/v1/routers/r/commands", headers=auth_headers(TOKEN))).status == 200
        redirect = await client.get("/", allow_redirects=False)
        assert redirect.status == 302 and redirect.headers["Location"] == "/dashboard"


def test_same_origin() -> None:
    from aiohttp.test_utils import make_mocked_request

    def request(**headers: str) -> web.Request:
        return make_mocked_request("POST", "/v1/retrain", headers={"Host": "127.0.0.1:6066", **headers})

    assert same_origin(request())  # curl, the CLI: no Origin header
    assert same_origin(request(Origin="http://127.0.0.1:6066"))
    assert not same_origin(request(Origin="http://evil.example"))
    assert not same_origin(request(Origin="null"))


@pytest.mark.parametrize(
    ("host", "origin", "same"),
    [
        ("127.0.0.1:6066", "http://127.0.0.1:6066", True),
        ("localhost:6066", "http://localhost:6066", True),
        ("[::1]:6066", "http://[::1]:6066", True),
        # Another origin for the browser, though the same worker: a page at localhost posting to 127.0.0.1.
        ("127.0.0.1:6066", "http://localhost:6066", False),
        ("localhost:6066", "http://127.0.0.1:6066", False),
        ("127.0.0.1:6066", "http://127.0.0.1:8000", False),  # another port
        ("127.0.0.1:6066", "https://127.0.0.1:6066", False),  # another scheme
        ("127.0.0.1:6066", "http://127.0.0.1", False),
    ],
)
def test_same_origin_compares_scheme_host_and_port(host: str, origin: str, same: bool) -> None:
    from aiohttp.test_utils import make_mocked_request

    request = make_mocked_request("POST", "/v1/retrain", headers={"Host": host, "Origin": origin})
    assert same_origin(request) is same


def test_actions_parse_and_refuse_with_reasons() -> None:
    assert parse_action(b'{"action": "pause"}').reason is None
    rollback = parse_action(b'{"action": "rollback", "reason": "  p95 up  ", "artifact": "v2"}')
    assert (rollback.reason, rollback.artifact) == ("p95 up", "v2")
    assert set(ACTIONS) == {"pause", "resume", "promote", "approve", "rollback", "stop"}
    for body, fragment in (
        (b'{"action": "rollback"}', "needs a reason"),
        (b'{"action": "stop", "reason": " "}', "needs a reason"),
        (b'{"action": "start", "artifact": "v9"}', "is not one of"),
        (b'{"action": "promote", "override": true}', "not a valid"),
        (b"not json", "not a valid"),
        (b"[" * 5000, "larger than"),
        (b'{"action": "pause", "reason": "' + b"x" * 1001 + b'"}', "longer than 1000"),
    ):
        with pytest.raises(BadAction, match=fragment):
            parse_action(body)


def test_retrain_request_becomes_a_manual_trigger() -> None:
    trigger = parse_retrain(b'{"router": "web", "since": "1d", "reason": "new data"}', now=1_000_000.0)
    assert (trigger.reason, trigger.router_id, trigger.requested_by) == (TriggerReason.MANUAL, "web", "dashboard")
    assert (trigger.window_from, trigger.window_to) == (1_000_000.0 - 86400, 1_000_000.0)
    assert trigger.trigger_id.startswith("manual-") and trigger.details == {"note": "new data"}
    assert parse_retrain(b"", now=10.0).window_from == 10.0 - 7 * 86400
    with pytest.raises(BadAction, match="since"):
        parse_retrain(b'{"since": "forever"}', now=10.0)


def test_control_status_says_why_actions_are_off(tmp_path: Path) -> None:
    settings = Settings.from_env({})
    signer = CommandSigner("dashboard", generate_private_key(tmp_path / "dashboard.pem"))
    listed = Keyring.parse((public_line("dashboard", "operator", signer.key), "test"))
    as_pipeline = Keyring.parse((public_line("dashboard", "pipeline", signer.key), "test"))
    other = Keyring.parse((public_line("dashboard", "operator", generate_private_key(tmp_path / "o.pem")), "test"))

    off = control_status(settings, "", signer, "", listed)
    assert not off.actions_enabled and not off.retrain_enabled and "BIFROST_WEB_TOKEN" in off.actions_reason
    no_key = control_status(settings, TOKEN, None, "", listed)
    assert (
        not no_key.actions_enabled
        and no_key.retrain_enabled
        and "BIFROST_DASHBOARD_COMMAND_KEY_FILE" in no_key.actions_reason
    )
    for keyring in (Keyring({}), as_pipeline, other):
        refused = control_status(settings, TOKEN, signer, "", keyring)
        assert (
            not refused.actions_enabled and public_line("dashboard", "operator", signer.key) in refused.actions_reason
        )
    on = control_status(settings, TOKEN, signer, "", listed)
    assert on.actions_enabled and on.key_name == "dashboard" and on.actions == list(ACTIONS)


def rollback(router: str, n: int) -> bytes:
    return msgspec.json.encode(
        RollbackEvent(
            router_id=router,
            canary_version=f"v{n}",
            control_version="v1",
            gate="latency_p95",
            stage_index=0,
            stage_percent=5.0,
            evidence=[],
            reason="p95",
            window_end=60.0 * n,
            at=float(n),
            revision=n,
        )
    )


def test_activity_keeps_the_newest_and_joins_runs_with_artifacts() -> None:
    activity = Activity(max_rollbacks=3, max_artifacts=2, max_triggers=2)
    for n in range(5):
        assert activity.add_rollback(rollback("web" if n % 2 == 0 else "api", n))
    assert (
        not activity.add_rollback(b"{not json")
        and not activity.add_trigger(b"[]")
        and not activity.add_artifact(b"\xff")
    )
    for n in range(3):
        trigger = TrainingTrigger(
            trigger_id=f"t{n}",
            reason=TriggerReason.MANUAL,
            window_from=0.0,
            window_to=1.0,
            requested_by="cli",
            created_at=float(n),
        )
        activity.add_trigger(msgspec.json.encode(trigger))
    announced = ArtifactPublished(
        version="v9",
        sha256="a" * 64,
        signature="c2ln",
        location="/x/v9",
        router_ids=["web"],
        trigger_id="t2",
        published_at=5.0,
        validation={"quality": 0.8},
    )
    activity.add_artifact(msgspec.json.encode(announced))
    activity.add_artifact(
        msgspec.json.encode(msgspec.structs.replace(announced, published_at=6.0))
    )  # same version again
    refused = TrainingOutcome(
        trigger_id="t1", outcome=OutcomeKind.REJECTED, reason="too few rows", stopped_at="data_quality", finished_at=9.0
    )
    assert activity.add_outcome(msgspec.json.encode(refused))
    activity.add_outcome(
        msgspec.json.encode(msgspec.structs.replace(refused, duplicate=True, reason="again"))
    )  # kept: first

    view = activity.view("web")
    assert [r.canary_version for r in view.rollbacks] == ["v4", "v2"]  # newest first, of the three kept
    assert [r.canary_version for r in activity.view().rollbacks] == ["v4", "v3", "v2"]
    assert [(r.trigger_id, r.outcome, r.version, r.detail) for r in view.trainer_runs] == [
        ("t2", "published", "v9", ""),
        ("t1", "rejected", None, "too few rows (stopped at data_quality)"),
    ]
    assert [(a.version, a.published_at) for a in view.artifacts] == [("v9", 6.0)]
    assert view.undecodable == 3
    assert "signature" not in msgspec.json.encode(view).decode()


def test_static_files_are_in_the_package_and_the_page_loads_only_them() -> None:
    page = static_bytes("dashboard.html").decode()
    for name in STATIC_FILES:
        assert static_bytes(name)
    referenced = set(re.findall(r'(?:src|href)="(/[^"]+)"', page))
    assert referenced == {f"/dashboard/static/{name}" for name in STATIC_FILES if name != "dashboard.html"}
    assert "<script>" not in page and "http" not in page.replace("http-equiv", "")  # no inline code, no CDN
    assert "MIT" in static_bytes("uPlot.LICENSE").decode()
    script = static_bytes("dashboard.js").decode()
    assert "innerHTML" not in script and "eval(" not in script
