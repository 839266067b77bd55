#!/usr/bin/env bash
# Install everything, build the demo (generated songs -> MashupDB 'demo'), serve it with gunicorn.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MODEL_PATH=${MODEL_PATH:-$(pwd)/data/pretrained_models}
.venv/bin/python manage.py collectstatic --noinput -v 0
PORT=${MASHLAB_PORT:-8000}
export MASHLAB_DEMO_URL=${MASHLAB_DEMO_URL:-http://127.0.0.1:${PORT}}  # the links the demo prints
.venv/bin/python manage.py demo
echo "Serving on http://127.0.0.1:${PORT}/ (Ctrl-C stops)"
exec .venv/bin/gunicorn -c python:config.gunicorn_conf config.wsgi --bind "127.0.0.1:${PORT}" --access-logfile -
