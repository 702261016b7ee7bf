"""The k-subset (conditional Poisson) law as a ``torch.distributions.Distribution``.

For logits ``η ∈ ℝⁿ`` and ``0 ≤ k ≤ n``, a k-hot ``z`` has

    p(z) = exp(η·z) / e_k(exp η),

where ``e_k`` is the k-th elementary symmetric polynomial: independent Bernoulli(σ(η_i))
conditioned on choosing exactly k. It is an exponential family, so

    ∂ log e_k / ∂η = π (the inclusion probabilities),   ∂π/∂η = Cov(z),
    ∂ log p(z) / ∂η = z − π.

Everything is computed by ``sfess-agents`` in Rust, exactly (float64 inside, for any finite
logits and every k): the values come from there, and the gradients are these identities,
as two autograd functions (``∂ log e_k = π``, and ``∂π = Cov(z)·v`` by an exact
forward-mode pass), so that first and second derivatives are exact.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch.distributions import Distribution, constraints
from torch.distributions.kl import register_kl

from . import _sfess

__all__ = ["KSubset"]

# The largest support `enumerate_support` lists.
_MAX_ENUMERATED = 1_000_000


class _KHot(constraints.Constraint):
    """k-hot vectors: entries 0 or 1, exactly k ones (one event per last dimension)."""

    is_discrete = True
    event_dim = 1

    def __init__(self, k: int):
        self.k = k
        super().__init__()

    def check(self, value: torch.Tensor) -> torch.Tensor:
        binary = ((value == 0) | (value == 1)).all(-1)
        return binary & (value.sum(-1) == self.k)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__[1:]}(k={self.k})"


class _Statistics:
    """One Rust call's worth of the law of the flattened logits ``[B, n]``: log e_k, π and
    the handle for samples and ``Cov(z)·v``, reshaped to the batch."""

    def __init__(self, logits: torch.Tensor, k: int, normalizer: str):
        self.batch_shape = logits.shape[:-1]
        self.n = logits.shape[-1]
        self.dtype = logits.dtype
        # The law is computed in float32 or float64; other float types go through float32.
        compute = logits.detach()
        if compute.dtype not in (torch.float32, torch.float64):
            compute = compute.float()
        self.rows = math.prod(self.batch_shape)
        if self.rows == 0:
            self.law = None
            self.log_normalizer = torch.zeros(self.batch_shape, dtype=self.dtype, device=logits.device)
            self.marginals = torch.zeros(logits.shape, dtype=self.dtype, device=logits.device)
            return
        self.law = _sfess.Law(compute.reshape(self.rows, self.n).contiguous(), k, normalizer)
        self.log_normalizer = self.law.log_normalizer().reshape(self.batch_shape).to(self.dtype)
        self.marginals = self.law.marginals().reshape(logits.shape).to(self.dtype)

    def covariance_vector_product(self, v: torch.Tensor) -> torch.Tensor:
        if self.law is None:
            return torch.zeros_like(v)
        flat = v.detach().reshape(self.rows, self.n)
        if flat.dtype not in (torch.float32, torch.float64):
            flat = flat.float()
        product = self.law.covariance_vector_product(flat.contiguous())
        return product.reshape(v.shape).to(v.dtype)


class _LogNormalizer(torch.autograd.Function):
    """``log e_k(exp η)``, with gradient ``π`` (itself differentiable: ``Cov(z)``)."""

    @staticmethod
    def forward(ctx, logits, statistics):
        ctx.statistics = statistics
        ctx.save_for_backward(logits)
        return statistics.log_normalizer.clone()

    @staticmethod
    def backward(ctx, grad):
        (logits,) = ctx.saved_tensors
        return grad.unsqueeze(-1) * _Marginals.apply(logits, ctx.statistics), None


class _Marginals(torch.autograd.Function):
    """``π = ∂ log e_k / ∂η``, with the vector-Jacobian product ``Cov(z)·v``."""

    @staticmethod
    def forward(ctx, logits, statistics):
        ctx.statistics = statistics
        return statistics.marginals.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        return ctx.statistics.covariance_vector_product(grad), None


class KSubset(Distribution):
    r"""The k-subset (conditional Poisson) distribution over k-hot vectors.

    ``KSubset(logits, k)`` has batch shape ``logits.shape[:-1]`` and event shape ``(n,)``;
    each row is ``p(z) ∝ exp(η·z)`` over the ``C(n, k)`` vectors with exactly ``k`` ones.
    The logits may live on any device, in any float type (computed in float64 inside).

    - ``sample(sample_shape)``: exact samples (never Gumbel top-k, which draws another law),
      from PyTorch's generator of the logits' device, so ``torch.manual_seed`` repeats them.
    - ``log_prob(z)``: differentiable in the logits, with gradient ``z − π``.
    - ``marginals`` (= ``mean``), ``log_normalizer``, ``entropy()`` and KL between two
      ``KSubset`` of the same ``k``: exact, differentiable (second derivatives included).
    - ``mode``: the top-k of the logits, as a k-hot vector.

    ``normalizer`` chooses the backend (``"auto"``: the stable dynamic programme on the CPU,
    the product tree on CUDA); the others are for comparison.
    """

    arg_constraints = {"logits": constraints.real}
    has_rsample = False
    has_enumerate_support = True

    def __init__(self, logits: torch.Tensor, k: int, validate_args=None, normalizer: str = "auto"):
        if not isinstance(logits, torch.Tensor):
            raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
        if logits.dim() < 1:
            raise ValueError("logits must have at least one dimension (the n items), got a scalar")
        if not logits.dtype.is_floating_point:
            raise ValueError(f"logits must be a floating-point tensor, got {logits.dtype}")
        if isinstance(k, bool) or not isinstance(k, int):
            if isinstance(k, torch.Tensor) and k.dim() == 0 and not k.dtype.is_floating_point:
                k = int(k)
            else:
                raise TypeError(f"k must be an int, got {type(k).__name__}")
        n = logits.shape[-1]
        if not 0 <= k <= n:
            raise ValueError(f"k = {k} is out of range: a subset of n = {n} items has 0 <= k <= {n}")
        self.logits = logits
        self.k = k
        self.normalizer = normalizer
        self._statistics = None
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self):
        return _KHot(self.k)

    @property
    def n(self) -> int:
        """The number of items."""
        return self.logits.shape[-1]

    def _law(self) -> _Statistics:
        if self._statistics is None:
            self._statistics = _Statistics(self.logits, self.k, self.normalizer)
        return self._statistics

    @property
    def log_normalizer(self) -> torch.Tensor:
        """``log e_k(exp η)``, shape ``batch_shape``; its gradient is ``π``."""
        return _LogNormalizer.apply(self.logits, self._law())

    @property
    def marginals(self) -> torch.Tensor:
        """The inclusion probabilities ``π_i = P(z_i = 1)``, shape ``batch_shape + (n,)``;
        its Jacobian is ``Cov(z)``."""
        return _Marginals.apply(self.logits, self._law())

    @property
    def mean(self) -> torch.Tensor:
        return self.marginals

    @property
    def variance(self) -> torch.Tensor:
        pi = self.marginals
        return pi * (1 - pi)

    @property
    def mode(self) -> torch.Tensor:
        """The most probable subset, the top-k of the logits, as a k-hot vector."""
        top = self.logits.detach().topk(self.k, dim=-1).indices
        return torch.zeros_like(self.logits.detach()).scatter(-1, top, 1.0)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """Exact k-hot samples, shape ``sample_shape + batch_shape + (n,)``, in the logits'
        type and device, without gradient."""
        sample_shape = torch.Size(sample_shape)
        count = math.prod(sample_shape)
        shape = sample_shape + self.batch_shape + self.event_shape
        statistics = self._law()
        if statistics.law is None or count == 0:
            return torch.zeros(shape, dtype=self.logits.dtype, device=self.logits.device)
        with torch.no_grad():
            drawn = statistics.law.sample(count)
        return drawn.reshape(shape).to(self.logits.dtype)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log p(z) = η·z − log e_k``, shape ``value.shape[:-1]`` (broadcast with the
        batch); its gradient with respect to the logits is ``z − π``."""
        if self._validate_args:
            self._validate_sample(value)
        value = value.to(self.logits.dtype)
        return (value * self.logits).sum(-1) - self.log_normalizer

    def entropy(self) -> torch.Tensor:
        """``H = log e_k − η·π``, shape ``batch_shape``; its gradient is ``−Cov(z)·η``."""
        return self.log_normalizer - (self.logits * self.marginals).sum(-1)

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        """Every k-hot vector, shape ``(C(n, k),) + batch_shape + (n,)`` (or
        ``(C(n, k),) + (1,) * len(batch_shape) + (n,)`` without ``expand``)."""
        count = math.comb(self.n, self.k)
        if count > _MAX_ENUMERATED:
            raise ValueError(f"C({self.n}, {self.k}) = {count} subsets are too many to enumerate")
        support = torch.zeros(count, self.n, dtype=self.logits.dtype, device=self.logits.device)
        for row, chosen in enumerate(itertools.combinations(range(self.n), self.k)):
            support[row, list(chosen)] = 1
        support = support.reshape((count,) + (1,) * len(self.batch_shape) + (self.n,))
        if expand:
            support = support.expand((count,) + self.batch_shape + (self.n,))
        return support

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        logits = self.logits.expand(batch_shape + self.event_shape)
        return KSubset(logits, self.k, validate_args=False, normalizer=self.normalizer)

    def __repr__(self) -> str:
        return f"KSubset(n: {self.n}, k: {self.k}, batch_shape: {tuple(self.batch_shape)})"


@register_kl(KSubset, KSubset)
def _kl_ksubset_ksubset(p: KSubset, q: KSubset) -> torch.Tensor:
    """``KL(p ‖ q) = (η_p − η_q)·π_p − log e_k(p) + log e_k(q)``, for the same n and k."""
    if p.k != q.k or p.n != q.n:
        raise ValueError(f"KL between k-subset laws needs the same n and k, got ({p.n}, {p.k}) and ({q.n}, {q.k})")
    return ((p.logits - q.logits) * p.marginals).sum(-1) - p.log_normalizer + q.log_normalizer
