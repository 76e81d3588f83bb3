"""Structured progress lines for the trainer: ``event=trainer.step step=cv fold=3/5 …``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("bifrost.trainer")


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return repr(text) if (" " in text or "=" in text or not text) else text


def step(name: str, **fields: object) -> None:
    """Log one progress line for step ``name`` with ``key=value`` fields."""
    extra = " ".join(f"{key}={_format(value)}" for key, value in fields.items())
    log.info("event=trainer.step step=%s%s", name, f" {extra}" if extra else "")


class Timings:
    """Wall time per step, in the order the steps ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def measure(self, name: str, **fields: object) -> Iterator[None]:
        """Time a block; log its start and its end with the elapsed seconds."""
        step(name, status="start", **fields)
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
            step(name, status="done", seconds=round(elapsed, 3))

    @property
    def total(self) -> float:
        return sum(self.seconds.values())
