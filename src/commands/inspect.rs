//! `sfess-agent inspect`: the exact statistics of the k-subset distribution of one row
//! of logits, and optionally the empirical statistics of samples drawn from it.
//!
//! [`parse_logits`] reads the logits as the command line and files give them;
//! [`inspect`] computes an [`InspectReport`], which serialises to the command's JSON
//! output; [`run`] is the command.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::SeedableRng;
use serde::ser::{Serialize, SerializeMap, Serializer};
use sfess_agents::{ConditionalPoisson, Normalizer, Sampler};
use tch::{Device, Kind, Tensor};

use crate::system::device::{DeviceSpec, device_name};

/// At most this many entries (samples × items) are drawn by one call to the sampler, so
/// that memory stays bounded however many samples are asked for.
const SAMPLE_CHUNK_ENTRIES: usize = 1 << 22;

/// What is wrong with a list of logits given as text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogitsParseError {
    /// A token is not a number. `token` counts from 1.
    NotANumber {
        /// Position of the token, from 1.
        token: usize,
        /// The token as written.
        text: String,
    },
    /// Two commas with nothing between them, or a comma first.
    EmptyEntry {
        /// Position of the missing token, from 1.
        token: usize,
    },
    /// A `[` without its `]`, or the other way round, or brackets inside the list.
    Brackets,
    /// No numbers at all.
    Empty,
}

impl fmt::Display for LogitsParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogitsParseError::NotANumber { token, text } => write!(f, "token {token} ({text:?}) is not a number"),
            LogitsParseError::EmptyEntry { token } => {
                write!(f, "token {token} is empty (two commas with no number between them)")
            }
            LogitsParseError::Brackets => f.write_str(
                "unbalanced or nested brackets: give one row of logits, optionally inside one pair of [ ], \
                 e.g. [0.1, -2, 1.5]",
            ),
            LogitsParseError::Empty => {
                f.write_str("no logits given: expected numbers separated by commas or whitespace, e.g. [0.1, -2, 1.5]")
            }
        }
    }
}

impl std::error::Error for LogitsParseError {}

/// Parses one row of logits: numbers separated by commas and/or whitespace, optionally
/// inside one pair of square brackets, e.g. `[0.1, -2, 1.5]` or `0.1 -2 1.5`. A single
/// trailing comma is allowed.
///
/// Each number is read by [`f64::from_str`](std::str::FromStr), which accepts `NaN`
/// and `inf`: non-finite logits are rejected later, by the distribution, with a message
/// naming the offending logit.
///
/// # Errors
/// See [`LogitsParseError`].
pub fn parse_logits(text: &str) -> Result<Vec<f64>, LogitsParseError> {
    let mut body = text.trim();
    match (body.strip_prefix('['), body.ends_with(']')) {
        (Some(rest), true) => body = &rest[..rest.len() - 1],
        (None, false) => {}
        _ => return Err(LogitsParseError::Brackets),
    }
    if body.contains(['[', ']']) {
        return Err(LogitsParseError::Brackets);
    }
    let pieces: Vec<&str> = body.split(',').collect();
    let last = pieces.len() - 1;
    let mut logits = Vec::new();
    for (position, piece) in pieces.iter().enumerate() {
        let mut tokens = piece.split_whitespace().peekable();
        if tokens.peek().is_none() {
            // Nothing at all, or a trailing comma, is fine; `1,,2` and `,1` are not.
            if position < last {
                return Err(LogitsParseError::EmptyEntry { token: logits.len() + 1 });
            }
            continue;
        }
        for token in tokens {
            let value = token
                .parse::<f64>()
                .map_err(|_| LogitsParseError::NotANumber { token: logits.len() + 1, text: token.to_owned() })?;
            logits.push(value);
        }
    }
    if logits.is_empty() {
        return Err(LogitsParseError::Empty);
    }
    Ok(logits)
}

/// Which samples to draw, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleOptions {
    /// How many subsets to draw.
    pub samples: u64,
    /// How to draw them.
    pub sampler: Sampler,
    /// Seed of the random generator (`Xoshiro256PlusPlus::seed_from_u64`).
    pub seed: u64,
}

/// Everything `inspect` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectOptions {
    /// One row of logits.
    pub logits: Vec<f64>,
    /// Subset size; out-of-range values are reported by the distribution.
    pub k: i64,
    /// How the normaliser and the marginals are computed.
    pub normalizer: Normalizer,
    /// Where the logits tensor lives.
    pub device: Device,
    /// Samples to draw; `None` (or zero samples) for none.
    pub sampling: Option<SampleOptions>,
}

/// The output of `inspect`: exact statistics of the distribution, and sample statistics
/// when samples were drawn. Serialises to one JSON object.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InspectReport {
    /// Number of items.
    pub n: usize,
    /// Subset size.
    pub k: usize,
    /// The normaliser's name (`stable`, `dft`, `paper-complex64`).
    pub normalizer: &'static str,
    /// The device the logits were on (`cpu`, `cuda:0`, ...).
    pub device: String,
    /// `log e_k(exp η)`.
    pub log_normalizer: f64,
    /// `log P(Σ b = k)` for independent `b_i ~ Bernoulli(σ(η_i))`.
    pub log_prob_sum_eq_k: f64,
    /// Inclusion probabilities `π_i`; they sum to `k`.
    pub marginals: Vec<f64>,
    /// Entropy of the distribution, in nats.
    pub entropy: f64,
    /// KL divergence to the uniform distribution over k-subsets, in nats.
    pub kl_to_uniform: f64,
    /// Sample statistics, present only when at least one sample was drawn.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<SampleReport>,
}

/// Statistics of the samples drawn by `inspect`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SampleReport {
    /// Number of samples drawn.
    pub samples: u64,
    /// The sampler's name (`exact`, `gumbel-topk`).
    pub sampler: &'static str,
    /// The seed used.
    pub seed: u64,
    /// For each item, the fraction of samples that include it.
    pub inclusion_frequencies: Vec<f64>,
    /// How many times each subset was drawn.
    pub sample_counts: SubsetCounts,
}

/// Counts of sampled subsets, keyed by their sorted item indices. Serialises as a JSON
/// object whose keys are the indices joined by commas (`"0,2,3"`; the empty subset is
/// `""`), in lexicographic order of the index lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubsetCounts(pub BTreeMap<Vec<usize>, u64>);

impl SubsetCounts {
    /// The key a subset has in the JSON output: its indices joined by commas.
    pub fn key(subset: &[usize]) -> String {
        subset.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
    }
}

impl Serialize for SubsetCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (subset, count) in &self.0 {
            map.serialize_entry(&SubsetCounts::key(subset), count)?;
        }
        map.end()
    }
}

/// Computes the statistics of the k-subset distribution of `options.logits`, and draws
/// samples when asked to.
///
/// # Errors
/// The distribution's errors (k out of range, a non-finite logit, a DFT normaliser that
/// cannot resolve the row) and libtorch errors, each with what was being done.
pub fn inspect(options: &InspectOptions) -> anyhow::Result<InspectReport> {
    let n = options.logits.len();
    let device = device_name(options.device);
    let logits = Tensor::f_from_slice(&options.logits)
        .and_then(|t| t.f_view([1, n as i64]))
        .and_then(|t| t.f_to_device(options.device))
        .with_context(|| format!("copying the {n} logits to device {device}"))?;
    let policy = ConditionalPoisson::with_normalizer(&logits, options.k, options.normalizer).with_context(|| {
        format!(
            "building the k-subset distribution (n = {n}, k = {}, normalizer {})",
            options.k,
            options.normalizer.name()
        )
    })?;
    let sampling = match options.sampling {
        Some(sample_options) if sample_options.samples > 0 => Some(
            draw(&policy, sample_options)
                .with_context(|| format!("drawing {} samples on device {device}", sample_options.samples))?,
        ),
        _ => None,
    };
    Ok(InspectReport {
        n,
        k: policy.k(),
        normalizer: options.normalizer.name(),
        device,
        log_normalizer: policy.log_normalizer_values()[0],
        log_prob_sum_eq_k: policy.log_prob_sum_eq_k_values()[0],
        marginals: policy.marginal_values().to_vec(),
        entropy: policy.entropy_values()[0],
        kl_to_uniform: policy.kl_to_uniform_values()[0],
        sampling,
    })
}

/// Draws the samples in chunks of bounded size and tallies them.
fn draw(policy: &ConditionalPoisson, options: SampleOptions) -> anyhow::Result<SampleReport> {
    let n = policy.n();
    let chunk = (SAMPLE_CHUNK_ENTRIES / n).max(1) as u64;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(options.seed);
    let mut item_counts = vec![0u64; n];
    let mut counts = BTreeMap::<Vec<usize>, u64>::new();
    let mut subset = Vec::with_capacity(policy.k());
    let mut remaining = options.samples;
    while remaining > 0 {
        let size = remaining.min(chunk);
        remaining -= size;
        let actions = policy.sample(size as usize, options.sampler, &mut rng)?;
        let host = actions.f_to_device(Device::Cpu)?.f_to_kind(Kind::Double)?.f_contiguous()?.f_view([-1])?;
        let values = Vec::<f64>::try_from(host)?;
        for row in values.chunks(n) {
            subset.clear();
            subset.extend(row.iter().enumerate().filter(|&(_, &z)| z != 0.0).map(|(i, _)| i));
            for &i in &subset {
                item_counts[i] += 1;
            }
            match counts.get_mut(subset.as_slice()) {
                Some(count) => *count += 1,
                None => {
                    counts.insert(subset.clone(), 1);
                }
            }
        }
    }
    let total = options.samples as f64;
    Ok(SampleReport {
        samples: options.samples,
        sampler: options.sampler.name(),
        seed: options.seed,
        inclusion_frequencies: item_counts.iter().map(|&c| c as f64 / total).collect(),
        sample_counts: SubsetCounts(counts),
    })
}

/// Arguments of `inspect`.
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Subset size k (0 <= k <= n).
    #[arg(short, long, allow_negative_numbers = true)]
    pub k: i64,
    /// Where the logits come from.
    #[command(flatten)]
    pub source: LogitsSource,
    /// How the normaliser and the marginals are computed (auto: stable on the CPU,
    /// parallel on CUDA).
    #[arg(long, value_enum, default_value_t = Normalizer::Auto)]
    pub normalizer: Normalizer,
    /// Number of subsets to sample. Adds `samples`, `sampler`, `seed`,
    /// `inclusion_frequencies` and `sample_counts` to the output; 0 draws nothing and adds
    /// none of them. At most 10^9.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(..=MAX_INSPECT_SAMPLES))]
    pub samples: Option<u64>,
    /// How subsets are sampled.
    #[arg(long, value_enum, default_value_t = Sampler::Exact)]
    pub sampler: Sampler,
    /// Seed of the random generator used for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Most samples `inspect --samples` draws.
pub const MAX_INSPECT_SAMPLES: u64 = 1_000_000_000;

/// Exactly one of `--logits` and `--logits-file`.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct LogitsSource {
    /// One row of logits: numbers separated by commas and/or whitespace, optionally
    /// inside [ ], e.g. '[0.1, -2, 1.5, 0.3]'.
    #[arg(long, allow_hyphen_values = true, value_name = "LIST")]
    pub logits: Option<String>,
    /// A file holding the logits in the same format; '-' reads standard input.
    #[arg(long, value_name = "FILE")]
    pub logits_file: Option<PathBuf>,
}

/// `sfess-agent inspect`: the report as one line of JSON on `stdout`, the logits read from
/// `stdin` for `--logits-file -`.
///
/// # Errors
/// Unusable logits, device or k; the distribution's errors; I/O errors, each with context.
pub fn run(args: &InspectArgs, device: DeviceSpec, stdin: &mut dyn Read, stdout: &mut dyn Write) -> anyhow::Result<()> {
    let logits = read_logits(&args.source, stdin)?;
    let device = device.resolve()?;
    let options = InspectOptions {
        logits,
        k: args.k,
        normalizer: args.normalizer.resolve(device),
        device,
        sampling: args.samples.map(|samples| SampleOptions { samples, sampler: args.sampler, seed: args.seed }),
    };
    let report = inspect(&options)?;
    let json = serde_json::to_string(&report).context("serialising the result")?;
    super::write_out(stdout, &(json + "\n"), "the result")
}

/// The logits from `--logits` or `--logits-file` (`-` being `stdin`).
fn read_logits(source: &LogitsSource, stdin: &mut dyn Read) -> anyhow::Result<Vec<f64>> {
    match (&source.logits, &source.logits_file) {
        (Some(text), _) => parse_logits(text).context("--logits"),
        (None, Some(path)) if path == Path::new("-") => {
            let mut text = String::new();
            stdin.read_to_string(&mut text).context("--logits-file -: cannot read standard input")?;
            parse_logits(&text).context("--logits-file - (standard input)")
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--logits-file {}: cannot read the file", path.display()))?;
            parse_logits(&text).with_context(|| format!("--logits-file {}", path.display()))
        }
        // clap's group makes exactly one of them present.
        (None, None) => anyhow::bail!("one of --logits and --logits-file is required"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_brackets_commas_and_whitespace() {
        let expected = vec![0.1, -2.0, 1.5, 0.3];
        for text in [
            "[0.1, -2, 1.5, 0.3]",
            "0.1,-2,1.5,0.3",
            "0.1 -2 1.5 0.3",
            "  [ 0.1 -2\n1.5\t0.3 ]  ",
            "0.1, -2 1.5 ,0.3",
            "[0.1, -2, 1.5, 0.3,]",
            "0.1e0 -2. +1.5 .3\n",
        ] {
            assert_eq!(parse_logits(text), Ok(expected.clone()), "{text:?}");
        }
        assert_eq!(parse_logits("[7]"), Ok(vec![7.0]));
    }

    #[test]
    fn non_finite_numbers_parse_so_that_the_distribution_rejects_them() {
        let logits = parse_logits("[NaN, inf, -inf, nan, infinity]").unwrap();
        assert!(logits[0].is_nan() && logits[3].is_nan());
        assert_eq!(&logits[1..3], &[f64::INFINITY, f64::NEG_INFINITY]);
    }

    #[test]
    fn malformed_input_is_a_clear_error() {
        assert_eq!(parse_logits("[0.1, -2, abc, 0.3]").unwrap_err().to_string(), "token 3 (\"abc\") is not a number");
        assert_eq!(parse_logits("1;2").unwrap_err(), LogitsParseError::NotANumber { token: 1, text: "1;2".into() });
        assert_eq!(parse_logits("1,,2"), Err(LogitsParseError::EmptyEntry { token: 2 }));
        assert_eq!(parse_logits(",1"), Err(LogitsParseError::EmptyEntry { token: 1 }));
        assert_eq!(parse_logits(", 1, 2"), Err(LogitsParseError::EmptyEntry { token: 1 }));
        for text in ["", "  ", "[]", "[ ]", "\n"] {
            assert_eq!(parse_logits(text), Err(LogitsParseError::Empty), "{text:?}");
        }
        for text in ["[1, 2", "1, 2]", "[[1, 2], [3, 4]]", "[1] [2]"] {
            assert_eq!(parse_logits(text), Err(LogitsParseError::Brackets), "{text:?}");
        }
        assert!(parse_logits(",").is_err());
    }

    #[test]
    fn subset_keys() {
        assert_eq!(SubsetCounts::key(&[0, 2, 3]), "0,2,3");
        assert_eq!(SubsetCounts::key(&[]), "");
    }

    fn options(k: i64, sampling: Option<SampleOptions>) -> InspectOptions {
        InspectOptions {
            logits: vec![0.1, -2.0, 1.5, 0.3],
            k,
            normalizer: Normalizer::Stable,
            device: Device::Cpu,
            sampling,
        }
    }

    #[test]
    fn report_values() {
        let report = inspect(&options(3, None)).unwrap();
        assert_eq!((report.n, report.k, report.normalizer, report.device.as_str()), (4, 3, "stable", "cpu"));
        assert!((report.marginals.iter().sum::<f64>() - 3.0).abs() < 1e-12);
        assert!(report.sampling.is_none());
        let zero = inspect(&options(3, Some(SampleOptions { samples: 0, sampler: Sampler::Exact, seed: 0 }))).unwrap();
        assert!(zero.sampling.is_none());
    }

    #[test]
    fn samples_are_tallied() {
        let sampling = SampleOptions { samples: 500, sampler: Sampler::GumbelTopK, seed: 3 };
        let report = inspect(&options(2, Some(sampling))).unwrap();
        let stats = report.sampling.unwrap();
        assert_eq!(stats.sample_counts.0.values().sum::<u64>(), 500);
        assert!(stats.sample_counts.0.keys().all(|s| s.len() == 2 && s[0] < s[1] && s[1] < 4));
        assert!((stats.inclusion_frequencies.iter().sum::<f64>() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn k_zero_samples_the_empty_subset() {
        let sampling = SampleOptions { samples: 5, sampler: Sampler::Exact, seed: 0 };
        let stats = inspect(&options(0, Some(sampling))).unwrap().sampling.unwrap();
        let json = serde_json::to_string(&stats.sample_counts).unwrap();
        assert_eq!(json, r#"{"":5}"#);
    }

    #[test]
    fn library_errors_carry_context() {
        let error = format!("{:#}", inspect(&options(5, None)).unwrap_err());
        assert!(error.starts_with("building the k-subset distribution (n = 4, k = 5"), "{error}");
        assert!(error.contains("k = 5 is out of range"), "{error}");
    }
}
