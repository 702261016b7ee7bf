#!/usr/bin/env bash
# Sweeps on a local single-node Slurm cluster (scripts/slurm-cluster.sh): the time from
# `sweep` to the first task running, the overhead per task, and the smoke grid of paper
# Table 4 (6 estimators x 2 seeds x 200 steps on MNIST) submitted, finished and reported.
# Run from the repository root after `cargo build --release`, with nothing else running:
#     docs/results/slurm-local/measure.sh > docs/results/slurm-local/measure.txt 2>&1
set -euo pipefail
bin="$PWD/target/release/sfess-agent"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scratch="$(mktemp -d)"
cluster="$scratch/cluster"
trap 'scripts/slurm-cluster.sh down "$cluster" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
scripts/slurm-cluster.sh install
eval "$(scripts/slurm-cluster.sh up "$cluster" 2>/dev/null)"
now() { date +%s.%N; }
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "slurm: $(sinfo --version)"

# 1. Ten one-step tasks, one at a time: from sweep to the first task running, and per task.
cat > "$scratch/tiny.toml" <<'TOML'
[fixed]
env = "max-coverage"
steps = 1
eval_every = 1
[grid]
seed = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
TOML
start=$(now)
"$bin" sweep "$scratch/tiny.toml" --out "$scratch/tiny" --scheduler slurm --jobs 1 2>/dev/null
submitted=$(now)
until squeue --noheader --array --format='%T' | grep -q RUNNING || [ -e "$scratch/tiny/seed0/summary.json" ]; do sleep 0.05; done
first=$(now)
"$bin" sweep status "$scratch/tiny" --wait > /dev/null
ended=$(now)
runs=$(python3 -c '
import json, sys
# Each run own seconds: the clock of its test record (training, validation and test).
print(sum(max(json.loads(l)["elapsed_seconds"] for l in open(f)) for f in sys.argv[1:]))' "$scratch"/tiny/seed*/metrics.jsonl)
python3 - "$start" "$submitted" "$first" "$ended" "$runs" <<'PY'
import sys
start, submitted, first, ended, runs = map(float, sys.argv[1:])
print(f"sweep -> submitted (checks, scripts, two sbatch): {submitted - start:.2f} s")
print(f"sweep -> first task running: {first - start:.2f} s")
print(f"10 one-step tasks, one at a time, sweep -> report written: {ended - start:.2f} s")
print(f"  the runs' own time (training, validation, test; in their metrics): {runs:.2f} s")
print(f"  overhead per task (scheduling, process start, libtorch, report job): {(ended - start - runs) / 10:.2f} s")
PY
start=$(now)
"$bin" sweep "$scratch/tiny.toml" --out "$scratch/tiny-local" --jobs 1 > /dev/null 2>&1
echo "the same 10 tasks with --scheduler local --jobs 1: $(python3 -c "print(f'{$(now) - $start:.2f}')") s"

# 2. The smoke grid of Table 4, two tasks side by side with one CPU each.
start=$(now)
"$bin" sweep sweeps/table4-smoke.toml --out "$scratch/table4-smoke" --scheduler slurm --jobs 2 --cpus-per-task 1 \
    --wait --quiet > "$here/table4-smoke.md"
echo "table4-smoke (12 runs x 200 steps, --jobs 2 --cpus-per-task 1): $(python3 -c "print(f'{$(now) - $start:.1f}')") s from sweep to report"
"$bin" sweep status "$scratch/table4-smoke" | head -1
grep -h "threads\|attempt" "$scratch"/table4-smoke/slurm/logs/task-0.out | head -2
cp "$scratch"/table4-smoke/{curves.png,curves-seconds.png,speed.png,summary.json,table.csv} "$here/"
cat "$here/table4-smoke.md"
