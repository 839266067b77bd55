#!/usr/bin/env bash
# Install what the tests need and run the whole suite (CI calls exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
export MODEL_PATH=${MODEL_PATH:-$(pwd)/data/pretrained_models}
exec .venv/bin/python -m pytest "$@"
