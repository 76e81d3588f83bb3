"""The trainer service's settings, read from ``BIFROST_*`` environment variables.

The trainer is a separate service that shares only ``schemas/`` (and the artifact
format in ``router/``) with the stream workers, so it reads its own settings; the
variables it shares with the workers (bootstrap, prefix, app id, partitions, warehouse
folder, SLO) have the same names and defaults. ``bifrost-opt config`` lists them all.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Mapping

from bifrost.kafka.security import KafkaSecurity, KafkaSecurityError
from bifrost.schemas.topics import Topics


class TrainerSettingsError(ValueError):
    """An environment variable holds a value of the wrong kind."""


def _boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(raw)
    return lowered in ("1", "true", "yes", "on")


def _setting(default: Any, env: str, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc})


@dataclass(frozen=True, slots=True)
class TrainerSettings:
    """Configuration of ``bifrost-opt trainer``."""

    kafka_bootstrap: str = _setting("127.0.0.1:9092", "BIFROST_KAFKA_BOOTSTRAP", "Kafka bootstrap servers, comma separated.")
    topic_prefix: str = _setting("bifrost.", "BIFROST_TOPIC_PREFIX", "Prefix of every topic name.")
    app_id: str = _setting("bifrost-optimizer", "BIFROST_APP_ID", "Consumer group prefix (the trainer's group is <app_id>-trainer).")
    partitions: int = _setting(8, "BIFROST_PARTITIONS", "Partitions of training-triggers if the trainer creates it.")
    warehouse_dir: str = _setting("var/warehouse", "BIFROST_WAREHOUSE_DIR", "Where the warehouse sink's Parquet files are read from.")
    artifact_store: str = _setting("var/artifacts", "BIFROST_ARTIFACT_STORE", "Versioned artifact store folder (shared with routers and the worker).")
    runs_dir: str = _setting("var/trainer", "BIFROST_TRAINER_RUNS_DIR", "Run reports and the ledger of handled trigger ids.")
    signing_key_file: str = _setting("var/keys/artifact-signing.pem", "BIFROST_SIGNING_KEY_FILE", "Ed25519 signing key (PEM); BIFROST_SIGNING_KEY (inline) wins when set.")
    trials: int = _setting(200, "BIFROST_TRAINER_TRIALS", "Optuna trials per run.")
    seed: int = _setting(0, "BIFROST_TRAINER_SEED", "Seed of every random step of a run.")
    min_rows: int = _setting(2000, "BIFROST_TRAINER_MIN_ROWS", "Fewest usable logged requests a run trains on.")
    max_triage_rows: int = _setting(100_000, "BIFROST_TRAINER_MAX_TRIAGE_ROWS", "The per-prompt models, the triage model and the search use a uniform sample of at most this many rows.")
    evaluation_set: str = _setting("", "BIFROST_TRAINER_EVALUATION_SET", "Optional full-information dataset: candidates must also be non-inferior on it.")
    slo_p95_ms: float = _setting(2500.0, "BIFROST_SLO_P95_MS", "A candidate whose models' P95 latency exceeds this is not published.")
    metrics_host: str = _setting("127.0.0.1", "BIFROST_TRAINER_METRICS_HOST", "Address the trainer's Prometheus endpoint listens on (0.0.0.0: all interfaces).")
    catalog_prices: bool = _setting(True, "BIFROST_TRAINER_CATALOG_PRICES", "Price logged requests with the catalog's current prices (the compacted catalog topic) before training the cost models: the new artifact reflects today's prices, not those of the logged day.")
    catalog_aliases: str = _setting("", "BIFROST_CATALOG_ALIASES", "MODEL=SLUG pairs (comma separated) naming the catalog entry of a routing event's model when its name is not the slug's last part.")
    catalog_providers: str = _setting("openrouter,openai,gemini", "BIFROST_CATALOG_PROVIDERS", "Provider APIs the refresher reads, comma separated, in order of preference when a model name matches entries of several.")
    metrics_port: int = _setting(6067, "BIFROST_TRAINER_METRICS_PORT", "Port of the trainer's Prometheus endpoint, http://HOST:PORT/metrics (0: off; a port in use is logged and skipped).")
    # TLS/SASL of the trainer's Kafka clients: the shared BIFROST_KAFKA_* group.
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity, metadata={"group": True})

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def kafka_options(self) -> dict[str, Any]:
        """TLS/SASL keyword arguments for the trainer's Kafka clients."""
        return self.kafka_security.client_options()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "TrainerSettings":
        """Settings from ``environ`` (default ``os.environ``), then explicit overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if "kafka_security" not in overrides:
            try:
                values["kafka_security"] = KafkaSecurity.from_env(environ)
            except KafkaSecurityError as exc:
                raise TrainerSettingsError(str(exc)) from None
        for f in fields(cls):
            if "env" not in f.metadata:
                continue
            raw = environ.get(f.metadata["env"])
            if raw:
                kind = f.type if isinstance(f.type, str) else f.type.__name__
                try:
                    values[f.name] = {"int": int, "float": float, "bool": _boolean}.get(kind, str)(raw)
                except ValueError:
                    raise TrainerSettingsError(f"{f.metadata['env']}={raw!r} is not a valid {kind}") from None
        values.update(overrides)
        return cls(**values)

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(variable, default, meaning) of every setting."""
        return [(f.metadata["env"], repr(f.default) if f.default is not MISSING else "", f.metadata["doc"])
                for f in fields(cls) if "env" in f.metadata]
