#!/usr/bin/env bash
# The README's pictures: one short run of each kind of task, whose figures `train` draws at
# its end (`sfess-agent show OUT/NAME` draws them again from the run's checkpoint). Each run's
# PNGs, subset.json and summary.json are copied here.
#
# Usage: docs/results/figures/run.sh [OUT]   (runs go to OUT, default /tmp/sfess-figures)
# SFESS=path/to/sfess-agent picks the binary (default: the ./sfess-agent wrapper).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"
sfess="${SFESS:-./sfess-agent}"
out="${1:-/tmp/sfess-figures}"
here="docs/results/figures"
run() {
    local name="$1"
    shift
    rm -rf "${out:?}/$name"
    "$sfess" train "$@" --out "$out/$name" --quiet
    rm -rf "${here:?}/$name"
    mkdir -p "$here/$name"
    cp "$out/$name"/figures/*.png "$out/$name"/figures/subset.json "$out/$name/summary.json" "$here/$name/"
}
# Paper Figure 6: the learned 2-D embedding of the validation set.
run knn-mnist --env knn-mnist --steps 5000 --eval-every 250
run knn-fashion --env knn-fashion --steps 5000 --eval-every 250
# Paper Table 2's task: 50 pixels that reconstruct the image (learning rate 1e-2, see the
# results chapter's fs-mnist-2000-lr1e-2).
run feature-selection-mnist --env feature-selection-mnist --steps 3000 --eval-every 150 --lr 1e-2
# Paper Table 3's task: the subset VAE, d = 10 subsets of 5 of 10.
run vae-mnist --env vae-mnist --steps 2000 --eval-every 100
# The black box with a classical baseline: 20 sensors on MNIST against QR pivoting.
run sensor-placement-mnist --env sensor-placement-mnist --steps 3000 --eval-every 150
# Episodes: a contextual policy's marginals, ranked.
run slate --env slate --policy mlp --hidden 128 --reward-to-go --batch-size 16 --samples 16 --steps 600 --eval-every 50
