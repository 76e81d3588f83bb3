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
.venv/bin/python -m pip install -q -e '.[test,dev]' -c constraints.txt
echo "setup: fetching the Kafka broker (cached after the first run)"
.venv/bin/python -m bifrost.devkafka fetch

# The dashboard's browser test drives Debian's Chromium (no browser download by Playwright).
CHROMIUM=${BIFROST_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
  if ! command -v apt-get >/dev/null; then
    echo "setup: $CHROMIUM is missing and apt-get is not available: install Chromium and set BIFROST_CHROMIUM=/path/to/chromium" >&2
    exit 2
  fi
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null && sudo -n true 2>/dev/null || {
      echo "setup: installing Debian's chromium needs root: run 'apt-get install chromium' as root (or set BIFROST_CHROMIUM)" >&2
      exit 2
    }
    SUDO="sudo -n"
  fi
  echo "setup: installing Debian's chromium (for the dashboard's browser test)"
  APT_LOG=$(mktemp)
  if ! { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -qq update &&
         $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -qq install -y chromium; } >"$APT_LOG" 2>&1; then
    tail -n 20 "$APT_LOG" >&2
    echo "setup: apt-get could not install chromium (log above)" >&2
    exit 2
  fi
  rm -f "$APT_LOG"
  [ -x "$CHROMIUM" ] || { echo "setup: chromium was installed but $CHROMIUM is not there (set BIFROST_CHROMIUM)" >&2; exit 2; }
fi
