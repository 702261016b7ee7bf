"""Python's overhead on the k-subset law: `sfess.KSubset` from Python against the same work
in Rust alone, measured in one process, alternating, on the same tensors.

The work, per repetition: the law of B rows of n logits (the normaliser and the marginals as
tensors) and S exact samples per row. Python's side is what a PyTorch user writes,

    dist = sfess.KSubset(logits, k); dist.log_normalizer; dist.marginals; dist.sample((S,))

(timed with plain logits, and with logits that require a gradient, as in training, where
the normaliser and marginals also build their autograd nodes), and Rust's is
`ConditionalPoisson::new`, `log_normalizer`, `marginals` and `sample` called
from Rust (`sfess._sfess.rust_law_seconds`), with no Python in between. Python's samples draw
their seeds from PyTorch's generator, Rust's from its own: the same sampler either way.

    python python/bench/ksubset.py [--repeats 200] [--json FILE]

Run it on a quiet machine: nothing else building, testing or benchmarking.
"""

import argparse
import json
import platform
import statistics
import time

import torch

import sfess
from sfess import _sfess

SHAPES = [(128, 128, 10), (128, 784, 50)]
SAMPLES = 32


def python_seconds(logits: torch.Tensor, k: int) -> float:
    started = time.perf_counter()
    dist = sfess.KSubset(logits, k)
    dist.log_normalizer
    dist.marginals
    dist.sample((SAMPLES,))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    torch.manual_seed(0)
    results = []
    for batch, n, k in SHAPES:
        logits = torch.randn(batch, n)
        for _ in range(10):  # warm-up: thread pools, allocator
            python_seconds(logits, k)
            _sfess.rust_law_seconds(logits, k, SAMPLES, 1)
        trainable = logits.clone().requires_grad_(True)
        python, python_graph, rust = [], [], []
        for _ in range(args.repeats):
            python.append(python_seconds(logits, k))
            python_graph.append(python_seconds(trainable, k))
            rust.extend(_sfess.rust_law_seconds(logits, k, SAMPLES, 1))
        row = {
            "batch": batch, "n": n, "k": k, "samples": SAMPLES, "repeats": args.repeats,
            "python_median_s": statistics.median(python),
            "python_with_autograd_median_s": statistics.median(python_graph),
            "rust_median_s": statistics.median(rust),
        }
        row["ratio"] = row["python_median_s"] / row["rust_median_s"]
        row["ratio_with_autograd"] = row["python_with_autograd_median_s"] / row["rust_median_s"]
        results.append(row)
        print(
            f"B = {batch}, n = {n}, k = {k}, {SAMPLES} samples per row (medians of {args.repeats}): "
            f"Python {1e3 * row['python_median_s']:.3f} ms (ratio {row['ratio']:.2f}), "
            f"with logits requiring grad {1e3 * row['python_with_autograd_median_s']:.3f} ms "
            f"(ratio {row['ratio_with_autograd']:.2f}); Rust {1e3 * row['rust_median_s']:.3f} ms"
        )
    if args.json:
        machine = {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()}
        with open(args.json, "w") as out:
            json.dump({"machine": machine, "results": results}, out, indent=2)
            out.write("\n")


if __name__ == "__main__":
    main()
