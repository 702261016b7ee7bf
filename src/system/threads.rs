//! The process's two thread pools, sized together: libtorch's intra-op threads (OpenMP,
//! for tensor operations) and rayon's global pool (for the stable backend's rows).
//!
//! The two take turns within a training step (tensor operations, then the distribution on
//! the host, then tensor operations again), so each is sized to every CPU this process may
//! use: its affinity mask and cgroup quota, as [`std::thread::available_parallelism`]
//! reads them, or `--threads N`. Two things keep them from slowing each other down:
//! - an idle OpenMP worker spins for a bounded time before it sleeps
//!   ([`bound_openmp_spinning`]): libgomp's default is 300,000 spins, long enough that on a
//!   2-core machine the worker still holds a core while rayon's threads need it (the k-NN
//!   step took 7.4–7.5 ms with the default and 6.5–7.1 ms with 10,000 spins, in alternating
//!   `bench train` runs here);
//! - processes that share a machine share its CPUs: `compare --jobs J` gives each of its
//!   `J` children `--threads ⌊N / J⌋` ([`share`]), and a Slurm task uses the CPUs it was
//!   given (`SLURM_CPUS_PER_TASK`, else its affinity).

use std::ffi::OsString;

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

/// Re-executes this program with [`SPIN_COUNT_VARIABLE`] set to [`SPIN_COUNT`] unless it
/// (or `OMP_WAIT_POLICY`) is already set; returns only when it is set, or when the
/// re-execution is not possible (then the process goes on with libgomp's default).
///
/// libgomp reads its environment when the library is loaded, before `main`, so the only
/// way for a binary to set it for itself is to start again with it. Call this first thing
/// in `main`, before any other thread starts.
pub fn bound_openmp_spinning() {
    if std::env::var_os(SPIN_COUNT_VARIABLE).is_some() || std::env::var_os("OMP_WAIT_POLICY").is_some() {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let Ok(exe) = std::env::current_exe() else { return };
        let mut args = std::env::args_os();
        let argv0 = args.next().unwrap_or_else(|| OsString::from("sfess-agent"));
        // `exec` returns only on failure.
        let _ = std::process::Command::new(exe).arg0(argv0).args(args).env(SPIN_COUNT_VARIABLE, SPIN_COUNT).exec();
    }
}

/// Sizes libtorch's intra-op threads and rayon's global pool to `threads` (default: every
/// available CPU, at most [`MAX_THREADS`]); returns the number used.
///
/// # Errors
/// `threads` is 0 or more than [`MAX_THREADS`], or rayon's global pool was already started
/// with another size.
pub fn configure(threads: Option<usize>) -> anyhow::Result<usize> {
    let threads = threads.unwrap_or_else(|| available_cpus().min(MAX_THREADS));
    anyhow::ensure!(
        (1..=MAX_THREADS).contains(&threads),
        "--threads must be between 1 and {MAX_THREADS}, got {threads}"
    );
    let torch_threads = i32::try_from(threads).unwrap_or(i32::MAX);
    tch::set_num_threads(torch_threads);
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build_global() {
        Ok(()) => Ok(threads),
        Err(_) if rayon::current_num_threads() == threads => Ok(threads),
        Err(error) => anyhow::bail!(
            "rayon's thread pool already runs {} threads, cannot make it {threads}: {error}",
            rayon::current_num_threads()
        ),
    }
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

    #[test]
    fn available_cpus_is_positive() {
        assert!(available_cpus() >= 1);
    }
}
