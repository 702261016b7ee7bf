#!/usr/bin/env python3
"""Compares the run folders under OLD with those of the same names under NEW (what
scripts/check-same-runs.sh trains with two builds): every record of metrics.jsonl but the
clocks (`elapsed_seconds`, the `seconds_per_step` records), marginals.jsonl but its clock,
config.json, summary.json but `seconds_per_step`, and every tensor of checkpoint.ot but the
clocks (`meta.training_seconds`, `meta.elapsed_seconds` and the checksum over them), byte for
byte. Prints one line per run; exits 1 if any differs.

Usage: scripts/compare-runs.py OLD NEW
"""
import json
import pickle
import sys
import zipfile
from pathlib import Path

# Names in the archive: tch writes `.` as `|`.
CLOCKS = {"meta|training_seconds", "meta|elapsed_seconds", "meta|checksum"}


def lines(path):
    """The JSON lines as written (text: a parsed number could hide a last-bit change),
    without the clocks."""
    if not path.exists():
        return None
    kept = []
    for line in path.read_text().splitlines():
        if '"metric":"seconds_per_step"' in line:
            continue
        kept.append(line.split(',"elapsed_seconds"')[0])
    return kept


def summary(path):
    text = path.read_text()
    value = json.loads(text)
    value.pop("seconds_per_step", None)
    return value, [line for line in text.splitlines() if "seconds_per_step" not in line]


class Anything:
    """Whatever class the pickle names (a module, a storage type)."""

    def __init__(self, *args):
        self.args = args

    def __setstate__(self, state):
        self.state = state


def rebuild_tensor(storage, offset, size, stride, *rest):
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class Reader(pickle.Unpickler):
    def find_class(self, module, name):
        if name == "OrderedDict":
            return dict
        if name == "_rebuild_tensor_v2":
            return rebuild_tensor
        return Anything

    def persistent_load(self, pid):
        return pid


def tensors(path):
    """Every tensor of a checkpoint: name -> (its storage's bytes, offset, size, stride)."""
    with zipfile.ZipFile(path) as archive:
        root = archive.namelist()[0].split("/")[0]
        module = Reader(archive.open(f"{root}/data.pkl")).load()
        found = {}
        for name, (_, storage, offset, size, stride) in module.state.items():
            found[name] = (archive.read(f"{root}/data/{storage[2]}"), offset, size, stride)
        return found


def main(old_root, new_root):
    failed = 0
    runs = sorted(path.parent for path in old_root.rglob("config.json"))
    if not runs:
        print(f"no run folders under {old_root}")
        return 1
    for old in runs:
        name = old.relative_to(old_root)
        new = new_root / name
        problems = []
        if not new.is_dir():
            print(f"{name}: DIFFERENT: missing in {new_root}")
            failed += 1
            continue
        for file in ("metrics.jsonl", "marginals.jsonl"):
            if lines(old / file) != lines(new / file):
                problems.append(file)
        if json.loads((old / "config.json").read_text()) != json.loads((new / "config.json").read_text()):
            problems.append("config.json")
        if (old / "summary.json").exists() != (new / "summary.json").exists():
            problems.append("summary.json (in one only)")
        elif (old / "summary.json").exists() and summary(old / "summary.json") != summary(new / "summary.json"):
            problems.append("summary.json")
        a, b = tensors(old / "checkpoint.ot"), tensors(new / "checkpoint.ot")
        if set(a) != set(b):
            problems.append(f"checkpoint names {sorted(set(a) ^ set(b))}")
        else:
            differ = sorted(key for key in a if key not in CLOCKS and a[key] != b[key])
            if differ:
                problems.append(f"checkpoint tensors {differ}")
        records = len(lines(old / "metrics.jsonl") or [])
        verdict = "same" if not problems else "DIFFERENT: " + ", ".join(problems)
        print(f"{name}: {verdict} ({records} records, {len(a)} tensors)")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
