"""The Prometheus collector of product figures, registered in the worker's REGISTRY.

Families are built when Prometheus scrapes, from :class:`~.traffic.TrafficFigures` (stage 1,
every worker: sum over workers) and :class:`~.rollout.RolloutBoard` (the controller's
worker only). Names follow Prometheus conventions: base units (seconds, USD), ``_total``
on counters, ``_info`` on version labels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from bifrost.streams.metrics.rollout import GATE_STATES, PHASES, RolloutBoard
from bifrost.streams.metrics.traffic import TrafficFigures

ROUTER_ARM = ["router", "arm"]


@dataclass(frozen=True, slots=True)
class _Families:
    """One scrape's families, in exposition order."""

    requests: CounterMetricFamily
    errors: CounterMetricFamily
    limited: CounterMetricFamily
    cost: CounterMetricFamily
    latency: HistogramMetricFamily
    phase: GaugeMetricFamily
    stage: GaugeMetricFamily
    stage_share: GaugeMetricFamily
    canary_share: GaugeMetricFamily
    gate_state: GaugeMetricFamily
    evidence: GaugeMetricFamily
    blockers: GaugeMetricFamily
    info: GaugeMetricFamily
    folded: CounterMetricFamily

    def all(self) -> list[Metric]:
        return [getattr(self, f.name) for f in fields(self)]


class ProductCollector(Collector):
    """Per router and arm traffic, and rollout gauges, as Prometheus families."""

    def __init__(self, traffic: TrafficFigures, board: RolloutBoard) -> None:
        self.traffic = traffic
        self.board = board

    def describe(self) -> Iterator[Metric]:
        # Names only (registering must not compute figures).
        yield from self._families().all()

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        requests, errors, limited, cost, latency = (
            families.requests,
            families.errors,
            families.limited,
            families.cost,
            families.latency,
        )
        for router, arm, totals in self.traffic.rows():
            labels = [router, arm]
            requests.add_metric(labels, totals.requests)
            errors.add_metric(labels, totals.errors)
            limited.add_metric(labels, totals.rate_limited)
            cost.add_metric(labels, totals.cost_usd)
            latency.add_metric(labels, totals.cumulative_buckets(), totals.latency_sum_seconds)
        phase, stage, stage_share, canary_share = (
            families.phase,
            families.stage,
            families.stage_share,
            families.canary_share,
        )
        gate_state, evidence, blockers, info, folded = (
            families.gate_state,
            families.evidence,
            families.blockers,
            families.info,
            families.folded,
        )
        for f in self.board.figures():
            r = f.router
            for name in PHASES:
                phase.add_metric([r, name], 1.0 if name == f.phase else 0.0)
            stage.add_metric([r], f.stage_index)
            stage_share.add_metric([r], f.stage_share)
            canary_share.add_metric([r], f.canary_share)
            blockers.add_metric([r], f.promotion_blockers)
            for gate in f.gates:
                for name in GATE_STATES:
                    gate_state.add_metric([r, gate.gate, name], 1.0 if name == gate.state else 0.0)
                if gate.evidence is not None:
                    evidence.add_metric([r, gate.gate], gate.evidence)
            for role, version in f.versions:
                info.add_metric([r, role, version], 1.0)
        folded.add_metric(["router"], self.traffic.routers.folded)
        folded.add_metric(["arm"], self.traffic.folded_arms)
        folded.add_metric(["rollout_router"], self.board.dropped)
        return iter(families.all())

    @staticmethod
    def _families() -> _Families:
        return _Families(
            CounterMetricFamily(
                "bifrost_router_requests",
                "Routing events counted, by router and arm (summed over "
                "workers: each counts what its ingest committed).",
                labels=ROUTER_ARM,
            ),
            CounterMetricFamily(
                "bifrost_router_errors", "Routing events with success=false, by router and arm.", labels=ROUTER_ARM
            ),
            CounterMetricFamily(
                "bifrost_router_rate_limited", "Routing events answered 429, by router and arm.", labels=ROUTER_ARM
            ),
            CounterMetricFamily(
                "bifrost_router_cost_usd", "Cost of the routed requests in USD, by router and arm.", labels=ROUTER_ARM
            ),
            HistogramMetricFamily(
                "bifrost_router_request_latency_seconds",
                "Latency of the routed LLM requests as "
                "reported by the router, by router and arm (bucket bounds within 2%).",
                labels=ROUTER_ARM,
            ),
            GaugeMetricFamily(
                "bifrost_rollout_phase",
                "1 for the router's current rollout phase, 0 for the others (routers controlled by this worker).",
                labels=["router", "phase"],
            ),
            GaugeMetricFamily(
                "bifrost_rollout_stage",
                "Index of the rollout's current stage (0 = first), -1 outside a stage.",
                labels=["router"],
            ),
            GaugeMetricFamily(
                "bifrost_rollout_stage_share",
                "Canary traffic share of the current stage (0 outside a stage).",
                labels=["router"],
            ),
            GaugeMetricFamily(
                "bifrost_rollout_canary_share",
                "Traffic weight the canary has now (0 after a rollback or without a canary).",
                labels=["router"],
            ),
            GaugeMetricFamily(
                "bifrost_rollout_gate_state",
                "1 for each gate's state at the last look, 0 for the other states.",
                labels=["router", "gate", "state"],
            ),
            GaugeMetricFamily(
                "bifrost_rollout_gate_evidence",
                "Share of the way to a rollback of each rollback gate's always-valid test (0..1; 1 trips it).",
                labels=["router", "gate"],
            ),
            GaugeMetricFamily(
                "bifrost_rollout_promotion_blockers",
                "Reasons currently blocking promotion of the stage.",
                labels=["router"],
            ),
            GaugeMetricFamily(
                "bifrost_rollout_artifact_info",
                "Artifact versions of the router's rollout, by role (control, canary, last_good); always 1.",
                labels=["router", "role", "version"],
            ),
            CounterMetricFamily(
                "bifrost_metrics_label_values_folded",
                "Figures recorded under router or arm "
                "'other' (or, for rollout_router, not shown) because the label's value budget "
                "(BIFROST_METRICS_MAX_ROUTERS / _MAX_ARMS) was spent.",
                labels=["label"],
            ),
        )


_installed: dict[int, ProductCollector] = {}


def install(registry: CollectorRegistry, collector: ProductCollector) -> ProductCollector:
    """Register ``collector`` in ``registry``, replacing one installed there before (one app per process)."""
    previous = _installed.pop(id(registry), None)
    if previous is not None:
        registry.unregister(previous)
    registry.register(collector)
    _installed[id(registry)] = collector
    return collector
