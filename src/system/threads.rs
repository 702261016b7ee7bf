//! The process's two thread pools, sized together: libtorch's intra-op threads (OpenMP,
//! for tensor operations) and rayon's global pool (for the stable backend's rows).
//!
//! The two take turns within a training step (tensor operations, then the distribution on
//! the host, then tensor operations again), so each is sized to every CPU this process may
//! use: its affinity mask and cgroup quota, as [`std::thread::available_parallelism`]
//! reads them, or `--threads N`. Two things keep them from slowing each other down:
//! - an idle OpenMP worker spins for a bounded time before it sleeps
//!   ([`spin_count_to_set`]): libgomp's default is 300,000 spins, long enough that on a
//!   2-core machine the worker still holds a core while rayon's threads need it (the k-NN
//!   step took 7.4–7.5 ms with the default and 6.5–7.1 ms with 10,000 spins, in alternating
//!   `bench train` runs here);
//! - processes that share a machine share its CPUs: `compare --jobs J` gives each of its
//!   `J` children `--threads ⌊N / J⌋` ([`share`]), and a Slurm task uses the CPUs it was
//!   given (`SLURM_CPUS_PER_TASK`, else its affinity).
//!
//! A process that shares its CPUs with someone else's (a laptop's browser, another run)
//! loses most from libtorch's threads: an OpenMP parallel region splits its work evenly and
//! waits for its slowest thread, which waits for a core the other process holds (on the
//! 2-core machine with one busy core, the k-NN step took 2.6× longer with 2 threads than
//! with 1). So unless `--threads` is given, each training step's libtorch threads are
//! chosen by timing ([`StepThreads`]): every CPU, or one, whichever the last steps ran
//! faster with, measured again every [`HOLD_SECONDS`] of training. rayon's pool keeps every
//! CPU: it shares its work out dynamically, and a stalled thread's rows are taken by the
//! others.

/// libgomp's spin count before an idle worker sleeps, read once when libgomp loads.
pub const SPIN_COUNT_VARIABLE: &str = "GOMP_SPINCOUNT";
/// The spin count this tool runs with unless the user set one (or `OMP_WAIT_POLICY`).
pub const SPIN_COUNT: &str = "10000";

/// Most threads `--threads` may ask for.
pub const MAX_THREADS: usize = 4096;

/// The CPUs this process may use (at least 1): its affinity mask and cgroup quota, and in
/// a Slurm task no more than `SLURM_CPUS_PER_TASK` (set when the job asked
/// `--cpus-per-task`).
pub fn available_cpus() -> usize {
    let affinity = std::thread::available_parallelism().map_or(1, usize::from);
    slurm_cpus(std::env::var("SLURM_CPUS_PER_TASK").ok().as_deref()).map_or(affinity, |cpus| cpus.min(affinity))
}

/// `SLURM_CPUS_PER_TASK` as a count (it is a plain number; anything else is ignored).
fn slurm_cpus(value: Option<&str>) -> Option<usize> {
    value.and_then(|v| v.trim().parse::<usize>().ok()).filter(|&cpus| cpus >= 1)
}

/// The variable and value to start a libtorch process with so that libgomp's idle workers
/// spin for a bounded time: `(SPIN_COUNT_VARIABLE, SPIN_COUNT)`, or `None` when the user
/// set it (or `OMP_WAIT_POLICY`) already.
///
/// libgomp reads its environment when the library is loaded, before `main`: a process
/// cannot set it for itself, only for the processes it starts. The `sfess-agent` binary
/// starts its engine with it ([`crate::cli::front`]); a binary of your own that links
/// libtorch gets libgomp's default unless its environment sets it.
pub fn spin_count_to_set() -> Option<(&'static str, &'static str)> {
    let set = std::env::var_os(SPIN_COUNT_VARIABLE).is_some() || std::env::var_os("OMP_WAIT_POLICY").is_some();
    (!set).then_some((SPIN_COUNT_VARIABLE, SPIN_COUNT))
}

/// Sizes libtorch's intra-op threads and rayon's global pool to `threads` (default: every
/// available CPU, at most [`MAX_THREADS`]); returns the number used.
///
/// # Errors
/// `threads` is 0 or more than [`MAX_THREADS`], or rayon's global pool was already started
/// with another size.
pub fn configure(threads: Option<usize>) -> anyhow::Result<usize> {
    check(threads)?;
    let chosen_by_timing = threads.is_none();
    let threads = threads.unwrap_or_else(|| available_cpus().min(MAX_THREADS));
    let torch_threads = i32::try_from(threads).unwrap_or(i32::MAX);
    tch::set_num_threads(torch_threads);
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build_global() {
        Ok(()) => {}
        Err(_) if rayon::current_num_threads() == threads => {}
        Err(error) => anyhow::bail!(
            "rayon's thread pool already runs {} threads, cannot make it {threads}: {error}",
            rayon::current_num_threads()
        ),
    }
    CONFIGURED.get_or_init(|| Configured { threads, chosen_by_timing });
    Ok(threads)
}

/// Checks `--threads` (every command checks it, those that start no thread too).
///
/// # Errors
/// `threads` is 0 or more than [`MAX_THREADS`].
pub fn check(threads: Option<usize>) -> anyhow::Result<()> {
    match threads {
        Some(threads) if !(1..=MAX_THREADS).contains(&threads) => {
            anyhow::bail!("--threads must be between 1 and {MAX_THREADS}, got {threads}")
        }
        _ => Ok(()),
    }
}

/// What [`configure`] set for this process.
#[derive(Debug, Clone, Copy)]
struct Configured {
    threads: usize,
    chosen_by_timing: bool,
}

static CONFIGURED: std::sync::OnceLock<Configured> = std::sync::OnceLock::new();

/// Whether this process's `--threads` was given (`false` before [`configure`], as in a
/// library or Python's process): a benchmark passes it on to its children only then.
pub fn threads_given() -> bool {
    CONFIGURED.get().is_some_and(|c| !c.chosen_by_timing)
}

/// Seconds of training steps between two measurements of [`StepThreads`].
pub const HOLD_SECONDS: f64 = 30.0;
/// Steps timed with each thread count in a measurement, after one untimed step.
pub const PROBE_STEPS: usize = 5;

/// libtorch's threads for each training step: all of [`configure`]'s, or (when `--threads`
/// was not given and there are several) every CPU or one, whichever ran the last timed
/// steps faster ([`Chooser`]). Steps are timed as they train: nothing is run twice. Only
/// the step itself runs with the choice; evaluations and everything else run with all of
/// [`configure`]'s threads, so that a metric never depends on the choice.
#[derive(Debug)]
pub struct StepThreads {
    chooser: Option<Chooser>,
}

impl StepThreads {
    /// For a training in this process: chosen by timing after [`configure`] without
    /// `--threads` on several CPUs, else fixed (libtorch's threads are left as they are).
    pub fn for_this_process() -> Self {
        match CONFIGURED.get() {
            Some(c) if c.chosen_by_timing && c.threads > 1 => Self { chooser: Some(Chooser::new(c.threads)) },
            _ => Self::fixed(),
        }
    }

    /// libtorch's threads as they are, never changed.
    pub fn fixed() -> Self {
        Self { chooser: None }
    }

    /// Runs one training `step` with the threads chosen for it, timing it.
    pub fn run<T>(&mut self, step: impl FnOnce() -> T) -> T {
        let Some(chooser) = &mut self.chooser else { return step() };
        let (threads, max) = (chooser.threads(), chooser.max);
        let set = |threads: usize| tch::set_num_threads(i32::try_from(threads).unwrap_or(i32::MAX));
        if threads != max {
            set(threads);
        }
        let started = std::time::Instant::now();
        let output = step();
        chooser.record(started.elapsed().as_secs_f64());
        if threads != max {
            set(max);
        }
        output
    }
}

/// The choice of [`StepThreads`] from step times alone (so that it is tested without a
/// clock): measure `max` threads, then one ([`PROBE_STEPS`] steps each, after one untimed
/// step that absorbs the switch), keep the one of the smaller median (`max` on a tie) for
/// [`HOLD_SECONDS`] of steps, and measure again.
#[derive(Debug, Clone, PartialEq)]
pub struct Chooser {
    max: usize,
    phase: Phase,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Timing `threads`; `max_median` is the median with `max` threads once measured.
    Probe { threads: usize, warmed: bool, times: Vec<f64>, max_median: Option<f64> },
    /// Running with `threads` until `seconds_left` of steps have passed.
    Hold { threads: usize, seconds_left: f64 },
}

impl Chooser {
    /// A choice between `max` threads and one, starting with a measurement.
    pub fn new(max: usize) -> Self {
        Self { max, phase: Phase::Probe { threads: max, warmed: false, times: Vec::new(), max_median: None } }
    }

    /// The threads of the next step.
    pub fn threads(&self) -> usize {
        match self.phase {
            Phase::Probe { threads, .. } | Phase::Hold { threads, .. } => threads,
        }
    }

    /// Takes the seconds the last step took with [`threads`](Self::threads).
    pub fn record(&mut self, seconds: f64) {
        let max = self.max;
        self.phase = match std::mem::replace(&mut self.phase, Phase::Hold { threads: max, seconds_left: 0.0 }) {
            Phase::Probe { threads, warmed: false, times, max_median } => {
                Phase::Probe { threads, warmed: true, times, max_median }
            }
            Phase::Probe { threads, warmed: true, mut times, max_median } => {
                times.push(seconds);
                if times.len() < PROBE_STEPS {
                    Phase::Probe { threads, warmed: true, times, max_median }
                } else {
                    let median = median(&mut times);
                    match max_median {
                        None => Phase::Probe { threads: 1, warmed: false, times: Vec::new(), max_median: Some(median) },
                        Some(with_max) => {
                            Phase::Hold { threads: if median < with_max { 1 } else { max }, seconds_left: HOLD_SECONDS }
                        }
                    }
                }
            }
            Phase::Hold { threads, seconds_left } => {
                let seconds_left = seconds_left - seconds;
                if seconds_left > 0.0 {
                    Phase::Hold { threads, seconds_left }
                } else {
                    Phase::Probe { threads: max, warmed: false, times: Vec::new(), max_median: None }
                }
            }
        };
    }
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Each of `jobs` processes' share of `threads` CPUs: `⌊threads / jobs⌋`, at least 1.
pub fn share(threads: usize, jobs: usize) -> usize {
    (threads / jobs.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_the_cpus_and_never_reach_zero() {
        assert_eq!(share(16, 4), 4);
        assert_eq!(share(2, 2), 1);
        assert_eq!(share(2, 3), 1);
        assert_eq!(share(7, 2), 3);
        assert_eq!(share(4, 0), 4);
    }

    #[test]
    fn a_slurm_task_reads_its_cpus() {
        assert_eq!(slurm_cpus(Some("4")), Some(4));
        assert_eq!(slurm_cpus(Some(" 2\n")), Some(2));
        assert_eq!(slurm_cpus(Some("0")), None);
        assert_eq!(slurm_cpus(Some("2(x3)")), None);
        assert_eq!(slurm_cpus(None), None);
    }

    /// Feeds `chooser` a step time per thread count (`with(threads)`) for `steps` steps and
    /// returns the threads each step ran with.
    fn drive(chooser: &mut Chooser, steps: usize, with: impl Fn(usize) -> f64) -> Vec<usize> {
        (0..steps)
            .map(|_| {
                let threads = chooser.threads();
                chooser.record(with(threads));
                threads
            })
            .collect()
    }

    #[test]
    fn the_faster_thread_count_is_kept_until_the_next_measurement() {
        // Quiet: every CPU is faster; one thread is tried for 6 steps only.
        let mut chooser = Chooser::new(2);
        let quiet = drive(&mut chooser, 12, |t| if t == 2 { 0.01 } else { 0.016 });
        assert_eq!(quiet, [2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]);
        assert_eq!(chooser.threads(), 2);
        // Shared cores: one thread is faster, and kept for HOLD_SECONDS of steps.
        let mut chooser = Chooser::new(2);
        let shared = drive(&mut chooser, 12, |t| if t == 2 { 0.075 } else { 0.029 });
        assert_eq!(&shared[..12], [2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]);
        let held = (HOLD_SECONDS / 0.029) as usize;
        assert!(drive(&mut chooser, held, |_| 0.029).iter().all(|&t| t == 1));
        // Then measured again: the machine is quiet now, every CPU wins.
        let again = drive(&mut chooser, 14, |t| if t == 2 { 0.01 } else { 0.016 });
        assert!(again.contains(&2) && chooser.threads() == 2, "{again:?}");
    }

    #[test]
    fn a_tie_keeps_every_cpu_and_the_warm_up_step_is_not_counted() {
        let mut chooser = Chooser::new(4);
        // The first step with each count is slow (the switch); equal otherwise.
        let mut seen = Vec::new();
        for _ in 0..12 {
            let threads = chooser.threads();
            let first = seen.last() != Some(&threads);
            seen.push(threads);
            chooser.record(if first { 1.0 } else { 0.02 });
        }
        assert_eq!(chooser.threads(), 4);
        assert!(matches!(chooser.phase, Phase::Hold { threads: 4, .. }));
    }

    #[test]
    fn available_cpus_is_positive() {
        assert!(available_cpus() >= 1);
    }
}
