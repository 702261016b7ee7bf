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
  "cmd|--env cmd --env-option command=python3\ examples/score.py --env-option n=20 -k 4 --batch-size 2"
  "cmd-contextual|--env cmd --env-option command=python3\ examples/contextual_score.py --env-option n=12 -k 3 --env-option context-dim=4 --policy mlp --batch-size 4"
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

python3 - "$out" <<'PYTHON'
import json, pickle, sys, zipfile
from pathlib import Path

out = Path(sys.argv[1])
CLOCKS = {"meta|training_seconds", "meta|elapsed_seconds", "meta|checksum"}

def records(path):
    if not path.exists():
        return None
    rows = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row.get("metric") == "seconds_per_step":
            continue
        row.pop("elapsed_seconds", None)
        rows.append(row)
    return rows

def summary(path):
    value = json.loads(path.read_text())
    value.pop("seconds_per_step", None)
    return value

class Stub:
    def __init__(self, *args):
        self.args = args
    def __setstate__(self, state):
        self.state = state

class Reader(pickle.Unpickler):
    def find_class(self, module, name):
        if name in ("OrderedDict", "dict"):
            return dict
        return lambda *args: Stub(*args)
    def persistent_load(self, pid):
        return pid

def tensors(path):
    """Every tensor's name, with its storage's bytes, offset, size and stride."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        root = names[0].split("/")[0]
        value = Reader(archive.open(f"{root}/data.pkl")).load()
        items = value.items() if isinstance(value, dict) else enumerate(value)
        found = {}
        def storage_bytes(stub):
            storage = stub.args[0]
            return archive.read(f"{root}/data/{storage[2]}"), stub.args[1:4]
        if isinstance(value, dict):
            for name, stub in value.items():
                found[name] = storage_bytes(stub)
        else:
            # tch's save_multi: a list of (name, tensor) pairs, or a stub holding them.
            pairs = value if isinstance(value, (list, tuple)) else value.args[0]
            for name, stub in pairs:
                found[name] = storage_bytes(stub)
        return found

failed = 0
for old in sorted((out / "old").rglob("config.json")):
    folder = old.parent
    name = folder.relative_to(out / "old")
    new = out / "new" / name
    problems = []
    for file in ("metrics.jsonl", "marginals.jsonl"):
        if records(folder / file) != records(new / file):
            problems.append(file)
    if (folder / "summary.json").exists() != (new / "summary.json").exists():
        problems.append("summary.json (present in one only)")
    elif (folder / "summary.json").exists() and summary(folder / "summary.json") != summary(new / "summary.json"):
        problems.append("summary.json")
    if json.loads((folder / "config.json").read_text()) != json.loads((new / "config.json").read_text()):
        problems.append("config.json")
    a, b = tensors(folder / "checkpoint.ot"), tensors(new / "checkpoint.ot")
    if set(a) != set(b):
        problems.append(f"checkpoint names {sorted(set(a) ^ set(b))}")
    else:
        differ = [key for key in a if key not in CLOCKS and a[key] != b[key]]
        if differ:
            problems.append(f"checkpoint tensors {differ}")
        if len(a) < 4:
            problems.append(f"checkpoint read as only {len(a)} tensors")
    print(f"{name}: {'same' if not problems else 'DIFFERENT: ' + ', '.join(problems)} ({len(a)} tensors)")
    failed += bool(problems)
sys.exit(1 if failed else 0)
PYTHON
