"""Client side of bifrost: publishing events from a router, simulated traffic."""

from bifrost.client.publisher import Publisher, PublishError

__all__ = ["PublishError", "Publisher"]
