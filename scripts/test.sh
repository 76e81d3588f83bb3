#!/usr/bin/env bash
# Sets up, then runs every test. Integration tests start a real Kafka broker once per
# session (or use BIFROST_KAFKA_BOOTSTRAP if set). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/pytest -q "$@"
