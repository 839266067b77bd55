#!/usr/bin/env bash
# Train the four systems on recorded music and print Table 1 with R@k on the held-out packages (idempotent).
#
#   bash scripts/train_real.sh                 every track, 3 clips each (hours on 2 cores: see README)
#   TRACKS=4 CLIPS=2 bash scripts/train_real.sh  a quick run on 4 tracks per package
#   COMPARE=1 bash scripts/train_real.sh       also every network on the other sources, and evaluate all
#   TRANSPOSE=0 bash scripts/train_real.sh     PreMixNet without its ±6 semitones of transposition augmentation
#
# Steps: setup (with the real-music packages) -> MashupDBs real-train / real-held (manage.py real_music,
# split by package, clips chosen with --segment auto) and gen-train (48 generated songs, their own stems)
# -> candidates in the paper's thirds -> the four systems with the README's CPU recipe (width 0.125,
# pitch-band input, 8 crops of 3 s, best epoch by validation loss, PreMixNet transposed by up to ±6
# semitones), each on the source that measured best for its network (README): PreMixNet on real-train +
# gen-train (both_premix, both_premix_lsro), PostMixNet on real-train (real_postmix, real_postmix_lsro),
# into data/models/real/<system>/ -> Table 1 + R@k on real-held, also written to
# data/models/real/table1.json. A system's name says its source: real_ (real-train), gen_ (gen-train),
# both_ (both). Every step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --real-music
export MODEL_PATH=${MODEL_PATH:-$(pwd)/data/pretrained_models}
M=".venv/bin/python manage.py"
OUT=data/models/real
TRACKS=${TRACKS:-}
CLIPS=${CLIPS:-3}
EPOCHS=${EPOCHS:-30}
WIDTH=${WIDTH:-0.125}
DEVICE=${DEVICE:-}
SEED=${SEED:-0}
TRANSPOSE=${TRANSPOSE:-6}  # semitones of transposition augmentation for PreMixNet (premix, premix_lsro); 0 = off
say() { printf '\033[1m[train_real]\033[0m %s\n' "$*"; }
start=$(date +%s)

say "MashupDBs from recorded music (${TRACKS:-all} tracks per package, $CLIPS clips per track)"
$M real_music --clips-per-track "$CLIPS" ${TRACKS:+--tracks "$TRACKS"} --seed "$SEED"

candidates() {  # training DB: one original per clip, as many of each unmatched kind, as many matched (unlabeled);
  # instrumental clips are vocal seeds here too (training without them measured worse: README)
  local db=$1 n
  n=$($M clips --db "$db" --json | .venv/bin/python -c 'import json, sys; print(len(json.load(sys.stdin)))')
  $M generate --db "$db" --condition original --count "$n" --total --seed "$SEED" --instrumental-seeds
  for kind in unmatched_key unmatched_tempo unmatched_both; do
    $M generate --db "$db" --condition "$kind" --count "$n" --total --seed "$((SEED + 1))" --instrumental-seeds
  done
  $M generate --db "$db" --condition matched --count "$n" --total --seed "$((SEED + 2))" --instrumental-seeds
}

train() {  # NAME DB...: one system (its network from NAME) trained on the DBs, into $OUT/NAME
  local name=$1; shift
  local sys=${name#*_}
  local arch=${sys%_lsro} lsro="" transpose=0
  [ "$sys" != "$arch" ] && lsro="--lsro"
  [ "$arch" = premix ] && transpose=$TRANSPOSE
  if [ -f "$OUT/$name/checkpoint.json" ] && $M shell -c "from scoring.models import System; import sys; sys.exit(0 if System.objects.filter(name='$name').exists() else 1)"; then
    say "$name: trained already ($OUT/$name)"
    return
  fi
  say "training $name on $* ($EPOCHS epochs at most, width $WIDTH, pitch-band, 8 crops of 3 s, transposed ±$transpose semitones)"
  $M train --db "$@" --arch "$arch" $lsro --epochs "$EPOCHS" --seed "$SEED" --width "$WIDTH" --pitch-band \
    --crop-offsets 0,3,6,9,12,15,18,21 --transpose "$transpose" --name "$name" --out "$OUT/$name" \
    ${DEVICE:+--device "$DEVICE"}
}

candidates real-train
# generated songs: 48 multitrack songs imported as stems (ground-truth parts, no separation)
if [ ! -d data/songs-train ]; then .venv/bin/python -m generation.synth_songs data/songs-train --count 48 --seed 11; fi
$M ingest data/songs-train --db gen-train --separator stems
candidates gen-train

# the four systems, each network on the source that measured best for it (README)
systems=(both_premix real_postmix both_premix_lsro real_postmix_lsro)
train both_premix real-train gen-train
train real_postmix real-train
train both_premix_lsro real-train gen-train
train real_postmix_lsro real-train
if [ "${COMPARE:-0}" = 1 ]; then  # every network on real-train, gen-train and both
  for sys in premix postmix premix_lsro postmix_lsro; do
    for source in real gen both; do
      name="${source}_$sys"
      [[ " ${systems[*]} " == *" $name "* ]] && continue
      case $source in real) dbs=(real-train) ;; gen) dbs=(gen-train) ;; both) dbs=(real-train gen-train) ;; esac
      train "$name" "${dbs[@]}"
      systems+=("$name")
    done
  done
fi

say "Table 1 and R@k on the held-out packages (real-held)"
$M evaluate --db real-held --system "${systems[@]}" amu amu_rhythm --per-seed 5 --json "$OUT/table1.json"
for db in real-train real-held; do
  $M clips --db "$db" | tail -n 1
done
say "done in $(( $(date +%s) - start )) s; checkpoints and sidecars in $OUT/"
