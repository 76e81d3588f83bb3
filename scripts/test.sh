#!/usr/bin/env bash
# Sets up, lints (ruff, format check, mypy: scripts/lint.sh, fails fast), then runs every
# test. Integration tests start a real Kafka broker once per session (or use
# BIFROST_KAFKA_BOOTSTRAP if set). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/lint.sh
exec .venv/bin/pytest -q "$@"
