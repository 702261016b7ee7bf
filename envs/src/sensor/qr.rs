//! Column-pivoted QR (Businger and Golub 1965), the classical sensor-placement heuristic of
//! Manohar et al. (2018).
//!
//! For a matrix `A` (`m × n`), the greedy pivoting picks, at step `j`, the column whose
//! component orthogonal to the columns already picked is longest:
//!
//! ```text
//! p_j = argmax_{c ∉ {p_1..p_{j-1}}} ‖(I − Q_{j-1} Q_{j-1}ᵀ) a_c‖₂
//! ```
//!
//! where `Q_{j-1}` is an orthonormal basis of `a_{p_1}, …, a_{p_{j-1}}`. Those norms are the
//! diagonal of `R` in `A P = Q R`, so `∏_j |R_jj|` is the volume spanned by the picked
//! columns: the greedy method maximises it one column at a time. For a square pick (as many
//! pivots as rows) that volume is `|det A_{:,S}|`, and the greedy pick is within a factor
//! `1/k!` of the best over all `k`-subsets (Çivril and Magdon-Ismail 2009, "On selecting a
//! maximum volume sub-matrix of a matrix and related problems").
//!
//! Implementation: in `f64` on the CPU, modified Gram–Schmidt: after each pick, the picked
//! (normalised) column is projected out of every remaining column; the remaining norms are
//! recomputed from the updated columns at every step (no norm downdating, so no
//! cancellation). Ties, and columns whose norm is not a number, go to the lowest index.

use tch::{Device, Kind, TchError, Tensor};

use crate::env::EnvError;

/// The first `count` pivot columns of a column-pivoted QR of the 2-D tensor `matrix`
/// (`m × n`, any real kind and device), in pivot order; all `n` columns when `count ≥ n`.
/// Pivots beyond the rank of `matrix` pick among zero (rounding-level) remainders, so they
/// are arbitrary but distinct.
///
/// # Errors
/// [`EnvError::Torch`] when `matrix` is not 2-D or cannot be read as `f64`.
pub fn qr_pivots(matrix: &Tensor, count: usize) -> Result<Vec<usize>, EnvError> {
    let (rows, cols) = match matrix.size()[..] {
        [rows, cols] => (rows as usize, cols as usize),
        ref shape => {
            return Err(EnvError::Torch(TchError::Shape(format!("qr_pivots needs a 2-D matrix, got {shape:?}"))));
        }
    };
    let flat = matrix.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?.f_contiguous()?.f_view([-1])?;
    let values = Vec::<f64>::try_from(&flat)?;
    // Column-major copy: columns[c] is column c.
    let mut columns: Vec<Vec<f64>> = (0..cols).map(|c| (0..rows).map(|r| values[r * cols + c]).collect()).collect();
    let mut picked = vec![false; cols];
    let mut pivots = Vec::with_capacity(count.min(cols));
    for _ in 0..count.min(cols) {
        let mut best: Option<(usize, f64)> = None;
        for (c, column) in columns.iter().enumerate() {
            if picked[c] {
                continue;
            }
            let norm = column.iter().map(|v| v * v).sum::<f64>();
            // Strictly larger wins, scanning up: ties go to the lowest index, NaN never wins.
            if best.is_none_or(|(_, b)| norm > b) {
                best = Some((c, if norm.is_nan() { f64::NEG_INFINITY } else { norm }));
            }
        }
        let Some((pivot, norm2)) = best else { break };
        picked[pivot] = true;
        pivots.push(pivot);
        let norm = norm2.sqrt();
        if norm.is_nan() || norm <= 0.0 || !norm.is_finite() {
            continue;
        }
        let q: Vec<f64> = columns[pivot].iter().map(|v| v / norm).collect();
        for (c, column) in columns.iter_mut().enumerate() {
            if picked[c] {
                continue;
            }
            let dot = q.iter().zip(column.iter()).map(|(a, b)| a * b).sum::<f64>();
            for (v, qv) in column.iter_mut().zip(&q) {
                *v -= dot * qv;
            }
        }
    }
    Ok(pivots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pivots_of_a_hand_matrix() {
        // Columns: e1, 3·e1, (1, 1), (0, 2), 0. First pivot: the longest, column 1 (norm 3).
        // Then the remainders orthogonal to e1: 0, (0,1), (0,2), 0 → column 3. Then all
        // zero: ties to the lowest index, column 0.
        let m = Tensor::from_slice(&[1.0f64, 3.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0]).view([2, 5]);
        assert_eq!(qr_pivots(&m, 3).unwrap(), vec![1, 3, 0]);
        assert_eq!(qr_pivots(&m, 9).unwrap().len(), 5);
        assert!(qr_pivots(&Tensor::from_slice(&[1.0f64, 2.0]), 1).is_err());
    }

    #[test]
    fn ties_go_to_the_lowest_index() {
        let m = Tensor::from_slice(&[0.0f64, 1.0, 1.0, 0.0, 0.0, 0.0]).view([2, 3]);
        // Columns (0,0), (1,0), (1,0): the two equal columns tie; then only zeros remain.
        assert_eq!(qr_pivots(&m, 3).unwrap(), vec![1, 0, 2]);
    }
}
