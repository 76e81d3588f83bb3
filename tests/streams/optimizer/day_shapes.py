"""Day-level latency shapes of a stable week (no trend) for the trend test's false-alert checks.

Each shape gives one multiplier per day: the level every hour of that day shares. None of
them is a trend, and each fooled a test that treated a day's 24 hours as independent.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DAYS = 7


def wobble(sd: float) -> Callable[[np.random.Generator], np.ndarray]:
    """Independent day-to-day wobble (log-normal, ``sd``)."""
    return lambda rng: np.exp(rng.normal(0.0, sd, DAYS))


def ar1(phi: float, sd: float) -> Callable[[np.random.Generator], np.ndarray]:
    """A day level that persists: AR(1) in log with coefficient ``phi`` and stationary ``sd``."""

    def shape(rng: np.random.Generator) -> np.ndarray:
        level = np.empty(DAYS)
        level[0] = rng.normal(0.0, sd)
        for k in range(1, DAYS):
            level[k] = phi * level[k - 1] + rng.normal(0.0, sd * np.sqrt(1 - phi * phi))
        return np.exp(level)

    return shape


def weekend(effect: float, *, at_start: bool, sd: float = 0.01) -> Callable[[np.random.Generator], np.ndarray]:
    """Two weekend days ``effect`` off the weekdays, at the start or the end of the window, plus wobble.

    The sign that looks like a rise is used: lower at the start, higher at the end.
    """

    def shape(rng: np.random.Generator) -> np.ndarray:
        factor = np.exp(rng.normal(0.0, sd, DAYS))
        if at_start:
            factor[:2] *= 1 - effect
        else:
            factor[-2:] *= 1 + effect
        return factor

    return shape


def odd_day(effect: float, *, at_start: bool, sd: float = 0.01) -> Callable[[np.random.Generator], np.ndarray]:
    """One odd day (an outage, a holiday) at the start (``effect`` lower) or the end (higher), plus wobble."""

    def shape(rng: np.random.Generator) -> np.ndarray:
        factor = np.exp(rng.normal(0.0, sd, DAYS))
        if at_start:
            factor[0] *= 1 - effect
        else:
            factor[-1] *= 1 + effect
        return factor

    return shape
