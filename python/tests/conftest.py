"""Shared helpers of the `sfess` tests: the reference law by enumeration, and the
`sfess-agent` binary the CLI-facing tests run."""

import itertools
import os
import pathlib
import shutil

import pytest
import torch

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]


def enumerate_law(eta: torch.Tensor, k: int):
    """Every k-subset of one row of float64 logits: (subsets [C, n], log p [C], log e_k)."""
    n = eta.shape[-1]
    subsets = torch.zeros(len(list(itertools.combinations(range(n), k))), n, dtype=torch.float64)
    for row, chosen in enumerate(itertools.combinations(range(n), k)):
        subsets[row, list(chosen)] = 1
    energies = subsets @ eta
    log_normalizer = torch.logsumexp(energies, 0)
    return subsets, energies - log_normalizer, log_normalizer


@pytest.fixture(scope="session")
def sfess_agent_binary() -> str:
    """The `sfess-agent` binary: $SFESS_AGENT_BIN (scripts/test.sh sets it), else the
    checkout's release or debug build. The tests that need it fail without it."""
    candidates = [os.environ.get("SFESS_AGENT_BIN")] + [
        str(REPOSITORY / "target" / profile / "sfess-agent") for profile in ("release", "debug")
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("sfess-agent")
    if found:
        return found
    pytest.fail("no sfess-agent binary: build it (cargo build --release) or set SFESS_AGENT_BIN")
