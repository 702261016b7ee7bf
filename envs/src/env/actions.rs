//! Helpers for k-hot actions: checking them, reading their items, making them from
//! lists and scores, and drawing random subsets and distinct indices.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tch::{Device, Kind, TchError, Tensor};

use super::types::{EnvError, EnvSpec};

/// Checks that `actions` is `[S, rows, n]` for `spec`.
pub(crate) fn check_actions(spec: &EnvSpec, actions: &Tensor) -> Result<i64, EnvError> {
    let shape = actions.size();
    match shape[..] {
        [s, rows, n] if s >= 1 && rows == spec.rows as i64 && n == spec.space.n() as i64 => Ok(s),
        _ => Err(EnvError::ActionShape { env: spec.name.clone(), rows: spec.rows, n: spec.space.n(), shape }),
    }
}

/// The top-k entries of each row of `scores` (`[…, n]`) as k-hot vectors of the same type
/// and device: the deterministic action of a policy's logits, or of a classical method's
/// scores.
///
/// # Errors
/// libtorch errors.
pub fn top_k_hot(scores: &Tensor, k: i64) -> Result<Tensor, TchError> {
    let zeros = scores.f_zeros_like()?;
    if k == 0 {
        return Ok(zeros);
    }
    let (_, indices) = scores.f_topk(k, -1, true, false)?;
    zeros.f_scatter_value(-1, &indices, 1.0)
}

/// `count` k-hot rows `[count, n]` (f32, on the CPU), row `r` with ones at `subsets[r]`.
///
/// # Errors
/// libtorch errors.
pub fn k_hot_rows(subsets: &[Vec<usize>], n: usize) -> Result<Tensor, EnvError> {
    let mut hot = vec![0f32; subsets.len() * n];
    for (row, subset) in subsets.iter().enumerate() {
        subset.iter().for_each(|&i| hot[row * n + i] = 1.0);
    }
    Ok(Tensor::from_slice(&hot).f_view([subsets.len() as i64, n as i64])?)
}

/// The chosen items of each k-hot row of `actions` (`[…, n]`): `[rows, k]` `i64`, ascending
/// within a row, on the actions' device. Every row is checked at once (entries 0 or 1,
/// exactly k ones), and the error names the first row that fails.
///
/// # Errors
/// [`EnvError::Config`] for a row that is not k-hot; libtorch errors.
pub fn chosen_items(spec: &EnvSpec, actions: &Tensor) -> Result<Tensor, EnvError> {
    let (n, k) = (spec.space.n() as i64, spec.space.k() as i64);
    let rows = actions.f_detach()?.f_reshape([-1, n])?;
    let binary = rows.f_eq(0.0)?.f_logical_or(&rows.f_eq(1.0)?)?.f_all_dim(-1, false)?;
    let valid = binary.f_logical_and(&rows.f_sum_dim_intlist(-1, false, Kind::Int64)?.f_eq(k)?)?;
    if !bool::try_from(valid.f_all()?)? {
        let first = valid.f_logical_not()?.f_to_kind(Kind::Int64)?.f_argmax(None, false)?.int64_value(&[]);
        return Err(EnvError::Config {
            env: spec.name.clone(),
            problem: format!("action {first} is not a k-hot vector (entries 0 or 1, exactly k = {k} ones)"),
        });
    }
    // nonzero lists the (row, column) pairs row by row, k per row, columns ascending.
    Ok(rows.f_nonzero()?.f_select(1, 1)?.f_view([rows.size()[0], k])?)
}

/// [`chosen_items`] on the host: one ascending list per row.
///
/// # Errors
/// As [`chosen_items`].
pub fn chosen_lists(spec: &EnvSpec, actions: &Tensor) -> Result<Vec<Vec<usize>>, EnvError> {
    let items = chosen_items(spec, actions)?;
    let (rows, k) = (items.size()[0] as usize, spec.space.k());
    let flat = Vec::<i64>::try_from(items.f_to_device(Device::Cpu)?.f_flatten(0, -1)?)?;
    Ok((0..rows).map(|r| flat[r * k..(r + 1) * k].iter().map(|&i| i as usize).collect()).collect())
}

/// `count` uniformly random k-subsets of `0..n` (each in the order drawn), from a
/// generator seeded `seed`: the draws behind the `random` baselines.
pub fn random_subsets(seed: u64, count: usize, n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..count).map(|_| distinct_indices(&mut rng, n, k).into_iter().map(|i| i as usize).collect()).collect()
}

/// [`distinct_indices`] as an `i64` tensor on `device`. On CUDA the copy is asynchronous,
/// from pinned memory, so that drawing a batch never waits for the device (a plain copy
/// from pageable memory waits for everything queued before it).
///
/// # Errors
/// libtorch errors.
pub(crate) fn random_batch(
    rng: &mut dyn Rng,
    population: usize,
    count: usize,
    device: Device,
) -> Result<Tensor, EnvError> {
    let host = Tensor::from_slice(&distinct_indices(rng, population, count));
    Ok(match device {
        Device::Cuda(_) => host.f_pin_memory(device)?.f_to_device_(device, Kind::Int64, true, false)?,
        _ => host,
    })
}

/// `count` distinct indices of `0..population`, uniformly, in random order (Floyd's
/// algorithm followed by a shuffle), from `rng`.
pub fn distinct_indices(rng: &mut dyn Rng, population: usize, count: usize) -> Vec<i64> {
    assert!(count <= population, "cannot draw {count} distinct indices from {population}");
    let mut chosen = std::collections::HashSet::with_capacity(count);
    let mut order = Vec::with_capacity(count);
    for j in population - count..population {
        let t = uniform_below(rng, j + 1);
        let pick = if chosen.contains(&t) { j } else { t };
        chosen.insert(pick);
        order.push(pick as i64);
    }
    for i in (1..order.len()).rev() {
        order.swap(i, uniform_below(rng, i + 1));
    }
    order
}

/// A uniform integer in `0..bound` (Lemire's multiply-shift with rejection).
fn uniform_below(rng: &mut dyn Rng, bound: usize) -> usize {
    let bound = bound as u64;
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(bound);
        if (product as u64) >= threshold {
            return (product >> 64) as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::KHotSpace;
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    fn spec(n: usize, k: usize) -> EnvSpec {
        EnvSpec {
            name: "t".to_owned(),
            space: KHotSpace::new(n, k).unwrap(),
            rows: 1,
            differentiable: false,
            metric: "m".to_owned(),
            higher_is_better: true,
            observation_dim: 0,
            description: String::new(),
        }
    }

    #[test]
    fn k_hot_rows_become_sorted_indices() {
        let lists = |n: usize, k: usize, values: &[f32]| chosen_lists(&spec(n, k), &Tensor::from_slice(values));
        assert_eq!(lists(4, 2, &[0.0, 1.0, 0.0, 1.0]).unwrap(), vec![vec![1, 3]]);
        assert!(lists(4, 1, &[0.0, 1.0, 0.0, 1.0]).is_err());
        assert!(lists(4, 2, &[0.5, 1.0, 0.5, 0.0]).is_err());
        assert_eq!(lists(2, 0, &[0.0, 0.0]).unwrap(), vec![Vec::<usize>::new()]);
        let message = lists(2, 1, &[1.0, 0.0, 1.0, 1.0]).unwrap_err().to_string();
        assert!(message.contains("action 1 is not a k-hot vector"), "{message}");
    }

    #[test]
    fn distinct_indices_are_distinct_in_range_and_cover_evenly() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut counts = [0usize; 10];
        for _ in 0..20_000 {
            let picks = distinct_indices(&mut rng, 10, 3);
            let set: std::collections::HashSet<_> = picks.iter().collect();
            assert_eq!(set.len(), 3);
            for &p in &picks {
                counts[p as usize] += 1;
            }
        }
        // Each index is picked with probability 3/10: 6,000 expected, sd ≈ 65.
        assert!(counts.iter().all(|&c| (c as f64 - 6000.0).abs() < 400.0), "{counts:?}");
        assert_eq!(distinct_indices(&mut rng, 5, 5).len(), 5);
    }
}
