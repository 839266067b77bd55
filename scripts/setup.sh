#!/usr/bin/env bash
# Install everything mashlab needs on a Debian machine where you are root.
# Idempotent: a second run reuses what is there.
#   scripts/setup.sh          audio stack, .venv, Spleeter venv, weights, database
#   scripts/setup.sh --tests  also chromium (browser tests), postgresql, openttd-openmsx (MIDI pieces for the
#                             tempo test) and xblast-tnt-musics (4 MB: the real_music command's test)
#   scripts/setup.sh --real-music  also the seven Debian game-soundtrack packages (about 530 MB of recorded
#                             music under free licences) that `manage.py real_music` trains and tests on
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WITH_TESTS=0
WITH_REAL_MUSIC=0
for arg in "$@"; do
  case "$arg" in
    --tests) WITH_TESTS=1 ;;
    --real-music) WITH_REAL_MUSIC=1 ;;
    *) echo "unknown option $arg (setup.sh [--tests] [--real-music])"; exit 2 ;;
  esac
done

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- Debian packages -------------------------------------------------------
APT_PKGS=(rubberband-cli ffmpeg fluidsynth fluid-soundfont-gm espeak-ng sox libsndfile1 unzip)
[ "$WITH_TESTS" = 1 ] && APT_PKGS+=(chromium chromium-driver postgresql openttd-openmsx xblast-tnt-musics)
# generation/real_music.py names these and no other music packages (recordings elsewhere stay an independent test)
[ "$WITH_REAL_MUSIC" = 1 ] && APT_PKGS+=(wesnoth-1.16-music ufoai-music nexuiz-music hyperrogue-music asc-music \
  xblast-tnt-musics fb-music-high)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Python ----------------------------------------------------------------
PY=${MASHLAB_PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo "mashlab needs Python 3.11 (set MASHLAB_PYTHON)"; exit 1; }

stamp_ok() { [ -f "$1/.mashlab-stamp" ] && [ "$(cat "$1/.mashlab-stamp")" = "$2" ]; }

EXTRAS=""; [ "$WITH_TESTS" = 1 ] && EXTRAS="[test]"
MAIN_STAMP="$(sha256sum pyproject.toml | cut -c1-16)$EXTRAS"
if ! stamp_ok .venv "$MAIN_STAMP"; then
  say "main virtualenv .venv"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -e ".$EXTRAS" 2>&1 | grep -v "is ignored: it is neither" || true
  .venv/bin/python -c "import django, madmom, torch, librosa, pyrubberband" # fail loudly if the install broke
  echo "$MAIN_STAMP" > .venv/.mashlab-stamp
fi

# Spleeter pins tensorflow 2.12 / numpy<2: it lives in its own virtualenv.
SPL_STAMP="spleeter==2.4.2"
if ! stamp_ok .venv-spleeter "$SPL_STAMP"; then
  say "Spleeter virtualenv .venv-spleeter"
  [ -x .venv-spleeter/bin/python ] || "$PY" -m venv .venv-spleeter
  .venv-spleeter/bin/pip install -q --disable-pip-version-check "spleeter==2.4.2" 2>&1 | grep -v "is ignored: it is neither" || true
  .venv-spleeter/bin/python -c "import spleeter"
  echo "$SPL_STAMP" > .venv-spleeter/.mashlab-stamp
fi

# --- Model weights that can be had -----------------------------------------
export MODEL_PATH=${MODEL_PATH:-$ROOT/data/pretrained_models}
bash scripts/fetch_spleeter_weights.sh

# --- Database ----------------------------------------------------------------
mkdir -p data
.venv/bin/python manage.py migrate --noinput -v 0
say "ready"
