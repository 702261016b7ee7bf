//! Policies: networks from an observation to the logits of the k-subset distribution.

use anyhow::Context;
use sfess_agents::ConditionalPoisson;
use sfess_envs::{EnvError, EvalPolicy, Observation};
use tch::nn::{self, Module, VarStore};
use tch::{Device, Tensor};

/// A policy: logits `[rows, n]` from an observation, and its trainable variables.
pub trait Policy: EvalPolicy {
    /// The logits of the k-subset distribution for each row of the observation, `[rows, n]`,
    /// with their graph (for training).
    ///
    /// # Errors
    /// The observation does not have the inputs this policy reads.
    fn forward(&self, observation: &Observation) -> anyhow::Result<Tensor>;

    /// The trainable variables.
    fn var_store(&self) -> &VarStore;

    /// Whether the logits depend on the observation (an MLP, an embedding, an encoder);
    /// free logits do not.
    fn contextual(&self) -> bool {
        true
    }
}

/// The inclusion probabilities of the k-subset law of `logits` `[rows, n]`: `[rows, n]`
/// `f64` on the CPU, from the exact stable normaliser.
///
/// # Errors
/// Logits the law refuses (not finite); libtorch errors.
pub fn marginals_of(logits: &Tensor, k: i64) -> Result<Tensor, EnvError> {
    let logits = logits.f_detach()?.f_to_kind(tch::Kind::Double)?.f_to_device(Device::Cpu)?;
    let law = ConditionalPoisson::new(&logits, k).map_err(|e| EnvError::Distribution(e.to_string()))?;
    Ok(law.marginals())
}

pub use sfess_envs::env::top_k_hot;

/// [`EvalPolicy`] for a network policy: the logits are its forward pass without gradient,
/// the action their top-k (the type has a field `k`); the embedding is none, or what the
/// given closure computes from the policy and the inputs.
macro_rules! evaluated_by_forward {
    ($policy:ty) => {
        evaluated_by_forward!($policy, |_policy: &$policy, _inputs: &Tensor| None);
    };
    ($policy:ty, $embed:expr) => {
        impl EvalPolicy for $policy {
            fn logits(&self, observation: &Observation) -> Result<Tensor, EnvError> {
                let _guard = tch::no_grad_guard();
                self.forward(observation).map_err(|e| EnvError::Policy(format!("{e:#}")))
            }

            fn act(&self, observation: &Observation) -> Result<Tensor, EnvError> {
                Ok(top_k_hot(&EvalPolicy::logits(self, observation)?, self.k)?)
            }

            fn embed(&self, inputs: &Tensor) -> Result<Option<Tensor>, EnvError> {
                Ok($embed(self, inputs))
            }

            fn marginals(&self, observation: &Observation) -> Result<Option<Tensor>, EnvError> {
                Ok(Some(marginals_of(&EvalPolicy::logits(self, observation)?, self.k)?))
            }
        }
    };
}

/// A multilayer perceptron with ReLU between layers (none after the last).
fn mlp(path: &nn::Path, sizes: &[i64]) -> nn::Sequential {
    let mut net = nn::seq();
    for (i, pair) in sizes.windows(2).enumerate() {
        if i > 0 {
            net = net.add_fn(|x| x.relu());
        }
        net = net.add(nn::linear(path / format!("layer{i}"), pair[0], pair[1], Default::default()));
    }
    net
}

/// The stochastic k-NN policy: an embedding network (784 → 512 → 256 → d, ReLU) applied to
/// queries and candidates; the logits are minus the Euclidean distances, `[B, C]`.
#[derive(Debug)]
pub struct KnnEmbedding {
    vs: VarStore,
    net: nn::Sequential,
    k: i64,
}

impl KnnEmbedding {
    /// A fresh network on `device` (initialised from libtorch's generator).
    pub fn new(device: Device, input: i64, embedding: i64, k: i64) -> Self {
        let vs = VarStore::new(device);
        let net = mlp(&(vs.root() / "embedding"), &[input, 512, 256, embedding]);
        Self { vs, net, k }
    }
}

// The test split is classified in its embedding.
evaluated_by_forward!(KnnEmbedding, |policy: &KnnEmbedding, inputs: &Tensor| Some(policy.net.forward(inputs)));

impl Policy for KnnEmbedding {
    fn forward(&self, observation: &Observation) -> anyhow::Result<Tensor> {
        let [queries, candidates] = &observation.inputs[..] else {
            anyhow::bail!("the k-NN policy needs [queries, candidates], got {} inputs", observation.inputs.len());
        };
        // One pass over queries and candidates together (one product per layer, not two).
        let embedded = self.net.forward(&Tensor::f_cat(&[queries, candidates], 0)?);
        let count = queries.size()[0];
        let (q, c) = (embedded.f_narrow(0, 0, count)?, embedded.f_narrow(0, count, candidates.size()[0])?);
        // ‖q − c‖ with the square root kept away from zero, where its gradient is infinite.
        let squared =
            q.f_unsqueeze(1)?.f_sub(&c.f_unsqueeze(0)?)?.f_square()?.f_sum_dim_intlist(-1, false, None::<tch::Kind>)?;
        squared.f_clamp_min(1e-12)?.f_sqrt()?.f_neg().context("k-NN logits")
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }
}

/// One global subset: the logits are a free parameter vector `[1, n]`, whatever the
/// observation; repeated for each of the `rows` rows when an environment asks for several
/// subsets per step. `--policy logits` starts them at zero (the uniform law over k-subsets);
/// the paper's feature selection draws them from N(0, 1), as the paper's code does.
#[derive(Debug)]
pub struct GlobalLogits {
    vs: VarStore,
    logits: Tensor,
    rows: i64,
    k: i64,
}

impl GlobalLogits {
    /// `n` free logits on `device`, for one row.
    ///
    /// # Errors
    /// The logits cannot be allocated (an `n` beyond the device's memory).
    pub fn new(device: Device, n: i64, k: i64) -> Result<Self, tch::TchError> {
        Self::with_rows(device, n, k, 1)
    }

    /// `n` free logits on `device`, shared by `rows` rows.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_rows(device: Device, n: i64, k: i64, rows: i64) -> Result<Self, tch::TchError> {
        Self::starting_at(device, n, k, rows, nn::Init::Const(0.0))
    }

    /// `n` free logits on `device`, for one row, each drawn from N(0, 1) by libtorch's
    /// generator (seeded by the run's seed).
    ///
    /// Feature selection needs this start: from zero (the uniform law) the policy gradient
    /// of 50 of 784 pixels is too weak to concentrate the law in the paper's 50,000 steps
    /// (the largest marginal went from 0.064 to 0.136), so the reconstruction network learns
    /// to read any random mask and the top-k mask it is tested on is one it never trained
    /// for: validation BCE 0.220 against the paper's 0.132. From N(0, 1) the law starts
    /// concentrated on some pixels, the network learns to read them, and the gradient
    /// refines them.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn standard_normal(device: Device, n: i64, k: i64) -> Result<Self, tch::TchError> {
        Self::starting_at(device, n, k, 1, nn::Init::Randn { mean: 0.0, stdev: 1.0 })
    }

    fn starting_at(device: Device, n: i64, k: i64, rows: i64, start: nn::Init) -> Result<Self, tch::TchError> {
        let vs = VarStore::new(device);
        let logits = vs.root().f_var("logits", &[1, n], start)?;
        Ok(Self { vs, logits, rows, k })
    }

    fn rows_of(&self, observation: &Observation) -> i64 {
        observation.inputs.first().map_or(self.rows, |input| input.size()[0])
    }
}

impl EvalPolicy for GlobalLogits {
    fn logits(&self, observation: &Observation) -> Result<Tensor, EnvError> {
        Ok(self.logits.detach().f_expand([self.rows_of(observation), -1], false)?)
    }

    fn act(&self, observation: &Observation) -> Result<Tensor, EnvError> {
        Ok(top_k_hot(&EvalPolicy::logits(self, observation)?, self.k)?)
    }

    fn embed(&self, _inputs: &Tensor) -> Result<Option<Tensor>, EnvError> {
        Ok(None)
    }

    fn marginals(&self, observation: &Observation) -> Result<Option<Tensor>, EnvError> {
        let one = marginals_of(&self.logits, self.k)?;
        Ok(Some(one.f_expand([self.rows_of(observation), -1], false)?))
    }
}

impl Policy for GlobalLogits {
    fn forward(&self, observation: &Observation) -> anyhow::Result<Tensor> {
        let rows = self.rows_of(observation);
        Ok(if rows == 1 { self.logits.shallow_clone() } else { self.logits.f_expand([rows, -1], false)? })
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }

    fn contextual(&self) -> bool {
        false
    }
}

/// A contextual policy: an MLP `d → h → h → n` (ReLU) from each row of the observation's
/// first input `[rows, d]` to that row's logits `[rows, n]`; over episodes, optionally of
/// the state and the episode's previous action together (the observation's second input,
/// `[rows, n]`; `d + n → h → h → n`).
#[derive(Debug)]
pub struct MlpPolicy {
    vs: VarStore,
    net: nn::Sequential,
    k: i64,
    previous_action: bool,
}

impl MlpPolicy {
    /// A fresh network on `device` (initialised from libtorch's generator).
    pub fn new(device: Device, input: i64, hidden: i64, n: i64, k: i64) -> Self {
        let vs = VarStore::new(device);
        let net = mlp(&(vs.root() / "policy"), &[input, hidden, hidden, n]);
        Self { vs, net, k, previous_action: false }
    }

    /// A fresh network of the state `[rows, d]` and the previous action `[rows, n]`.
    pub fn with_previous_action(device: Device, input: i64, hidden: i64, n: i64, k: i64) -> Self {
        let vs = VarStore::new(device);
        let net = mlp(&(vs.root() / "policy"), &[input + n, hidden, hidden, n]);
        Self { vs, net, k, previous_action: true }
    }
}

evaluated_by_forward!(MlpPolicy);

impl Policy for MlpPolicy {
    fn forward(&self, observation: &Observation) -> anyhow::Result<Tensor> {
        let Some(contexts) = observation.inputs.first() else {
            anyhow::bail!("the MLP policy reads the observation's first input, but the observation has none");
        };
        let contexts = if self.previous_action {
            let Some(previous) = observation.inputs.get(1) else {
                anyhow::bail!("--policy mlp-action reads the previous action, which only episodes have");
            };
            Tensor::f_cat(&[contexts.f_to_kind(tch::Kind::Float)?, previous.f_to_kind(tch::Kind::Float)?], 1)?
        } else {
            contexts.shallow_clone()
        };
        // Contexts may come from the host (a reward command's); the network may be on a GPU.
        Ok(self.net.forward(&contexts.f_to_kind(tch::Kind::Float)?.f_to_device(self.vs.device())?))
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }
}

/// The subset VAE's encoder: 784 → 512 → 256 → d·n (ReLU); the logits of image `b`'s `d`
/// subsets are rows `b·d .. (b+1)·d` of `[B·d, n]`.
#[derive(Debug)]
pub struct VaeEncoder {
    vs: VarStore,
    net: nn::Sequential,
    items: i64,
    k: i64,
}

impl VaeEncoder {
    /// A fresh encoder on `device` for `groups` subsets of `k` of `items`.
    pub fn new(device: Device, groups: i64, items: i64, k: i64) -> Self {
        let vs = VarStore::new(device);
        let net = mlp(&(vs.root() / "encoder"), &[sfess_envs::registry::IMAGE_PIXELS as i64, 512, 256, groups * items]);
        Self { vs, net, items, k }
    }
}

evaluated_by_forward!(VaeEncoder);

impl Policy for VaeEncoder {
    fn forward(&self, observation: &Observation) -> anyhow::Result<Tensor> {
        let [images] = &observation.inputs[..] else {
            anyhow::bail!("the VAE encoder needs [images], got {} inputs", observation.inputs.len());
        };
        Ok(self.net.forward(images).f_view([-1, self.items])?)
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }
}
