//! Synthetic smooth fields: random low-frequency cosine series on a square grid, which need
//! no data files.
//!
//! On a `side × side` grid, pixel `(i, j)` (index `i · side + j`) of a field is
//!
//! ```text
//! x_ij = Σ_{p,q < 6} c_pq cos(π p (i + ½)/side) cos(π q (j + ½)/side) + ε_ij,
//! c_pq ~ N(0, 1/(1 + p² + q²)²),   ε_ij ~ N(0, 0.01²),
//! ```
//!
//! all independent. The cosines are the 2-D DCT-II basis, orthogonal on the grid, so the
//! principal components are close to these cosines ordered by variance, and the spectrum
//! decays like `(1 + p² + q²)⁻²`: with side 16 the 10 leading modes hold about 98% of the
//! variance, and the rest (26 weaker cosines and the noise) is what sensors alias into the
//! reconstruction — the placement of the sensors decides how much.
//!
//! Random numbers: `Xoshiro256PlusPlus` seeded with the seed, normals by Box–Muller; for each
//! field in turn (training, then validation, then test fields) the 36 coefficients in the
//! order `(p, q)` = `(0, 0), (0, 1), …, (5, 5)`, then the `side²` noise values by pixel.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tch::Tensor;

/// Fields in the training split of [`Fields::Synthetic`](super::Fields::Synthetic).
pub const SYNTHETIC_TRAIN: usize = 4_000;
/// Fields in the validation split of [`Fields::Synthetic`](super::Fields::Synthetic).
pub const SYNTHETIC_VALIDATION: usize = 1_000;
/// Fields in the test split of [`Fields::Synthetic`](super::Fields::Synthetic).
pub const SYNTHETIC_TEST: usize = 1_000;
/// Cosine frequencies per axis (`p, q < 6`).
pub const SYNTHETIC_FREQUENCIES: usize = 6;
/// Standard deviation of the white noise added to every pixel.
pub const SYNTHETIC_NOISE: f64 = 0.01;

/// Standard normal numbers by the Box–Muller transform (both values of each pair used).
struct Normal {
    rng: Xoshiro256PlusPlus,
    spare: Option<f64>,
}

impl Normal {
    fn new(seed: u64) -> Self {
        Self { rng: Xoshiro256PlusPlus::seed_from_u64(seed), spare: None }
    }

    /// One standard normal number.
    fn sample(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // u1 in (0, 1] (so ln u1 is finite), u2 in [0, 1), 53 random bits each.
        let scale = 1.0 / (1u64 << 53) as f64;
        let u1 = ((self.rng.next_u64() >> 11) + 1) as f64 * scale;
        let u2 = (self.rng.next_u64() >> 11) as f64 * scale;
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        self.spare = Some(radius * angle.sin());
        radius * angle.cos()
    }
}

/// The three splits of synthetic fields, `[N, side²]` `f32` each (training, validation,
/// test), deterministic for `(side, seed)`.
pub(crate) fn synthetic_fields(side: usize, seed: u64) -> [Tensor; 3] {
    let f = SYNTHETIC_FREQUENCIES;
    // cosines[p][i] = cos(π p (i + ½)/side).
    let cosines: Vec<Vec<f64>> = (0..f)
        .map(|p| (0..side).map(|i| (std::f64::consts::PI * p as f64 * (i as f64 + 0.5) / side as f64).cos()).collect())
        .collect();
    let scales: Vec<f64> = (0..f * f).map(|pq| 1.0 / (1.0 + ((pq / f).pow(2) + (pq % f).pow(2)) as f64)).collect();
    let mut normal = Normal::new(seed);
    let mut split = |count: usize| -> Tensor {
        let mut values = Vec::with_capacity(count * side * side);
        let mut partial = vec![0.0f64; f * side];
        for _ in 0..count {
            let coefficients: Vec<f64> = scales.iter().map(|s| s * normal.sample()).collect();
            // partial[p][j] = Σ_q c_pq cos_q(j); then x_ij = Σ_p cos_p(i) partial[p][j].
            for p in 0..f {
                for j in 0..side {
                    partial[p * side + j] = (0..f).map(|q| coefficients[p * f + q] * cosines[q][j]).sum();
                }
            }
            for i in 0..side {
                for j in 0..side {
                    let smooth: f64 = cosines.iter().zip(partial.chunks(side)).map(|(cos, row)| cos[i] * row[j]).sum();
                    values.push((smooth + SYNTHETIC_NOISE * normal.sample()) as f32);
                }
            }
        }
        Tensor::from_slice(&values).view([count as i64, (side * side) as i64])
    };
    [split(SYNTHETIC_TRAIN), split(SYNTHETIC_VALIDATION), split(SYNTHETIC_TEST)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Box–Muller moments: mean 0 (sd of the mean 1/√n), variance 1 (sd √(2/n)), and the
    /// fraction beyond 1.96 is 5% (sd √(0.05·0.95/n)); 5-sd tolerances.
    #[test]
    fn box_muller_gives_standard_normals() {
        let n = 200_000;
        let mut normal = Normal::new(7);
        let samples: Vec<f64> = (0..n).map(|_| normal.sample()).collect();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let variance = samples.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / n as f64;
        let tail = samples.iter().filter(|z| z.abs() > 1.96).count() as f64 / n as f64;
        let nf = n as f64;
        assert!(mean.abs() < 5.0 / nf.sqrt(), "{mean}");
        assert!((variance - 1.0).abs() < 5.0 * (2.0 / nf).sqrt(), "{variance}");
        assert!((tail - 0.05).abs() < 5.0 * (0.05 * 0.95 / nf).sqrt(), "{tail}");
    }

    /// A field's pixel variance matches the formula: Σ_pq s_pq² cos_p(i)² cos_q(j)² + σ².
    #[test]
    fn pixel_variance_matches_the_formula() {
        let side = 4;
        let [train, ..] = synthetic_fields(side, 3);
        let empirical =
            Vec::<f64>::try_from(train.to_kind(tch::Kind::Double).square().mean_dim(0, false, None)).unwrap();
        let f = SYNTHETIC_FREQUENCIES;
        for (pixel, &e) in empirical.iter().enumerate() {
            let (i, j) = (pixel / side, pixel % side);
            let c = |p: usize, i: usize| (std::f64::consts::PI * p as f64 * (i as f64 + 0.5) / side as f64).cos();
            let mut v = SYNTHETIC_NOISE.powi(2);
            for p in 0..f {
                for q in 0..f {
                    v += (c(p, i) * c(q, j) / (1.0 + (p * p + q * q) as f64)).powi(2);
                }
            }
            // The mean of 4,000 squares of a centred normal: relative sd √(2/4000) ≈ 2.2%.
            assert!((e / v - 1.0).abs() < 0.12, "pixel {pixel}: {e} vs {v}");
        }
    }
}
