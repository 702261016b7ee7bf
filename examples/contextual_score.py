#!/usr/bin/env python3
"""A contextual reward command for `--env cmd` in contextual mode (the protocol: docs/book/src/cmd.md).

A contextual bandit with a hidden linear structure: each context x is a random point on the unit
sphere in 4 dimensions, each of the 20 items j has a hidden unit vector w_j, and a subset of k
items scores the sum of <w_j, x> over its items. The best subset is the k items most aligned with
x, so it changes with the context: a policy must read x (an MLP can learn to). The command
supplies the contexts too, drawn from the seed of each request. Standard library only.
"""
import json
import random
import sys

N, DIM = 20, 4  # items, numbers per context


def unit_vector(rng):
    """A uniform point on the unit sphere (a normalised Gaussian vector)."""
    v = [rng.gauss(0.0, 1.0) for _ in range(DIM)]
    norm = sum(c * c for c in v) ** 0.5
    return [c / norm for c in v]


HIDDEN = random.Random(0)  # a fixed seed: the same hidden vectors in every run
WEIGHTS = [unit_vector(HIDDEN) for _ in range(N)]


def value(j, x):
    """Item j's value in context x: <w_j, x>."""
    return sum(w * c for w, c in zip(WEIGHTS[j], x))


contexts = []  # the contexts sent last: a rewards request scores actions for them
for line in sys.stdin:  # one JSON request per line; the loop ends when sfess-agent closes stdin
    request = json.loads(line)
    if request["request"] == "contexts":
        rng = random.Random(request["seed"])  # the same seed gives the same contexts
        contexts = [unit_vector(rng) for _ in range(request["rows"])]
        print(json.dumps({"contexts": contexts}), flush=True)
        continue
    if request["n"] != N or not contexts:
        print(f"contextual_score.py needs n = {N} and contextual mode", file=sys.stderr)
        sys.exit(2)
    # Sample-major: action i is for context row i % rows.
    rows = len(contexts)
    rewards = [sum(value(j, contexts[i % rows]) for j in a) for i, a in enumerate(request["actions"])]
    # The best reward of each context (its k largest item values), for comparison.
    best = [sum(sorted((value(j, x) for j in range(N)), reverse=True)[: request["k"]]) for x in contexts]
    print(json.dumps({"rewards": rewards, "info": {"optimal": sum(best) / rows}}), flush=True)
