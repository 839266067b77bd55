#!/usr/bin/env bash
# Install what the tests need and run the whole suite (CI calls exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
# the suite's peak is about 5 GB under pytest's tmp (the scoring world's 64 songs as float WAVs),
# plus about 2 GB of cached songs in data/test-cache; say what there is, for when a write fails
echo "[test] free disk: $(df -h --output=avail . | tail -1 | tr -d ' ') here, $(df -h --output=avail "${TMPDIR:-/tmp}" | tail -1 | tr -d ' ') in ${TMPDIR:-/tmp}"
export MODEL_PATH=${MODEL_PATH:-$(pwd)/data/pretrained_models}
echo "[test] ruff check (lint and import order, configured in pyproject.toml)"
.venv/bin/ruff check .
echo "[test] mypy (django-stubs, configured in pyproject.toml)"
.venv/bin/mypy .
exec .venv/bin/python -m pytest "$@"
