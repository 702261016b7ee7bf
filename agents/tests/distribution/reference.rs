//! References the implementation is checked against: brute-force enumeration (small n)
//! and a double-double (~32 significant digits) dynamic programme (large n).

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::Rng;
use sfess_agents::Normalizer;

/// The backends that are exact to rounding, which every accuracy test runs on (the
/// parallel one on CPU tensors: the same tensor programme as on CUDA).
pub const EXACT: [Normalizer; 2] = [Normalizer::Stable, Normalizer::Parallel];

/// Logits drawn uniformly from `[-scale, scale]` at a fixed seed.
pub fn uniform_logits(n: usize, scale: f64, seed: u64) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n).map(|_| scale * (2.0 * unit(&mut rng) - 1.0)).collect()
}

/// Standard normal logits (Box–Muller) at a fixed seed.
pub fn normal_logits(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let (u, v) = (1.0 - unit(&mut rng), unit(&mut rng));
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        })
        .collect()
}

fn unit(rng: &mut impl Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Every k-subset of `0..n`, as sorted index lists.
pub fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    (0u32..1 << n)
        .filter(|m| m.count_ones() as usize == k)
        .map(|m| (0..n).filter(|i| m >> i & 1 == 1).collect())
        .collect()
}

/// Brute force over all k-subsets: `log e_k(w)`, the marginals, and `log p(S)` per subset.
pub struct Enumerated {
    pub subsets: Vec<Vec<usize>>,
    pub log_probs: Vec<f64>,
    pub log_normalizer: f64,
    pub marginals: Vec<f64>,
    pub entropy: f64,
}

pub fn enumerate(eta: &[f64], k: usize) -> Enumerated {
    let subsets = subsets(eta.len(), k);
    let energies: Vec<f64> = subsets.iter().map(|s| s.iter().map(|&i| eta[i]).sum()).collect();
    let max = energies.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let log_normalizer = max + energies.iter().map(|e| (e - max).exp()).sum::<f64>().ln();
    let log_probs: Vec<f64> = energies.iter().map(|e| e - log_normalizer).collect();
    let mut marginals = vec![0.0; eta.len()];
    for (s, lp) in subsets.iter().zip(&log_probs) {
        for &i in s {
            marginals[i] += lp.exp();
        }
    }
    let entropy = -log_probs.iter().map(|lp| lp.exp() * lp).sum::<f64>();
    Enumerated { subsets, log_probs, log_normalizer, marginals, entropy }
}

/// A double-double number `hi + lo`, `|lo| ≤ ulp(hi)/2`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dd {
    hi: f64,
    lo: f64,
}

impl Dd {
    fn from(x: f64) -> Self {
        Dd { hi: x, lo: 0.0 }
    }

    fn renormalise(hi: f64, lo: f64) -> Self {
        let s = hi + lo;
        Dd { hi: s, lo: lo - (s - hi) }
    }

    fn add(self, other: Dd) -> Dd {
        let s = self.hi + other.hi;
        let b = s - self.hi;
        let e = (self.hi - (s - b)) + (other.hi - b);
        Dd::renormalise(s, e + self.lo + other.lo)
    }

    fn scale(self, x: f64) -> Dd {
        let p = self.hi * x;
        let e = self.hi.mul_add(x, -p);
        Dd::renormalise(p, e + self.lo * x)
    }

    fn ln(self) -> f64 {
        self.hi.ln() + self.lo / self.hi
    }

    fn ratio(self, other: Dd) -> f64 {
        let q = self.hi / other.hi;
        let r = self.add(other.scale(-q));
        q + r.hi / other.hi
    }
}

/// Bernoulli probabilities tilted by bisection so that `Σ p ≈ k` (a different tilt from
/// the implementation's Newton iteration), with `q = 1 − p` computed separately.
fn tilt(eta: &[f64], k: usize) -> (Vec<f64>, Vec<f64>, f64) {
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let (mut lo, mut hi) = (-1e3, 1e3);
    for _ in 0..200 {
        let t = 0.5 * (lo + hi);
        let sum: f64 = eta.iter().map(|x| sigmoid(x + t)).sum();
        if (sum - k as f64).abs() < 0.25 {
            break;
        }
        if sum > k as f64 { hi = t } else { lo = t }
    }
    let t = 0.5 * (lo + hi);
    (eta.iter().map(|x| sigmoid(x + t)).collect(), eta.iter().map(|x| sigmoid(-x - t)).collect(), t)
}

/// `P(Σ b = target)` over the items except `skip`, in double-double, by the plain DP over
/// all cells `0 ..= min(items so far, target)`.
fn probability_of_sum(p: &[f64], q: &[f64], target: usize, skip: Option<usize>) -> Dd {
    let mut row = vec![Dd::default(); target + 1];
    row[0] = Dd::from(1.0);
    let mut done = 0usize;
    for i in 0..p.len() {
        if Some(i) == skip {
            continue;
        }
        done += 1;
        for j in (0..=done.min(target)).rev() {
            let stay = row[j].scale(q[i]);
            row[j] = if j > 0 { stay.add(row[j - 1].scale(p[i])) } else { stay };
        }
    }
    row[target]
}

/// Reference `log e_k(w)` in double-double (for `0 < k < n`).
pub fn log_normalizer(eta: &[f64], k: usize) -> f64 {
    let (p, q, t) = tilt(eta, k);
    let mut log_scale = Dd::default();
    for &x in eta {
        let x = x + t;
        log_scale = log_scale.add(Dd::from(x.max(0.0) + (-x.abs()).exp().ln_1p()));
    }
    let total = probability_of_sum(&p, &q, k, None);
    (log_scale.add(Dd::from(total.ln())).add(Dd::from(-(k as f64) * t))).hi
}

/// Reference marginals `π_i = p_i P(Σ_{j≠i} b_j = k − 1) / P(Σ b = k)` at `indices`, in
/// double-double (for `0 < k < n`).
pub fn marginals(eta: &[f64], k: usize, indices: &[usize]) -> Vec<f64> {
    let (p, q, _) = tilt(eta, k);
    let total = probability_of_sum(&p, &q, k, None);
    indices.iter().map(|&i| probability_of_sum(&p, &q, k - 1, Some(i)).scale(p[i]).ratio(total)).collect()
}

/// `|a − b| ≤ tol · max(1, |b|)`: relative error with an absolute floor near zero.
pub fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}
