"""The full-information dataset tests use: the copy bundled with the repository.

It is the public routing-eval set (``data/routing-eval/``, identical to
``shared/data/routing-eval/``), so tests run the same on any clean clone.
"""

from __future__ import annotations

from pathlib import Path

ROUTING_EVAL = Path(__file__).resolve().parents[1] / "data" / "routing-eval" / "llmrouter-dc.jsonl.gz"


def routing_eval() -> Path:
    """The bundled dataset's path (a missing file is a broken checkout, not a reason to skip)."""
    assert ROUTING_EVAL.is_file(), f"{ROUTING_EVAL} is missing from the checkout"
    return ROUTING_EVAL
