#!/usr/bin/env bash
# Sets up, then runs the whole loop locally: Kafka, a worker, simulated traffic.
# Extra arguments go to `bifrost-opt up` (e.g. --rate 100 --speed 30 --for 10m).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/bifrost-opt up "$@"
