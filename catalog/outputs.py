"""What a snapshot's significant drift becomes (pure): a ``catalog_drift`` training trigger and an alert.

Both carry ids derived from the snapshot version, so publishing a snapshot twice (after a
crash between the snapshot file and Kafka) yields the same trigger id, which the trainer
handles once, and the same alert id, which webhook receivers can de-duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence

from bifrost.catalog.drift import describe
from bifrost.schemas.alerts import Alert, AlertKind, Severity
from bifrost.schemas.catalog import CatalogChange, ChangeKind
from bifrost.schemas.triggers import TrainingTrigger, TriggerReason

_GONE = (ChangeKind.REMOVED, ChangeKind.UNAVAILABLE)


def significant(changes: Sequence[CatalogChange]) -> list[CatalogChange]:
    """The changes that invalidate the current artifact (in use, not an addition)."""
    return [c for c in changes if c.significant]


def trigger_id_of(snapshot: str) -> str:
    return f"catalog-drift-{snapshot}"


def alert_id_of(snapshot: str) -> str:
    return f"catalog_drift:{snapshot}"


def drift_trigger(
    snapshot: str, changes: Sequence[CatalogChange], *, artifact_version: str | None, now: float, window_seconds: float
) -> TrainingTrigger:
    """The retrain request for a snapshot's significant changes (window: the last ``window_seconds``)."""
    models = sorted({m for c in changes for m in c.used_as})
    return TrainingTrigger(
        trigger_id=trigger_id_of(snapshot),
        reason=TriggerReason.CATALOG_DRIFT,
        window_from=now - window_seconds,
        window_to=now,
        router_id=None,
        requested_by="catalog-refresher",
        created_at=now,
        details={
            "snapshot": snapshot,
            "artifact": artifact_version or "",
            "changes": float(len(changes)),
            "models": ",".join(models)[:500],
            "kinds": ",".join(sorted({c.kind.value for c in changes})),
        },
    )


def drift_alert(
    snapshot: str, changes: Sequence[CatalogChange], *, artifact_version: str | None, now: float, trigger_id: str | None
) -> Alert:
    """One alert per snapshot with significant changes; critical when a model in use is gone."""
    gone = [c for c in changes if c.kind in _GONE]
    lines = [describe(c) + (f" (used as {', '.join(c.used_as)})" if c.used_as else "") for c in changes]
    message = (
        f"{len(changes)} catalog change(s) touch models the current artifact "
        f"{artifact_version or '?'} routes to; "
        "it is marked invalidated and a retrain was requested: " + "; ".join(lines)
    )
    evidence: dict[str, float | int | str] = {
        "snapshot": snapshot,
        "artifact": artifact_version or "",
        "changes": len(changes),
        "trigger_id": trigger_id or "",
    }
    for change in changes[:20]:
        evidence[f"{change.kind.value}:{change.entry_id}"[:120]] = describe(change)[:300]
    return Alert(
        alert_id=alert_id_of(snapshot),
        kind=AlertKind.CATALOG_DRIFT,
        severity=Severity.CRITICAL if gone else Severity.WARNING,
        subject=f"artifact {artifact_version or '?'}"[:300],
        message=message[:2000],
        evidence=evidence,
        created_at=now,
    )
