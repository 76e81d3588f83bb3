"""Topic names of the wire contract, under one configurable prefix."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "bifrost."


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic name bifrost-optimizer reads or writes.

    Example:
        >>> Topics("acme.").routing_events
        'acme.routing-events'
    """

    prefix: str = DEFAULT_PREFIX

    def name(self, suffix: str) -> str:
        """Full topic name for a suffix such as ``"routing-events"``."""
        return f"{self.prefix}{suffix}"

    @property
    def routing_events(self) -> str:
        return self.name("routing-events")

    @property
    def feedback(self) -> str:
        return self.name("feedback")

    @property
    def dlq(self) -> str:
        return self.name("dlq")

    @property
    def window_partials(self) -> str:
        """Internal: per-partition window aggregates, keyed by router, merged downstream."""
        return self.name("window-partials")

    @property
    def rollout_commands(self) -> str:
        return self.name("rollout-commands")

    @property
    def rollout_state(self) -> str:
        return self.name("rollout-state")

    @property
    def rollbacks(self) -> str:
        return self.name("rollbacks")

    @property
    def recommendations(self) -> str:
        return self.name("recommendations")

    @property
    def recommendation_commands(self) -> str:
        """Signed "apply this recommendation" commands, keyed by recommendation id."""
        return self.name("recommendation-commands")

    @property
    def recommendation_outcomes(self) -> str:
        """The worker's answers to apply commands (compacted, keyed by recommendation id)."""
        return self.name("recommendation-outcomes")

    @property
    def alerts(self) -> str:
        return self.name("alerts")

    @property
    def training_triggers(self) -> str:
        return self.name("training-triggers")

    @property
    def training_outcomes(self) -> str:
        """What became of each training trigger (published, rejected, skipped), keyed by trigger id."""
        return self.name("training-outcomes")

    @property
    def artifacts(self) -> str:
        return self.name("artifacts")

    @property
    def catalog(self) -> str:
        return self.name("catalog")

    @property
    def catalog_changes(self) -> str:
        return self.name("catalog-changes")
