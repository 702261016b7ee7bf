#!/usr/bin/env bash
# Two builds of sfess-agent train the same short runs, one per shipped environment (and a
# resumed run, a comparison, a run of each policy), and this checks that they wrote the same
# results: every record of metrics.jsonl but the clocks (`elapsed_seconds` and the
# `seconds_per_step` records), marginals.jsonl but its clock, summary.json but
# `seconds_per_step`, and every tensor of checkpoint.ot but the clocks (and the checksum
# over them), byte for byte.
#
# Usage: scripts/check-same-runs.sh OLD_BINARY NEW_BINARY [FOLDER]
#   A refactoring keeps behaviour when this prints "same" for every run. Run from the
#   repository root (the reward commands are examples/*.py); FOLDER (default: a new temporary
#   one) receives old/ and new/ run folders. The MNIST tasks need the data sets
#   (scripts/fetch-data.sh).
set -euo pipefail

old=$(realpath "$1")
new=$(realpath "$2")
out=${3:-$(mktemp -d)}
mkdir -p "$out"
if [ -e "$out/old" ] || [ -e "$out/new" ]; then
  echo "$out holds old/ or new/ already: give an empty folder" >&2
  exit 2
fi

short=(--steps 12 --eval-every 5 --quiet --no-figures --device cpu)
# name | flags
cases=(
  "knn-mnist|--env knn-mnist --estimator sfess-vr --batch-size 4 -k 3"
  "knn-fashion|--env knn-fashion --estimator gs --samples 1 --batch-size 4 -k 3"
  "feature-selection-mnist|--env feature-selection-mnist --estimator simple --batch-size 8 -k 20"
  "feature-selection-fashion|--env feature-selection-fashion --estimator stgs --batch-size 8 -k 20"
  "vae-mnist|--env vae-mnist --estimator imle --batch-size 8"
  "vae-fashion|--env vae-fashion --estimator sfess --batch-size 8"
  "cmd|--env cmd --env-option command=python3\ examples/score.py --env-option n=100 -k 4 --batch-size 2"
  "cmd-contextual|--env cmd --env-option command=python3\ examples/contextual_score.py --env-option n=20 -k 3 --env-option context-dim=4 --policy mlp --batch-size 4"
  "cmd-episodes|--env cmd-episodes --env-option command=python3\ examples/episodes.py --env-option n=8 --env-option state-dim=8 --env-option horizon=5 -k 2 --policy mlp --batch-size 4"
  "sensor-placement-synthetic|--env sensor-placement-synthetic"
  "sensor-placement-mnist|--env sensor-placement-mnist --estimator sfess"
  "sensor-placement-fashion|--env sensor-placement-fashion"
  "feature-selection-knn-mnist|--env feature-selection-knn-mnist --env-option references=200"
  "feature-selection-knn-fashion|--env feature-selection-knn-fashion --env-option references=200"
  "max-coverage|--env max-coverage --sampler gumbel-topk --normalizer parallel"
  "sensor-schedule|--env sensor-schedule --policy mlp-action --batch-size 4 --reward-to-go --discount 0.9"
  "slate|--env slate --policy mlp --batch-size 4"
)

run_all() {
  local binary=$1 side=$2
  for case in "${cases[@]}"; do
    local name=${case%%|*} flags=${case#*|}
    case $flags in *--samples*) ;; *) flags="$flags --samples 4" ;; esac
    eval "set -- $flags"
    "$binary" train "$@" "${short[@]}" --out "$out/$side/$name" >/dev/null
  done
  # A run extended by --resume, and a comparison's runs.
  "$binary" train --env max-coverage --steps 7 --eval-every 5 --samples 4 --quiet --no-figures --device cpu \
    --out "$out/$side/resumed" >/dev/null
  "$binary" train --resume "$out/$side/resumed" --steps 16 --quiet --no-figures >/dev/null
  "$binary" compare --env max-coverage --estimators sfess-vr,sfess --seeds 0,1 --steps 8 --eval-every 4 \
    --samples 4 --device cpu --out "$out/$side/compare" >/dev/null
}

run_all "$old" old
run_all "$new" new

python3 "$(dirname "$0")/compare-runs.py" "$out/old" "$out/new"
