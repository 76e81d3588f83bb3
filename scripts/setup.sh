#!/usr/bin/env bash
# Idempotent setup: a project virtualenv with everything installed, and the Kafka broker
# jars fetched from Maven Central (cached in ~/.cache/bifrost/kafka).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: Python >= 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi
for tool in java mvn; do
  command -v "$tool" >/dev/null || { echo "setup: '$tool' is required for the local Kafka broker (OpenJDK 17 + Maven)" >&2; exit 2; }
done

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "setup: installing Python packages"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
echo "setup: fetching the Kafka broker (cached after the first run)"
.venv/bin/python -m bifrost.devkafka fetch
