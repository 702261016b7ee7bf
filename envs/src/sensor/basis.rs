//! The basis of a sensor-placement task (mean and principal components of the training
//! fields) and the per-field quantities that scoring a sensor set needs.

use tch::{Device, Kind, Tensor};

use crate::env::EnvError;

/// Rows per chunk when the basis and the projections are computed.
const ROW_CHUNK: i64 = 8_192;

/// Fields with what scoring a sensor set needs of them.
#[derive(Debug)]
pub(super) struct FieldSet {
    /// `[N, n]` `f32`.
    pub(super) fields: Tensor,
    /// `c = (x − μ) Ψ_r`, `[N, r]` `f64`.
    pub(super) coefficients: Tensor,
    /// `‖(x − μ) − Ψ_r c‖²`, `[N]` `f64`: the error no sensor set can remove.
    pub(super) residual: Tensor,
}

impl FieldSet {
    /// The rows `picks` of each tensor.
    pub(super) fn select(&self, picks: &Tensor) -> Result<FieldSet, EnvError> {
        Ok(FieldSet {
            fields: self.fields.f_index_select(0, picks)?,
            coefficients: self.coefficients.f_index_select(0, picks)?,
            residual: self.residual.f_index_select(0, picks)?,
        })
    }

    /// The number of fields, N.
    pub(super) fn len(&self) -> i64 {
        self.fields.size()[0]
    }
}

/// Mean `[n]`, eigenvalues `[n]` (ascending) and eigenvectors `[n, n]` (columns) of the
/// scatter matrix `(X − μ)ᵀ(X − μ)` of `fields` `[N, n]`, all `f64` on the CPU.
pub(super) fn principal_components(fields: &Tensor) -> Result<(Tensor, Tensor, Tensor), EnvError> {
    let (rows, n) = (fields.size()[0], fields.size()[1]);
    let options = (Kind::Double, fields.device());
    let mut sum = Tensor::f_zeros([n], options)?;
    for start in (0..rows).step_by(ROW_CHUNK as usize) {
        let chunk = fields.f_narrow(0, start, ROW_CHUNK.min(rows - start))?.f_to_kind(Kind::Double)?;
        sum = sum.f_add(&chunk.f_sum_dim_intlist(0, false, None::<Kind>)?)?;
    }
    let mean = sum.f_div_scalar(rows as f64)?;
    let mut scatter = Tensor::f_zeros([n, n], options)?;
    for start in (0..rows).step_by(ROW_CHUNK as usize) {
        let chunk = fields.f_narrow(0, start, ROW_CHUNK.min(rows - start))?.f_to_kind(Kind::Double)?.f_sub(&mean)?;
        scatter = scatter.f_add(&chunk.f_transpose(0, 1)?.f_matmul(&chunk)?)?;
    }
    // Exactly symmetric before eigh (which reads one triangle anyway).
    let scatter = scatter.f_add(&scatter.f_transpose(0, 1)?)?.f_div_scalar(2.0)?.f_to_device(Device::Cpu)?;
    let (values, vectors) = scatter.f_linalg_eigh("L")?;
    Ok((mean.f_to_device(Device::Cpu)?, values, vectors))
}

/// The coefficients and residuals of `fields` in the basis.
pub(super) fn project(fields: Tensor, mean: &Tensor, modes: &Tensor) -> Result<FieldSet, EnvError> {
    let rows = fields.size()[0];
    let (mut coefficients, mut residuals) = (Vec::new(), Vec::new());
    for start in (0..rows).step_by(ROW_CHUNK as usize) {
        let centred = fields.f_narrow(0, start, ROW_CHUNK.min(rows - start))?.f_to_kind(Kind::Double)?.f_sub(mean)?;
        let c = centred.f_matmul(modes)?;
        let outside = centred.f_sub(&c.f_matmul(&modes.f_transpose(0, 1)?)?)?;
        residuals.push(outside.f_square()?.f_sum_dim_intlist(1, false, None::<Kind>)?);
        coefficients.push(c);
    }
    let r = modes.size()[1];
    let (coefficients, residual) = if rows == 0 {
        (Tensor::f_zeros([0, r], (Kind::Double, mean.device()))?, Tensor::f_zeros([0], (Kind::Double, mean.device()))?)
    } else {
        (Tensor::f_cat(&coefficients, 0)?, Tensor::f_cat(&residuals, 0)?)
    };
    Ok(FieldSet { fields, coefficients, residual })
}
