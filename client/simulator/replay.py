"""Replaying a full-information dataset's prompts through the reference router (pure, seeded).

Every simulated request takes the next prompt of a seeded shuffle of one split (a new
shuffle each pass), draws an arm by the rollout weights (as :func:`generate` does),
routes the prompt with that arm's verified :class:`~bifrost.router.ReferenceRouter`, and
serves:

* the router's choice with probability ``1 − ε``, or
* with probability ``ε`` (``exploration``) a model drawn uniformly from the decision's
  eligible models (the keys of ``Decision.scores``; the choice itself included),

and logs the probability of the model actually served::

    propensity(m) = (1 − ε)·1[m = greedy] + ε / |eligible|

which off-policy estimators (IPS, doubly robust) divide by. Outcomes come from the
dataset: ``cost_usd`` and ``quality`` are the served model's cost and score (clipped to
[0, 1]) for that prompt. The dataset records no latency, failures or answers, so:

* latency is lognormal per model, with the median from the catalog beside the dataset
  (``<name>.models.json``: ``latency_ms`` or ``latency_median_ms``, optional
  ``latency_sigma``) or else from the model's price rank: the cheapest price level gets
  ``FASTEST_MS``, the dearest ``SLOWEST_MS``, levels between are geometric steps
  (price = catalog ``pricing.in + pricing.out``, else the model's mean dataset cost);
* a request fails with a small per-model rate (catalog ``error_rate``, else
  ``error_rate`` of :class:`ReplayTraffic`, 1%; a fifth of failures are 429s). A failed request has no
  quality; it keeps the dataset's (input-only) cost;
* ``tokens_in`` is the prompt length / 4; ``tokens_out`` is 0 (unknown).

Optional feedback carries a pairwise outcome against a baseline model (default: the
best single model of the replayed rows): win, loss or tie by dataset score. It carries
no grade, since the event's ``quality`` already counts.

Routing a prompt costs a feature extraction, so decisions are cached per (arm, row).

Example:
    >>> dataset = load_dataset("llmrouter-dc.jsonl.gz")  # doctest: +SKIP
    >>> traffic = ReplayTraffic(dataset, ArmPool({"v1": router}), split="train")  # doctest: +SKIP
    >>> items = traffic.generate(ReplayConfig(arms={"v1": 1.0}, duration_seconds=60))  # doctest: +SKIP
    >>> next(items).event.propensity  # doctest: +SKIP
    0.9
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bifrost.client.simulator.arms import ArmPool
from bifrost.client.simulator.model import Generated, ModelProfile, WeightLookup, ticks
from bifrost.router.reference import ReferenceRouter
from bifrost.schemas.events import Bucket, FeedbackEvent, Outcome, RoutingEvent
from bifrost.storage.dataset import FullInfoDataset, models_file

FASTEST_MS = 300.0
SLOWEST_MS = 1200.0
DEFAULT_PROVIDER = "dataset"
ALL_SPLITS = "all"
_TIE = 1e-9


class ReplayError(ValueError):
    """The dataset cannot be replayed as asked (no rows in the split, no arm…)."""


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """What to replay. Rates and durations are in simulated time.

    ``arms`` (version → weight) is used while rollout-state gives no weights for a
    router; its first version that loads is the initial fallback arm.
    """

    arms: dict[str, float]
    routers: tuple[str, ...] = ("router-a",)
    exploration: float = 0.1
    rate_per_second: float = 100.0
    duration_seconds: float = 3600.0
    start_ts: float = 0.0
    malformed_fraction: float = 0.0
    feedback_fraction: float = 0.0
    baseline: str | None = None
    seed: int = 7

    def __post_init__(self) -> None:
        if not 0.0 <= self.exploration <= 1.0:
            raise ReplayError(f"exploration must be within [0, 1], got {self.exploration}")
        if not self.arms or any(w < 0 for w in self.arms.values()) or sum(self.arms.values()) <= 0:
            raise ReplayError("arms need at least one version with a positive weight")


@dataclass(frozen=True, slots=True)
class Routed:
    """One arm's decision for one prompt: what the event logs besides the served model."""

    greedy: str
    eligible: tuple[str, ...]
    bucket: Bucket
    cluster_id: int
    features: list[float] = field(repr=False)


def propensity(model: str, greedy: str, n_eligible: int, exploration: float) -> float:
    """Probability that ε-greedy serves ``model``: ``(1 − ε)·1[model = greedy] + ε / n``.

    ``model`` must be one of the ``n_eligible`` models (the greedy one included).

    Example:
        >>> propensity("a", "a", 4, 0.1), propensity("b", "a", 4, 0.1)
        (0.925, 0.025)
    """
    if n_eligible < 1:
        raise ValueError("no eligible model")
    if n_eligible == 1:
        return 1.0
    share = exploration / n_eligible
    return min(1.0, (1.0 - exploration) + share) if model == greedy else share


def explore(rng: random.Random, routed: Routed, exploration: float) -> tuple[str, float]:
    """The model to serve (ε-greedy over the eligible models) and its propensity."""
    model = routed.greedy
    if exploration > 0.0 and rng.random() < exploration:
        model = routed.eligible[rng.randrange(len(routed.eligible))]
    return model, propensity(model, routed.greedy, len(routed.eligible), exploration)


def read_catalog(dataset_path: str | Path) -> dict[str, dict[str, object]]:
    """The ``<name>.models.json`` beside a dataset file ({} when absent or unreadable)."""
    try:
        catalog = json.loads(models_file(Path(dataset_path)).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(catalog, dict):
        return {}
    return {str(name): entry for name, entry in catalog.items() if isinstance(entry, dict)}


def model_profiles(
    dataset: FullInfoDataset,
    catalog: Mapping[str, Mapping[str, object]] | None = None,
    *,
    error_rate: float = 0.01,
    rate_limit_share: float = 0.2,
) -> dict[str, ModelProfile]:
    """Provider, latency and failure behaviour of every model of the dataset.

    Only ``provider``, ``latency_median_ms``, ``latency_sigma``, ``error_rate`` and
    ``rate_limit_rate`` of the profiles matter to a replay (cost and quality come from
    the dataset).
    """
    catalog = catalog or {}
    known = np.isfinite(dataset.costs)
    counts = known.sum(axis=0)
    sums = np.where(known, dataset.costs, 0.0).sum(axis=0)
    mean_costs = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    prices = {m: _price(catalog.get(m, {}), float(mean_costs[j])) for j, m in enumerate(dataset.models)}
    medians = price_rank_medians(prices)
    profiles = {}
    for model in dataset.models:
        entry = catalog.get(model, {})
        errors = _number(entry, "error_rate", error_rate, upper=1.0)
        profiles[model] = ModelProfile(
            name=model,
            provider=str(entry.get("provider") or DEFAULT_PROVIDER),
            latency_median_ms=_number(entry, "latency_ms", _number(entry, "latency_median_ms", medians[model])),
            latency_sigma=_number(entry, "latency_sigma", 0.35),
            error_rate=errors * (1.0 - rate_limit_share),
            rate_limit_rate=errors * rate_limit_share,
        )
    return profiles


def price_rank_medians(
    prices: Mapping[str, float], *, fastest_ms: float = FASTEST_MS, slowest_ms: float = SLOWEST_MS
) -> dict[str, float]:
    """Median latency per model from its price level: geometric steps from fastest to slowest."""
    levels = sorted({p for p in prices.values() if math.isfinite(p)})
    out = {}
    for model, price in prices.items():
        if len(levels) < 2 or not math.isfinite(price):
            out[model] = math.sqrt(fastest_ms * slowest_ms)
            continue
        rank = levels.index(price) / (len(levels) - 1)
        out[model] = fastest_ms * (slowest_ms / fastest_ms) ** rank
    return out


def _price(entry: Mapping[str, object], mean_cost: float) -> float:
    pricing = entry.get("pricing")
    if isinstance(pricing, Mapping):
        parts = [pricing.get(k) for k in ("in", "out")]
        numbers = [float(p) for p in parts if isinstance(p, (int, float)) and math.isfinite(p) and p >= 0]
        if numbers:
            return sum(numbers)
    return mean_cost


def _number(entry: Mapping[str, object], key: str, default: float, *, upper: float = math.inf) -> float:
    value = entry.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= upper and math.isfinite(value):
        return float(value)
    return default


class ReplayTraffic:
    """A traffic source that replays one split of a full-information dataset.

    Args:
        dataset: the full-information dataset (every model's score and cost per prompt).
        arms: verified routers by arm version (an :class:`ArmPool`, or a mapping of
            routers the caller trusts).
        split: ``train``, ``test`` or ``all`` rows; rows with a missing or out-of-range
            score or cost are skipped.
        profiles: per-model latency and failure behaviour (default :func:`model_profiles`
            with the catalog beside the dataset file).
        error_rate: failure rate of models the catalog gives none for (without ``profiles``).

    Raises:
        ReplayError: the split has no usable rows.
    """

    def __init__(
        self,
        dataset: FullInfoDataset,
        arms: ArmPool | Mapping[str, ReferenceRouter],
        *,
        split: str = "train",
        profiles: Mapping[str, ModelProfile] | None = None,
        error_rate: float = 0.01,
    ) -> None:
        self.pool = arms if isinstance(arms, ArmPool) else ArmPool(arms)
        rows = np.arange(len(dataset)) if split == ALL_SPLITS else np.flatnonzero(dataset.splits == split)
        rows = rows[dataset.valid_rows()[rows]]
        if rows.size == 0:
            known = sorted(set(dataset.splits.tolist()))
            raise ReplayError(
                f"{dataset.source or 'the dataset'} has no usable rows in split {split!r} "
                f"(splits: {', '.join(known)}, or {ALL_SPLITS})"
            )
        self.dataset = dataset
        self.split = split
        self.rows = rows
        if profiles is None:
            profiles = model_profiles(dataset, read_catalog(dataset.source), error_rate=error_rate)
        self.profiles = dict(profiles)
        self._column = {m: j for j, m in enumerate(dataset.models)}
        self._tokens = [max(1, round(len(dataset.prompts[r]) / 4)) for r in range(len(dataset))]
        self._cache: dict[tuple[str, int], Routed] = {}
        self._checked: set[str] = set()

    def baseline(self) -> str:
        """The best single model (highest mean score) over the replayed rows."""
        means = self.dataset.scores[self.rows].mean(axis=0)
        return self.dataset.models[int(np.argmax(means))]

    def router(self, version: str) -> ReferenceRouter | None:
        """The verified router of an arm, if it can replay this dataset (else None, reported)."""
        router = self.pool.get(version)
        if router is None or version in self._checked:
            return router
        missing = sorted(set(router.artifact.models) - set(self._column))
        if missing:
            self.pool.reject(version, f"routes to models the dataset has no outcomes for: {', '.join(missing)}")
            return None
        self._checked.add(version)
        return router

    def routed(self, version: str, row: int) -> Routed:
        """The (cached) decision of an available arm for one dataset row."""
        key = (version, row)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        router = self.router(version)
        if router is None:
            raise ReplayError(f"arm {version} is not available: {self.pool.failures.get(version, 'unknown')}")
        decision = router.route(self.dataset.prompts[row])
        eligible = tuple(decision.scores)
        if decision.model not in decision.scores:
            eligible = (decision.model, *eligible)
        routed = Routed(
            greedy=decision.model,
            eligible=eligible,
            bucket=Bucket(decision.bucket),
            cluster_id=decision.cluster_id,
            features=list(decision.features or []),
        )
        self._cache[key] = routed
        return routed

    def generate(self, config: ReplayConfig, weights: WeightLookup | None = None) -> Iterator[Generated]:
        """Yield replayed requests in event-time order, evenly spaced at the configured rate.

        ``weights`` (e.g. what rollout-state says) overrides ``config.arms`` per router
        whenever it returns a mapping with a positive weight. A drawn arm that is not
        available is served by the last arm that served a request (events name the arm
        that actually served them).

        Raises:
            ReplayError: none of ``config.arms`` is available (before anything is yielded).
        """
        if config.baseline is not None and config.baseline not in self._column:
            raise ReplayError(f"baseline model {config.baseline!r} is not in the dataset")
        last_good = self._first_available(config.arms)
        rng = random.Random(config.seed)
        order = _row_order(self.rows, config.seed)
        baseline = self._column[config.baseline or self.baseline()]
        for i, ts, malformed in ticks(config, rng):
            if malformed is not None:
                yield malformed
                continue
            router_id = config.routers[i % len(config.routers)]
            live = weights(router_id) if weights is not None else None
            drawn = _draw(rng, live if live and sum(live.values()) > 0 else config.arms)
            if drawn != last_good and self.router(drawn) is None:
                self.pool.rerouted[drawn] += 1
            else:
                last_good = drawn
            row = next(order)
            event = self._request(rng, config, i, ts, router_id, last_good, row)
            feedback = None
            if event.success and config.feedback_fraction and rng.random() < config.feedback_fraction:
                feedback = self._feedback(event, row, baseline)
            yield Generated(ts=ts, event=event, feedback=feedback, row=row)

    def _first_available(self, arms: Mapping[str, float]) -> str:
        for version, weight in arms.items():
            if weight > 0 and self.router(version) is not None:
                return version
        reasons = "; ".join(f"{v}: {r}" for v, r in self.pool.failures.items() if v in arms)
        raise ReplayError(f"none of the arms {', '.join(arms)} can be routed with ({reasons or 'no positive weight'})")

    def _request(
        self, rng: random.Random, config: ReplayConfig, i: int, ts: float, router_id: str, arm: str, row: int
    ) -> RoutingEvent:
        routed = self.routed(arm, row)
        model, p = explore(rng, routed, config.exploration)
        profile = self.profiles[model]
        column = self._column[model]
        latency = profile.latency_median_ms * math.exp(rng.gauss(0.0, profile.latency_sigma))
        roll = rng.random()
        rate_limited = roll < profile.rate_limit_rate
        failed = roll < profile.rate_limit_rate + profile.error_rate
        score = float(self.dataset.scores[row, column])
        return RoutingEvent(
            request_id=f"replay-{router_id}-{int(config.start_ts)}-{i}",
            ts=ts,
            router_id=router_id,
            arm=arm,
            model=model,
            provider=profile.provider,
            bucket=routed.bucket,
            cluster_id=routed.cluster_id,
            features=routed.features,
            tokens_in=self._tokens[row],
            tokens_out=0,
            cost_usd=float(self.dataset.costs[row, column]),
            latency_ms=latency,
            success=not failed,
            error_kind=("rate_limited" if rate_limited else "upstream_error") if failed else None,
            http_status=(429 if rate_limited else 502) if failed else 200,
            rate_limited=rate_limited,
            propensity=p,
            quality=None if failed else min(1.0, max(0.0, score)),
        )

    def _feedback(self, event: RoutingEvent, row: int, baseline: int) -> FeedbackEvent:
        served = self.dataset.scores[row, self._column[event.model]]
        base = self.dataset.scores[row, baseline]
        outcome = Outcome.WIN if served > base + _TIE else Outcome.LOSS if served < base - _TIE else Outcome.TIE
        return FeedbackEvent(
            request_id=event.request_id,
            ts=event.ts,
            router_id=event.router_id,
            arm=event.arm,
            model=event.model,
            bucket=event.bucket,
            outcome=outcome,
        )


def _draw(rng: random.Random, weights: Mapping[str, float]) -> str:
    """One arm, with probability proportional to its weight."""
    return rng.choices(list(weights), list(weights.values()))[0]


def _row_order(rows: np.ndarray, seed: int) -> Iterator[int]:
    """Dataset rows forever: a new seeded shuffle of ``rows`` on every pass."""
    rng = np.random.default_rng(seed)
    while True:
        yield from rng.permutation(rows).tolist()


__all__ = [
    "ALL_SPLITS",
    "FASTEST_MS",
    "SLOWEST_MS",
    "ReplayConfig",
    "ReplayError",
    "ReplayTraffic",
    "Routed",
    "explore",
    "model_profiles",
    "price_rank_medians",
    "propensity",
    "read_catalog",
]
