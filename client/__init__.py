"""Client side of bifrost: publishing events from a router, simulated traffic."""

from bifrost.client.publisher import PublishError, Publisher

__all__ = ["PublishError", "Publisher"]
