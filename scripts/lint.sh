#!/usr/bin/env bash
# Lint, format check and type check, exactly as CI runs them (scripts/test.sh runs this
# before pytest and stops at the first failure). Needs the dev extra (ruff, mypy) AND the test
# extra: mypy checks tests/ and bench/ too, so it must find pytest, hypothesis and their types,
# or it reports missing imports. `bash scripts/setup.sh` installs both (`pip install -e '.[test,dev]'`).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

echo "lint: ruff check"
"$BIN/ruff" check .
echo "lint: ruff format --check"
"$BIN/ruff" format --check .

# The folders are installed as bifrost.<folder> (pyproject's package-dir), which mypy cannot
# follow: a tree of links gives it the same names. The tests and benchmarks are checked too, as
# the package `tests` and the namespace package `bench` (found from the repository root, as
# pytest and the bench scripts import them), resolving `bifrost.*` through the same links.
# Settings (and the paths not yet checked) come from pyproject.toml.
echo "lint: mypy"
SRC=.cache/mypy-src
rm -rf "$SRC"
mkdir -p "$SRC/bifrost"
for init in */__init__.py; do
  pkg=${init%/__init__.py}
  [ "$pkg" = tests ] && continue
  ln -s "$PWD/$pkg" "$SRC/bifrost/$pkg"
done
MYPYPATH="$SRC" "$BIN/mypy" --cache-dir .cache/mypy -p bifrost -p tests -p bench
