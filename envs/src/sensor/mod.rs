//! Sensor placement (Manohar et al. 2018, "Data-driven sparse sensor placement", IEEE
//! Control Systems Magazine): choose `k` of the `n` pixels of a field from which the whole
//! field is reconstructed by least squares in a basis learned from training fields. A
//! black-box task: one global subset (`rows = 1`), not differentiable.
//!
//! # Math
//! Training fields `X` (`N × n`), mean `μ`, and the basis `Ψ_r` (`n × r`): the `r` leading
//! principal components of `X − μ` (the eigenvectors of `(X − μ)ᵀ(X − μ)` of the largest
//! eigenvalues, in `f64`; signs arbitrary). For sensors `S` (`k` pixels) and a field `x`:
//!
//! ```text
//! a = argmin_a ‖x_S − μ_S − Ψ_S a‖² = Ψ_S⁺ (x_S − μ_S)     (Ψ_S: rows S of Ψ_r, k × r)
//! x̂ = μ + Ψ_r a
//! MSE(S) = mean over fields and pixels of (x − x̂)²,   reward = −MSE(S)
//! ```
//!
//! `Ψ_S⁺` is the pseudo-inverse, i.e. the minimum-norm solution when `k < r` or `Ψ_S` is
//! rank deficient. Its singular values below `10⁻¹⁰` — relative to the largest singular value
//! of the whole basis, which is 1 — are treated as zero ([`PINV_TOLERANCE`]), so singular
//! and ill-conditioned sets (pixels that never vary, pixels that always move together) give
//! a large but finite error. Because `Ψ_r` has orthonormal columns, with `c = Ψ_rᵀ(x − μ)`:
//!
//! ```text
//! ‖x − x̂‖² = ‖(x − μ) − Ψ_r c‖² + ‖c − a‖²
//! ```
//!
//! The first term does not depend on the sensors: it is computed once per field, and a
//! sensor set costs `O(k r)` per field instead of `O(n r)` ([`SensorPlacement::reconstruct`]
//! computes `x̂` itself). All of it runs in `f64` on the fields' device; rewards are `f32`.
//!
//! # Baselines
//! * `qr-pivoting`: the first `k` pivots of a column-pivoted QR of `Ψ_mᵀ` with
//!   `m = max(r, k)` modes ([`qr::qr_pivots`]): `Ψ_rᵀ` when `k ≤ r`, the first `k` modes
//!   when `k > r` (oversampling).
//! * `random`: the mean MSE of 32 uniformly random `k`-subsets drawn with
//!   [`RANDOM_BASELINE_SEED`] (the same subsets for both phases).
//!
//! # Defaults
//! [`SensorConfig::default`]: `k = 20` sensors, `r = 10` modes, batches of 256 training
//! fields, for MNIST and synthetic fields alike; synthetic fields use side
//! [`DEFAULT_SIDE`] = 16 (256 pixels).

mod basis;
pub mod qr;
pub mod synthetic;

use std::collections::BTreeMap;

use rand::Rng;
use tch::{Device, Kind, Tensor};

use crate::data::Mnist;
use crate::env::{
    EnvError, EnvSpec, Environment, EvalPolicy, Observation, Phase, Transition, check_actions, chosen_items,
    distinct_indices, random_subsets,
};
use crate::pictures::{GlobalSelection, ImageRow, Panel, Picture, PictureBody, Scale, first_rows, square_side};
use crate::space::KHotSpace;
use basis::{FieldSet, principal_components, project};

pub use qr::qr_pivots;
pub use synthetic::{SYNTHETIC_TEST, SYNTHETIC_TRAIN, SYNTHETIC_VALIDATION};

/// Singular values of `Ψ_S` below this (absolute, and relative to the largest one) count as
/// zero in the pseudo-inverse. `Ψ_r` has orthonormal columns, so every singular value of a
/// row subset is at most 1 and this is a relative cutoff with respect to the whole basis.
pub const PINV_TOLERANCE: f64 = 1e-10;
/// Random `k`-subsets averaged by the `random` baseline.
pub const RANDOM_BASELINE_SUBSETS: usize = 32;
/// Seed of the `random` baseline's subsets (`Xoshiro256PlusPlus`, [`distinct_indices`]).
pub const RANDOM_BASELINE_SEED: u64 = 0x5e45_0125;
/// The default side of synthetic fields (256 pixels).
pub const DEFAULT_SIDE: usize = 16;
/// The largest side of synthetic fields (4,096 pixels; the basis costs an `n × n` eigenproblem).
pub const MAX_SIDE: usize = 64;
/// Elements (`samples × fields × max(k, r)`) per chunk when sensor sets are scored.
const SCORE_CHUNK: i64 = 1 << 24;

/// Where the fields come from.
#[derive(Debug)]
pub enum Fields {
    /// Images as fields (`n` = the pixels per image, 784 for MNIST and Fashion-MNIST): the
    /// training split gives the basis and the training batches; validation and test are held
    /// out. Labels are not used.
    Images(Mnist),
    /// Synthetic smooth fields on a `side × side` grid ([`synthetic`]): `n = side²`,
    /// [`SYNTHETIC_TRAIN`], [`SYNTHETIC_VALIDATION`] and [`SYNTHETIC_TEST`] fields,
    /// deterministic for `seed`.
    Synthetic {
        /// Grid side, `1..=`[`MAX_SIDE`] (default [`DEFAULT_SIDE`]).
        side: usize,
        /// Seed of the fields.
        seed: u64,
    },
}

/// Sizes of a sensor-placement task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorConfig {
    /// Sensors `k`, `1 ≤ k ≤ n` (default 20).
    pub sensors: usize,
    /// Modes `r` of the basis, `1 ≤ r ≤ min(n, N_train)` (default 10).
    pub modes: usize,
    /// Training fields per step, `1 ≤ batch ≤ N_train` (default 256).
    pub batch: usize,
}

impl Default for SensorConfig {
    /// `k = 20`, `r = 10`, batch 256.
    fn default() -> Self {
        Self { sensors: 20, modes: 10, batch: 256 }
    }
}

/// The sensor-placement environment; see the [module docs](self).
#[derive(Debug)]
pub struct SensorPlacement {
    spec: EnvSpec,
    config: SensorConfig,
    /// `μ`, `[n]` `f64`.
    mean: Tensor,
    /// `Ψ_r`, `[n, r]` `f64`, orthonormal columns.
    modes: Tensor,
    explained: f64,
    qr: Vec<usize>,
    train: FieldSet,
    validation: FieldSet,
    test: FieldSet,
    /// The training fields of the last `reset`.
    batch: Option<FieldSet>,
}

impl SensorPlacement {
    /// The environment named `name` on `fields` with `config`; fields, basis and scoring live
    /// on `device` (the eigenproblem and the QR pivoting run on the CPU).
    ///
    /// # Errors
    /// [`EnvError::Config`] when `config` does not fit the fields (`1 ≤ k ≤ n`,
    /// `1 ≤ r ≤ min(n, N_train)`, `1 ≤ batch ≤ N_train`), for a synthetic side outside
    /// `1..=`[`MAX_SIDE`], image splits of different widths, or an empty held-out split;
    /// libtorch errors.
    pub fn new(name: &str, fields: Fields, config: SensorConfig, device: Device) -> Result<Self, EnvError> {
        let _guard = tch::no_grad_guard();
        let fail = |problem: String| EnvError::Config { env: name.to_owned(), problem };
        let (source, [train, validation, test]) = match fields {
            Fields::Images(data) => (
                "image".to_owned(),
                [data.train.images, data.validation.images, data.test.images].map(|t| t.f_to_kind(Kind::Float)),
            ),
            Fields::Synthetic { side, seed } => {
                if side == 0 || side > MAX_SIDE {
                    return Err(fail(format!("the synthetic side must be between 1 and {MAX_SIDE}, got {side}")));
                }
                (format!("synthetic smooth {side}x{side}"), synthetic::synthetic_fields(side, seed).map(Ok))
            }
        };
        let [train, validation, test] = [train?, validation?, test?];
        let shapes = [train.size(), validation.size(), test.size()];
        let [n_train, n_validation, n_test, n] = match [&shapes[0][..], &shapes[1][..], &shapes[2][..]] {
            [&[a, n], &[b, n1], &[c, n2]] if n == n1 && n == n2 && n >= 1 => [a, b, c, n].map(|v| v as usize),
            _ => {
                return Err(fail(format!(
                    "the training, validation and test fields must be [N, n] with the same n >= 1, got {shapes:?}"
                )));
            }
        };
        if n_validation == 0 || n_test == 0 {
            return Err(fail(format!(
                "the validation and test splits need at least one field each, got {n_validation} and {n_test}"
            )));
        }
        let SensorConfig { sensors: k, modes: r, batch } = config;
        if k == 0 || k > n {
            return Err(fail(format!("sensors k = {k} must be between 1 and the {n} pixels")));
        }
        if r == 0 || r > n.min(n_train) {
            return Err(fail(format!(
                "modes r = {r} must be between 1 and min(pixels, training fields) = min({n}, {n_train})"
            )));
        }
        if batch == 0 || batch > n_train {
            return Err(fail(format!("batch {batch} must be between 1 and the {n_train} training fields")));
        }
        let space = KHotSpace::new(n, k).map_err(|e| fail(e.to_string()))?;
        let [train, validation, test] = [train, validation, test].map(|t| t.f_to_device(device));
        let [train, validation, test] = [train?, validation?, test?];

        let (mean, eigenvalues, eigenvectors) = principal_components(&train)?;
        // Leading m = max(r, k) modes, largest eigenvalue first (eigh sorts ascending).
        let m = r.max(k) as i64;
        let leading = eigenvectors.f_narrow(1, n as i64 - m, m)?.f_flip([1])?;
        let qr = {
            let mut sensors = qr_pivots(&leading.f_transpose(0, 1)?, k)?;
            sensors.sort_unstable();
            sensors
        };
        let variances = Vec::<f64>::try_from(&eigenvalues.f_clamp_min(0.0)?)?;
        let total: f64 = variances.iter().sum();
        let explained = if total > 0.0 { variances[n - r..].iter().sum::<f64>() / total } else { 1.0 };
        let modes = leading.f_narrow(1, 0, r as i64)?.f_contiguous()?.f_to_device(device)?;
        let mean = mean.f_to_device(device)?;
        let [train, validation, test] = [train, validation, test].map(|fields| project(fields, &mean, &modes));
        let spec = EnvSpec {
            name: name.to_owned(),
            space,
            rows: 1,
            differentiable: false,
            metric: "mse".to_owned(),
            higher_is_better: false,
            observation_dim: 0,
            description: format!(
                "sensor placement on {source} fields: {k} of {n} pixels, fields reconstructed by least squares in {r} PCA modes; reward = −MSE per pixel"
            ),
        };
        Ok(Self {
            spec,
            config,
            mean,
            modes,
            explained,
            qr,
            train: train?,
            validation: validation?,
            test: test?,
            batch: None,
        })
    }

    /// The QR-pivoting sensors (sorted indices).
    pub fn qr_pivot_sensors(&self) -> Vec<usize> {
        self.qr.clone()
    }

    /// MSE per pixel of a sensor set on a phase's held-out fields (all of them). Any number
    /// of distinct pixels works, not only `k`.
    ///
    /// # Errors
    /// [`EnvError::Config`] for an empty set, a pixel out of range or a repeated pixel;
    /// libtorch errors.
    pub fn error_of(&self, sensors: &[usize], phase: Phase) -> Result<f64, EnvError> {
        let _guard = tch::no_grad_guard();
        let sensors = self.sensor_tensor(sensors)?;
        Ok(self.mse(self.held_out(phase), &sensors)?.f_double_value(&[0])?)
    }

    /// Fraction of the training variance captured by the r modes: the `r` largest
    /// eigenvalues of `(X − μ)ᵀ(X − μ)` over their sum (1 when the fields do not vary).
    pub fn explained_variance(&self) -> f64 {
        self.explained
    }

    /// The sizes the environment was built with.
    pub fn config(&self) -> SensorConfig {
        self.config
    }

    /// The mean training field `μ`, `[n]` `f64`.
    pub fn mean(&self) -> &Tensor {
        &self.mean
    }

    /// The basis `Ψ_r`, `[n, r]` `f64` with orthonormal columns, leading mode first.
    pub fn modes(&self) -> &Tensor {
        &self.modes
    }

    /// The reconstructions `x̂ = μ + Ψ_r Ψ_S⁺ (x_S − μ_S)` of `fields` `[B, n]` (any real
    /// kind, converted to `f64`) from the pixels `sensors`, `[B, n]` `f64`, computed directly
    /// (not through the decomposition that scoring uses).
    ///
    /// # Errors
    /// As [`SensorPlacement::error_of`]; [`EnvError::Config`] when `fields` is not `[B, n]`.
    pub fn reconstruct(&self, sensors: &[usize], fields: &Tensor) -> Result<Tensor, EnvError> {
        let _guard = tch::no_grad_guard();
        let n = self.spec.space.n() as i64;
        if !matches!(fields.size()[..], [_, width] if width == n) {
            return Err(self.config_error(format!("fields must be [B, {n}], got {:?}", fields.size())));
        }
        let picks = self.sensor_tensor(sensors)?.f_view([-1])?;
        let centred = fields.f_to_kind(Kind::Double)?.f_to_device(self.mean.device())?.f_sub(&self.mean)?;
        let pinv = self.modes.f_index_select(0, &picks)?.f_linalg_pinv_atol_rtol_float(
            PINV_TOLERANCE,
            PINV_TOLERANCE,
            false,
        )?;
        let coefficients = centred.f_index_select(1, &picks)?.f_matmul(&pinv.f_transpose(0, 1)?)?;
        Ok(coefficients.f_matmul(&self.modes.f_transpose(0, 1)?)?.f_add(&self.mean)?)
    }

    fn config_error(&self, problem: String) -> EnvError {
        EnvError::Config { env: self.spec.name.clone(), problem }
    }

    fn held_out(&self, phase: Phase) -> &FieldSet {
        match phase {
            Phase::Validation => &self.validation,
            Phase::Test => &self.test,
        }
    }

    /// A validated sensor set as `[1, m]` `i64` on the device.
    fn sensor_tensor(&self, sensors: &[usize]) -> Result<Tensor, EnvError> {
        let n = self.spec.space.n();
        if sensors.is_empty() {
            return Err(self.config_error("a sensor set needs at least one pixel".to_owned()));
        }
        let mut seen = vec![false; n];
        for &s in sensors {
            if s >= n {
                return Err(self.config_error(format!("sensor {s} is out of range for {n} pixels")));
            }
            if std::mem::replace(&mut seen[s], true) {
                return Err(self.config_error(format!("sensor {s} appears twice")));
            }
        }
        let picks: Vec<i64> = sensors.iter().map(|&s| s as i64).collect();
        Ok(Tensor::from_slice(&picks).f_view([1, -1])?.f_to_device(self.mean.device())?)
    }

    /// The selected pixels of k-hot actions `[S, n]`, `[S, k]` `i64`.
    fn action_sensors(&self, actions: &Tensor) -> Result<Tensor, EnvError> {
        Ok(chosen_items(&self.spec, actions)?.f_to_device(self.mean.device())?)
    }

    /// MSE per pixel of each sensor set `sensors` (`[S, m]` `i64`) on `set`: `[S]` `f64`.
    fn mse(&self, set: &FieldSet, sensors: &Tensor) -> Result<Tensor, EnvError> {
        let (samples, m) = (sensors.size()[0], sensors.size()[1]);
        let r = self.modes.size()[1];
        let flat = sensors.f_flatten(0, -1)?;
        let basis = self.modes.f_index_select(0, &flat)?.f_view([samples, m, r])?;
        // Ψ_S⁺ᵀ, [S, m, r].
        let pinv_t = basis.f_linalg_pinv_atol_rtol_float(PINV_TOLERANCE, PINV_TOLERANCE, false)?.f_transpose(1, 2)?;
        let mean = self.mean.f_index_select(0, &flat)?.f_view([samples, 1, m])?;
        let fields = set.len();
        let chunk = (SCORE_CHUNK / (samples * m.max(r))).max(1);
        let mut total = Tensor::f_zeros([samples], (Kind::Double, self.mean.device()))?;
        for start in (0..fields).step_by(chunk as usize) {
            let len = chunk.min(fields - start);
            let readings = set
                .fields
                .f_narrow(0, start, len)?
                .f_index_select(1, &flat)?
                .f_to_kind(Kind::Double)?
                .f_view([len, samples, m])?
                .f_permute([1, 0, 2])?
                .f_sub(&mean)?;
            let coefficients = readings.f_matmul(&pinv_t)?;
            let aliasing = set.coefficients.f_narrow(0, start, len)?.f_unsqueeze(0)?.f_sub(&coefficients)?;
            let errors = aliasing
                .f_square()?
                .f_sum_dim_intlist(-1, false, None::<Kind>)?
                .f_add(&set.residual.f_narrow(0, start, len)?.f_unsqueeze(0)?)?;
            total = total.f_add(&errors.f_sum_dim_intlist(-1, false, None::<Kind>)?)?;
        }
        Ok(total.f_div_scalar((fields * self.spec.space.n() as i64) as f64)?)
    }
}

impl Environment for SensorPlacement {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// Draws `batch` distinct training fields; inputs: none (one global subset).
    fn reset(&mut self, rng: &mut dyn Rng) -> Result<Observation, EnvError> {
        let picks = distinct_indices(rng, self.train.len() as usize, self.config.batch);
        let picks = Tensor::from_slice(&picks).f_to_device(self.mean.device())?;
        self.batch = Some(self.train.select(&picks)?);
        Ok(Observation { inputs: Vec::new() })
    }

    /// Rewards `[S, 1]` `f32`: minus the MSE per pixel of each action's sensors on the batch
    /// (capped at `f32::MAX`, so always finite).
    fn step(&mut self, actions: &Tensor) -> Result<Transition, EnvError> {
        let _guard = tch::no_grad_guard();
        let samples = check_actions(&self.spec, actions)?;
        let batch = self.batch.as_ref().ok_or_else(|| EnvError::NotReset { env: self.spec.name.clone() })?;
        let sensors = self.action_sensors(&actions.f_view([samples, self.spec.space.n() as i64])?)?;
        let mse = self.mse(batch, &sensors)?;
        let rewards = mse.f_clamp_max(f64::from(f32::MAX))?.f_neg()?.f_to_kind(Kind::Float)?.f_view([samples, 1])?;
        Ok(Transition::rewards(rewards))
    }

    /// `{"mse": …}` of the policy's top-k sensors on all held-out fields of `phase`.
    fn evaluate(&mut self, phase: Phase, policy: &dyn EvalPolicy) -> Result<BTreeMap<String, f64>, EnvError> {
        let _guard = tch::no_grad_guard();
        let action = policy.act(&Observation { inputs: Vec::new() })?;
        let n = self.spec.space.n() as i64;
        if action.numel() != n as usize {
            return Err(EnvError::Policy(format!("expected a [1, {n}] action, got {:?}", action.size())));
        }
        let sensors = self.action_sensors(&action.f_view([1, n])?)?;
        let mse = self.mse(self.held_out(phase), &sensors)?.f_double_value(&[0])?;
        Ok(BTreeMap::from([("mse".to_owned(), mse)]))
    }

    /// `{"random": …, "qr-pivoting": …}`: MSE of the mean over [`RANDOM_BASELINE_SUBSETS`]
    /// random subsets ([`RANDOM_BASELINE_SEED`]) and of [`SensorPlacement::qr_pivot_sensors`].
    fn baselines(&mut self, phase: Phase) -> Result<BTreeMap<String, f64>, EnvError> {
        let _guard = tch::no_grad_guard();
        let (n, k) = (self.spec.space.n(), self.spec.space.k());
        let picks: Vec<i64> = random_subsets(RANDOM_BASELINE_SEED, RANDOM_BASELINE_SUBSETS, n, k)
            .into_iter()
            .flat_map(|subset| subset.into_iter().map(|i| i as i64))
            .collect();
        let picks = Tensor::from_slice(&picks).f_view([RANDOM_BASELINE_SUBSETS as i64, k as i64])?;
        let random = self.mse(self.held_out(phase), &picks.f_to_device(self.mean.device())?)?.f_mean(Kind::Double)?;
        Ok(BTreeMap::from([
            ("random".to_owned(), random.f_double_value(&[])?),
            ("qr-pivoting".to_owned(), self.error_of(&self.qr, phase)?),
        ]))
    }

    /// For square fields: `mask` (the pixels' inclusion probabilities and the top-k
    /// pixels) and `sensors` (the first test fields with the learned sensors circled and
    /// their reconstructions, beside QR pivoting's).
    fn pictures(&mut self, policy: &dyn EvalPolicy) -> Result<Vec<Picture>, EnvError> {
        let n = self.spec.space.n();
        if square_side(n).is_none() {
            return Ok(Vec::new());
        }
        let _guard = tch::no_grad_guard();
        let selection = GlobalSelection::of(policy)?;
        let learned = selection.items();
        let count = FIELDS_SHOWN.min(self.test.len() as usize);
        let fields = self.test.fields.f_narrow(0, 0, count as i64)?;
        let originals = first_rows(&fields, count)?;
        let mut rows = Vec::new();
        let mut shown = Vec::new();
        for (name, sensors) in [("learned", &learned), ("QR pivoting", &self.qr)] {
            let reconstructions = first_rows(&self.reconstruct(sensors, &fields)?, count)?;
            let mse = self.error_of(sensors, Phase::Test)?;
            shown.push((format!("{name}:\ntest MSE {mse:.4}"), sensors.clone(), reconstructions));
        }
        let values = originals.iter().chain(shown.iter().flat_map(|(_, _, r)| r.iter())).flatten();
        let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let scale = Scale::Heat { min, max: max.max(min + 1e-12), label: "field value".to_owned() };
        for (label, sensors, reconstructions) in shown {
            let mut panels = Vec::new();
            for (i, (original, reconstruction)) in originals.iter().zip(reconstructions).enumerate() {
                let error = original.iter().zip(&reconstruction).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / n as f64;
                panels.push(
                    Panel::square(original.clone(), scale.clone(), format!("test field {i}\nand its sensors"))?
                        .with_marks(sensors.clone()),
                );
                panels.push(Panel::square(reconstruction, scale.clone(), format!("reconstruction\nMSE {error:.4}"))?);
            }
            rows.push(ImageRow { label, panels });
        }
        let k = learned.len();
        let sensors = Picture {
            name: "sensors".to_owned(),
            title: format!(
                "{}: {k} sensors and the fields they reconstruct, learned and by QR pivoting",
                self.spec.name
            ),
            body: PictureBody::Images { rows },
        };
        Ok(vec![selection.pixel_mask(&self.spec.name)?, sensors])
    }
}

/// Test fields in the `sensors` figure.
const FIELDS_SHOWN: usize = 2;

/// The registry's entry of sensor placement: on synthetic smooth fields
/// (`sensor-placement-synthetic`, no data) or on the images of `set`
/// (`sensor-placement-mnist`, `sensor-placement-fashion`): k = 20 sensors, a basis of 10
/// principal components; baselines QR pivoting and random.
pub fn entry(set: Option<crate::data::DataSet>) -> crate::registry::EnvEntry {
    description(set).constructor(|mut make| {
        let fields = match make.data.take() {
            Some(data) => Fields::Images(data),
            None => Fields::Synthetic { side: DEFAULT_SIDE, seed: 0 },
        };
        let sensors = SensorConfig { sensors: make.k, modes: make.options.count("modes")?, batch: make.batch_size };
        Ok(Box::new(SensorPlacement::new(make.name, fields, sensors, make.device)?))
    })
}

/// [`entry`] without its constructor: what [`Registry::catalog`](crate::registry::Registry::catalog) lists.
pub(crate) fn description(set: Option<crate::data::DataSet>) -> crate::registry::EnvEntry {
    use crate::registry::{EnvEntry, IMAGE_PIXELS, OptionSpec, Shape, on_data_set};
    let (name, description, items) = match set {
        None => (
            "sensor-placement-synthetic".to_owned(),
            format!(
                "k sensors on a {DEFAULT_SIDE}x{DEFAULT_SIDE} grid reconstruct synthetic smooth fields in a PCA basis; baselines: QR pivoting, random"
            ),
            (DEFAULT_SIDE * DEFAULT_SIDE, "locations"),
        ),
        Some(set) => (
            on_data_set("sensor-placement", set),
            format!("k sensor pixels reconstruct {} images in a PCA basis; baselines: QR pivoting, random", set.name()),
            (IMAGE_PIXELS, "pixels"),
        ),
    };
    let entry = EnvEntry::described(&name, &description)
        .default_k(20)
        .metric("mse", false)
        .option(
            OptionSpec::count("modes", 10, 1, IMAGE_PIXELS, "principal components r of the reconstruction basis")
                .legacy_flag("--sensor-modes"),
        )
        .baseline("qr")
        .baseline("random")
        .shape(move |_| Ok(Shape { items: items.0, items_are: items.1.to_owned(), rows: 1 }));
    match set {
        Some(set) => entry.data(set),
        None => entry,
    }
}
