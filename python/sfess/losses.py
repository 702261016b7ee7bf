"""The score-function surrogate: SFESS (paper Eq. 4) and SFESS + VR (Eq. 7) in one line of a
training loop."""

from __future__ import annotations

import numbers

import torch

__all__ = ["surrogate_loss"]


def surrogate_loss(log_prob: torch.Tensor, losses: torch.Tensor, baseline="leave-one-out") -> torch.Tensor:
    r"""A scalar to call ``.backward()`` on, whose gradient estimates that of the expected loss.

    ``log_prob`` and ``losses`` have shape ``[S, ...]``: ``S`` samples ``z_s`` of each row
    (``dist.sample((S,))``), their ``dist.log_prob(z)`` and the loss ``f(z_s)`` of each.
    The gradient of the result is, averaged over the rows (so that it is minimised like any
    mean-reduced loss; pass ``-reward`` to maximise a reward),

    .. math::
        \frac{1}{S} \sum_s \big(f(z_s) - b_s\big)\, \nabla \log p(z_s) \;+\; \frac{1}{S}\sum_s \nabla f(z_s),

    with

    - ``baseline="leave-one-out"`` (SFESS + VR): ``b_s = mean of f(z_j), j ≠ s`` (``S ≥ 2``);
      the estimate stays unbiased and its variance falls;
    - ``baseline=None`` (SFESS): ``b_s = 0``;
    - a number or tensor broadcastable to ``losses.shape[1:]``: a fixed baseline (it must not
      depend on this step's samples, or the estimate is biased).

    The second term is the losses' own gradient, for losses that depend differentiably on
    parameters (a decoder, a classifier); a black box's losses have none. The result's value
    is the mean loss, so it can be logged as it is.
    """
    if not isinstance(log_prob, torch.Tensor) or not isinstance(losses, torch.Tensor):
        raise TypeError("log_prob and losses must be torch.Tensor")
    if log_prob.dim() < 1 or log_prob.shape != losses.shape:
        raise ValueError(
            f"log_prob and losses must both have shape [S, ...] (S samples of each row), "
            f"got {tuple(log_prob.shape)} and {tuple(losses.shape)}"
        )
    samples = losses.shape[0]
    detached = losses.detach()
    if isinstance(baseline, str):
        if baseline != "leave-one-out":
            raise ValueError(f'unknown baseline {baseline!r}: expected "leave-one-out", None, or a number or tensor')
        if samples < 2:
            raise ValueError("the leave-one-out baseline needs at least 2 samples per row, got 1")
        # b_s = (Σ_j f_j − f_s) / (S − 1).
        centred = detached - (detached.sum(0, keepdim=True) - detached) / (samples - 1)
    elif baseline is None:
        centred = detached
    elif isinstance(baseline, (numbers.Real, torch.Tensor)) and not isinstance(baseline, bool):
        centred = detached - torch.as_tensor(baseline, dtype=detached.dtype, device=detached.device).detach()
    else:
        raise TypeError(f"baseline must be \"leave-one-out\", None, or a number or tensor, got {type(baseline).__name__}")
    score_term = (centred * (log_prob - log_prob.detach())).mean()
    return losses.mean() + score_term
