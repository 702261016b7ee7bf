//! Stochastic k-nearest neighbours (paper Section 4, Table 4).
//!
//! Each training step draws `B` query images and `C` candidate images (distinct) from the
//! training split. The policy embeds both and scores each candidate by minus its Euclidean
//! distance to the query; it picks a k-subset of the candidates per query. The loss of a
//! pick is minus the fraction of its `k` candidates that share the query's label:
//!
//! ```text
//! f(z_b) = −(1/k) Σ_c z_{b,c} [y_c = y_b]
//! ```
//!
//! which is linear, hence differentiable, in the actions. Evaluation embeds the whole
//! training split and classifies each held-out image by the majority vote of its `k`
//! nearest training embeddings (ties go to the smallest label); the metric is accuracy.

use std::collections::BTreeMap;

use rand::Rng;
use tch::{Device, Kind, Tensor};

use crate::data::Mnist;
use crate::env::{
    EnvError, EnvSpec, Environment, EvalPolicy, Observation, Phase, Transition, check_actions, held_out, random_batch,
};
use crate::pictures::{Picture, PictureBody};
use crate::space::KHotSpace;

/// Held-out images classified per chunk during evaluation (bounds the distance matrix).
const EVAL_CHUNK: i64 = 1000;
/// Images embedded per forward pass during evaluation.
const EMBED_CHUNK: i64 = 10_000;

/// The stochastic k-NN environment; see the [module docs](self).
#[derive(Debug)]
pub struct StochasticKnn {
    spec: EnvSpec,
    data: Mnist,
    batch: i64,
    k: i64,
    /// `[B, C]`: 1 where candidate `c` shares query `b`'s label (the last observation).
    same_label: Option<Tensor>,
    /// The legend's names of the labels (`class 0`, ... unless told).
    class_names: Vec<String>,
}

impl StochasticKnn {
    /// The environment named `name` on `data` with `batch` queries and `candidates`
    /// candidates per step, subsets of size `k`; data moves to `device`.
    ///
    /// # Errors
    /// [`EnvError::Config`] when the sizes do not fit the data (`k ≤ candidates`,
    /// `batch + candidates ≤` training images).
    pub fn new(
        name: &str,
        data: Mnist,
        batch: usize,
        candidates: usize,
        k: usize,
        device: Device,
    ) -> Result<Self, EnvError> {
        let config = |problem: String| EnvError::Config { env: name.to_owned(), problem };
        let space = KHotSpace::new(candidates, k).map_err(|e| config(e.to_string()))?;
        if batch == 0 || batch + candidates > data.train.len() {
            return Err(config(format!(
                "a step needs {batch} queries and {candidates} candidates (at least one query), but the training split has {} images",
                data.train.len()
            )));
        }
        let data = data.to_device(device);
        let spec = EnvSpec {
            name: name.to_owned(),
            space,
            rows: batch,
            differentiable: true,
            metric: "accuracy".to_owned(),
            higher_is_better: true,
            observation_dim: 784,
            description: format!(
                "stochastic {k}-NN: pick {k} of {candidates} candidates per query; test = {k}-NN vote in the learned embedding"
            ),
        };
        Ok(Self { spec, data, batch: batch as i64, k: k as i64, same_label: None, class_names: Vec::new() })
    }

    /// The environment with the labels named `names` in its figures.
    pub fn with_class_names(mut self, names: Vec<String>) -> Self {
        self.class_names = names;
        self
    }

    /// Embeds `images` in chunks with the policy.
    fn embed(policy: &dyn EvalPolicy, images: &Tensor) -> Result<Tensor, EnvError> {
        let n = images.size()[0];
        let mut parts = Vec::new();
        for start in (0..n).step_by(EMBED_CHUNK as usize) {
            let chunk = images.f_narrow(0, start, EMBED_CHUNK.min(n - start))?;
            let embedded = policy
                .embed(&chunk)?
                .ok_or_else(|| EnvError::Policy("the k-NN environment needs a policy with an embedding".to_owned()))?;
            parts.push(embedded);
        }
        Ok(Tensor::f_cat(&parts, 0)?)
    }
}

impl Environment for StochasticKnn {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// Inputs: `[queries [B, 784], candidates [C, 784]]`.
    fn reset(&mut self, rng: &mut dyn Rng) -> Result<Observation, EnvError> {
        let candidates = self.spec.space.n() as i64;
        let device = self.data.train.images.device();
        let picks = random_batch(rng, self.data.train.len(), (self.batch + candidates) as usize, device)?;
        let (queries, others) = (picks.f_narrow(0, 0, self.batch)?, picks.f_narrow(0, self.batch, candidates)?);
        let train = &self.data.train;
        let (query_labels, candidate_labels) =
            (train.labels.f_index_select(0, &queries)?, train.labels.f_index_select(0, &others)?);
        self.same_label =
            Some(query_labels.f_unsqueeze(1)?.f_eq_tensor(&candidate_labels.f_unsqueeze(0)?)?.f_to_kind(Kind::Float)?);
        Ok(Observation {
            inputs: vec![train.images.f_index_select(0, &queries)?, train.images.f_index_select(0, &others)?],
        })
    }

    fn step(&mut self, actions: &Tensor) -> Result<Transition, EnvError> {
        check_actions(&self.spec, actions)?;
        let same = self.same_label.as_ref().ok_or_else(|| EnvError::NotReset { env: self.spec.name.clone() })?;
        let hits = actions.f_mul(&same.f_to_kind(actions.kind())?)?.f_sum_dim_intlist(-1, false, None::<Kind>)?;
        // Reward: the fraction of the k picks that share the query's label.
        Ok(Transition::rewards(hits.f_div_scalar(self.k as f64)?))
    }

    fn evaluate(&mut self, phase: Phase, policy: &dyn EvalPolicy) -> Result<BTreeMap<String, f64>, EnvError> {
        let _guard = tch::no_grad_guard();
        let reference = Self::embed(policy, &self.data.train.images)?;
        let split = held_out(&self.data, phase);
        let held_out = Self::embed(policy, &split.images)?;
        let n = held_out.size()[0];
        let mut correct = 0i64;
        for start in (0..n).step_by(EVAL_CHUNK as usize) {
            let len = EVAL_CHUNK.min(n - start);
            let queries = held_out.f_narrow(0, start, len)?;
            let distances = Tensor::f_cdist(&queries, &reference, 2.0, None::<i64>)?;
            let (_, nearest) = distances.f_topk(self.k, -1, false, false)?;
            let votes = self.data.train.labels.f_index_select(0, &nearest.f_flatten(0, -1)?)?.f_view([len, self.k])?;
            let (predicted, _) = votes.f_mode(-1, false)?;
            let truth = split.labels.f_narrow(0, start, len)?;
            correct += predicted.f_eq_tensor(&truth)?.f_sum(Kind::Int64)?.int64_value(&[]);
        }
        Ok(BTreeMap::from([("accuracy".to_owned(), correct as f64 / n as f64)]))
    }

    /// Queries: the split's first `rows` images; candidates: the `n` images after them.
    fn held_out_observation(&mut self, phase: Phase, rows: usize) -> Result<Option<Observation>, EnvError> {
        let split = held_out(&self.data, phase);
        let candidates = self.spec.space.n();
        if split.len() <= candidates {
            return Ok(None);
        }
        let rows = rows.min(split.len() - candidates) as i64;
        let images = &split.images;
        Ok(Some(Observation {
            inputs: vec![images.f_narrow(0, 0, rows)?, images.f_narrow(0, rows, candidates as i64)?],
        }))
    }

    /// `embedding`: the validation split in the learned embedding, coloured by label (the
    /// paper's Figure 6), titled with the test accuracy. An embedding of more than two
    /// dimensions is shown on its first two principal axes.
    fn pictures(&mut self, policy: &dyn EvalPolicy) -> Result<Vec<Picture>, EnvError> {
        let accuracy = self.evaluate(Phase::Test, policy)?["accuracy"];
        let _guard = tch::no_grad_guard();
        let split = &self.data.validation;
        let embedded = Self::embed(policy, &split.images)?.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?;
        let dimensions = embedded.size()[1];
        let (plane, axes) = match dimensions {
            1 => (Tensor::f_cat(&[embedded.shallow_clone(), embedded.f_zeros_like()?], 1)?, ["embedding", ""]),
            2 => (embedded, ["embedding dimension 1", "embedding dimension 2"]),
            _ => {
                let centred = embedded.f_sub(&embedded.f_mean_dim(0, true, None::<Kind>)?)?;
                // The two leading eigenvectors of the covariance (eigh sorts ascending).
                let (_, vectors) = centred.f_transpose(0, 1)?.f_matmul(&centred)?.f_linalg_eigh("L")?;
                let axes = vectors.f_narrow(1, dimensions - 2, 2)?.f_flip([1])?;
                (centred.f_matmul(&axes)?, ["principal axis 1", "principal axis 2"])
            }
        };
        let flat = Vec::<f64>::try_from(plane.f_contiguous()?.f_flatten(0, -1)?)?;
        let points: Vec<[f64; 2]> = flat.chunks(2).map(|p| [p[0], p[1]]).collect();
        let labels = Vec::<i64>::try_from(split.labels.f_to_device(Device::Cpu)?)?;
        let classes: Vec<usize> = labels.iter().map(|&l| l.max(0) as usize).collect();
        let count = classes.iter().max().map_or(0, |m| m + 1);
        let class_names =
            (0..count).map(|c| self.class_names.get(c).cloned().unwrap_or_else(|| format!("class {c}"))).collect();
        let title = format!(
            "{}: the {} validation images in the learned {dimensions}-D embedding (test accuracy {accuracy:.3})",
            self.spec.name,
            points.len()
        );
        let [x_label, y_label] = axes.map(str::to_owned);
        Ok(vec![Picture {
            name: "embedding".to_owned(),
            title,
            body: PictureBody::Scatter { points, classes, class_names, x_label, y_label },
        }])
    }
}

/// The registry's entry of the paper's stochastic k-NN on `set` (`knn-mnist`, `knn-fashion`;
/// Table 4): k = 10 of 128 candidates per query, learning rate 1e-4, the paper's embedding
/// network.
pub fn entry(set: crate::data::DataSet) -> crate::registry::EnvEntry {
    description(set).constructor(move |mut make| {
        let candidates = make.options.count("candidates")?;
        let data = make.take_data()?;
        let env = StochasticKnn::new(make.name, data, make.batch_size, candidates, make.k, make.device)?;
        Ok(Box::new(env.with_class_names(crate::pictures::class_names(set))))
    })
}

/// [`entry`] without its constructor: what [`Registry::catalog`](crate::registry::Registry::catalog) lists.
pub(crate) fn description(set: crate::data::DataSet) -> crate::registry::EnvEntry {
    use crate::registry::{EnvEntry, MAX_ROWS, MAX_WIDTH, Network, OptionSpec, Shape, on_data_set};
    let data = set.name();
    EnvEntry::described(
        &on_data_set("knn", set),
        &format!(
            "stochastic k-NN on {data}: pick k of n candidates per query; test = k-NN vote in the learned 2-D embedding"
        ),
    )
    .data(set)
    .default_k(10)
    .default_learning_rate(1e-4)
    .differentiable()
    .metric("accuracy", true)
    .option(OptionSpec::count("candidates", 128, 1, MAX_ROWS, "candidates per step, n").legacy_flag("--candidates"))
    .option(
        OptionSpec::count("embedding-dim", 2, 1, MAX_WIDTH, "dimensions of the learned embedding")
            .legacy_flag("--embedding-dim"),
    )
    .shape(|make| {
        Ok(Shape {
            items: make.options.count("candidates")?,
            items_are: "candidates (option candidates)".to_owned(),
            rows: make.batch_size,
        })
    })
    .network(|make| Ok(Network::KnnEmbedding { embedding: make.options.count("embedding-dim")? }))
    .paper_results(move |make| {
        let rows = match (set, make.k) {
            (crate::data::DataSet::Mnist, 10) => {
                [(0.949, 0.002), (0.938, 0.009), (0.949, 0.002), (0.950, 0.002), (0.950, 0.002), (0.740, 0.037)]
            }
            (crate::data::DataSet::FashionMnist, 10) => {
                [(0.869, 0.001), (0.778, 0.010), (0.871, 0.002), (0.873, 0.002), (0.873, 0.002), (0.696, 0.023)]
            }
            _ => return None,
        };
        Some(crate::registry::paper_rows(rows))
    })
}
