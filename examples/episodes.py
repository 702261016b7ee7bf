#!/usr/bin/env python3
"""Machine maintenance: a sequential task for `--env cmd-episodes` (protocol: docs/book/src/episodes.md).

A plant has N = 8 machines. Each wears out at a rate of its own (machine i faster than machine
i - 1), with noise. Every step the policy services k of them: a serviced machine produces nothing
that step and comes back as new. A running machine produces 1 - wear; one worn to 1 is broken and
produces nothing until it is serviced. When two machines are broken at once the plant shuts down:
the episode terminates. The reward of a step is the mean output of the machines, the state is
each machine's wear. Each episode draws its start and its noise from random.Random(seed), so equal
seeds give equal episodes. Standard library only. Train on it (about 15 s on a CPU) with

    sfess-agent train --env cmd-episodes --env-option command='python3 examples/episodes.py' \
        --env-option n=8 --env-option state-dim=8 --env-option horizon=20 -k 2 --policy mlp \
        --estimator sfess-vr --batch-size 8 --samples 8 --steps 300 --eval-every 100 --out runs/maintenance

Over 20 steps random subsets return about 8.3 and the untrained policy 2.4; after 300 steps
SFESS + VR returns about 13.2, no machine left broken. The script also plays its own classical
policy as a baseline, `most-worn` (service the k most worn machines, about 13.3): add
`--env-option baselines=most-worn` and it is reported beside `random`.
"""
import json
import random
import sys

N = 8
SHUTDOWN = 2  # broken machines that stop the plant
RATES = [0.04 + 0.02 * i for i in range(N)]  # mean wear per step of machine i


class Episode:
    def __init__(self, seed):
        self.rng = random.Random(seed)  # this episode's noise: the same seed draws the same numbers
        self.wear = [self.rng.uniform(0.0, 0.5) for _ in range(N)]
        self.over = False

    def step(self, serviced):
        """One step with the machines in `serviced`: (reward, terminated)."""
        # The same draws every step whatever was serviced (common random numbers).
        noise = [self.rng.uniform(0.5, 1.5) for _ in range(N)]
        if self.over:  # ended already: what we answer is ignored
            return 0.0, True
        output = sum(1.0 - w for i, w in enumerate(self.wear) if i not in serviced and w < 1.0)
        for i in range(N):
            self.wear[i] = 0.0 if i in serviced else min(1.0, self.wear[i] + RATES[i] * noise[i])
        self.over = sum(w >= 1.0 for w in self.wear) >= SHUTDOWN
        return output / N, self.over


episodes = []
for line in sys.stdin:  # one JSON request per line; the loop ends when sfess-agent closes stdin
    request = json.loads(line)
    if request["request"] == "reset":
        if request["n"] != N:
            print(f"episodes.py has n = {N} machines, got n = {request['n']}", file=sys.stderr)
            sys.exit(2)
        episodes = [Episode(seed) for seed in request["seeds"]]
        print(json.dumps({"states": [e.wear for e in episodes]}), flush=True)
        continue
    if request["request"] == "baseline":  # the actions of our own policy, which the tool plays
        if request["baseline"] != "most-worn":
            print(f"episodes.py has the baseline most-worn, not {request['baseline']}", file=sys.stderr)
            sys.exit(2)
        worn = [sorted(range(N), key=lambda i: -e.wear[i])[: request["k"]] for e in episodes]
        print(json.dumps({"actions": worn}), flush=True)
        continue
    steps = [e.step(set(chosen)) for e, chosen in zip(episodes, request["actions"])]
    broken = sum(w >= 1.0 for e in episodes for w in e.wear) / len(episodes)
    print(json.dumps({
        "rewards": [reward for reward, _ in steps],
        "terminated": [ended for _, ended in steps],
        "states": [e.wear for e in episodes],
        "info": {"broken": broken},
    }), flush=True)
