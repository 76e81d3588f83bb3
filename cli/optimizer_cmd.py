"""`bifrost-opt analyze` and `bifrost-opt recommendations`: the optimizer from the command line.

``analyze`` asks a worker (``GET /v1/routers/{router}/analysis``, routed to the worker that owns
the router): the analysis needs the router's windowed tables, which live in the workers, and
the warehouse and artifact store the workers read — an operator's laptop has neither. It
publishes nothing. ``recommendations`` reads the ``recommendations`` topic itself (no worker
needed); ``--follow`` keeps reading (``--group`` resumes a consumer group). ``recommendations
apply ID`` sends a signed command (``BIFROST_OPERATOR_KEY_FILE``, like rollout commands) and
prints the worker's answer.
"""

from __future__ import annotations

import argparse
import asyncio
import urllib.error
import urllib.parse
from typing import Any

import msgspec
import orjson

from bifrost.cli.errors import CliError, NotAuthorized, Unavailable, UsageError
from bifrost.cli.options import bounded_float, bounded_int, router_id
from bifrost.cli.text import utc
from bifrost.cli.worker_http import expect_object, get_json
from bifrost.common.text import printable
from bifrost.config import Settings
from bifrost.schemas.recommendations import Recommendation

REC_ID = "rec-" + "0" * 20


class ApplyRefused(CliError):
    """The worker answered the apply command with a refusal (unknown recommendation, router mismatch)."""


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    analyze = sub.add_parser(
        "analyze",
        help="the optimizer's analysis of a router now: goals, trends, recommendations, "
        "alerts (asks a worker; publishes nothing)",
    )
    analyze.add_argument("--router", type=router_id, help="router id (default: every router the workers know)")
    analyze.add_argument("--json", action="store_true", help="print JSON")
    analyze.add_argument("--worker-url", help="worker HTTP base URL (default BIFROST_WORKER_URL)")
    analyze.add_argument(
        "--timeout",
        type=bounded_float("--timeout", 1.0, 3600.0),
        default=120.0,
        help="seconds to wait for each analysis (default 120)",
    )

    recs = sub.add_parser("recommendations", help="list or follow the optimizer's recommendations; apply one")
    recs.add_argument(
        "action", nargs="?", choices=["list", "apply"], default="list", help="list (default) or apply RECOMMENDATION_ID"
    )
    recs.add_argument("recommendation_id", nargs="?", metavar="RECOMMENDATION_ID", help="with apply: which one")
    recs.add_argument("--router", type=router_id, help="only this router's recommendations")
    recs.add_argument("--follow", action="store_true", help="keep printing new recommendations (Ctrl-C stops)")
    recs.add_argument("--group", help="with --follow: consumer group to resume from (at least once)")
    recs.add_argument("--json", action="store_true", help="print JSON (one object per line with --follow)")
    recs.add_argument(
        "--limit",
        type=bounded_int("--limit", 1, 100_000),
        default=50,
        help="list: at most this many, newest first (default 50)",
    )
    recs.add_argument("--note", default="", help="apply: why, recorded with the answer")
    recs.add_argument(
        "--wait",
        type=bounded_float("--wait", 0.0, 3600.0),
        default=20.0,
        help="apply: seconds to wait for the worker's answer (0: send and do not wait)",
    )


# -- analyze --------------------------------------------------------------------------------


def run_analyze(args: argparse.Namespace, settings: Settings) -> int:
    base = (args.worker_url or settings.worker_url).rstrip("/")
    token = settings.web_token_value()
    routers = [args.router] if args.router else _routers(base, token, args.timeout)
    if not routers:
        raise CliError(f"the workers at {base} know no router yet (no traffic)")
    analyses = [
        expect_object(
            get_json(base, f"/v1/routers/{urllib.parse.quote(r, safe='')}/analysis", token, timeout=args.timeout),
            "the analysis",
            base,
        )
        for r in routers
    ]
    if args.json:
        print(orjson.dumps(analyses[0] if args.router else analyses, option=orjson.OPT_INDENT_2).decode())
        return 0
    try:
        text = "\n\n".join(render_analysis(a) for a in analyses)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # not the worker's Analysis shape
        raise Unavailable(
            f"the worker at {base} answered an analysis of an unexpected shape ({type(exc).__name__}: {exc}); "
            "is it a bifrost worker of this version? (--json prints what it sent)"
        ) from None
    print(text)
    return 0


def _routers(base: str, token: str, timeout: float) -> list[str]:
    body = expect_object(get_json(base, "/v1/dashboard/routers", token, timeout=timeout), "the router list", base)
    listed = body.get("routers", [])
    return [r for r in listed if isinstance(r, str)] if isinstance(listed, list) else []


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def impact_text(impact: dict[str, Any]) -> str:
    """A one-line summary of an impact (cost, quality, P95, availability; how it was estimated)."""
    parts = []
    if impact.get("cost_per_task_change") is not None:
        ci = impact.get("cost_per_task_ci")
        parts.append(
            f"cost/task {_pct(impact['cost_per_task_change'])}" + (f" [{ci[0]:+.1%}, {ci[1]:+.1%}]" if ci else "")
        )
    if impact.get("quality_change") is not None:
        ci = impact.get("quality_ci")
        parts.append(f"quality {impact['quality_change']:+.4f}" + (f" [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else ""))
    if impact.get("p95_ms_change") is not None:
        parts.append(f"P95 {impact['p95_ms_change']:+.0f} ms")
    if impact.get("availability_change") is not None:
        parts.append(f"availability {impact['availability_change']:+.2%}")
    label = "counterfactual (DR)" if impact.get("method") == "counterfactual" else "evidence, upper bound"
    return ", ".join(parts or ["not estimated"]) + f"  ({label})"


def render_analysis(a: dict[str, Any]) -> str:
    """The human-readable analysis of one router."""
    lines = [
        f"router {a['router_id']}  analysed up to {utc(a['analysis_at'])}  ({a['hours']} hours of data, "
        f"{a['counterfactual_rows']} logged requests replayed; artifact {a.get('artifact_version') or '-'})",
        "",
        "goals (last day):",
    ]
    for g in a["goals"]:
        value = "-" if g["value"] is None else f"{g['value']:.4g}"
        lines.append(
            f"  {g['goal']:<14} {value:>10}  {g['direction']} {g['target']:<8g} {g['status']:<9} n={g['samples']}"
        )
    degraded = [t for t in a["trends"] if t.get("degraded")]
    weekly = ", ".join(
        f"{t['metric']} {_signed_pct(t['trend'].get('change'))} (p={_p_text(t['trend'])})"
        for t in a["trends"]
        if t["scope"] == "router" and t["window"] == "7d" and t.get("trend")
    )
    lines.append("7-day trends (router): " + (weekly or "not enough hourly points yet (72 of the week's 168 needed)"))
    if degraded:
        lines.append("degraded: " + ", ".join(t["metric"] for t in degraded))
    lines.append("")
    lines.append(f"recommendations ({len(a['recommendations'])}):")
    for r in a["recommendations"]:
        lines.append(f"  P{r['priority']} {r['recommendation_id']} [{r['kind']}] {r['title']}")
        lines.append(f"      impact: {impact_text(r['impact'])}")
    for alert in a["alerts"]:
        lines.append(f"alert {alert['severity']}: {alert['message']}")
    if a.get("trigger"):
        lines.append(f"retrain trigger: {a['trigger']['trigger_id']}")
    for note in a.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(printable(line) for line in lines)


def _signed_pct(value: float | None) -> str:
    """A relative change, or "n/a" (a level of 0 has no relative change: no errors, free models)."""
    return "n/a" if value is None else f"{value:+.1%}"


def _p_text(trend: dict[str, Any]) -> str:
    ps = [p for p in (trend.get("p_increase"), trend.get("p_decrease")) if isinstance(p, int | float)]
    return f"{min(ps):.2g}" if ps else "n/a"


# -- recommendations ------------------------------------------------------------------------


def run_recommendations(args: argparse.Namespace, settings: Settings) -> int:
    if args.group is not None and not args.group.strip():
        raise UsageError("--group: give a consumer group name (an empty one is not a group)")
    if args.action == "apply":
        if args.follow or args.group:
            raise UsageError("recommendations apply: --follow and --group are for listing, not applying")
        return _apply(args, settings)
    if args.note:
        raise UsageError("--note is for `recommendations apply ID`")
    if args.recommendation_id:
        raise UsageError(
            f"recommendations: unexpected argument {args.recommendation_id!r} (did you mean "
            "`recommendations apply ID`?)"
        )
    if args.group and not args.follow:
        raise UsageError("--group only with --follow (a consumer group remembers where a follower stopped)")
    if args.follow:
        return asyncio.run(_follow(args, settings))
    from bifrost.client.recommendations import read_recommendations

    found = asyncio.run(
        read_recommendations(
            settings.kafka_bootstrap, settings.topics, router=args.router, security=settings.kafka_security
        )
    )
    newest = list(reversed(found))[: args.limit]
    if args.json:
        print(orjson.dumps([msgspec.to_builtins(r) for r in newest], option=orjson.OPT_INDENT_2).decode())
    elif not newest:
        where = f" for router {args.router}" if args.router else ""
        print(f"no recommendations{where} on {settings.topics.recommendations} yet")
    else:
        for rec in newest:
            print(render_recommendation(rec))
    return 0


def render_recommendation(rec: Recommendation) -> str:
    impact = impact_text(msgspec.to_builtins(rec.impact))
    lines = [
        f"P{rec.priority} {rec.recommendation_id}  {rec.router_id}  [{rec.kind.value}] {rec.title}",
        f"    impact: {impact}",
        f"    period {rec.period}; evidence: {rec.evidence.samples} samples ({rec.evidence.source}); "
        f"apply: {rec.action.kind.value}" + (f" {dict(rec.action.parameters)}" if rec.action.parameters else ""),
    ]
    return "\n".join(printable(line) for line in lines)


async def _follow(args: argparse.Namespace, settings: Settings) -> int:
    from bifrost.client.recommendations import follow_recommendations

    stream = follow_recommendations(
        settings.kafka_bootstrap,
        settings.topics,
        router=args.router,
        group_id=args.group,
        security=settings.kafka_security,
    )
    try:
        async for rec in stream:
            if args.json:
                print(orjson.dumps(msgspec.to_builtins(rec)).decode(), flush=True)
            else:
                print(render_recommendation(rec), flush=True)
    finally:
        await stream.aclose()  # stops the consumer (and leaves the group) also when the reader went away
    return 0


def _apply(args: argparse.Namespace, settings: Settings) -> int:
    from bifrost.cli.rollout_cmd import operator_signer
    from bifrost.client.recommendations import ApplyUnauthorized, apply_recommendation, new_apply, read_recommendations
    from bifrost.schemas.recommendation_signing import sign_apply

    rec_id = args.recommendation_id
    if not rec_id:
        raise UsageError("recommendations apply: give the RECOMMENDATION_ID (`bifrost-opt recommendations` lists them)")
    if not rec_id.startswith("rec-") or len(rec_id) != len(REC_ID):
        raise UsageError(f"{rec_id[:40]!r} is not a recommendation id (rec- and 20 hex digits)")
    signer = operator_signer(settings, what="applied recommendations")
    router = args.router
    if router is None:
        known = {
            r.recommendation_id: r
            for r in asyncio.run(
                read_recommendations(settings.kafka_bootstrap, settings.topics, security=settings.kafka_security)
            )
        }
        if rec_id not in known:
            raise CliError(
                f"unknown recommendation {rec_id}: not on {settings.topics.recommendations} "
                "(`bifrost-opt recommendations` lists them)"
            )
        router = known[rec_id].router_id
    command = sign_apply(new_apply(rec_id, router, note=args.note), signer.key, signer.name)
    if args.wait == 0:
        from bifrost.client.publisher import Publisher
        from bifrost.schemas.codec import encode

        async def send() -> None:
            async with Publisher(settings.kafka_bootstrap, settings.topics, security=settings.kafka_security) as pub:
                await pub.send_raw(settings.topics.recommendation_commands, rec_id.encode(), encode(command))

        asyncio.run(send())
        print(f"apply {rec_id}: command {command.command_id} sent; not waiting for the answer")
        return 0
    try:
        answer = asyncio.run(
            apply_recommendation(
                settings.kafka_bootstrap, settings.topics, command, timeout=args.wait, security=settings.kafka_security
            )
        )
    except ApplyUnauthorized as refusal:
        raise NotAuthorized(f"unauthorized: {refusal.letter.error}") from None
    if answer is None:
        raise Unavailable(
            f"command {command.command_id} sent, but no worker answered within {args.wait:.0f} s "
            "(is a worker running with the same BIFROST_TOPIC_PREFIX?)"
        )
    if args.json:
        print(orjson.dumps(msgspec.to_builtins(answer), option=orjson.OPT_INDENT_2).decode())
    if not answer.accepted:
        raise ApplyRefused(f"refused: {answer.reason}")
    if not args.json:
        print(f"apply {rec_id}: {answer.reason}" + (f" (trigger {answer.trigger_id})" if answer.trigger_id else ""))
    return 0
