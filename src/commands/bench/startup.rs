//! `sfess-agent bench startup`: how long whole `sfess-agent` processes take, from `exec`
//! to exit, for the commands that compute nothing (answered by the `sfess-agent` binary
//! without libtorch: [`crate::cli::front`]), for commands that load libtorch
//! (`inspect`; the engine's `--version`, which is libtorch's loading and nothing else), and
//! for a command that trains (one step of `max-coverage`, its run folder written).
//!
//! Each command runs `--repeats` times in turn with the others (so that a drift of the
//! machine's speed touches every command alike), its output discarded; the table gives the
//! median and the fastest run. `sweep status` reads a real sweep folder, made first by a
//! one-run sweep in a temporary folder.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::system::binaries::{ENGINE, command_binary};

/// Arguments of `bench startup`.
#[derive(Debug, Clone, Args)]
pub struct BenchStartupArgs {
    /// Runs of each command (at least 3).
    #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u32).range(3..=1000))]
    pub repeats: u32,
    /// Print the measurements as JSON instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
}

/// One command and its times.
#[derive(Debug, Clone, Serialize)]
pub struct StartupMeasurement {
    /// The command line, after the program's name.
    pub command: String,
    /// Which binary ran it: `sfess-agent`, or the engine directly.
    pub binary: String,
    /// Median seconds of a whole process.
    pub median_seconds: f64,
    /// The fastest run, in seconds.
    pub min_seconds: f64,
    /// Runs timed.
    pub runs: usize,
}

/// `bench startup`'s result.
#[derive(Debug, Clone, Serialize)]
pub struct StartupReport {
    /// The CPU's model.
    pub cpu: Option<String>,
    /// The commands.
    pub measurements: Vec<StartupMeasurement>,
}

/// Times the commands; see the [module docs](self).
///
/// # Errors
/// The binaries cannot be found or started; a command fails; the scratch folder cannot be
/// made.
pub fn measure(args: &BenchStartupArgs) -> anyhow::Result<StartupReport> {
    let front = command_binary().context("locating the sfess-agent binary")?;
    let engine = front.with_file_name(ENGINE);
    anyhow::ensure!(engine.is_file(), "{} is missing: build it beside {}", engine.display(), front.display());
    // A fresh folder of a random name, removed on every way out (an error included).
    let scratch =
        tempfile::Builder::new().prefix("sfess-agent-bench-startup-").tempdir().context("creating a scratch folder")?;
    let scratch = scratch.path();
    let sweep = scratch.join("sweep");
    make_sweep(&front, scratch, &sweep)?;
    let sweep = sweep.to_string_lossy().into_owned();
    let train_out = scratch.join("train").to_string_lossy().into_owned();
    let cases: Vec<(&Path, Vec<String>)> = vec![
        (&front, strings(&["--version"])),
        (&front, strings(&["--help"])),
        (&front, strings(&["envs"])),
        (&front, strings(&["estimators"])),
        (&front, strings(&["sweep", "status", &sweep])),
        (&engine, strings(&["--version"])),
        (&front, strings(&["inspect", "--k", "3", "--logits", "[0.1, -2, 1.5, 0.3]"])),
        (
            &front,
            strings(&[
                "train",
                "--env",
                "max-coverage",
                "--steps",
                "1",
                "--quiet",
                "--no-figures",
                "--fresh",
                "--out",
                &train_out,
            ]),
        ),
    ];
    let mut times = vec![Vec::new(); cases.len()];
    for _ in 0..args.repeats {
        for ((binary, arguments), case_times) in cases.iter().zip(&mut times) {
            case_times.push(run_once(binary, arguments)?);
        }
    }
    let measurements = cases
        .iter()
        .zip(times)
        .map(|((binary, arguments), mut case_times)| {
            case_times.sort_by(f64::total_cmp);
            StartupMeasurement {
                command: arguments.join(" ").replace(&train_out, "DIR").replace(&sweep, "DIR"),
                binary: binary.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                median_seconds: case_times[case_times.len() / 2],
                min_seconds: case_times[0],
                runs: case_times.len(),
            }
        })
        .collect();
    Ok(StartupReport { cpu: crate::system::device::cpu_model(), measurements })
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|part| (*part).to_owned()).collect()
}

/// Seconds of one whole process of `binary arguments`.
///
/// # Errors
/// It cannot be started, or it fails.
fn run_once(binary: &Path, arguments: &[String]) -> anyhow::Result<f64> {
    let start = Instant::now();
    let status = Command::new(binary)
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("starting {}", binary.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    anyhow::ensure!(status.success(), "{} {} failed ({status})", binary.display(), arguments.join(" "));
    Ok(seconds)
}

/// A finished one-run sweep in `sweep`, for `sweep status` to read.
fn make_sweep(front: &Path, scratch: &Path, sweep: &Path) -> anyhow::Result<()> {
    let file = scratch.join("sweep.toml");
    std::fs::write(&file, "[fixed]\nenv = \"max-coverage\"\nsteps = 2\neval_every = 1\n\n[grid]\nseed = [0]\n")
        .with_context(|| format!("writing {}", file.display()))?;
    let output = Command::new(front)
        .arg("sweep")
        .arg(&file)
        .arg("--out")
        .arg(sweep)
        .arg("--quiet")
        .stdin(Stdio::null())
        .output()
        .context("running the sweep that `sweep status` reads")?;
    anyhow::ensure!(
        output.status.success(),
        "the sweep that `sweep status` reads failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// The report as a Markdown table.
pub fn table(report: &StartupReport) -> String {
    let mut out = format!(
        "Whole processes on {}, median (fastest) of each\n\n| binary | command | median s | fastest s |\n|---|---|---:|---:|\n",
        report.cpu.as_deref().unwrap_or("an unknown CPU")
    );
    for m in &report.measurements {
        out += &format!("| {} | {} | {:.4} | {:.4} |\n", m.binary, m.command, m.median_seconds, m.min_seconds);
    }
    out
}
