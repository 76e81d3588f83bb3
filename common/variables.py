"""Variables that more than one service reads (the worker's ``Settings``, ``TrainerSettings``).

Each is defined here once: name, default and meaning; the settings classes take their
fields from these, so the two services cannot drift apart.
"""

from __future__ import annotations

from bifrost.common.envsettings import Var

KAFKA_BOOTSTRAP = Var("BIFROST_KAFKA_BOOTSTRAP", "127.0.0.1:9092", "Kafka bootstrap servers, comma separated.")
TOPIC_PREFIX = Var("BIFROST_TOPIC_PREFIX", "bifrost.", "Prefix of every topic name.")
APP_ID = Var("BIFROST_APP_ID", "bifrost-optimizer", "Faust application id: consumer group and changelog topic prefix.")
PARTITIONS = Var("BIFROST_PARTITIONS", 8, "Partitions of the input topics and tables (set before first start).")
SLO_P95_MS = Var("BIFROST_SLO_P95_MS", 2500.0, "No promotion while the canary's P95 latency is above this.")
ARTIFACT_STORE = Var(
    "BIFROST_ARTIFACT_STORE",
    "var/artifacts",
    "Artifact store folder: announced artifacts are read only from inside it.",
)
WAREHOUSE_DIR = Var("BIFROST_WAREHOUSE_DIR", "var/warehouse", "Where the warehouse sink writes Parquet files.")
CATALOG_PROVIDERS = Var(
    "BIFROST_CATALOG_PROVIDERS",
    "openrouter,openai,gemini",
    "Provider APIs the refresher reads, comma separated, in order of preference when a model "
    "name matches entries of several.",
)
CATALOG_ALIASES = Var(
    "BIFROST_CATALOG_ALIASES",
    "",
    "MODEL=SLUG pairs (comma separated) naming the catalog entry of a routing event's model when "
    "its name is not the slug's last part.",
)
