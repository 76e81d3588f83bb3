"""Small synthetic full-information datasets written to files."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from bifrost.storage.dataset import FullInfoDataset


def row(
    prompt_id: str,
    *,
    prompt: str | None = None,
    split: str = "train",
    task: str = "math",
    scores: dict[str, float | None] | None = None,
    costs: dict[str, float | None] | None = None,
) -> dict[str, object]:
    """One dataset line as a dict (two models ``a`` and ``b`` unless told; a prompt of its own unless told)."""
    return {
        "prompt_id": prompt_id,
        "split": split,
        "task": task,
        "prompt": prompt if prompt is not None else f"What is 2 + 2? ({prompt_id})",
        "scores": scores if scores is not None else {"a": 1.0, "b": 0.0},
        "cost_usd": costs if costs is not None else {"a": 0.002, "b": 0.001},
    }


def write_lines(path: Path, lines: Iterable[dict[str, object] | str | bytes]) -> Path:
    """Write JSON lines (dicts are encoded, str/bytes written as they are); gzip if ``path`` ends in .gz."""
    parts = []
    for line in lines:
        if isinstance(line, dict):
            parts.append(json.dumps(line).encode())
        elif isinstance(line, str):
            parts.append(line.encode())
        else:
            parts.append(line)
    content = b"\n".join(parts) + b"\n"
    path.write_bytes(gzip.compress(content) if path.name.endswith(".gz") else content)
    return path


def make_dataset(
    scores: np.ndarray,
    costs: np.ndarray,
    *,
    prompts: list[str] | None = None,
    tasks: list[str] | None = None,
    splits: list[str] | None = None,
    models: tuple[str, ...] | None = None,
) -> FullInfoDataset:
    """An in-memory dataset from score and cost matrices ``(rows, models)``."""
    n, m = scores.shape
    return FullInfoDataset(
        prompt_ids=[f"p{i}" for i in range(n)],
        prompts=prompts or [f"prompt number {i}" for i in range(n)],
        tasks=np.array(tasks or ["t"] * n, dtype=object),
        splits=np.array(splits or ["train"] * n, dtype=object),
        models=models or tuple(f"m{j}" for j in range(m)),
        scores=np.asarray(scores, dtype=np.float64),
        costs=np.asarray(costs, dtype=np.float64),
        source="memory",
        lines=n,
    )
