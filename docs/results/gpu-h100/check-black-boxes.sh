#!/usr/bin/env bash
# GPU check of the black-box environments on CUDA, and a look at the k-NN step's CPU share.
set -u
TL=$(/opt/torch/.venv/bin/python -c 'import torch,os;print(os.path.dirname(torch.__file__)+"/lib")')
export LD_LIBRARY_PATH="$TL:$PWD/.gpu/lib"
B=.gpu/sfess-agent
D=.gpu/data
PY=/opt/torch/.venv/bin/python
mkdir -p /tmp/runs
run() { local name=$1; shift; local t0=$(date +%s%N)
  timeout 120 $B --device cuda train "$@" --data-dir $D --out /tmp/runs/$name --quiet --json >> $OUT/summaries.txt 2>&1
  local rc=$?; echo "$name rc=$rc $(( ($(date +%s%N) - t0) / 1000000 )) ms"; }
run sensor-mnist --env sensor-placement-mnist --steps 1000 --eval-every 500
run sensor-synthetic --env sensor-placement-synthetic --steps 1000 --eval-every 500
run fs-knn --env feature-selection-knn-mnist --steps 300 --eval-every 150
run coverage --env max-coverage --steps 1000 --eval-every 500
run cmd --env cmd --reward-cmd "$PY examples/score.py" --n 100 --k 10 --steps 200 --eval-every 100
cat $OUT/summaries.txt
for t in 16 4 2; do echo "== RAYON_NUM_THREADS=$t"; RAYON_NUM_THREADS=$t timeout 60 $B --device cuda bench distribution --seconds 1 2>&1 | grep -E '^\| (stable normaliser|32 exact)' ; done
