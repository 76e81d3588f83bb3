"""One typed settings object, read from ``BIFROST_*`` environment variables.

Every field documents its variable and default; ``bifrost-opt config`` prints them.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bifrost.common import envsettings, variables
from bifrost.common.envsettings import SettingsError
from bifrost.common.envsettings import setting as _setting
from bifrost.kafka.security import KafkaSecurity, settings_from_env
from bifrost.schemas.codec import Limits
from bifrost.schemas.topics import Topics

_WEB_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]{16,}=*")


__all__ = ["Settings", "SettingsError"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Configuration of the worker, the CLI, the simulator and the catalog refresher.

    The trainer reads its own :class:`bifrost.trainer.settings.TrainerSettings`; the variables
    both read are defined once, in :mod:`bifrost.common.variables`.
    """

    kafka_bootstrap: str = variables.KAFKA_BOOTSTRAP.field()
    topic_prefix: str = variables.TOPIC_PREFIX.field()
    app_id: str = variables.APP_ID.field()
    partitions: int = variables.PARTITIONS.field()
    replication_factor: int = _setting(
        1, "BIFROST_REPLICATION_FACTOR", "Replication factor of topics the worker creates."
    )
    store: str = _setting(
        "memory://",
        "BIFROST_STORE",
        "Table store: memory:// (tests) or rocksdb:// (production; needs the rocksdb extra).",
    )
    data_dir: str = _setting("var/worker", "BIFROST_DATA_DIR", "Worker data directory (RocksDB tables).")
    window_seconds: int = _setting(60, "BIFROST_WINDOW_SECONDS", "Tumbling window size, by event time.")
    grace_seconds: int = _setting(
        300,
        "BIFROST_GRACE_SECONDS",
        "Late events this far behind their router's newest event time (per partition) still count.",
    )
    feedback_grace_seconds: int = _setting(
        86400,
        "BIFROST_FEEDBACK_GRACE_SECONDS",
        "Feedback may arrive this long after its request's newest window and still count.",
    )
    retention_seconds: int = _setting(
        8 * 86400, "BIFROST_RETENTION_SECONDS", "How long closed windows are kept (7-day trends need ≥ 7 days)."
    )
    max_event_bytes: int = _setting(64 * 1024, "BIFROST_MAX_EVENT_BYTES", "Larger payloads go to the DLQ as oversized.")
    max_future_skew_seconds: float = _setting(
        300.0, "BIFROST_MAX_FUTURE_SKEW_SECONDS", "Event times further ahead of the worker's clock go to the DLQ."
    )
    batch_max: int = _setting(10_000, "BIFROST_BATCH_MAX", "Most records the ingest loop fetches and folds at once.")
    batch_within_seconds: float = _setting(0.25, "BIFROST_BATCH_WITHIN_SECONDS", "Longest wait to fill a batch.")
    commit_interval_seconds: float = _setting(
        1.0,
        "BIFROST_COMMIT_INTERVAL_SECONDS",
        "How often stage 2 (Faust) commits its offsets; ingest commits each batch in its transaction.",
    )
    session_timeout_seconds: float = _setting(
        15.0,
        "BIFROST_SESSION_TIMEOUT_SECONDS",
        "Consumer group session timeout: how soon a dead worker's partitions move to the "
        "others (a restarted worker takes its own back at once, see BIFROST_INSTANCE_ID).",
    )
    instance_id: str = _setting(
        "",
        "BIFROST_INSTANCE_ID",
        "Static group membership id of this worker, stable across restarts and unique per "
        "worker; default <hostname>-<web port>.",
    )
    recovery_timeout_seconds: float = _setting(
        120.0,
        "BIFROST_RECOVERY_TIMEOUT_SECONDS",
        "Longest a partition's state recovery (including waiting for an unreachable broker) "
        "may take before the worker exits with an error.",
    )
    ingest_commit_interval_seconds: float = _setting(
        0.1,
        "BIFROST_INGEST_COMMIT_INTERVAL_SECONDS",
        "Shortest time between two ingest transactions of one input partition (batches "
        "arriving meanwhile join the next): fewer changelog and stage-2 snapshots, at most "
        "this much added latency.",
    )
    transaction_timeout_seconds: float = _setting(
        30.0,
        "BIFROST_TRANSACTION_TIMEOUT_SECONDS",
        "Kafka transaction timeout of ingest producers: how long a dead producer's open "
        "transaction can hold back read_committed readers.",
    )
    dlq_max_payload_bytes: int = _setting(
        256 * 1024,
        "BIFROST_DLQ_MAX_PAYLOAD_BYTES",
        "A DLQ record keeps at most this many bytes of the rejected payload (plus its full size and sha256).",
    )
    dlq_surge_threshold: float = _setting(
        0.01,
        "BIFROST_DLQ_SURGE_THRESHOLD",
        "Share of a worker's input records going to the DLQ over the surge window that is a "
        "surge (one WARNING log line and a dlq_surge alert per episode; resolved below half "
        "of it).",
    )
    dlq_surge_min_records: int = _setting(
        20,
        "BIFROST_DLQ_SURGE_MIN_RECORDS",
        "Fewest DLQ records in the surge window for a surge, so 1 bad record in 10 is not one.",
    )
    dlq_surge_window_seconds: float = _setting(
        60.0, "BIFROST_DLQ_SURGE_WINDOW_SECONDS", "Sliding window of the DLQ surge check."
    )
    metrics_max_routers: int = _setting(
        200,
        "BIFROST_METRICS_MAX_ROUTERS",
        "Distinct router label values in /metrics; later routers are counted under "
        'router="other" (a producer cannot blow up the series).',
    )
    metrics_max_arms: int = _setting(
        10,
        "BIFROST_METRICS_MAX_ARMS",
        'Distinct arm label values per router in /metrics; later arms are counted under arm="other".',
    )
    rollout_stages: str = _setting(
        "0.05,0.25,0.5,1.0",
        "BIFROST_ROLLOUT_STAGES",
        "Canary traffic shares of the rollout stages; the last must be 1.0.",
    )
    rollout_min_stage_seconds: float = _setting(
        900.0,
        "BIFROST_ROLLOUT_MIN_STAGE_SECONDS",
        "Minimum time a stage must be covered by data (closed windows with traffic in both "
        "arms) before it may advance.",
    )
    rollout_stage_timeout_seconds: float = _setting(
        0.0,
        "BIFROST_ROLLOUT_STAGE_TIMEOUT_SECONDS",
        "Traffic time after which a stage that neither advanced nor rolled back pauses with "
        "its reasons; 0 means four times BIFROST_ROLLOUT_MIN_STAGE_SECONDS.",
    )
    rollout_min_samples: int = _setting(
        100,
        "BIFROST_ROLLOUT_MIN_SAMPLES",
        "Minimum requests per arm in a stage before it may advance or a gate may fail.",
    )
    rollout_require_approval: bool = _setting(
        False, "BIFROST_ROLLOUT_REQUIRE_APPROVAL", "A started rollout waits for an approve command."
    )
    command_keys: str = _setting(
        "",
        "BIFROST_COMMAND_KEYS",
        "Allow-list of keys that may sign rollout commands: name:role:base64-public-key "
        "entries (roles operator, pipeline), comma or newline separated.",
    )
    command_keys_file: str = _setting(
        "",
        "BIFROST_COMMAND_KEYS_FILE",
        "File with more allow-list entries (one per line, # comments), added to BIFROST_COMMAND_KEYS.",
    )
    command_max_age_seconds: float = _setting(
        300.0,
        "BIFROST_COMMAND_MAX_AGE_SECONDS",
        "A rollout command issued further than this from the worker's wall clock (either "
        "way) is refused as stale; also how long nonces are remembered.",
    )
    operator_key_file: str = _setting(
        "",
        "BIFROST_OPERATOR_KEY_FILE",
        "Private key the CLI signs rollout commands with (create: bifrost-opt keys create).",
    )
    operator_key_name: str = _setting("operator", "BIFROST_OPERATOR_KEY_NAME", "Allow-list name of the operator key.")
    pipeline_key_file: str = _setting(
        "",
        "BIFROST_PIPELINE_KEY_FILE",
        "Private key the worker's artifact listener signs artifact_verified and start "
        "commands with (unset: the listener does not run).",
    )
    pipeline_key_name: str = _setting("pipeline", "BIFROST_PIPELINE_KEY_NAME", "Allow-list name of the pipeline key.")
    gate_error_rate_increase: float = _setting(
        0.10, "BIFROST_GATE_ERROR_RATE_INCREASE", "Relative error-rate regression a gate must catch."
    )
    gate_latency_p95_increase: float = _setting(
        0.50, "BIFROST_GATE_LATENCY_P95_INCREASE", "Relative P95 latency regression a gate must catch."
    )
    gate_cost_increase: float = _setting(
        0.30, "BIFROST_GATE_COST_INCREASE", "Relative cost-per-task regression a gate must catch."
    )
    gate_win_rate_decrease: float = _setting(
        0.10, "BIFROST_GATE_WIN_RATE_DECREASE", "Relative win-rate drop a gate must catch."
    )
    gate_alpha: float = _setting(
        0.01,
        "BIFROST_GATE_ALPHA",
        "False-rollback budget of a whole rollout (always-valid under continuous monitoring, spent over the stages).",
    )
    slo_p95_ms: float = variables.SLO_P95_MS.field()
    slo_min_win_rate: float = _setting(
        0.85, "BIFROST_SLO_MIN_WIN_RATE", "No promotion while the canary's win rate is below this."
    )
    retrain_cron: str = _setting(
        "0 3 * * 0", "BIFROST_RETRAIN_CRON", "When the weekly retrain trigger fires (cron, UTC; leader only)."
    )
    degradation_tolerance: float = _setting(
        0.05,
        "BIFROST_DEGRADATION_TOLERANCE",
        "Last day worse than the 6 days before by more than this (win rate, cost, P95) triggers a retrain.",
    )
    optimizer_interval_seconds: float = _setting(
        21600.0,
        "BIFROST_OPTIMIZER_INTERVAL_SECONDS",
        "The optimizer analyses each router every this many seconds of its settled event "
        "time (6 h; slots aligned to UTC 00/06/12/18), on the worker that owns the router; 0 "
        "turns the scheduled analysis off (`bifrost-opt analyze` still works).",
    )
    optimizer_max_rows: int = _setting(
        200_000,
        "BIFROST_OPTIMIZER_MAX_ROWS",
        "Most logged requests (a uniform sample of the warehouse window) an analysis replays "
        "through the reference router for counterfactual impacts.",
    )
    optimizer_lookback_seconds: float = _setting(
        7 * 86400.0,
        "BIFROST_OPTIMIZER_LOOKBACK_SECONDS",
        "Logged requests an analysis reads from the warehouse, back from its event time "
        "(counterfactuals, repeated prompts).",
    )
    recommendation_period_seconds: float = _setting(
        7 * 86400.0,
        "BIFROST_RECOMMENDATION_PERIOD_SECONDS",
        "A recommendation (kind + router + subject) is published at most once per period of "
        "event time (UTC-aligned), whatever restarts happen; the recommendations topic keeps "
        "records for 4 periods.",
    )
    goal_win_rate: float = _setting(
        0.90,
        "BIFROST_GOAL_WIN_RATE",
        "Goal: win rate against the baseline at least this (goal tracking, SLO-breach alerts).",
    )
    goal_cost_per_task: float = _setting(
        0.04, "BIFROST_GOAL_COST_PER_TASK", "Goal: mean cost per task (USD) at most this."
    )
    goal_p95_ms: float = _setting(2000.0, "BIFROST_GOAL_P95_MS", "Goal: P95 latency (ms) below this.")
    goal_quality: float = _setting(0.85, "BIFROST_GOAL_QUALITY", "Goal: mean graded quality (0..1) at least this.")
    goal_availability: float = _setting(
        0.995, "BIFROST_GOAL_AVAILABILITY", "Goal: share of successful requests at least this."
    )
    goal_window_seconds: float = _setting(
        86400.0,
        "BIFROST_GOAL_WINDOW_SECONDS",
        "Goals are tracked over this much event time before the analysis (24 h).",
    )
    alert_cost_increase: float = _setting(
        0.20,
        "BIFROST_ALERT_COST_INCREASE",
        "Alert when the last goal window's cost per task is this much above the six days before it (and beyond noise).",
    )
    alert_alpha: float = _setting(
        0.001,
        "BIFROST_ALERT_ALPHA",
        "Significance level of each optimizer alert test (one-sided, per router and metric): "
        "SLO breach against a goal, cost increase, and the seasonal Mann-Kendall test of "
        "7-day degradation.",
    )
    verify_key_file: str = _setting(
        "var/keys/artifact-signing.pub.pem",
        "BIFROST_VERIFY_KEY_FILE",
        "Public key (PEM) that verifies artifact signatures before a canary starts; "
        "BIFROST_VERIFY_KEY (inline) wins. A private key here stops the worker.",
    )
    artifact_store: str = variables.ARTIFACT_STORE.field()
    warehouse_enabled: bool = _setting(
        True, "BIFROST_WAREHOUSE_ENABLED", "Run the warehouse sink in this worker (false turns it off)."
    )
    warehouse_dir: str = variables.WAREHOUSE_DIR.field()
    warehouse_max_buffer_bytes: int = _setting(
        64 * 1024 * 1024,
        "BIFROST_WAREHOUSE_MAX_BUFFER_BYTES",
        "The sink writes a file before its buffered rows exceed this many bytes (bounds its memory).",
    )
    warehouse_flush_seconds: float = _setting(
        60.0, "BIFROST_WAREHOUSE_FLUSH_SECONDS", "Longest a warehouse buffer waits before it is written as a file."
    )
    lag_interval_seconds: float = _setting(
        10.0,
        "BIFROST_LAG_INTERVAL_SECONDS",
        "How often the worker samples the consumer lag of the project's groups (0: no lag "
        "monitor in the worker); also the refresh of `bifrost-opt lag --watch`.",
    )
    lag_window: int = _setting(
        10,
        "BIFROST_LAG_WINDOW",
        "Samples in the sliding window a lag status is judged on (≥ 2); interval × window "
        "must exceed the longest gap between two commits of a watched group (the warehouse "
        "sink commits once per flush).",
    )
    lag_trainer_grace_seconds: float = _setting(
        3600.0,
        "BIFROST_LAG_TRAINER_GRACE_SECONDS",
        "How long the trainer's group may read ERR/STALL (a trigger's offset stands still "
        "while its run lasts) before the lag monitor raises an alert; a stopped trainer "
        "(STOP) alerts at once. 0: no grace.",
    )
    lag_groups: str = _setting(
        "",
        "BIFROST_LAG_GROUPS",
        "More consumer groups the worker's lag monitor watches, comma separated, besides the "
        "project's own (ingest, Faust, warehouse, artifacts, trainer).",
    )
    web_host: str = _setting(
        "127.0.0.1", "BIFROST_WEB_HOST", "Worker HTTP bind address: only this interface listens (0.0.0.0: all)."
    )
    web_port: int = _setting(6066, "BIFROST_WEB_PORT", "Worker HTTP port (metrics views, /metrics, health).")
    web_canonical_url: str = _setting(
        "",
        "BIFROST_WEB_CANONICAL_URL",
        "URL other workers reach this one at (requests for a router are forwarded to its "
        "owner); empty: http://<BIFROST_WEB_HOST, or the host name for 0.0.0.0>:<port>. "
        "Unique per worker.",
    )
    web_token: str = _setting(
        "",
        "BIFROST_WEB_TOKEN",
        "Bearer token every HTTP view but /health requires (empty: none); the CLI sends it. Never logged.",
        secret=True,
    )
    web_token_file: str = _setting(
        "", "BIFROST_WEB_TOKEN_FILE", "File holding the bearer token (BIFROST_WEB_TOKEN wins)."
    )
    web_public_read: bool = _setting(
        False,
        "BIFROST_WEB_PUBLIC_READ",
        "The dashboard's read-only JSON views (routers, metrics, series, rollout, activity, "
        "lag) answer without the token; control actions, /metrics and Faust's views still "
        "need it.",
    )
    dashboard_command_key_file: str = _setting(
        "",
        "BIFROST_DASHBOARD_COMMAND_KEY_FILE",
        "Operator private key the worker signs the dashboard's control actions with (unset: "
        "the dashboard is read-only; actions also need BIFROST_WEB_TOKEN). Its public line "
        "must be on BIFROST_COMMAND_KEYS with role operator.",
    )
    dashboard_command_key_name: str = _setting(
        "dashboard",
        "BIFROST_DASHBOARD_COMMAND_KEY_NAME",
        "Allow-list name of the dashboard's key (commands it signs are recorded as issued by this name).",
    )
    worker_url: str = _setting(
        "http://127.0.0.1:6066", "BIFROST_WORKER_URL", "Where the CLI finds a worker's HTTP views."
    )
    log_level: str = _setting("info", "BIFROST_LOG_LEVEL", "Log level of bifrost processes.")
    # Catalog refresher (`bifrost-opt refresher`, `bifrost-opt catalog`; README "Catalog").
    catalog_dir: str = _setting(
        "var/catalog",
        "BIFROST_CATALOG_DIR",
        "Where catalog snapshots are kept (versioned, atomic writes, index with a backup); "
        "the refresher's lock file lives here too.",
    )
    catalog_keep: int = _setting(
        30, "BIFROST_CATALOG_KEEP", "Catalog snapshots kept (older ones are deleted; the current one never)."
    )
    catalog_providers: str = variables.CATALOG_PROVIDERS.field()
    catalog_aliases: str = variables.CATALOG_ALIASES.field()
    catalog_full_cron: str = _setting(
        "0 2 * * *", "BIFROST_CATALOG_FULL_CRON", "When the full catalog refresh runs (cron, UTC)."
    )
    catalog_quick_cron: str = _setting(
        "0 */6 * * *",
        "BIFROST_CATALOG_QUICK_CRON",
        "When the quick availability and price check runs (cron, UTC); a slot the full "
        "refresh also fires at runs once, as full.",
    )
    catalog_price_threshold: float = _setting(
        0.10,
        "BIFROST_CATALOG_PRICE_THRESHOLD",
        "Relative input or output price change between two snapshots that is drift (0.10: 10%).",
    )
    catalog_retrain_window_seconds: float = _setting(
        7 * 86400.0,
        "BIFROST_CATALOG_RETRAIN_WINDOW_SECONDS",
        "Data window of the catalog_drift training trigger (ending at the refresh).",
    )
    catalog_price_table: str = _setting(
        "",
        "BIFROST_CATALOG_PRICE_TABLE",
        "JSON price table for APIs that list no prices (OpenAI, Gemini); empty: the table "
        "shipped with bifrost (bifrost/catalog/prices.json).",
    )
    catalog_http_timeout_seconds: float = _setting(
        20.0, "BIFROST_CATALOG_HTTP_TIMEOUT_SECONDS", "Timeout of one request to a provider API."
    )
    catalog_http_attempts: int = _setting(
        4,
        "BIFROST_CATALOG_HTTP_ATTEMPTS",
        "Attempts per provider request (timeouts, 429, 5xx are retried with exponential "
        "backoff and jitter; Retry-After is obeyed).",
    )
    catalog_http_backoff_seconds: float = _setting(
        1.0,
        "BIFROST_CATALOG_HTTP_BACKOFF_SECONDS",
        "First retry delay of a provider request (doubles per attempt, full jitter).",
    )
    catalog_http_max_backoff_seconds: float = _setting(
        30.0,
        "BIFROST_CATALOG_HTTP_MAX_BACKOFF_SECONDS",
        "Longest retry delay of a provider request, Retry-After included.",
    )
    catalog_http_max_body_bytes: int = _setting(
        32 * 1024 * 1024,
        "BIFROST_CATALOG_HTTP_MAX_BODY_BYTES",
        "Largest provider answer read (the whole body is read); a larger one fails that source at once, clearly.",
    )
    openrouter_base_url: str = _setting(
        "https://openrouter.ai/api/v1", "BIFROST_OPENROUTER_BASE_URL", "OpenRouter API base URL (GET <base>/models)."
    )
    openrouter_api_key: str = _setting(
        "", "BIFROST_OPENROUTER_API_KEY", "OpenRouter API key (optional for the model list). Never logged.", secret=True
    )
    openrouter_api_key_file: str = _setting(
        "", "BIFROST_OPENROUTER_API_KEY_FILE", "File holding the OpenRouter API key (BIFROST_OPENROUTER_API_KEY wins)."
    )
    openai_base_url: str = _setting(
        "https://api.openai.com/v1", "BIFROST_OPENAI_BASE_URL", "OpenAI API base URL (GET <base>/models)."
    )
    openai_api_key: str = _setting(
        "",
        "BIFROST_OPENAI_API_KEY",
        "OpenAI API key (without one the OpenAI adapter is skipped). Never logged.",
        secret=True,
    )
    openai_api_key_file: str = _setting(
        "", "BIFROST_OPENAI_API_KEY_FILE", "File holding the OpenAI API key (BIFROST_OPENAI_API_KEY wins)."
    )
    gemini_base_url: str = _setting(
        "https://generativelanguage.googleapis.com/v1beta",
        "BIFROST_GEMINI_BASE_URL",
        "Gemini API base URL (GET <base>/models, paginated).",
    )
    gemini_api_key: str = _setting(
        "",
        "BIFROST_GEMINI_API_KEY",
        "Gemini API key (without one the Gemini adapter is skipped). Never logged.",
        secret=True,
    )
    gemini_api_key_file: str = _setting(
        "", "BIFROST_GEMINI_API_KEY_FILE", "File holding the Gemini API key (BIFROST_GEMINI_API_KEY wins)."
    )
    refresher_metrics_host: str = _setting(
        "127.0.0.1", "BIFROST_REFRESHER_METRICS_HOST", "Address of the refresher's Prometheus endpoint."
    )
    refresher_metrics_port: int = _setting(
        6068,
        "BIFROST_REFRESHER_METRICS_PORT",
        "Port of the refresher's Prometheus endpoint, http://HOST:PORT/metrics (0: off).",
    )
    # Webhook delivery of alerts (bifrost.webhooks; runs in `bifrost-opt refresher`).
    webhook_urls: str = _setting(
        "", "BIFROST_WEBHOOK_URLS", "Endpoints every alert is POSTed to, comma separated (empty: no delivery)."
    )
    webhook_secret: str = _setting(
        "",
        "BIFROST_WEBHOOK_SECRET",
        "Signing secret of webhook deliveries (whsec_<base64>, or any text of 24+ characters). Never logged.",
        secret=True,
    )
    webhook_secret_file: str = _setting(
        "", "BIFROST_WEBHOOK_SECRET_FILE", "File holding the webhook signing secret (BIFROST_WEBHOOK_SECRET wins)."
    )
    webhook_timeout_seconds: float = _setting(
        10.0, "BIFROST_WEBHOOK_TIMEOUT_SECONDS", "Timeout of one delivery attempt."
    )
    webhook_max_attempts: int = _setting(
        8,
        "BIFROST_WEBHOOK_MAX_ATTEMPTS",
        "Attempts per alert and endpoint before it goes to the DLQ (reason undelivered).",
    )
    webhook_backoff_seconds: float = _setting(
        5.0, "BIFROST_WEBHOOK_BACKOFF_SECONDS", "Delay before the first retry (doubles per attempt, with jitter)."
    )
    webhook_max_backoff_seconds: float = _setting(
        900.0, "BIFROST_WEBHOOK_MAX_BACKOFF_SECONDS", "Longest delay between two attempts (Retry-After included)."
    )
    webhook_state_dir: str = _setting(
        "var/webhooks",
        "BIFROST_WEBHOOK_STATE_DIR",
        "Delivery state of the alert in flight (attempts, endpoints done), so a restart "
        "neither re-sends to an endpoint that has it nor restarts its retries.",
    )
    # TLS/SASL of every Kafka client: the BIFROST_KAFKA_* group of bifrost.kafka.KafkaSecurity.
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity, metadata={"group": True})

    @property
    def topics(self) -> Topics:
        """Topic names under :attr:`topic_prefix`."""
        return Topics(self.topic_prefix)

    @property
    def stages(self) -> tuple[float, ...]:
        """Parsed :attr:`rollout_stages`."""
        try:
            stages = tuple(float(part) for part in self.rollout_stages.split(","))
        except ValueError:
            raise SettingsError(f"BIFROST_ROLLOUT_STAGES={self.rollout_stages!r} is not a list of fractions") from None
        if not stages or stages[-1] != 1.0 or any(not 0 < a < b for a, b in zip(stages, stages[1:])) or stages[0] <= 0:
            raise SettingsError(f"BIFROST_ROLLOUT_STAGES={self.rollout_stages!r}: increasing fractions ending at 1.0")
        return stages

    @property
    def group_instance_id(self) -> str:
        """Static membership id: :attr:`instance_id`, or ``<hostname>-<web port>``.

        The web port is unique among the workers of one host, and stays the same when a
        worker restarts, which is what static membership needs.
        """
        return self.instance_id or f"{socket.gethostname()}-{self.web_port}"

    def web_token_value(self) -> str:
        """The HTTP bearer token (``BIFROST_WEB_TOKEN``, else the file's content); "" when none is set.

        Raises:
            SettingsError: the file cannot be read, or the token is short or has odd
                characters. Messages name the variable, never the token.
        """
        if self.web_token:
            token, where = self.web_token.strip(), "BIFROST_WEB_TOKEN"
        elif self.web_token_file:
            where = f"BIFROST_WEB_TOKEN_FILE={self.web_token_file}"
            try:
                token = Path(self.web_token_file).read_text(encoding="ascii").strip()
            except UnicodeDecodeError:
                raise SettingsError(f"{where}: the token file is not ASCII text") from None
            except OSError as exc:
                raise SettingsError(f"{where} cannot be read: {exc.strerror or type(exc).__name__}") from None
        else:
            return ""
        if not _WEB_TOKEN.fullmatch(token):
            raise SettingsError(
                f"{where}: a web token is at least 16 characters of A-Z a-z 0-9 - . _ ~ + / = "
                "(e.g. `openssl rand -hex 32`)"
            )
        return token

    def secret_value(self, name: str) -> str:
        """A secret given inline (``<name>``) or in its file (``<name>_file``); "" when neither is set.

        ``name`` is a field such as ``openai_api_key`` or ``webhook_secret``. Messages name
        the variable, never the secret.
        """
        return envsettings.secret_value(self, name)

    @property
    def limits(self) -> Limits:
        """Validation limits for decoding events."""
        return Limits(self.max_event_bytes, self.max_future_skew_seconds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``environ`` (default ``os.environ``), then explicit overrides."""
        return settings_from_env(cls, environ, overrides)

    def to_env(self) -> dict[str, str]:
        """``BIFROST_*`` variables that reproduce these settings in a child process."""
        env = envsettings.to_env(self)
        env.update(self.kafka_security.to_env())
        return env

    def kafka_options(self) -> dict[str, Any]:
        """TLS/SASL keyword arguments for any aiokafka client of this process."""
        return self.kafka_security.client_options()

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(variable, default, meaning) of every setting, for docs and ``bifrost-opt config``."""
        return envsettings.describe(cls) + KafkaSecurity.describe()
