//! Feature selection scored by a non-differentiable classifier: choose `k` of the pixels
//! (784 for MNIST) so that a k-nearest-neighbours classifier that sees only those pixels
//! is accurate.
//!
//! A pixel set `A` (mask `z ∈ {0,1}^P`, `Σ z = k`) classifies a query `q` by the majority
//! vote of the labels of its `neighbours` nearest references `r` in the distance restricted
//! to `A`:
//!
//! ```text
//! d_A(q, r) = Σ_p z_p (q_p − r_p)² = (q²)·z + (r²)·z − 2 (q ⊙ z)·r
//! ```
//!
//! Distance ties go to the earlier reference (in the drawn order during training, in the
//! training split's order during evaluation) and vote ties to the smallest label. The
//! reward of `A` is the accuracy of that classifier, a piecewise-constant, hence
//! non-differentiable, function of the mask: only score-function estimators apply.
//!
//! Each training step ([`KnnFeatureSelection`]'s `reset`) draws `references + queries`
//! distinct training images; `step` classifies the queries among the references, for each
//! of the `S` sampled pixel sets at once (`[S, Q, R]` distances by one batched product over
//! the `k` selected pixels of each set). Evaluation uses the whole training split as
//! references and the whole held-out split as queries.
//!
//! # Memory and speed
//! Distance matrices are computed in pieces of about 25 MB (groups of samples in `step`,
//! chunks of queries in evaluation): far under the 200 MB allowed, and faster on a CPU than
//! larger pieces, whose fresh allocations are dominated by page faults. On 2 CPU cores with
//! MNIST and the defaults, `reset` + `step` with `S = 32` takes about 15 ms and one
//! evaluation (10,000 queries against 50,000 references, k = 50) about 1.1 s.
//!
//! # Exact arithmetic
//! Pixels are quantised to `round(255·x)` (MNIST's own 1/255 steps, so MNIST is unchanged
//! up to that scale), which makes every distance an integer. The products run in `f32`
//! while `k·255² ≤ 2²⁴` (`k ≤ 258`: every partial sum is then an exact integer) and in
//! `f64` above; the distances are then combined in `i64`. So the classifier is exact and
//! deterministic, with the tie rules above, on any device.
//!
//! # Baselines
//! `"random"`: mean accuracy of 8 uniformly random pixel sets (fixed seed); `"fisher-score"`:
//! the `k` pixels of highest Fisher score on the training split ([`fisher_scores`]).

use std::collections::BTreeMap;

use rand::Rng;
use tch::{Device, Kind, Tensor};

use crate::data::{Mnist, Split};
use crate::env::{
    EnvError, EnvSpec, Environment, EvalPolicy, Observation, Phase, Transition, check_actions, chosen_items,
    distinct_indices, random_subsets,
};
use crate::pictures::{
    GlobalSelection, IMAGES_PER_ROW, ImageRow, Panel, Picture, PictureBody, Scale, first_rows, square_side,
};
use crate::space::KHotSpace;

/// Bytes the distance matrices of one piece of work (a group of samples in `step`, a
/// chunk of queries in evaluation) may take, at about 16 bytes per query-reference pair.
const EVAL_BYTES: i64 = 25_000_000;
/// Random pixel sets averaged by the `"random"` baseline.
const RANDOM_SETS: usize = 8;
/// Seed of the `"random"` baseline's pixel sets.
const RANDOM_SEED: u64 = 0x5EED_0C0F;
/// Rows per chunk when computing Fisher scores.
const FISHER_CHUNK: i64 = 5_000;
/// Quantisation of pixels: `round(SCALE · x)`.
const SCALE: f64 = 255.0;

/// Sizes of [`KnnFeatureSelection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnnSelectionConfig {
    /// Pixels to select, `1 ≤ k ≤ P`.
    pub k: usize,
    /// Neighbours that vote, `1 ≤ neighbours ≤ references` (default 5).
    pub neighbours: usize,
    /// Labelled reference images drawn per training step (default 1000).
    pub references: usize,
    /// Images classified per training step (default 256).
    pub queries: usize,
}

impl Default for KnnSelectionConfig {
    /// `k = 50` pixels, 5 neighbours, 1000 references, 256 queries.
    fn default() -> Self {
        Self { k: 50, neighbours: 5, references: 1000, queries: 256 }
    }
}

/// The drawn training batch of the last `reset` (quantised images).
#[derive(Debug)]
struct Batch {
    references: Tensor,
    reference_labels: Tensor,
    queries: Tensor,
    query_labels: Tensor,
}

/// Pixel selection scored by k-NN accuracy, a black-box environment; see the
/// [module docs](self).
///
/// Spec: `rows = 1`, not differentiable, metric `"accuracy"` (higher is better),
/// `observation_dim = 0`; actions `[S, 1, P]` must be exact k-hot vectors.
#[derive(Debug)]
pub struct KnnFeatureSelection {
    spec: EnvSpec,
    config: KnnSelectionConfig,
    /// Pixels per image, `P`.
    pixels: i64,
    /// Classes `C`: the largest training label plus one.
    classes: i64,
    /// The kind the distance products run in (exact for integer pixels, see the module docs).
    kind: Kind,
    /// The data with images quantised to integers `0..=255` (as `f32`).
    data: Mnist,
    batch: Option<Batch>,
    fisher: Option<Vec<f64>>,
    /// Cached baselines: validation, test.
    baselines: [Option<BTreeMap<String, f64>>; 2],
}

impl KnnFeatureSelection {
    /// The environment named `name` on `data` (images `[N, P]` in `[0, 1]`, labels `[N]`
    /// non-negative), with the sizes of `config`; data moves to `device`.
    ///
    /// # Errors
    /// [`EnvError::Config`] when `k` is not in `1..=P`, `neighbours` is 0 or more than
    /// `references`, `references` or `queries` is 0, `references + queries` exceeds the
    /// training split, the splits' shapes disagree, a pixel is outside `[0, 1]` (or NaN),
    /// or a label is negative.
    pub fn new(name: &str, data: Mnist, config: KnnSelectionConfig, device: Device) -> Result<Self, EnvError> {
        let problem = |problem: String| EnvError::Config { env: name.to_owned(), problem };
        let shape = data.train.images.size();
        let [_, pixels] = shape[..] else {
            return Err(problem(format!("training images must be [N, P], got {shape:?}")));
        };
        for (split_name, split) in [("train", &data.train), ("validation", &data.validation), ("test", &data.test)] {
            let (images, labels) = (split.images.size(), split.labels.size());
            if images.len() != 2 || images[1] != pixels || labels.len() != 1 || labels[0] != images[0] {
                return Err(problem(format!(
                    "the {split_name} split has images {images:?} and labels {labels:?}; expected [N, {pixels}] and [N]"
                )));
            }
            if images[0] > 0 {
                let (low, high) = (split.images.f_min()?.double_value(&[]), split.images.f_max()?.double_value(&[]));
                if !(low >= 0.0 && high <= 1.0) {
                    return Err(problem(format!(
                        "the {split_name} images range over [{low}, {high}]; pixels must lie in [0, 1]"
                    )));
                }
                if split.labels.f_min()?.int64_value(&[]) < 0 {
                    return Err(problem(format!("the {split_name} split has a negative label")));
                }
            }
        }
        let KnnSelectionConfig { k, neighbours, references, queries } = config;
        let space = KHotSpace::new(pixels as usize, k).map_err(|e| problem(e.to_string()))?;
        if k == 0 {
            return Err(problem("k must be at least 1 pixel".to_owned()));
        }
        if references == 0 || queries == 0 {
            return Err(problem(format!("references ({references}) and queries ({queries}) must be at least 1")));
        }
        if neighbours == 0 || neighbours > references {
            return Err(problem(format!(
                "neighbours must be between 1 and the {references} references, got {neighbours}"
            )));
        }
        if references + queries > data.train.len() {
            return Err(problem(format!(
                "a step draws {references} references and {queries} queries, but the training split has {} images",
                data.train.len()
            )));
        }
        let classes = data.train.labels.f_max()?.int64_value(&[]) + 1;
        let quantise = |split: Split| -> Result<Split, EnvError> {
            let split = split.to_device(device);
            Ok(Split { images: quantised(&split.images)?, labels: split.labels.f_to_kind(Kind::Int64)? })
        };
        let data =
            Mnist { train: quantise(data.train)?, validation: quantise(data.validation)?, test: quantise(data.test)? };
        let kind = if (k as f64) * SCALE * SCALE <= f64::from(1u32 << 24) { Kind::Float } else { Kind::Double };
        let spec = EnvSpec {
            name: name.to_owned(),
            space,
            rows: 1,
            differentiable: false,
            metric: "accuracy".to_owned(),
            higher_is_better: true,
            observation_dim: 0,
            description: format!(
                "select {k} of {pixels} pixels; reward = accuracy of a {neighbours}-NN classifier on them (black box)"
            ),
        };
        Ok(Self { spec, config, pixels, classes, kind, data, batch: None, fisher: None, baselines: [None, None] })
    }

    /// The sizes.
    #[must_use]
    pub fn config(&self) -> KnnSelectionConfig {
        self.config
    }

    /// Accuracy of the pixels `selected` on the held-out split of `phase`, with the whole
    /// training split as references.
    ///
    /// # Errors
    /// [`EnvError::Config`] when `selected` is empty, repeats a pixel or names one `≥ P`;
    /// libtorch errors.
    pub fn accuracy_of(&self, selected: &[usize], phase: Phase) -> Result<f64, EnvError> {
        let split = match phase {
            Phase::Validation => &self.data.validation,
            Phase::Test => &self.data.test,
        };
        if split.is_empty() {
            return Err(self.config_error(format!("the {} split is empty", phase.name())));
        }
        let predictions = self.predict_quantised(selected, &split.images)?;
        let correct = predictions.f_eq_tensor(&split.labels)?.f_sum(Kind::Int64)?.int64_value(&[]);
        Ok(correct as f64 / split.len() as f64)
    }

    /// The labels the k-NN classifier on the pixels `selected` predicts for `images`
    /// `[N, P]` (values in `[0, 1]`, quantised like the data), with the whole training
    /// split as references: `[N]` `i64`.
    ///
    /// # Errors
    /// As [`KnnFeatureSelection::accuracy_of`], and [`EnvError::Config`] for images of
    /// another width.
    pub fn predict(&self, selected: &[usize], images: &Tensor) -> Result<Tensor, EnvError> {
        let shape = images.size();
        if shape.len() != 2 || shape[1] != self.pixels {
            return Err(self.config_error(format!("images must be [N, {}], got {shape:?}", self.pixels)));
        }
        let device = self.data.train.images.device();
        self.predict_quantised(selected, &quantised(&images.f_to_device(device)?)?)
    }

    /// [`Self::predict`] for quantised images on the data's device, in chunks of queries.
    fn predict_quantised(&self, selected: &[usize], images: &Tensor) -> Result<Tensor, EnvError> {
        let columns = self.columns(selected)?;
        let train = &self.data.train;
        let references = train.images.f_index_select(1, &columns)?.f_to_kind(self.kind)?.f_unsqueeze(0)?;
        let count = train.len() as i64;
        let chunk = (EVAL_BYTES / (16 * count)).max(1);
        let n = images.size()[0];
        let mut predictions = Vec::new();
        for start in (0..n).step_by(chunk as usize) {
            let queries = images
                .f_narrow(0, start, chunk.min(n - start))?
                .f_index_select(1, &columns)?
                .f_to_kind(self.kind)?
                .f_unsqueeze(0)?;
            predictions.push(self.classify(&references, &train.labels, &queries)?.f_squeeze_dim(0)?);
        }
        if predictions.is_empty() {
            return Ok(Tensor::f_zeros([0], (Kind::Int64, images.device()))?);
        }
        Ok(Tensor::f_cat(&predictions, 0)?)
    }

    /// The pixel indices `selected` as an `i64` tensor on the data's device.
    fn columns(&self, selected: &[usize]) -> Result<Tensor, EnvError> {
        if selected.is_empty() {
            return Err(self.config_error("select at least one pixel".to_owned()));
        }
        let mut seen = vec![false; self.pixels as usize];
        for &p in selected {
            if p >= seen.len() || std::mem::replace(&mut seen[p], true) {
                return Err(self.config_error(format!("pixel {p} is out of range or repeated in {selected:?}")));
            }
        }
        let columns: Vec<i64> = selected.iter().map(|&p| p as i64).collect();
        Ok(Tensor::from_slice(&columns).f_to_device(self.data.train.images.device())?)
    }

    /// The k-NN predictions `[S, Q]` for `S` pixel sets at once: `references` `[S, R, k]`
    /// and `queries` `[S, Q, k]` hold each set's selected pixels (integers in `self.kind`),
    /// `labels` `[R]` the references' labels.
    ///
    /// The neighbours are the `neighbours` smallest keys `d · R + r` (`i64`, unique per
    /// reference `r`: distance ties → the earlier reference); the vote score of class `c`
    /// is `votes_c · C + (C − 1 − c)` (unique: vote ties → the smaller label).
    fn classify(&self, references: &Tensor, labels: &Tensor, queries: &Tensor) -> Result<Tensor, EnvError> {
        let (samples, count) = (references.size()[0], references.size()[1]);
        let device = references.device();
        let cross = queries.f_bmm(&references.f_transpose(1, 2)?)?;
        let query_norms = queries.f_square()?.f_sum_dim_intlist(-1, false, self.kind)?.f_to_kind(Kind::Int64)?;
        let reference_norms = references.f_square()?.f_sum_dim_intlist(-1, false, self.kind)?.f_to_kind(Kind::Int64)?;
        let order = Tensor::f_arange(count, (Kind::Int64, device))?;
        // key = (‖q‖² + ‖r‖² − 2 q·r) · R + r, built in place.
        let mut key = cross.f_to_kind(Kind::Int64)?;
        drop(cross);
        let _ = key.f_mul_scalar_(-2 * count)?;
        let _ = key.f_add_(&reference_norms.f_mul_scalar(count)?.f_add(&order)?.f_unsqueeze(1)?)?;
        let _ = key.f_add_(&query_norms.f_mul_scalar(count)?.f_unsqueeze(2)?)?;
        let neighbours = self.config.neighbours as i64;
        let (_, nearest) = key.f_topk(neighbours, -1, false, false)?;
        drop(key);
        let queries_count = nearest.size()[1];
        let votes = labels
            .f_index_select(0, &nearest.f_flatten(0, -1)?)?
            .f_view([samples, queries_count, neighbours])?
            .f_one_hot(self.classes)?
            .f_sum_dim_intlist(2, false, Kind::Int64)?;
        let preference =
            Tensor::f_arange(self.classes, (Kind::Int64, device))?.f_neg()?.f_add_scalar(self.classes - 1)?;
        let scores = votes.f_mul_scalar(self.classes)?.f_add(&preference)?;
        Ok(scores.f_argmax(-1, false)?)
    }

    /// Fisher scores of the pixels on the (quantised) training split, computed once.
    fn fisher(&mut self) -> Result<&[f64], EnvError> {
        if self.fisher.is_none() {
            self.fisher = Some(fisher_scores(&self.data.train.images, &self.data.train.labels)?);
        }
        Ok(self.fisher.as_deref().unwrap_or_default())
    }

    /// An [`EnvError::Config`] of this environment.
    fn config_error(&self, problem: String) -> EnvError {
        EnvError::Config { env: self.spec.name.clone(), problem }
    }
}

/// `round(255 · x)` as `f32`: pixels as exact integers `0..=255`.
fn quantised(images: &Tensor) -> Result<Tensor, EnvError> {
    Ok(images.f_to_kind(Kind::Double)?.f_mul_scalar(SCALE)?.f_round()?.f_to_kind(Kind::Float)?)
}

/// The Fisher score of each pixel of `images` `[N, P]` with class `labels` `[N]` (`i64`,
/// non-negative), the classical filter criterion
///
/// ```text
/// F_p = Σ_c n_c (μ_{c,p} − μ_p)² / Σ_c n_c σ²_{c,p}
/// ```
///
/// (`n_c` images of class `c`, class means `μ_c`, overall mean `μ`, class variances `σ²_c`),
/// computed in `f64`. A pixel with zero within-class and zero between-class variance
/// (constant) scores 0; one with zero within-class but positive between-class variance
/// (a perfect separator) scores `+∞`. Variances (as sums over the images) below `10⁻¹² Σ_i x²_{i,p}`
/// count as zero (rounding).
///
/// # Errors
/// [`EnvError::Config`] for mismatched shapes or negative labels; libtorch errors.
pub fn fisher_scores(images: &Tensor, labels: &Tensor) -> Result<Vec<f64>, EnvError> {
    let bad = |problem: String| EnvError::Config { env: "fisher score".to_owned(), problem };
    let (shape, label_shape) = (images.size(), labels.size());
    if shape.len() != 2 || label_shape != [shape[0]] || shape[0] == 0 {
        return Err(bad(format!("need images [N, P] and labels [N] with N ≥ 1, got {shape:?} and {label_shape:?}")));
    }
    let labels = labels.f_to_kind(Kind::Int64)?;
    if labels.f_min()?.int64_value(&[]) < 0 {
        return Err(bad("labels must be non-negative".to_owned()));
    }
    let classes = labels.f_max()?.int64_value(&[]) + 1;
    let (n, pixels) = (shape[0], shape[1]);
    let options = (Kind::Double, images.device());
    let mut sums = Tensor::f_zeros([classes, pixels], options)?;
    let mut squares = Tensor::f_zeros([classes, pixels], options)?;
    let mut counts = Tensor::f_zeros([classes], options)?;
    for start in (0..n).step_by(FISHER_CHUNK as usize) {
        let len = FISHER_CHUNK.min(n - start);
        let x = images.f_narrow(0, start, len)?.f_to_kind(Kind::Double)?;
        let onehot = labels.f_narrow(0, start, len)?.f_one_hot(classes)?.f_to_kind(Kind::Double)?.f_transpose(0, 1)?;
        sums = sums.f_add(&onehot.f_mm(&x)?)?;
        squares = squares.f_add(&onehot.f_mm(&x.f_square()?)?)?;
        counts = counts.f_add(&onehot.f_sum_dim_intlist(1, false, Kind::Double)?)?;
    }
    // Σ_c S_c² / n_c over the classes present (absent classes have S_c = 0).
    let explained =
        sums.f_square()?.f_div(&counts.f_clamp_min(1.0)?.f_unsqueeze(1)?)?.f_sum_dim_intlist(0, false, Kind::Double)?;
    let total = sums.f_sum_dim_intlist(0, false, Kind::Double)?;
    let total_squares = squares.f_sum_dim_intlist(0, false, Kind::Double)?;
    let between = explained.f_sub(&total.f_square()?.f_div_scalar(n as f64)?)?;
    let within = total_squares.f_sub(&explained)?;
    let to_vec = |t: &Tensor| -> Result<Vec<f64>, EnvError> { Ok(Vec::<f64>::try_from(&t.f_to_device(Device::Cpu)?)?) };
    let (between, within, total_squares) = (to_vec(&between)?, to_vec(&within)?, to_vec(&total_squares)?);
    Ok(between
        .iter()
        .zip(&within)
        .zip(&total_squares)
        .map(|((&b, &w), &s)| {
            let tiny = 1e-12 * s;
            match (b > tiny, w > tiny) {
                (_, true) => b.max(0.0) / w,
                (true, false) => f64::INFINITY,
                (false, false) => 0.0,
            }
        })
        .collect())
}

/// The indices of the `k` largest `scores` (ties → the lower index), in decreasing score.
fn top(scores: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order.truncate(k);
    order
}

impl Environment for KnnFeatureSelection {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// Draws `references + queries` distinct training images with
    /// [`distinct_indices`]`(rng, N, references + queries)`: the first `references` are the
    /// references (in that order), the rest the queries. No inputs.
    fn reset(&mut self, rng: &mut dyn Rng) -> Result<Observation, EnvError> {
        let (references, queries) = (self.config.references, self.config.queries);
        let train = &self.data.train;
        let picks = distinct_indices(rng, train.len(), references + queries);
        let picks = Tensor::from_slice(&picks).f_to_device(train.images.device())?;
        let (reference_picks, query_picks) =
            (picks.f_narrow(0, 0, references as i64)?, picks.f_narrow(0, references as i64, queries as i64)?);
        self.batch = Some(Batch {
            references: train.images.f_index_select(0, &reference_picks)?,
            reference_labels: train.labels.f_index_select(0, &reference_picks)?,
            queries: train.images.f_index_select(0, &query_picks)?,
            query_labels: train.labels.f_index_select(0, &query_picks)?,
        });
        Ok(Observation { inputs: Vec::new() })
    }

    /// Rewards `[S, 1]` (`f32`, on the data's device): the accuracy on the drawn queries of
    /// each sampled pixel set.
    fn step(&mut self, actions: &Tensor) -> Result<Transition, EnvError> {
        let samples = check_actions(&self.spec, actions)?;
        let batch = self.batch.as_ref().ok_or_else(|| EnvError::NotReset { env: self.spec.name.clone() })?;
        let _guard = tch::no_grad_guard();
        let device = batch.references.device();
        let k = self.spec.space.k() as i64;
        let columns = chosen_items(&self.spec, &actions.f_to_device(device)?)?.f_flatten(0, -1)?;
        let gather = |images: &Tensor| -> Result<Tensor, EnvError> {
            let rows = images.size()[0];
            Ok(images
                .f_index_select(1, &columns)?
                .f_view([rows, samples, k])?
                .f_permute([1, 0, 2])?
                .f_to_kind(self.kind)?)
        };
        let (references, queries) = (gather(&batch.references)?, gather(&batch.queries)?);
        // Groups of samples whose distance matrices fit in EVAL_BYTES.
        let pairs = references.size()[1] * queries.size()[1];
        let group = (EVAL_BYTES / (16 * pairs)).max(1);
        let mut parts = Vec::new();
        for start in (0..samples).step_by(group as usize) {
            let len = group.min(samples - start);
            parts.push(self.classify(
                &references.f_narrow(0, start, len)?,
                &batch.reference_labels,
                &queries.f_narrow(0, start, len)?,
            )?);
        }
        let predictions = Tensor::f_cat(&parts, 0)?;
        let accuracy = predictions
            .f_eq_tensor(&batch.query_labels.f_unsqueeze(0)?)?
            .f_to_kind(Kind::Float)?
            .f_mean_dim(-1, false, Kind::Float)?;
        Ok(Transition::rewards(accuracy.f_view([samples, 1])?))
    }

    /// `{"accuracy": …}` of the policy's top-k pixels on the held-out split.
    fn evaluate(&mut self, phase: Phase, policy: &dyn EvalPolicy) -> Result<BTreeMap<String, f64>, EnvError> {
        let action = policy.act(&Observation { inputs: Vec::new() })?;
        if action.size() != [1, self.pixels] {
            return Err(EnvError::Policy(format!("act gave shape {:?}, expected [1, {}]", action.size(), self.pixels)));
        }
        let values = Vec::<f32>::try_from(&action.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?.f_view([-1])?)?;
        if !self.spec.space.contains(&values) {
            return Err(EnvError::Policy(format!("act gave a vector that is not {}-hot", self.spec.space.k())));
        }
        let selected: Vec<usize> = values.iter().enumerate().filter(|(_, v)| **v == 1.0).map(|(p, _)| p).collect();
        Ok(BTreeMap::from([("accuracy".to_owned(), self.accuracy_of(&selected, phase)?)]))
    }

    /// `"random"` (mean over 8 random pixel sets, fixed seed) and `"fisher-score"` (the `k`
    /// highest Fisher scores on the training split), cached per phase.
    fn baselines(&mut self, phase: Phase) -> Result<BTreeMap<String, f64>, EnvError> {
        let slot = match phase {
            Phase::Validation => 0,
            Phase::Test => 1,
        };
        if let Some(cached) = &self.baselines[slot] {
            return Ok(cached.clone());
        }
        let k = self.spec.space.k();
        let fisher = top(self.fisher()?, k);
        let mut random = 0.0;
        for pixels in random_subsets(RANDOM_SEED, RANDOM_SETS, self.pixels as usize, k) {
            random += self.accuracy_of(&pixels, phase)?;
        }
        let out = BTreeMap::from([
            ("random".to_owned(), random / RANDOM_SETS as f64),
            ("fisher-score".to_owned(), self.accuracy_of(&fisher, phase)?),
        ]);
        self.baselines[slot] = Some(out.clone());
        Ok(out)
    }

    /// `mask` (the pixels' inclusion probabilities and the top-k pixels) and
    /// `masked-inputs` (the first test images and the pixels the classifier sees of them,
    /// with its prediction), for square images.
    fn pictures(&mut self, policy: &dyn EvalPolicy) -> Result<Vec<Picture>, EnvError> {
        if square_side(self.pixels as usize).is_none() {
            return Ok(Vec::new());
        }
        let _guard = tch::no_grad_guard();
        let selection = GlobalSelection::of(policy)?;
        let (chosen, selected) = (&selection.chosen, selection.items());
        let test = &self.data.test;
        let count = IMAGES_PER_ROW.min(test.len());
        let images = test.images.f_narrow(0, 0, count as i64)?.f_div_scalar(255.0)?;
        let predicted = Vec::<i64>::try_from(self.predict(&selected, &images)?.f_to_device(Device::Cpu)?)?;
        let labels = Vec::<i64>::try_from(test.labels.f_narrow(0, 0, count as i64)?.f_to_device(Device::Cpu)?)?;
        let rows = first_rows(&images, count)?;
        let panels = |shown: Option<&[bool]>| {
            rows.iter()
                .enumerate()
                .map(|(i, values)| {
                    let caption = match shown {
                        None => format!("label {}", labels[i]),
                        Some(_) => format!("predicted {}", predicted[i]),
                    };
                    let panel = Panel::square(values.clone(), Scale::Grey, caption)?;
                    Ok(shown.map_or(panel.clone(), |shown| panel.with_shown(shown)))
                })
                .collect::<Result<Vec<_>, EnvError>>()
        };
        let k = selected.len();
        let masked = Picture {
            name: "masked-inputs".to_owned(),
            title: format!("{}: test images and the {k} pixels the k-NN classifier sees", self.spec.name),
            body: PictureBody::Images {
                rows: vec![
                    ImageRow { label: "test image".to_owned(), panels: panels(None)? },
                    ImageRow { label: format!("its {k} pixels\n(blue: unseen)"), panels: panels(Some(chosen))? },
                ],
            },
        };
        Ok(vec![selection.pixel_mask(&self.spec.name)?, masked])
    }
}

/// The registry's entry of k-NN feature selection on `set`
/// (`feature-selection-knn-mnist`, `feature-selection-knn-fashion`): k = 50 pixels scored by
/// a 5-NN classifier's accuracy; baselines Fisher score and random.
pub fn entry(set: crate::data::DataSet) -> crate::registry::EnvEntry {
    description(set).constructor(move |mut make| {
        let settings = settings(&make)?;
        let data = make.take_data()?;
        Ok(Box::new(KnnFeatureSelection::new(make.name, data, settings, make.device)?))
    })
}

/// The settings of a configuration: its options `neighbours` and `references`, `k` and the batch.
fn settings(make: &crate::registry::Make<'_>) -> Result<KnnSelectionConfig, EnvError> {
    let settings = KnnSelectionConfig {
        k: make.k,
        neighbours: make.options.count("neighbours")?,
        references: make.options.count("references")?,
        queries: make.batch_size,
    };
    if settings.neighbours > settings.references {
        return Err(make.error(format!(
            "neighbours must be between 1 and the {} references (option references), got {}",
            settings.references, settings.neighbours
        )));
    }
    Ok(settings)
}

/// [`entry`] without its constructor: what [`Registry::catalog`](crate::registry::Registry::catalog) lists.
pub(crate) fn description(set: crate::data::DataSet) -> crate::registry::EnvEntry {
    use crate::registry::{EnvEntry, IMAGE_PIXELS, MAX_ROWS, OptionSpec, Shape, on_data_set};
    EnvEntry::described(
        &on_data_set("feature-selection-knn", set),
        &format!("k pixels of {} scored by a k-NN classifier's accuracy; baselines: Fisher score, random", set.name()),
    )
    .data(set)
    .default_k(50)
    .metric("accuracy", true)
    .option(
        OptionSpec::count("neighbours", 5, 1, MAX_ROWS, "neighbours that vote in the classifier")
            .legacy_flag("--neighbours"),
    )
    .option(
        OptionSpec::count("references", 1000, 1, MAX_ROWS, "labelled reference images per training step")
            .legacy_flag("--references"),
    )
    .baseline("fisher")
    .baseline("random")
    .shape(move |make| {
        settings(make)?;
        Ok(Shape { items: IMAGE_PIXELS, items_are: "pixels".to_owned(), rows: 1 })
    })
}
