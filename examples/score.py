#!/usr/bin/env python3
"""A reward command for `sfess-agent train --env cmd` (the protocol: docs/book/src/cmd.md).

Facility location (k-median): choose k of n candidate sites in the unit square; the reward is
minus the mean distance from 200 demand points to their nearest chosen site. The sites and
points are fixed by a seed, so every request scores the same problem. The answer to the baseline
request (the one marked "baseline": "random") also reports greedy facility location, the classical
method, as the baseline `greedy`. Standard library only.

    ./sfess-agent train --env cmd --reward-cmd 'python3 examples/score.py' --n 100 --k 10 --steps 300
"""
import json
import math
import random
import sys

rng = random.Random(0)
SITES = [(rng.random(), rng.random()) for _ in range(100)]
DEMAND = [(rng.random(), rng.random()) for _ in range(200)]


def mean_distance(chosen):
    """Mean distance of the demand points to their nearest chosen site."""
    sites = [SITES[i] for i in chosen]
    return sum(min(math.dist(p, s) for s in sites) for p in DEMAND) / len(DEMAND)


def greedy(k):
    """Greedy facility location: k times, add the site that lowers the mean distance most."""
    nearest = [math.inf] * len(DEMAND)
    chosen = []
    for _ in range(k):
        def total(site):
            return sum(min(d, math.dist(p, SITES[site])) for d, p in zip(nearest, DEMAND))
        best = min((i for i in range(len(SITES)) if i not in chosen), key=total)
        chosen.append(best)
        nearest = [min(d, math.dist(p, SITES[best])) for d, p in zip(nearest, DEMAND)]
    return sorted(chosen)


for request in sys.stdin:  # one JSON line per batch; the loop ends when sfess-agent closes stdin
    batch = json.loads(request)
    if batch["n"] != len(SITES):
        print(f"score.py knows {len(SITES)} sites, got n = {batch['n']}", file=sys.stderr)
        sys.exit(2)
    distances = [mean_distance(action) for action in batch["actions"]]
    answer = {"rewards": [-d for d in distances], "info": {"best_distance": min(distances)}}
    if batch.get("baseline") == "random":  # the baseline request: add the classical method's score
        answer["baselines"] = {"greedy": -mean_distance(greedy(batch["k"]))}
    print(json.dumps(answer), flush=True)
