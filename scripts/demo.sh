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
echo "Serving on http://127.0.0.1:${PORT}/ with a job worker (Ctrl-C stops both)"
# The job worker (README "Jobs") beside gunicorn; Ctrl-C or SIGTERM stops both.
.venv/bin/python manage.py db_worker & WORKER=$!
.venv/bin/gunicorn -c python:config.gunicorn_conf config.wsgi --bind "127.0.0.1:${PORT}" --access-logfile - & SERVER=$!
trap 'kill -TERM "$WORKER" "$SERVER" 2>/dev/null || true; wait "$WORKER" "$SERVER" 2>/dev/null || true' INT TERM EXIT
wait -n "$WORKER" "$SERVER" || true  # either one ending ends the demo (the trap stops the other)
