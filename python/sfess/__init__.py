"""sfess: exact k-subset sampling for PyTorch, and a trainer for rewards you cannot
differentiate (SFESS, ICLR 2025).

- ``KSubset(logits, k)``: the k-subset (conditional Poisson) law as a
  ``torch.distributions.Distribution``, exact samples and differentiable statistics;
- ``surrogate_loss(log_prob, losses)``: SFESS + VR in your own training loop;
- ``Agent(reward, n, k)``: the toolkit's trainer with a Python reward;
- ``train(env)`` and ``envs()``: the registered environments, as ``sfess-agent train``.
"""

# libtorch's libraries come from the torch that is imported here: the extension links
# against them (it was built against this same PyTorch, 2.11.0).
import torch as _torch

if not _torch.__version__.startswith("2.11."):
    raise ImportError(
        f"sfess was built against PyTorch 2.11.0 (the libtorch of tch 0.24) and cannot load with "
        f"PyTorch {_torch.__version__}: pip install torch==2.11.0"
    )

from . import _sfess
from .agent import Agent, envs, train
from .distribution import KSubset
from .losses import surrogate_loss

__version__ = _sfess.__version__
__all__ = ["KSubset", "surrogate_loss", "Agent", "train", "envs"]
