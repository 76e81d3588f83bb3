"""The efficient score of a log-scale shift, read from two quantile sketches.

Per-request cost is a mixture over models whose prices differ by orders of magnitude, so
log cost is multimodal: most of its spread (a standard deviation of ~1.8 in the gates
simulator) is the gap between price tiers, not the variation of one model's calls. A
regression that makes every request dearer by a factor ``f`` shifts every mode by
``log f``. The log-mean test measures that shift against the whole spread; the locally
most powerful test of a shift measures it against the width of the modes. With ``f`` the
density of log cost, the score of a shift is ``ψ = −f′/f`` and its variance is the Fisher
information ``I``; on the simulator's cost model ``I·σ²`` is ~5, so at the same sample size
the score test's z is ~2.2× the log-mean test's (``bench/gates_power_bound.py``).

The statistic is two-sample and rank-like: ``ψ`` is estimated from both arms pooled (a
Gaussian kernel density on the sketch's logarithmic bucket grid, bandwidth by Silverman's
rule), and the test compares ``ψ``'s mean in the canary with its mean in the control,
standardized by ``ψ``'s pooled variance. Under "both arms draw from one distribution" the
pooled ``ψ`` is symmetric in which requests were the canary's, so the difference has mean
~0 whatever the distribution's shape; clustering is handled by the caller's dispersion
``φ``, which inflates the variance of any per-request statistic's mean alike when a
cluster's requests share their value.

The null "shifted up by at most the margin" is tested by moving the canary's buckets down
by the margin rounded *up* to whole buckets (``offset``; 2% at the sketches' 1% accuracy):
a slightly wider margin than configured, never a narrower one.

The score is blind to a change of the mix (more calls to a dear model, each unchanged):
the cost gate keeps the mean and log-mean tests for that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bifrost.streams.aggregates.sketch import QuantileSketch

#: Kernel support in bandwidths (the Gaussian beyond it is < 4e-4 of its peak).
_KERNEL_HALF_WIDTH = 4.0
#: Largest bucket grid the score is computed on (a 1%-accuracy sketch spans ~4,600 buckets
#: from 1e-9 to 1e30 USD); wider — a hostile or absurdly fine sketch — leaves it out.
MAX_GRID_BUCKETS = 20_000
#: Above this many multiply-adds the kernel sums go through the FFT.
_DIRECT_LIMIT = 2_000_000


@dataclass(frozen=True, slots=True)
class ShiftScore:
    """Mean score of each arm, the pooled Fisher information and what they imply."""

    n_canary: int
    n_control: int
    difference: float  # mean ψ over the canary (moved down by ``offset``) − over the control
    information: float  # pooled variance of ψ: the Fisher information of a shift, per request
    offset: float  # log shift taken off the canary (the margin, in whole buckets)
    bandwidth: float

    @property
    def standard_error(self) -> float:
        """Standard error of ``difference`` when requests are independent."""
        return math.sqrt(self.information * (1.0 / self.n_canary + 1.0 / self.n_control))

    @property
    def shift(self) -> float:
        """One-step estimate of the canary's log shift: ``offset + difference / I``."""
        return self.offset + self.difference / self.information


def _convolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The full convolution, directly when small, by FFT when large (same result to rounding)."""
    if len(a) * len(b) <= _DIRECT_LIMIT:
        return np.convolve(a, b)
    n = len(a) + len(b) - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(b, size), size)[:n]


def _counts(sketch: QuantileSketch) -> dict[int, int]:
    return {k: c for k, c in sketch.bins.items() if c > 0}


def shift_score(canary: QuantileSketch, control: QuantileSketch, margin: float) -> ShiftScore | None:
    """The score statistic of "canary log values shifted up by more than ``log(1+margin)``".

    ``None`` when it cannot be computed: sketches of different accuracy, an arm without
    values above zero, or all values in one bucket (no information about a shift).
    Values counted as zero by the sketches (≤ 1e-9) are left out.
    """
    if canary.relative_accuracy != control.relative_accuracy:
        return None
    step = math.log(canary.gamma)
    offset_buckets = max(0, math.ceil(math.log1p(max(margin, 0.0)) / step - 1e-12))
    moved = {k - offset_buckets: c for k, c in _counts(canary).items()}
    base = _counts(control)
    n1, n2 = sum(moved.values()), sum(base.values())
    if n1 < 2 or n2 < 2:
        return None
    lo = min(min(moved), min(base))
    hi = max(max(moved), max(base))
    size = hi - lo + 1
    if size > MAX_GRID_BUCKETS:
        return None
    canary_counts = np.zeros(size)
    control_counts = np.zeros(size)
    for k, c in moved.items():
        canary_counts[k - lo] += c
    for k, c in base.items():
        control_counts[k - lo] += c
    pooled = canary_counts + control_counts
    x = (np.arange(size) + lo) * step  # log value of each bucket (its upper edge: a constant offset)
    n = n1 + n2
    mean = float(pooled @ x) / n
    sd = math.sqrt(max(float(pooled @ (x - mean) ** 2) / (n - 1), 0.0))
    cumulative = np.cumsum(pooled)
    q1 = x[int(np.searchsorted(cumulative, 0.25 * n))]
    q3 = x[int(np.searchsorted(cumulative, 0.75 * n))]
    spread = min(sd, (q3 - q1) / 1.34) if q3 > q1 else sd
    if spread <= 0:
        return None
    bandwidth = max(0.9 * spread * n ** (-0.2), step)
    # Beyond the grid the kernel meets no data.
    reach = min(max(1, int(math.ceil(_KERNEL_HALF_WIDTH * bandwidth / step))), size)
    u = np.arange(-reach, reach + 1) * step / bandwidth
    kernel = np.exp(-0.5 * u * u)
    window = slice(reach, reach + size)  # "full" convolution, centred: valid whatever the grid's size
    density = _convolve(pooled, kernel)[window]
    # d/dx of Σ c_j K((x − x_j)/h) is Σ c_j K′(·)/h with K′(u) = −u·K(u).
    slope = _convolve(pooled, -u * kernel / bandwidth)[window]
    occupied = pooled > 0
    psi = np.zeros(size)
    psi[occupied] = -slope[occupied] / density[occupied]
    pooled_mean = float(pooled @ psi) / n
    information = float(pooled @ (psi - pooled_mean) ** 2) / (n - 1)
    if not (information > 0 and math.isfinite(information)):
        return None
    difference = float(canary_counts @ psi) / n1 - float(control_counts @ psi) / n2
    return ShiftScore(
        n_canary=n1,
        n_control=n2,
        difference=difference,
        information=information,
        offset=offset_buckets * step,
        bandwidth=bandwidth,
    )
