"""Synthetic hourly statistics for optimizer tests, built with numpy (fast enough for 100+ weeks)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bifrost.streams.aggregates.sketch import QuantileSketch
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollup.query import MergedStats

HOUR = 3600
DAY = 86_400
START = 1_700_006_400  # a UTC midnight (2023-11-15)


def sketch_of(values: np.ndarray) -> QuantileSketch:
    """The sketch that adding ``values`` one by one would give (same bucket rule, vectorized)."""
    sketch = QuantileSketch()
    if len(values) == 0:
        return sketch
    keys = np.ceil(np.log(values) / math.log(sketch._gamma)).astype(np.int64)
    found, counts = np.unique(keys, return_counts=True)
    sketch.bins = dict(zip(found.tolist(), counts.tolist()))
    sketch.count = int(len(values))
    sketch.total = float(values.sum())
    sketch.min, sketch.max = float(values.min()), float(values.max())
    return sketch


@dataclass(frozen=True)
class Profile:
    """One model's behaviour in an hour."""

    latency_median_ms: float = 800.0
    latency_sigma: float = 0.4
    cost_mean: float = 0.01
    cost_sigma: float = 0.5
    error_rate: float = 0.002
    rate_limit_rate: float = 0.0
    win_p: float = 0.93
    quality_mean: float = 0.9
    feedback_share: float = 0.3
    tokens_in: float = 400.0
    tokens_out: float = 150.0


def hour_stats(rng: np.random.Generator, n: int, p: Profile, *, latency_factor: float = 1.0) -> WindowStats:
    """One hour of ``n`` requests of one model."""
    latency = p.latency_median_ms * latency_factor * np.exp(rng.normal(0.0, p.latency_sigma, n))
    cost = p.cost_mean * np.exp(rng.normal(-(p.cost_sigma**2) / 2, p.cost_sigma, n))
    errors = int(rng.binomial(n, p.error_rate))
    limited = int(rng.binomial(n, p.rate_limit_rate))
    judged = int(rng.binomial(n, p.feedback_share))
    wins = int(rng.binomial(judged, p.win_p))
    quality = np.clip(rng.normal(p.quality_mean, 0.1, judged), 0.0, 1.0)
    return WindowStats(
        count=n,
        errors=errors + limited,
        rate_limited=limited,
        cost_usd=float(cost.sum()),
        cost_sq=float((cost**2).sum()),
        tokens_in=int(p.tokens_in * n),
        tokens_out=int(p.tokens_out * n),
        latency_ms=sketch_of(latency),
        quality_sum=float(quality.sum()),
        quality_count=judged,
        wins=wins,
        losses=judged - wins,
    )


def two_models(latency_sigma: float = 0.4) -> dict[str, tuple[float, Profile]]:
    """The generator's default router: ``m-small`` (60%, 600 ms, $0.004) and ``m-large`` (40%, 1000 ms, $0.02),
    with per-request log-latency sd ``latency_sigma``."""
    return {
        "m-small": (0.6, Profile(latency_median_ms=600.0, latency_sigma=latency_sigma, cost_mean=0.004)),
        "m-large": (0.4, Profile(latency_median_ms=1000.0, latency_sigma=latency_sigma, cost_mean=0.02)),
    }


def week(
    seed: int,
    *,
    rate_per_hour: float = 400.0,
    models: dict[str, tuple[float, Profile]] | None = None,
    latency_growth_per_day: float = 0.0,
    hour_noise: float = 0.03,
    hour_noise_df: float | None = None,
    day_noise: float = 0.01,
    days: int = 7,
    start: int = START,
    day_factor: np.ndarray | None = None,
    rate_ramp: float = 1.0,
) -> tuple[dict[int, MergedStats], int]:
    """``days`` of hourly statistics of one router (arm ``v1``) and the clock at their end.

    Volume follows a daily cycle (±50%); latency has a daily cycle (±10%), hour-to-hour
    noise and a small day-to-day wobble, and grows by ``latency_growth_per_day`` (compounded).
    ``day_factor`` (one multiplier per day) replaces the i.i.d. wobble of width ``day_noise``
    with another day-level shape (see :mod:`tests.streams.optimizer.day_shapes`).
    ``hour_noise_df`` makes the hour-to-hour noise heavy-tailed: Student's t with that many
    degrees of freedom times ``hour_noise`` (in log) instead of a normal. ``rate_ramp``
    multiplies the volume by that factor from the first hour to the last (growing traffic).
    """
    rng = np.random.default_rng(seed)
    models = models or two_models()
    wobble = np.exp(rng.normal(0.0, day_noise, days))
    day_factor = wobble if day_factor is None else np.asarray(day_factor, dtype=np.float64)
    hours: dict[int, MergedStats] = {}
    for h in range(days * 24):
        t = start + h * HOUR
        cycle = 2 * math.pi * (h % 24) / 24
        ramp = rate_ramp ** (h / max(days * 24 - 1, 1))
        n_total = int(rng.poisson(rate_per_hour * ramp * (1 + 0.5 * math.sin(cycle))))
        noise = hour_noise * float(rng.standard_t(hour_noise_df)) if hour_noise_df else rng.normal(0.0, hour_noise)
        factor = (
            (1 + latency_growth_per_day) ** (h / 24)
            * (1 + 0.1 * math.sin(cycle))
            * day_factor[h // 24]
            * math.exp(noise)
        )
        merged = MergedStats()
        arm = WindowStats()
        for name, (share, profile) in models.items():
            stats = hour_stats(rng, int(rng.binomial(n_total, share)), profile, latency_factor=factor)
            merged.models[name] = stats
            bucket = merged.buckets.setdefault("cheap" if "small" in name else "hard", WindowStats())
            bucket.merge(stats)
            arm.merge(stats)
        merged.arms["v1"] = arm
        merged.windows.add(t)
        hours[t] = merged
    return hours, start + days * 24 * HOUR
