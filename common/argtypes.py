"""Argument types for numeric options: finite, within bounds, or a clear usage error.

``float("nan")``, ``float("inf")`` and ``1e308`` parse as floats; an option that takes
them unchecked fails later with a traceback (or waits forever). These types refuse them
where argparse reports errors: ``argument --rate: must be a number > 0 and ≤ 10000, not 'nan'``
(exit code 2). Shared by ``bifrost-opt`` and the trainer's commands.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def bounded_float(name: str, low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``).

    Example:
        >>> bounded_float("--rate", 0, 100, low_open=True)("2.5")
        2.5
    """
    sign = ">" if low_open else "≥"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, not {text[:40]!r}") from None
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            raise argparse.ArgumentTypeError(
                f"must be a number {sign} {_shown(low)} and ≤ {_shown(high)}, not {text[:40]!r}"
            )
        return value

    parse.__name__ = name  # argparse names the type in some messages
    return parse


def _shown(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def bounded_int(name: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[low, high]``.

    Example:
        >>> bounded_int("--port", 1, 65535)("8080")
        8080
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, not {text[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, not {text[:40]!r}")
        return value

    parse.__name__ = name
    return parse
