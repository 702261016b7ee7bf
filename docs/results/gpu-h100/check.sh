#!/usr/bin/env bash
# One GPU check of the CUDA paths: inspect, both benchmarks, short FS and VAE runs, then
# k-NN MNIST for as long as the time box allows (metrics come back even when cut off).
set -u
TL=$(/opt/torch/.venv/bin/python -c 'import torch,os;print(os.path.dirname(torch.__file__)+"/lib")')
export LD_LIBRARY_PATH="$TL:$PWD/.gpu/lib"
B=.gpu/sfess-agent
D=.gpu/data
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
nproc
/opt/torch/.venv/bin/python -c 'import torch;print(torch.__version__, torch.version.cuda)'
{ $B inspect --device cuda --k 3 --logits '[0.1,-2,1.5,0.3]'; } 2>&1 | tee $OUT/inspect.json
{ time $B --device cuda bench distribution --seconds 1; } > $OUT/bench-distribution.md 2>&1
{ time $B --device cuda bench train --seconds 3 --data-dir $D; } > $OUT/bench-train.md 2>&1
for env in feature-selection-mnist vae-mnist; do
  timeout 60 $B train --device cuda --env $env --steps 300 --eval-every 100 --lr 1e-3 --data-dir $D --out /tmp/runs/$env --quiet --json >> $OUT/summaries.txt 2>&1
  echo "$env rc=$?"
  cp /tmp/runs/$env/metrics.jsonl $OUT/$env-metrics.jsonl
done
timeout ${KNN_SECONDS:-240} $B train --device cuda --env knn-mnist --data-dir $D --out /tmp/runs/knn --quiet --json >> $OUT/summaries.txt 2>&1
echo "knn rc=$?"
cp /tmp/runs/knn/metrics.jsonl $OUT/knn-metrics.jsonl
grep validation $OUT/knn-metrics.jsonl | tail -2; cat $OUT/summaries.txt
cat $OUT/bench-train.md $OUT/bench-distribution.md
