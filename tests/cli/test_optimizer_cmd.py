"""`bifrost-opt analyze` / `recommendations`: rendering and misuse (no services needed)."""

from __future__ import annotations

import http.server
import threading
import time

import msgspec
import orjson
import pytest

from bifrost.cli import main as cli_main
from bifrost.cli.optimizer_cmd import impact_text, render_analysis, render_recommendation
from bifrost.streams.optimizer.analysis import OptimizerConfig, analyze
from bifrost.streams.optimizer.goals import GoalTargets
from tests.streams.optimizer.traffic import Profile, week


def test_an_analysis_renders_goals_trends_recommendations_and_alerts() -> None:
    models = {"m-small": (0.6, Profile(rate_limit_rate=0.05)), "m-large": (0.4, Profile(latency_median_ms=2600.0))}
    hours, clock = week(1, models=models)
    analysis = analyze("web", clock, hours, OptimizerConfig(targets=GoalTargets()))
    as_json = orjson.loads(msgspec.json.encode(analysis))  # what the worker's view answers
    text = render_analysis(as_json)
    assert "router web" in text and "p95_ms" in text and "breached" in text
    assert "[rate_limit_hotspot]" in text and "evidence, upper bound" in text and "alert critical" in text
    assert "note: counterfactual rules" in text
    rec = analysis.recommendations[0]
    assert rec.recommendation_id in render_recommendation(rec)


def test_the_rendering_shows_utc_times_and_escapes_control_characters_in_names() -> None:
    models = {"m-\u202esmall\x1b[2J": (0.6, Profile(rate_limit_rate=0.05)), "m-large": (0.4, Profile())}
    hours, clock = week(2, models=models)
    analysis = analyze("web\u200b", clock, hours, OptimizerConfig(targets=GoalTargets()))
    text = render_analysis(orjson.loads(msgspec.json.encode(analysis)))
    assert time.strftime("analysed up to %Y-%m-%dT%H:%M:%SZ", time.gmtime(clock)) in text
    assert "router web\\u200b" in text
    assert not any(ch in text for ch in "\u202e\u200b\x1b")
    for rec in analysis.recommendations:
        shown = render_recommendation(rec)
        assert not any(ch in shown for ch in "\u202e\u200b\x1b")


def test_impact_text_labels_how_it_was_estimated() -> None:
    line = impact_text(
        {
            "method": "counterfactual",
            "cost_per_task_change": -0.09,
            "cost_per_task_ci": [-0.1, -0.08],
            "quality_change": -0.001,
            "quality_ci": [-0.005, 0.003],
        }
    )
    assert line == "cost/task -9.0% [-10.0%, -8.0%], quality -0.0010 [-0.0050, +0.0030]  (counterfactual (DR))"
    assert impact_text({"method": "evidence"}) == "not estimated  (evidence, upper bound)"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["recommendations", "apply"], "give the RECOMMENDATION_ID"),
        (["recommendations", "apply", "nope"], "is not a recommendation id"),
        (["recommendations", "--group", "g"], "--group only with --follow"),
        (["recommendations", "--follow", "--group", ""], "--group: give a consumer group name"),
        (["recommendations", "list", "rec-00000000000000000000"], "did you mean"),
        (["recommendations", "apply", "rec-00000000000000000000", "--follow"], "for listing, not applying"),
        (["recommendations", "--note", "x"], "--note is for"),
        (["recommendations", "apply", "rec-00000000000000000000", "--router", "web"], "no operator key is configured"),
    ],
)
def test_misuse_is_a_usage_error_with_a_clear_message(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BIFROST_OPERATOR_KEY_FILE", raising=False)
    assert cli_main.main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_zero_level_renders_as_n_a_and_names_cannot_forge_lines() -> None:
    # No errors all week (or free models): a relative change of a level 0 is NaN → JSON null.
    hours, clock = week(3)
    forged = "alert critical: router prod: availability 0.10 misses its goal"
    analysis = orjson.loads(msgspec.json.encode(analyze(f"evil\n{forged}", clock, hours, OptimizerConfig())))
    for row in analysis["trends"]:
        if row["trend"] is not None and row["metric"] == "error_rate":
            row["trend"]["change"] = None
            row["trend"]["p_increase"] = None
    text = render_analysis(analysis)
    assert "error_rate n/a" in text
    assert not any(line.startswith(forged) for line in text.splitlines())
    assert "evil\\u000aalert critical" in text


class _Junk(http.server.BaseHTTPRequestHandler):
    bodies = {"/html": b"<html>login</html>", "/list": b"[1, 2]", "/shape": b'{"analysis_at": "yesterday"}'}

    def do_GET(self) -> None:
        mode = self.server.mode  # type: ignore[attr-defined]
        body = self.bodies[mode]
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if mode == "/html" else "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("mode", "argv", "message"),
    [
        ("/html", ["--router", "r1"], "did not answer JSON"),
        ("/list", ["--router", "r1"], "JSON list, not an object"),
        ("/list", [], "JSON list, not an object"),
        ("/shape", ["--router", "r1"], "unexpected shape"),
    ],
)
def test_a_worker_url_that_is_not_a_worker_is_a_clear_error_not_a_traceback(
    mode: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Junk)
    server.mode = mode  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert cli_main.main(["analyze", "--worker-url", url, "--timeout", "5", *argv]) == 3
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_an_invalid_worker_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["analyze", "--worker-url", "http://[::1", "--router", "r1"]) == 2
    assert "not a valid URL" in capsys.readouterr().err
