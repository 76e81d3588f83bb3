"""Artifact announcements: what the trainer publishes on ``artifacts`` (keyed by version)."""

from __future__ import annotations

from typing import Annotated

import msgspec

Version = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
RouterId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]  # as RoutingEvent.router_id


class ArtifactPublished(msgspec.Struct, frozen=True, kw_only=True):
    """A new signed artifact is in the store and may be rolled out.

    The announcement carries the digest and the signature, not the artifact: a consumer
    reads the bytes from ``location`` and must verify both before it uses them. The
    rollout side starts a canary for every router in ``router_ids`` (or waits for
    ``approve`` when approval is required).

    Example:
        >>> ArtifactPublished(version="v2", sha256="0" * 64, signature="c2ln", location="/a/v2",
        ...                   router_ids=["web"]).router_ids
        ['web']
    """

    version: Version
    sha256: Sha256
    signature: str
    location: str
    router_ids: list[RouterId] = []
    parent: str | None = None
    trigger_id: str | None = None
    created_at: str = ""
    published_at: float = 0.0
    validation: dict[str, float | str | bool | None] = {}
