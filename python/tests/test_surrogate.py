"""`sfess.surrogate_loss` against the exact gradient of the expected loss of a small problem,
by enumeration."""

import pytest
import torch
from conftest import enumerate_law

import sfess

N, K = 5, 2
ETA = torch.tensor([0.4, -0.3, 1.1, 0.0, -0.8], dtype=torch.float64)
WEIGHTS = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0], dtype=torch.float64)


def loss(z: torch.Tensor) -> torch.Tensor:
    """A loss of each subset that nothing differentiates: (w·z − 1)²."""
    return (z @ WEIGHTS - 1.0) ** 2


def exact_gradient() -> torch.Tensor:
    """∇_η E[f(z)] = Σ_z p(z) f(z) (z − π)."""
    subsets, log_p, _ = enumerate_law(ETA, K)
    p = log_p.exp()
    marginals = (p[:, None] * subsets).sum(0)
    return (p[:, None] * loss(subsets)[:, None] * (subsets - marginals)).sum(0)


def per_row_estimates(samples: int, rows: int, baseline, seed: int, surrogate=sfess.surrogate_loss):
    """One estimate per row: the gradient of the surrogate for `rows` independent rows, times
    `rows` (the surrogate averages over rows)."""
    torch.manual_seed(seed)
    logits = ETA.repeat(rows, 1).requires_grad_(True)
    dist = sfess.KSubset(logits, K)
    z = dist.sample((samples,))
    surrogate(dist.log_prob(z), loss(z), baseline=baseline).backward()
    return logits.grad * rows


@pytest.mark.parametrize("baseline,samples", [("leave-one-out", 2), ("leave-one-out", 8), (None, 4), (2.5, 4)])
def test_the_estimate_is_unbiased(baseline, samples):
    estimates = per_row_estimates(samples, 20_000, baseline, seed=3)
    mean, standard_error = estimates.mean(0), estimates.std(0) / estimates.shape[0] ** 0.5
    assert ((mean - exact_gradient()).abs() < 5 * standard_error).all(), (mean, exact_gradient(), standard_error)


def test_a_baseline_that_includes_the_sample_itself_fails_the_same_check():
    """The check above can fail: the mean over all S samples (the sample's own loss
    included, unscaled) shrinks the estimate by (S − 1)/S, a bias of half at S = 2."""

    def biased(log_prob, losses, baseline):
        centred = losses - losses.mean(0, keepdim=True)
        return (centred.detach() * log_prob).mean()

    estimates = per_row_estimates(2, 20_000, None, seed=3, surrogate=biased)
    mean, standard_error = estimates.mean(0), estimates.std(0) / estimates.shape[0] ** 0.5
    assert not ((mean - exact_gradient()).abs() < 5 * standard_error).all()


def test_the_gradient_is_the_leave_one_out_formula_and_the_value_the_mean_loss():
    torch.manual_seed(4)
    logits = ETA.clone().requires_grad_(True)
    dist = sfess.KSubset(logits, K)
    z = dist.sample((6,))
    losses = loss(z)
    surrogate = sfess.surrogate_loss(dist.log_prob(z), losses)
    surrogate.backward()
    baselines = (losses.sum() - losses) / 5
    by_hand = ((losses - baselines)[:, None] * (z - dist.marginals.detach())).mean(0)
    assert torch.allclose(logits.grad, by_hand, atol=1e-14, rtol=0)
    assert abs(surrogate.item() - losses.mean().item()) < 1e-14


def test_a_differentiable_loss_gets_its_own_gradient_too():
    decoder = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(0)
    z = sfess.KSubset(ETA, K).sample((4,))
    log_prob = sfess.KSubset(ETA, K).log_prob(z)
    losses = decoder * z.sum(-1)
    sfess.surrogate_loss(log_prob, losses).backward()
    assert decoder.grad.item() == pytest.approx(K)


def test_bad_arguments_are_refused():
    log_prob = torch.zeros(1, 3)
    with pytest.raises(ValueError, match="at least 2 samples"):
        sfess.surrogate_loss(log_prob, torch.zeros(1, 3))
    with pytest.raises(ValueError, match="shape"):
        sfess.surrogate_loss(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="unknown baseline"):
        sfess.surrogate_loss(torch.zeros(2, 3), torch.zeros(2, 3), baseline="mean")
