"""The trainer is a separate service: it imports only schemas/, the router library, the Kafka client settings and the common leaf."""

from __future__ import annotations

import ast
from pathlib import Path

TRAINER = Path(__file__).resolve().parents[2] / "trainer"
ALLOWED = ("bifrost.schemas", "bifrost.router", "bifrost.trainer", "bifrost.kafka", "bifrost.common")


def test_trainer_modules_import_only_schemas_router_and_themselves() -> None:
    offenders = []
    for path in sorted(TRAINER.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("bifrost.") and not n.startswith(ALLOWED)]
    assert offenders == []
