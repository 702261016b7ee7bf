#!/usr/bin/env bash
# The GPU check of the k-subset law on the device (issue 10), as one script for one lease.
# PREPARED ON THE CPU AND NOT RUN YET: no GPU machine was lent to the session that wrote it.
# Run it from the repository root with the release binary and the data carried in .gpu/:
#   mkdir -p .gpu && cp target/release/sfess-agent .gpu/ && cp -r ~/.cache/sfess-agent/data .gpu/
#   (device tool) carry [".gpu"], command "bash docs/results/gpu-device-law/check.sh", timeout 580
# Everything it prints also goes to $OUT; it stops each part at its own time limit.
set -u
TL=$(/opt/torch/.venv/bin/python -c 'import torch,os;print(os.path.dirname(torch.__file__)+"/lib")')
export LD_LIBRARY_PATH="$TL"
B=.gpu/sfess-agent
D=.gpu/data
mkdir -p /tmp/runs
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; } | tee $OUT/machine.txt

# 1. The same law on the device: the parallel backend on CUDA against the stable one (host).
for n in 128 784 4096; do
  /opt/torch/.venv/bin/python -c "import torch; torch.manual_seed($n); print(','.join(map(str, (torch.randn($n, dtype=torch.float64) * 2).tolist())))" > /tmp/logits-$n.txt
  for backend in stable parallel; do
    timeout 30 $B --device cuda inspect --k 10 --normalizer $backend --logits-file /tmp/logits-$n.txt --samples 20000 \
      > $OUT/inspect-$n-$backend.json 2>&1
  done
done
/opt/torch/.venv/bin/python - "$OUT" <<'PY' | tee $OUT/agreement.txt
import json, sys, glob
out = sys.argv[1]
for n in (128, 784, 4096):
    s, p = (json.load(open(f"{out}/inspect-{n}-{b}.json")) for b in ("stable", "parallel"))
    dz = abs(s["log_normalizer"] - p["log_normalizer"]) / max(1, abs(s["log_normalizer"]))
    dpi = max(abs(a - b) for a, b in zip(s["marginals"], p["marginals"]))
    se = max(abs(f - m) / max((m * (1 - m) / 20000) ** 0.5, 1e-12) for f, m in zip(p["inclusion_frequencies"], s["marginals"]) if 0.01 < m < 0.99)
    print(f"n={n}: log e_k rel. diff {dz:.2e}, max |Δπ| {dpi:.2e}, device sampler's worst frequency {se:.1f} SE")
PY

# 2. The distribution alone and one training step, with synchronisation (parallel is the
#    CUDA default; stable on CUDA is the host round trip of before, for comparison).
timeout 150 $B --device cuda bench distribution --seconds 0.5 > $OUT/bench-distribution.md 2>&1
timeout 150 $B --device cuda bench train --seconds 2 --data-dir $D > $OUT/bench-train.md 2>&1
timeout 90 $B --device cuda bench train --seconds 1 --data-dir $D --normalizer stable > $OUT/bench-train-stable.md 2>&1
cat $OUT/bench-distribution.md $OUT/bench-train.md $OUT/bench-train-stable.md

# 3. The paper's k-NN on MNIST, the full 50,000 steps (target: <= 2 minutes of training,
#    test accuracy 0.949 +- 0.002). Metrics come back even when the time box cuts it off.
timeout ${KNN_SECONDS:-200} $B --device cuda train --env knn-mnist --data-dir $D --out /tmp/runs/knn --quiet --json \
  > $OUT/knn-summary.json 2>&1
echo "knn rc=$?"
cp /tmp/runs/knn/metrics.jsonl $OUT/knn-metrics.jsonl 2>/dev/null
cat $OUT/knn-summary.json; grep validation $OUT/knn-metrics.jsonl | tail -2
