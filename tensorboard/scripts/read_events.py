#!/usr/bin/env python3
"""Prints, as JSON, the scalars and histograms of the TensorBoard event files in a folder.

Usage: read_events.py DIR   (needs the `tensorboard` package: pip install tensorboard)

Reads DIR with TensorBoard's own EventAccumulator (every event kept, none sampled away) and
prints {"scalars": {tag: [[step, wall_time, value], ...]}, "histograms": {tag: [[step,
wall_time, {min, max, num, sum, sum_squares, bucket_limit, bucket}], ...]}}. NaN and
infinities print as the strings "NaN", "Infinity", "-Infinity" (JSON has no such numbers).
"""
import json
import math
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def number(x):
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: read_events.py DIR")
    acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    out = {"scalars": {}, "histograms": {}}
    for tag in tags["scalars"]:
        out["scalars"][tag] = [[e.step, e.wall_time, number(e.value)] for e in acc.Scalars(tag)]
    for tag in tags["histograms"]:
        rows = []
        for e in acc.Histograms(tag):
            h = e.histogram_value
            rows.append([e.step, e.wall_time, {
                "min": number(h.min), "max": number(h.max), "num": h.num, "sum": number(h.sum),
                "sum_squares": number(h.sum_squares),
                "bucket_limit": [number(x) for x in h.bucket_limit],
                "bucket": list(h.bucket),
            }])
        out["histograms"][tag] = rows
    # Valid JSON, one row (event) per line.
    lines = []
    for kind in ("scalars", "histograms"):
        tags = [
            "  %s: [\n%s\n  ]" % (json.dumps(tag), ",\n".join("   " + json.dumps(row) for row in rows))
            for tag, rows in out[kind].items()
        ]
        lines.append(' "%s": {%s}' % (kind, ("\n" + ",\n".join(tags) + "\n ") if tags else ""))
    print("{\n" + ",\n".join(lines) + "\n}")


if __name__ == "__main__":
    main()
