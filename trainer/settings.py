"""The trainer service's settings, read from ``BIFROST_*`` environment variables.

The trainer is a separate service that does not import the stream workers' code, so it
has its own settings class; the machinery and the variables it shares with the workers
(bootstrap, prefix, app id, partitions, warehouse and artifact folders, SLO, catalog
names) come from ``bifrost.common``, defined once. ``bifrost-opt config`` lists them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bifrost.common import envsettings, variables
from bifrost.common.envsettings import setting as _setting
from bifrost.kafka.security import KafkaSecurity, settings_from_env
from bifrost.schemas.topics import Topics

#: The trainer's settings errors are the shared machinery's (a usage error, exit code 2).
TrainerSettingsError = envsettings.SettingsError


@dataclass(frozen=True, slots=True)
class TrainerSettings:
    """Configuration of ``bifrost-opt trainer``."""

    kafka_bootstrap: str = variables.KAFKA_BOOTSTRAP.field()
    topic_prefix: str = variables.TOPIC_PREFIX.field()
    app_id: str = variables.APP_ID.field()  # the trainer's consumer group is <app_id>-trainer
    partitions: int = variables.PARTITIONS.field()  # of training-triggers, if the trainer creates it
    warehouse_dir: str = variables.WAREHOUSE_DIR.field()
    artifact_store: str = variables.ARTIFACT_STORE.field()
    runs_dir: str = _setting(
        "var/trainer", "BIFROST_TRAINER_RUNS_DIR", "Run reports and the ledger of handled trigger ids."
    )
    signing_key_file: str = _setting(
        "var/keys/artifact-signing.pem",
        "BIFROST_SIGNING_KEY_FILE",
        "Ed25519 signing key (PEM); BIFROST_SIGNING_KEY (inline) wins when set.",
    )
    trials: int = _setting(200, "BIFROST_TRAINER_TRIALS", "Optuna trials per run.")
    seed: int = _setting(0, "BIFROST_TRAINER_SEED", "Seed of every random step of a run.")
    min_rows: int = _setting(2000, "BIFROST_TRAINER_MIN_ROWS", "Fewest usable logged requests a run trains on.")
    max_triage_rows: int = _setting(
        100_000,
        "BIFROST_TRAINER_MAX_TRIAGE_ROWS",
        "The per-prompt models, the triage model and the search use a uniform sample of at most this many rows.",
    )
    evaluation_set: str = _setting(
        "",
        "BIFROST_TRAINER_EVALUATION_SET",
        "Optional full-information dataset: candidates must also be non-inferior on it.",
    )
    slo_p95_ms: float = variables.SLO_P95_MS.field()  # a candidate whose models' P95 exceeds it is not published
    metrics_host: str = _setting(
        "127.0.0.1",
        "BIFROST_TRAINER_METRICS_HOST",
        "Address the trainer's Prometheus endpoint listens on (0.0.0.0: all interfaces).",
    )
    catalog_prices: bool = _setting(
        True,
        "BIFROST_TRAINER_CATALOG_PRICES",
        "Price logged requests with the catalog's current prices (the compacted catalog "
        "topic) before training the cost models: the new artifact reflects today's prices, "
        "not those of the logged day.",
    )
    catalog_aliases: str = variables.CATALOG_ALIASES.field()
    catalog_providers: str = variables.CATALOG_PROVIDERS.field()
    metrics_port: int = _setting(
        6067,
        "BIFROST_TRAINER_METRICS_PORT",
        "Port of the trainer's Prometheus endpoint, http://HOST:PORT/metrics (0: off; a port "
        "in use is logged and skipped).",
    )
    # TLS/SASL of the trainer's Kafka clients: the shared BIFROST_KAFKA_* group.
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity, metadata={"group": True})

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def kafka_options(self) -> dict[str, Any]:
        """TLS/SASL keyword arguments for the trainer's Kafka clients."""
        return self.kafka_security.client_options()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> TrainerSettings:
        """Settings from ``environ`` (default ``os.environ``), then explicit overrides."""
        return settings_from_env(cls, environ, overrides)

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(variable, default, meaning) of every setting."""
        return envsettings.describe(cls)
