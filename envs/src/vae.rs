//! The subset VAE (paper Section 4, Table 3).
//!
//! The encoder (the policy, 784 → 512 → 256 → d·n, ReLU) gives each image `d` independent
//! k-subsets of `n` items: logits `[B·d, n]`. The decoder owned by the environment
//! (d·n → 256 → 512 → 784, ReLU, sigmoid out) reconstructs the image from the `d` k-hot
//! vectors. The loss of an image is
//!
//! ```text
//! BCE summed over the 784 pixels + Σ_{groups} KL(p_η ‖ uniform over k-subsets)
//! ```
//!
//! with the exact k-subset KL `log C(n, k) − H(p_η)` (from [`SubsetKl`], supplied by the
//! caller, since this crate does not depend on the distribution's). The paper's Table 3
//! numbers use another KL: the authors' code adds the categorical KL
//! `log n − H(softmax(η_group))` averaged over groups. Evaluation reports both:
//! `loss` (BCE + exact KL, the trained objective), `loss_categorical_kl` (BCE + categorical
//! KL, comparable with Table 3), and `bce`, `kl_exact`, `kl_categorical` separately; all
//! averaged over images.

use std::collections::BTreeMap;

use rand::Rng;
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

use crate::data::Mnist;
use crate::env::{
    EnvError, EnvSpec, Environment, EvalPolicy, Observation, Phase, Transition, check_actions, held_out, random_batch,
};
use crate::env::{k_hot_rows, random_subsets};
use crate::pictures::{IMAGES_PER_ROW, ImageRow, Panel, Picture, PictureBody, Scale, first_rows};
use crate::space::KHotSpace;

// Defined beside `Make`, whose `subset_kl` carries it to the constructor.
pub use crate::registry::SubsetKl;

/// Pixels of an image.
const PIXELS: i64 = crate::registry::IMAGE_PIXELS as i64;
/// Images per forward pass during evaluation.
const EVAL_CHUNK: i64 = 2_000;

/// The shape of the latent code: `groups` subsets of `k` of `items` per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latent {
    /// Independent subsets per image `d`.
    pub groups: usize,
    /// Items per subset `n`.
    pub items: usize,
    /// Subset size `k`.
    pub k: usize,
}

/// The subset-VAE environment; see the [module docs](self).
pub struct SubsetVae {
    spec: EnvSpec,
    data: Mnist,
    latent: Latent,
    batch: i64,
    vs: VarStore,
    decoder: nn::Sequential,
    kl: SubsetKl,
    images: Option<Tensor>,
}

impl std::fmt::Debug for SubsetVae {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubsetVae").field("spec", &self.spec).field("latent", &self.latent).finish_non_exhaustive()
    }
}

impl SubsetVae {
    /// The environment named `name` on `data`, batches of `batch` images, the given latent
    /// shape and exact KL; the decoder is initialised from libtorch's generator on `device`.
    ///
    /// # Errors
    /// [`EnvError::Config`] for an empty latent, `k > n` or a batch larger than the
    /// training split.
    pub fn new(
        name: &str,
        data: Mnist,
        batch: usize,
        latent: Latent,
        kl: SubsetKl,
        device: Device,
    ) -> Result<Self, EnvError> {
        let config = |problem: String| EnvError::Config { env: name.to_owned(), problem };
        let space = KHotSpace::new(latent.items, latent.k).map_err(|e| config(e.to_string()))?;
        if latent.groups == 0 {
            return Err(config("the latent code needs at least one group (d >= 1)".to_owned()));
        }
        if batch == 0 || batch > data.train.len() {
            return Err(config(format!(
                "batch {batch} must be between 1 and the {} training images",
                data.train.len()
            )));
        }
        let vs = VarStore::new(device);
        let root = vs.root() / "decoder";
        let code = (latent.groups * latent.items) as i64;
        let decoder = nn::seq()
            .add(nn::linear(&root / "layer0", code, 256, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(&root / "layer1", 256, 512, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(&root / "layer2", 512, PIXELS, Default::default()));
        let (d, n, k) = (latent.groups, latent.items, latent.k);
        let spec = EnvSpec {
            name: name.to_owned(),
            space,
            rows: batch * d,
            differentiable: true,
            metric: "loss".to_owned(),
            higher_is_better: false,
            observation_dim: 784,
            description: format!(
                "subset VAE: {d} subsets of {k} of {n} items per image; loss = BCE + exact KL to uniform"
            ),
        };
        Ok(Self { spec, data: data.to_device(device), latent, batch: batch as i64, vs, decoder, kl, images: None })
    }

    /// BCE summed over pixels of decoding the codes `[S, B, d·n]` against `images` `[B, 784]`: `[S, B]`.
    fn bce(&self, codes: &Tensor, images: &Tensor) -> Result<Tensor, EnvError> {
        let logits = self.decoder.forward(codes);
        let target = images.f_unsqueeze(0)?.f_expand_as(&logits)?;
        let bce =
            logits.f_binary_cross_entropy_with_logits(&target, None::<Tensor>, None::<Tensor>, Reduction::None)?;
        Ok(bce.f_sum_dim_intlist(-1, false, None::<Kind>)?)
    }

    /// The paper code's KL: `log n − H(softmax(η_group))`, averaged over the `d` groups, per image `[B]`.
    fn categorical_kl(&self, logits: &Tensor, images: i64) -> Result<Tensor, EnvError> {
        let log_p = logits.f_log_softmax(-1, None::<Kind>)?;
        let entropy = log_p.f_exp()?.f_mul(&log_p)?.f_sum_dim_intlist(-1, false, None::<Kind>)?.f_neg()?;
        let kl = entropy.f_neg()?.f_add_scalar((self.latent.items as f64).ln())?;
        Ok(kl.f_view([images, self.latent.groups as i64])?.f_mean_dim(-1, false, None::<Kind>)?)
    }
}

impl Environment for SubsetVae {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// Inputs: `[images [B, 784]]`.
    fn reset(&mut self, rng: &mut dyn Rng) -> Result<Observation, EnvError> {
        let picks = random_batch(rng, self.data.train.len(), self.batch as usize, self.data.train.images.device())?;
        let images = self.data.train.images.f_index_select(0, &picks)?;
        self.images = Some(images.shallow_clone());
        Ok(Observation { inputs: vec![images] })
    }

    /// Rewards `[S, B]`: minus the BCE of each image, shared by its `d` rows.
    fn step(&mut self, actions: &Tensor) -> Result<Transition, EnvError> {
        let samples = check_actions(&self.spec, actions)?;
        let images = self.images.as_ref().ok_or_else(|| EnvError::NotReset { env: self.spec.name.clone() })?;
        let code = (self.latent.groups * self.latent.items) as i64;
        let codes = actions.f_view([samples, self.batch, code])?.f_to_kind(images.kind())?;
        Transition::losses(&self.bce(&codes, images)?)
    }

    /// `mean_b Σ_groups KL_exact`.
    fn logit_loss(&mut self, logits: &Tensor) -> Result<Option<Tensor>, EnvError> {
        let kl = (self.kl)(logits, self.latent.k as i64)?;
        Ok(Some(kl.f_sum(Kind::Float)?.f_div_scalar(self.batch as f64)?))
    }

    fn var_store(&self) -> Option<&VarStore> {
        Some(&self.vs)
    }

    fn evaluate(&mut self, phase: Phase, policy: &dyn EvalPolicy) -> Result<BTreeMap<String, f64>, EnvError> {
        let _guard = tch::no_grad_guard();
        let split = held_out(&self.data, phase);
        let n = split.len() as i64;
        let (d, code) = (self.latent.groups as i64, (self.latent.groups * self.latent.items) as i64);
        let (mut bce, mut kl_exact, mut kl_categorical) = (0.0, 0.0, 0.0);
        for start in (0..n).step_by(EVAL_CHUNK as usize) {
            let len = EVAL_CHUNK.min(n - start);
            let images = split.images.f_narrow(0, start, len)?;
            let observation = Observation { inputs: vec![images.shallow_clone()] };
            let logits = policy.logits(&observation)?;
            let actions = policy.act(&observation)?;
            let codes = actions.f_view([1, len, code])?.f_to_kind(images.kind())?;
            bce += self.bce(&codes, &images)?.f_sum(Kind::Double)?.double_value(&[]);
            let exact = (self.kl)(&logits, self.latent.k as i64)?.f_detach()?;
            kl_exact += exact.f_sum(Kind::Double)?.double_value(&[]);
            kl_categorical += self.categorical_kl(&logits, len)?.f_sum(Kind::Double)?.double_value(&[]);
            debug_assert_eq!(logits.size()[0], len * d);
        }
        let per_image = |total: f64| total / n as f64;
        let (bce, kl_exact, kl_categorical) = (per_image(bce), per_image(kl_exact), per_image(kl_categorical));
        Ok(BTreeMap::from([
            ("loss".to_owned(), bce + kl_exact),
            ("loss_categorical_kl".to_owned(), bce + kl_categorical),
            ("bce".to_owned(), bce),
            ("kl_exact".to_owned(), kl_exact),
            ("kl_categorical".to_owned(), kl_categorical),
        ]))
    }

    /// The split's first `rows` images.
    fn held_out_observation(&mut self, phase: Phase, rows: usize) -> Result<Option<Observation>, EnvError> {
        let split = held_out(&self.data, phase);
        let rows = rows.min(split.len()) as i64;
        Ok(Some(Observation { inputs: vec![split.images.f_narrow(0, 0, rows)?] }))
    }

    /// `reconstructions` (the first test images and their decodings from the encoder's
    /// top-k codes) and `samples` (decodings of codes drawn from the prior, uniform over
    /// the k-subsets of each group, from a fixed seed).
    fn pictures(&mut self, policy: &dyn EvalPolicy) -> Result<Vec<Picture>, EnvError> {
        let _guard = tch::no_grad_guard();
        let Latent { groups, items, k } = self.latent;
        let code = (groups * items) as i64;
        let test = &self.data.test;
        let count = IMAGES_PER_ROW.min(test.len());
        let images = test.images.f_narrow(0, 0, count as i64)?;
        let codes = policy.act(&Observation { inputs: vec![images.shallow_clone()] })?;
        let codes = codes.f_view([1, count as i64, code])?.f_to_kind(images.kind())?;
        let bce = Vec::<f64>::try_from(
            self.bce(&codes, &images)?.f_view([-1])?.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?,
        )?;
        let decoded = self.decoder.forward(&codes).f_sigmoid()?.f_view([count as i64, PIXELS])?;
        let row = |label: &str, tensor: &Tensor, caption: &dyn Fn(usize) -> String| {
            let panels = first_rows(tensor, count)?
                .into_iter()
                .enumerate()
                .map(|(i, values)| Panel::square(values, Scale::Grey, caption(i)))
                .collect::<Result<Vec<_>, EnvError>>()?;
            Ok::<_, EnvError>(ImageRow { label: label.to_owned(), panels })
        };
        let reconstructions = Picture {
            name: "reconstructions".to_owned(),
            title: format!("{}: test images decoded from their {groups} subsets of {k} of {items}", self.spec.name),
            body: PictureBody::Images {
                rows: vec![
                    row("test image", &images, &|i| format!("test image {i}"))?,
                    row("reconstruction", &decoded, &|i| format!("BCE {:.1}", bce[i]))?,
                ],
            },
        };
        let prior_rows = 2;
        let draws = random_subsets(PRIOR_SEED, prior_rows * IMAGES_PER_ROW * groups, items, k);
        let codes = k_hot_rows(&draws, items)?
            .f_view([(prior_rows * IMAGES_PER_ROW) as i64, code])?
            .f_to_device(images.device())?
            .f_to_kind(images.kind())?;
        let samples = self.decoder.forward(&codes).f_sigmoid()?;
        let rows = (0..prior_rows)
            .map(|r| {
                let part = samples.f_narrow(0, (r * IMAGES_PER_ROW) as i64, IMAGES_PER_ROW as i64)?;
                row(if r == 0 { "prior sample" } else { "" }, &part, &|_| String::new())
            })
            .collect::<Result<Vec<_>, EnvError>>()?;
        let samples = Picture {
            name: "samples".to_owned(),
            title: format!(
                "{}: decoded samples from the prior (each group a uniform {k}-subset of {items})",
                self.spec.name
            ),
            body: PictureBody::Images { rows },
        };
        Ok(vec![reconstructions, samples])
    }
}

/// The seed of the prior's draws in the `samples` figure.
const PRIOR_SEED: u64 = 0;

/// The registry's entry of the paper's subset VAE on `set` (`vae-mnist`, `vae-fashion`;
/// Table 3): d = 10 subsets of k = 5 of n = 10 per image (the paper's other setting is
/// (20, 20, 10)), learning rate 1e-4, the paper's encoder, the exact KL.
pub fn entry(set: crate::data::DataSet) -> crate::registry::EnvEntry {
    description(set).constructor(move |mut make| {
        let latent = latent_of(&make)?;
        let kl =
            make.subset_kl.take().ok_or_else(|| make.error("the subset VAE needs the exact KL of the k-subset law"))?;
        let data = make.take_data()?;
        Ok(Box::new(SubsetVae::new(make.name, data, make.batch_size, latent, kl, make.device)?))
    })
}

/// The latent code of a configuration: its options `groups` and `items`, and `k`.
fn latent_of(make: &crate::registry::Make<'_>) -> Result<Latent, EnvError> {
    use crate::registry::MAX_LATENT;
    let latent = Latent { groups: make.options.count("groups")?, items: make.options.count("items")?, k: make.k };
    if latent.groups.saturating_mul(latent.items) > MAX_LATENT {
        return Err(make.error(format!(
            "groups × items must be at most {MAX_LATENT} (the VAE's code), got {} × {}",
            latent.groups, latent.items
        )));
    }
    Ok(latent)
}

/// [`entry`] without its constructor: what [`Registry::catalog`](crate::registry::Registry::catalog) lists.
pub(crate) fn description(set: crate::data::DataSet) -> crate::registry::EnvEntry {
    use crate::registry::{EnvEntry, MAX_LATENT, Network, OptionSpec, Shape, on_data_set};
    let data = set.name();
    EnvEntry::described(
        &on_data_set("vae", set),
        &format!(
            "subset VAE on {data}: d subsets of k of n items per image; also logs the paper's categorical-KL loss"
        ),
    )
    .data(set)
    .default_k(5)
    .default_learning_rate(1e-4)
    .differentiable()
    .metric("loss_categorical_kl", false)
    .digits(2)
    .option(OptionSpec::count("groups", 10, 1, MAX_LATENT, "subsets per image, d").legacy_flag("--vae-groups"))
    .option(OptionSpec::count("items", 10, 1, MAX_LATENT, "items per subset, n").legacy_flag("--vae-items"))
    .shape(move |make| {
        let latent = latent_of(make)?;
        Ok(Shape {
            items: latent.items,
            items_are: "items per subset (option items)".to_owned(),
            rows: make.batch_size.saturating_mul(latent.groups),
        })
    })
    .network(move |make| {
        let latent = latent_of(make)?;
        Ok(Network::VaeEncoder { groups: latent.groups, items: latent.items })
    })
    .paper_results(move |make| {
        use crate::data::DataSet::{FashionMnist, Mnist};
        let latent = (make.options.count("groups").ok()?, make.options.count("items").ok()?, make.k);
        let rows = match (set, latent) {
            (Mnist, (10, 10, 5)) => {
                [(90.04, 2.79), (205.72, 0.15), (81.90, 0.10), (97.36, 2.08), (95.05, 1.57), (99.74, 0.77)]
            }
            (FashionMnist, (10, 10, 5)) => {
                [(227.73, 0.12), (384.27, 1.20), (225.19, 0.11), (241.72, 1.57), (233.68, 0.53), (234.88, 0.36)]
            }
            (Mnist, (20, 20, 10)) => {
                [(68.83, 0.15), (205.86, 0.05), (67.96, 0.14), (86.25, 1.03), (73.90, 0.24), (84.55, 0.45)]
            }
            (FashionMnist, (20, 20, 10)) => {
                [(218.39, 0.15), (384.81, 0.11), (218.82, 0.29), (248.63, 1.87), (225.06, 0.55), (238.13, 1.95)]
            }
            _ => return None,
        };
        Some(crate::registry::paper_rows(rows))
    })
}
