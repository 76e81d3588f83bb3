"""The consumer groups of the project, named from the settings (every one derives from ``BIFROST_APP_ID``)."""

from __future__ import annotations

from bifrost.config import Settings

__all__ = ["project_groups", "watched_groups"]


def project_groups(settings: Settings) -> list[str]:
    """Every consumer group a bifrost process joins, in pipeline order.

    Ingest (``<app_id>-ingest``, offsets committed in its transactions), Faust's stage 2
    (``<app_id>``), the warehouse sink, the artifact listener and the trainer service.

    Example:
        >>> project_groups(Settings(app_id="acme"))
        ['acme-ingest', 'acme', 'acme-warehouse', 'acme-artifacts', 'acme-trainer']
    """
    app = settings.app_id
    return [f"{app}-ingest", app, f"{app}-warehouse", f"{app}-artifacts", f"{app}-trainer"]


def watched_groups(settings: Settings) -> list[str]:
    """The project's groups plus ``BIFROST_LAG_GROUPS``, each once."""
    extra = [g.strip() for g in settings.lag_groups.split(",") if g.strip()]
    return list(dict.fromkeys([*project_groups(settings), *extra]))
