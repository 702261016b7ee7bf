#!/usr/bin/env python3
"""Checks a run folder's TensorBoard event file with TensorBoard itself.

Usage: check-tensorboard.py RUN   (needs the `tensorboard` package; scripts/test.sh installs it)

Reads RUN with TensorBoard's own EventAccumulator and checks that every record of
RUN/metrics.jsonl is the scalar SPLIT/METRIC at its step with its value (in float32), that
every validation of RUN/marginals.jsonl is the histogram validation/marginals at its step
with one count per item, and that no tag has a step twice. Prints one line; exits 1 on a
mismatch.
"""
import json
import struct
import sys
from collections import Counter

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check-tensorboard.py RUN")
    run = sys.argv[1]
    acc = EventAccumulator(run, size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    scalars = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in tags["scalars"]}
    histograms = {tag: [(e.step, e.histogram_value) for e in acc.Histograms(tag)] for tag in tags["histograms"]}
    problems = []
    for tag, events in list(scalars.items()) + list(histograms.items()):
        twice = [step for step, count in Counter(step for step, _ in events).items() if count > 1]
        if twice:
            problems.append(f"{tag} has steps {twice} twice")
    records = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
    for r in records:
        tag = f"{r['split']}/{r['metric']}"
        found = [v for step, v in scalars.get(tag, []) if step == r["step"]]
        if found != [f32(r["value"])]:
            problems.append(f"{tag} at step {r['step']}: TensorBoard has {found}, the record {r['value']}")
    marginals = [json.loads(line) for line in open(f"{run}/marginals.jsonl")]
    for m in marginals:
        found = [h for step, h in histograms.get("validation/marginals", []) if step == m["step"]]
        if len(found) != 1 or found[0].num != len(m["marginals"]) or sum(found[0].bucket) != len(m["marginals"]):
            problems.append(f"validation/marginals at step {m['step']}: {found}")
    expected = {f"{r['split']}/{r['metric']}" for r in records}
    extra = set(scalars) - expected - {"train/steps_per_second"}
    if extra:
        problems.append(f"scalars no record has: {sorted(extra)}")
    if problems:
        print("TensorBoard disagrees with the run's records:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print(f"TensorBoard reads {len(records)} records of {len(scalars)} scalar tags and "
          f"{len(marginals)} marginals histograms of {run}, each at its step once")


if __name__ == "__main__":
    main()
