#!/usr/bin/env bash
# SFESS + VR over episodes on the two shipped sequential environments, 3 seeds each, against
# their classical baselines and random subsets on 512 held-out test episodes.
# Writes OUT/slate and OUT/sensor-schedule (run folders, table.md, curves) and copies the
# tables and learning curves here. Run from the repository root:
#   docs/results/episodes/run.sh [OUT]      (about 10 minutes on 2 CPU cores)
set -euo pipefail
out=${1:-runs/episodes}
here=docs/results/episodes
for env in slate sensor-schedule; do
  ./sfess-agent compare --env "$env" --estimators sfess-vr --seeds 0,1,2 --steps 3000 --eval-every 500 \
    --policy mlp --hidden 128 --reward-to-go --batch-size 16 --samples 16 --jobs 2 --out "$out/$env"
  cp "$out/$env/table.md" "$here/$env.md"
  cp "$out/$env/curves.png" "$here/$env-curves.png"
done
