"""`sfess.KSubset` against enumeration, autograd's checks, a chi-square test of its sampler,
shapes and types, and the `sfess-agent inspect` command."""

import json
import math
import subprocess

import pytest
import torch
from conftest import enumerate_law

import sfess


def rows_of_logits(n: int) -> torch.Tensor:
    """Three rows: N(0, 1), N(0, 3) and a shifted, spread row, in float64."""
    generator = torch.Generator().manual_seed(n)
    base = torch.randn(3, n, generator=generator, dtype=torch.float64)
    return torch.stack([base[0], 3 * base[1], 8 * base[2] + 20])


@pytest.mark.parametrize("n", [1, 2, 5, 9, 12])
def test_marginals_log_prob_log_normalizer_and_entropy_match_enumeration(n):
    logits = rows_of_logits(n)
    for k in range(n + 1):
        dist = sfess.KSubset(logits, k)
        for row in range(3):
            subsets, log_p, log_z = enumerate_law(logits[row], k)
            p = log_p.exp()
            assert abs(dist.log_normalizer[row].item() - log_z.item()) <= 1e-12 * max(1.0, abs(log_z.item()))
            marginals = (p[:, None] * subsets).sum(0)
            assert torch.allclose(dist.marginals[row], marginals, atol=1e-12, rtol=0)
            # log_prob of every subset, for this row's batch entry.
            ours = sfess.KSubset(logits[row], k).log_prob(subsets)
            assert torch.allclose(ours, log_p, atol=1e-12 * max(1.0, abs(log_z.item())), rtol=0)
            entropy = -(p * log_p).sum()
            assert abs(dist.entropy()[row].item() - entropy.item()) <= 1e-11


def test_kl_between_two_laws_matches_enumeration():
    p_logits, q_logits = rows_of_logits(7)[0], rows_of_logits(7)[1]
    p, q = sfess.KSubset(p_logits, 3), sfess.KSubset(q_logits, 3)
    subsets, log_p, _ = enumerate_law(p_logits, 3)
    _, log_q, _ = enumerate_law(q_logits, 3)
    exact = (log_p.exp() * (log_p - log_q)).sum()
    assert abs(torch.distributions.kl_divergence(p, q).item() - exact.item()) <= 1e-12
    with pytest.raises(ValueError, match="same n and k"):
        torch.distributions.kl_divergence(p, sfess.KSubset(q_logits, 2))


def test_gradients_pass_gradcheck_in_float64():
    logits = rows_of_logits(6)[:2].clone().requires_grad_(True)
    z = sfess.KSubset(logits.detach(), 3).sample((4,))
    checks = {
        "log_prob": lambda eta: sfess.KSubset(eta, 3).log_prob(z),
        "log_normalizer": lambda eta: sfess.KSubset(eta, 3).log_normalizer,
        "marginals": lambda eta: sfess.KSubset(eta, 3).marginals,
        "entropy": lambda eta: sfess.KSubset(eta, 3).entropy(),
        "kl": lambda eta: torch.distributions.kl_divergence(sfess.KSubset(eta, 3), sfess.KSubset(eta.flip(-1), 3)),
    }
    for name, function in checks.items():
        assert torch.autograd.gradcheck(function, (logits,)), name
    # Second derivatives: the Hessian of log e_k is Cov(z).
    assert torch.autograd.gradgradcheck(lambda eta: sfess.KSubset(eta, 3).log_normalizer, (logits,))
    assert torch.autograd.gradgradcheck(lambda eta: sfess.KSubset(eta, 3).log_prob(z), (logits,))


def test_log_prob_gradient_is_z_minus_marginals():
    logits = rows_of_logits(8)[1].clone().requires_grad_(True)
    dist = sfess.KSubset(logits, 4)
    z = dist.sample()
    (gradient,) = torch.autograd.grad(dist.log_prob(z), logits)
    assert torch.allclose(gradient, z - dist.marginals.detach(), atol=1e-14, rtol=0)


def chi_square_critical(df: int) -> float:
    """Upper 0.1% point of the chi-square law with `df` degrees of freedom (Wilson–Hilferty)."""
    z = 3.090232
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def pearson(samples: torch.Tensor, eta: torch.Tensor, k: int) -> tuple[float, int]:
    subsets, log_p, _ = enumerate_law(eta, k)
    expected = log_p.exp() * samples.shape[0]
    index = {tuple(s.tolist()): i for i, s in enumerate(subsets.to(torch.int64))}
    counts = torch.zeros(len(index), dtype=torch.float64)
    for s in samples.to(torch.int64):
        counts[index[tuple(s.tolist())]] += 1
    return ((counts - expected) ** 2 / expected).sum().item(), len(index) - 1


def gumbel_top_k(eta: torch.Tensor, k: int, draws: int) -> torch.Tensor:
    """The paper code's sampler: the top k of η + Gumbel noise (a Plackett–Luce prefix)."""
    uniforms = torch.rand(draws, eta.shape[-1], dtype=torch.float64).clamp_min(1e-300)
    keys = eta - torch.log(-torch.log(uniforms))
    return torch.zeros_like(keys).scatter(-1, keys.topk(k, dim=-1).indices, 1.0)


def test_exact_sampler_passes_chi_square_and_gumbel_top_k_fails_it():
    eta = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -2.0], dtype=torch.float64)
    draws, k = 20_000, 3
    torch.manual_seed(0)
    exact = sfess.KSubset(eta, k).sample((draws,))
    statistic, df = pearson(exact, eta, k)
    assert statistic < chi_square_critical(df), (statistic, chi_square_critical(df))
    torch.manual_seed(0)
    statistic, df = pearson(gumbel_top_k(eta, k, draws), eta, k)
    assert statistic > chi_square_critical(df), (statistic, chi_square_critical(df))


def test_samples_repeat_after_manual_seed_and_are_k_hot():
    logits = torch.randn(3, 10, dtype=torch.float64)
    dist = sfess.KSubset(logits, 4)
    torch.manual_seed(5)
    first = dist.sample((7,))
    torch.manual_seed(5)
    assert torch.equal(first, dist.sample((7,)))
    assert not torch.equal(first, dist.sample((7,)))
    assert ((first == 0) | (first == 1)).all() and (first.sum(-1) == 4).all()


def test_batch_shapes_and_float32():
    logits64 = torch.randn(2, 3, 9, dtype=torch.float64)
    logits32 = logits64.float()
    dist = sfess.KSubset(logits32, 4)
    assert dist.batch_shape == (2, 3) and dist.event_shape == (9,)
    sample = dist.sample((5, 4))
    assert sample.shape == (5, 4, 2, 3, 9) and sample.dtype == torch.float32
    assert dist.log_prob(sample).shape == (5, 4, 2, 3)
    assert dist.marginals.shape == (2, 3, 9) and dist.marginals.dtype == torch.float32
    assert dist.log_normalizer.shape == (2, 3) and dist.entropy().shape == (2, 3)
    assert dist.mode.shape == (2, 3, 9) and (dist.mode.sum(-1) == 4).all()
    exact = sfess.KSubset(logits64, 4)
    assert torch.allclose(dist.marginals.double(), exact.marginals, atol=1e-6)
    assert torch.allclose(dist.log_normalizer.double(), exact.log_normalizer, rtol=1e-6)
    # A scalar batch, an empty batch, expand, k = 0 and k = n.
    assert sfess.KSubset(logits64[0, 0], 4).sample().shape == (9,)
    assert sfess.KSubset(torch.zeros(0, 9), 4).sample((3,)).shape == (3, 0, 9)
    assert sfess.KSubset(logits64[0, 0], 4).expand((6,)).sample().shape == (6, 9)
    assert (sfess.KSubset(logits64, 0).sample((2,)) == 0).all()
    assert (sfess.KSubset(logits64, 9).marginals == 1).all()
    # float16 logits are computed through float32 and answered in float16.
    assert sfess.KSubset(logits32.half(), 4).marginals.dtype == torch.float16


def test_mode_is_the_top_k_and_the_most_probable_subset():
    eta = torch.tensor([0.3, -1.0, 2.0, 0.1, 1.5], dtype=torch.float64)
    dist = sfess.KSubset(eta, 2)
    subsets, log_p, _ = enumerate_law(eta, 2)
    assert torch.equal(dist.mode, subsets[log_p.argmax()])
    assert torch.equal(dist.enumerate_support(), subsets)


def test_invalid_input_raises_as_torch_distributions_do():
    with pytest.raises(ValueError, match="constraint"):
        sfess.KSubset(torch.tensor([float("nan"), 0.0, 1.0]), 1, validate_args=True)
    with pytest.raises(ValueError, match="finite"):
        sfess.KSubset(torch.tensor([float("inf"), 0.0, 1.0]), 1, validate_args=False).marginals
    with pytest.raises(ValueError, match="out of range"):
        sfess.KSubset(torch.zeros(3), 4)
    with pytest.raises(TypeError, match="k must be an int"):
        sfess.KSubset(torch.zeros(3), 1.5)
    dist = sfess.KSubset(torch.zeros(4), 2, validate_args=True)
    with pytest.raises(ValueError, match="support"):
        dist.log_prob(torch.tensor([1.0, 1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="support"):
        dist.log_prob(torch.tensor([0.5, 0.5, 1.0, 0.0]))
    with pytest.raises(ValueError):
        dist.log_prob(torch.zeros(3, 5))
    # More samples than memory holds: an error, not an abort.
    with pytest.raises(ValueError, match="too many to hold in memory"):
        dist.sample((1 << 40,))


def test_agrees_with_sfess_agent_inspect_at_n_784(sfess_agent_binary, tmp_path):
    generator = torch.Generator().manual_seed(784)
    eta = torch.randn(784, generator=generator, dtype=torch.float64)
    logits_file = tmp_path / "logits.txt"
    logits_file.write_text(",".join(repr(x) for x in eta.tolist()))
    answer = subprocess.run(
        [sfess_agent_binary, "inspect", "--k", "50", "--logits-file", str(logits_file)],
        capture_output=True, text=True, check=True,
    )
    inspected = json.loads(answer.stdout)
    dist = sfess.KSubset(eta, 50)
    assert abs(dist.log_normalizer.item() - inspected["log_normalizer"]) <= 1e-12 * abs(inspected["log_normalizer"])
    assert torch.allclose(dist.marginals, torch.tensor(inspected["marginals"], dtype=torch.float64), atol=1e-12, rtol=0)
    assert abs(dist.entropy().item() - inspected["entropy"]) <= 1e-10 * abs(inspected["entropy"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the GPU machine's check)")
def test_the_same_law_on_cuda():
    logits = rows_of_logits(50).cuda()
    dist, host = sfess.KSubset(logits, 10), sfess.KSubset(logits.cpu(), 10)
    assert torch.allclose(dist.marginals.cpu(), host.marginals, atol=1e-12)
    torch.manual_seed(1)
    sample = dist.sample((100,))
    assert sample.device.type == "cuda" and (sample.sum(-1) == 10).all()
