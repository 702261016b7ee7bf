//! The training-loss window: the steps between two training records of `metrics.jsonl`
//! (a run folder's and an [`crate::Agent`]'s alike).

use std::collections::BTreeMap;

use anyhow::bail;
use tch::Tensor;

use crate::train::trainer::StepReport;

/// The sums of a training-loss window: the steps from `first`, `steps` of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowSums {
    /// First step of the window.
    pub first: u64,
    /// Steps in it.
    pub steps: u64,
    /// The summed loss (`None` for an empty window).
    pub loss: Option<f64>,
    /// The summed diagnostics, by record name.
    pub info: BTreeMap<String, f64>,
}

/// The training records between two log lines: the mean loss, the mean of each of the
/// trainer's measures (under its name) and of each info entry (as `info.NAME`). The losses add up on their device; they are read (and checked) only when the
/// window is taken or checkpointed.
#[derive(Debug, Default)]
pub struct TrainWindow {
    loss: Option<Tensor>,
    sums: BTreeMap<String, f64>,
    /// Steps of the window: `first` and the count.
    first: u64,
    steps: u64,
}

impl TrainWindow {
    /// The window a checkpoint saved, its loss on `device`.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn restore(saved: &WindowSums, device: tch::Device) -> anyhow::Result<Self> {
        let loss = saved.loss.map(|sum| Tensor::from(sum).f_to_device(device)).transpose()?;
        Ok(Self { loss, sums: saved.info.clone(), first: saved.first, steps: saved.steps })
    }

    /// Its sums, for a checkpoint.
    ///
    /// # Errors
    /// A loss of the window was not finite.
    pub fn sums(&self) -> anyhow::Result<WindowSums> {
        Ok(WindowSums { first: self.first, steps: self.steps, loss: self.checked_loss()?, info: self.sums.clone() })
    }

    /// Adds training step `step`'s report.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn add(&mut self, step: u64, report: &StepReport) -> anyhow::Result<()> {
        if self.steps == 0 {
            self.first = step;
        }
        self.loss = Some(match self.loss.take() {
            Some(sum) => sum.f_add(&report.loss)?,
            None => report.loss.shallow_clone(),
        });
        for (name, value) in &report.measures {
            *self.sums.entry(name.clone()).or_default() += value;
        }
        for (name, value) in &report.info {
            *self.sums.entry(sfess_envs::info_metric(name)).or_default() += value;
        }
        self.steps += 1;
        Ok(())
    }

    /// Steps in the window.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The means since the last call, and a fresh window.
    ///
    /// # Errors
    /// A loss of the window was not finite (NaN or infinite).
    pub fn take(&mut self) -> anyhow::Result<BTreeMap<String, f64>> {
        let steps = self.steps.max(1) as f64;
        let total = self.checked_loss()?;
        let mut means: BTreeMap<String, f64> =
            std::mem::take(&mut self.sums).into_iter().map(|(name, sum)| (name, sum / steps)).collect();
        if let Some(total) = total {
            means.insert("loss".to_owned(), total / steps);
        }
        self.loss = None;
        self.steps = 0;
        Ok(means)
    }

    /// The window's summed loss, read from its device (`None` for an empty window).
    ///
    /// # Errors
    /// It is not finite: a loss of the window was NaN or infinite.
    pub fn checked_loss(&self) -> anyhow::Result<Option<f64>> {
        let Some(sum) = &self.loss else { return Ok(None) };
        let total = f64::try_from(sum)?;
        if !total.is_finite() {
            let last = self.first + self.steps.saturating_sub(1);
            let steps = if last == self.first {
                format!("at step {last}")
            } else {
                format!("between steps {} and {last}", self.first)
            };
            bail!(
                "the loss became {total} {steps} (if the rewards are large: the loss is computed in f32, which \
                 holds at most 3.4e38, and sums of large rewards overflow it; scale them down)"
            );
        }
        Ok(Some(total))
    }
}
