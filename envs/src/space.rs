//! The action space: k-hot vectors.

/// The set of k-hot vectors of length `n`: `{z ∈ {0, 1}ⁿ : Σ z = k}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KHotSpace {
    n: usize,
    k: usize,
}

/// An invalid action space.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpaceError {
    /// `k` is larger than `n`.
    #[error("k = {k} is out of range for n = {n} items (0 <= k <= n)")]
    KOutOfRange {
        /// Items.
        n: usize,
        /// Subset size.
        k: usize,
    },
    /// There are no items.
    #[error("an action space needs at least one item (n >= 1)")]
    NoItems,
}

impl KHotSpace {
    /// The k-hot vectors of length `n`.
    ///
    /// # Errors
    /// [`SpaceError::NoItems`] when `n = 0`, [`SpaceError::KOutOfRange`] when `k > n`.
    pub fn new(n: usize, k: usize) -> Result<Self, SpaceError> {
        if n == 0 {
            return Err(SpaceError::NoItems);
        }
        if k > n {
            return Err(SpaceError::KOutOfRange { n, k });
        }
        Ok(Self { n, k })
    }

    /// Number of items `n`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Subset size `k`.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Whether `action` is in the space: length `n`, entries 0 or 1, exactly `k` ones.
    pub fn contains(&self, action: &[f32]) -> bool {
        action.len() == self.n
            && action.iter().all(|&x| x == 0.0 || x == 1.0)
            && action.iter().filter(|&&x| x == 1.0).count() == self.k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_k_above_n_and_empty_spaces() {
        assert_eq!(KHotSpace::new(3, 4), Err(SpaceError::KOutOfRange { n: 3, k: 4 }));
        assert_eq!(KHotSpace::new(0, 0), Err(SpaceError::NoItems));
        assert!(KHotSpace::new(3, 0).is_ok() && KHotSpace::new(3, 3).is_ok());
    }

    #[test]
    fn contains_exactly_the_k_hot_vectors() {
        let space = KHotSpace::new(4, 2).unwrap();
        assert!(space.contains(&[1.0, 0.0, 1.0, 0.0]));
        assert!(!space.contains(&[1.0, 1.0, 1.0, 0.0]));
        assert!(!space.contains(&[1.0, 0.5, 0.5, 0.0]));
        assert!(!space.contains(&[1.0, 1.0, 0.0]));
    }
}
