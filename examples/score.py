#!/usr/bin/env python3
"""A reward command for `sfess-agent train --env cmd` (the protocol is in the README).

Facility location (k-median): choose k of n candidate sites in the unit square; the reward is
minus the mean distance from 200 demand points to their nearest chosen site. The sites and
points are fixed by a seed, so every request scores the same problem. Standard library only.

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


for request in sys.stdin:  # one JSON line per batch; the loop ends when sfess-agent closes stdin
    batch = json.loads(request)
    if batch["n"] != len(SITES):
        print(f"score.py knows {len(SITES)} sites, got n = {batch['n']}", file=sys.stderr)
        sys.exit(2)
    distances = [mean_distance(action) for action in batch["actions"]]
    answer = {"rewards": [-d for d in distances], "info": {"best_distance": min(distances)}}
    print(json.dumps(answer), flush=True)
