//! Sweeps on a real Slurm cluster: a single node (slurmctld, slurmd and munged from
//! Debian's packages, as root) started by `scripts/slurm-cluster.sh` in a temporary folder
//! and stopped when the test ends, also when it fails.
//!
//! It needs root and apt (the script installs the packages once). `SFESS_SKIP_SLURM=1`
//! skips it, saying so; nothing else does, so CI cannot pass without running it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{fails_with, sfess, stderr, stdout};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-cluster.sh")
}

/// A cluster under a temporary folder; dropping it cancels its jobs and stops its daemons.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn up() -> Self {
        let install = Command::new(script()).arg("install").output().unwrap();
        assert!(install.status.success(), "installing Slurm: {}", String::from_utf8_lossy(&install.stderr));
        let dir = tempfile::Builder::new().prefix("sfess-slurm-").tempdir().unwrap();
        let cluster = Cluster { dir };
        let up = Command::new(script()).arg("up").arg(cluster.root()).output().unwrap();
        assert!(up.status.success(), "starting the cluster: {}", String::from_utf8_lossy(&up.stderr));
        cluster
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    fn conf(&self) -> PathBuf {
        self.root().join("slurm.conf")
    }

    /// `sfess-agent` with this cluster's clients.
    fn sfess(&self) -> Command {
        let mut command = sfess();
        command.env("SLURM_CONF", self.conf()).stdin(Stdio::null());
        command
    }

    /// Runs `sfess-agent args`, killed after five minutes (a `--wait` must not hang CI).
    fn run(&self, args: &[&str]) -> Output {
        let mut child = self.sfess().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let readers = (
            std::thread::spawn(move || std::io::read_to_string(&mut out).unwrap_or_default()),
            std::thread::spawn(move || std::io::read_to_string(&mut err).unwrap_or_default()),
        );
        let deadline = Instant::now() + Duration::from_secs(300);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("sfess-agent {} did not end within 300 s", args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (out, err) = (readers.0.join().unwrap(), readers.1.join().unwrap());
        Output { status, stdout: out.into_bytes(), stderr: err.into_bytes() }
    }

    /// The lines of `squeue` for every job this cluster still runs or queues.
    fn active_jobs(&self) -> String {
        let output = Command::new("squeue")
            .env("SLURM_CONF", self.conf())
            .args(["--noheader", "--array", "--format=%i %T"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("down").arg(self.root()).status();
    }
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The records of a run folder without their clocks.
fn records(dir: &Path) -> Vec<(u64, String, String, f64)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|r| r["metric"] != "seconds_per_step")
        .map(|r| {
            let text = |key: &str| r[key].as_str().unwrap().to_owned();
            (r["step"].as_u64().unwrap(), text("split"), text("metric"), r["value"].as_f64().unwrap())
        })
        .collect()
}

/// Waits until `done` holds, or fails after `seconds` with `what`.
fn wait_until(seconds: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn sweeps_run_on_a_real_slurm_cluster() {
    if std::env::var_os("SFESS_SKIP_SLURM").is_some() {
        eprintln!("SFESS_SKIP_SLURM is set: the Slurm tests did not run");
        return;
    }
    let cluster = Cluster::up();
    let work = tempfile::tempdir().unwrap();
    the_issues_compare_leaves_four_runs_and_a_table(&cluster, work.path());
    a_failing_task_is_shown_with_its_reason_and_the_others_finish(&cluster, work.path());
    a_task_stopped_before_its_time_limit_is_requeued_and_ends_as_if_uninterrupted(&cluster, work.path());
    cancel_stops_the_jobs_and_a_resubmission_resumes_them(&cluster, work.path());
    missing_clients_controllers_and_locks_are_one_line_errors(&cluster, work.path());
    drop(cluster);
}

/// The command of the issue, as written; submitting it again submits nothing.
fn the_issues_compare_leaves_four_runs_and_a_table(cluster: &Cluster, work: &Path) {
    let out = work.join("compare");
    let args = [
        "compare",
        "--env",
        "max-coverage",
        "--estimators",
        "sfess-vr,sfess",
        "--seeds",
        "0,1",
        "--steps",
        "60",
        "--eval-every",
        "30",
        "--out",
        out.to_str().unwrap(),
        "--scheduler",
        "slurm",
        "--wait",
    ];
    let output = cluster.run(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("submitted array job"), "{}", stderr(&output));
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert_eq!(stdout(&output), table);
    for pair in ["sfess-vr-seed0", "sfess-vr-seed1", "sfess-seed0", "sfess-seed1"] {
        assert_eq!(json(&out.join(pair).join("summary.json"))["steps"], 60, "{pair}");
    }
    assert!(table.contains("| sfess-vr | ") && table.contains("| 2 (0, 1) |"), "{table}");
    let again = cluster.run(&args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("nothing submitted"), "{}", stderr(&again));
    let submissions = std::fs::read_to_string(out.join("slurm/submissions.jsonl")).unwrap();
    assert_eq!(submissions.lines().count(), 1, "{submissions}");
}

/// A task that fails is failed in `sweep status`, with its own message, and in the table;
/// the other task and the report (`afterany`) run.
fn a_failing_task_is_shown_with_its_reason_and_the_others_finish(cluster: &Cluster, work: &Path) {
    let file = write(
        &work.join("fail.toml"),
        "[fixed]\nenv = \"max-coverage\"\nsteps = 40\neval_every = 20\nsamples = 1\n\
         [grid]\nestimator = [\"sfess-vr\", \"sfess\"]\nseed = [0]\n",
    );
    let out = work.join("fail");
    let output = cluster.run(&["sweep", &file, "--out", out.to_str().unwrap(), "--scheduler", "slurm", "--wait"]);
    // The report is written and printed; the sweep does not exit 0.
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("error: 1 of the 2 tasks of"), "{}", stderr(&output));
    let status = cluster.run(&["sweep", "status", out.to_str().unwrap()]);
    let text = stdout(&status);
    assert!(
        text.starts_with("2 tasks: 1 failed, 1 done\n") || text.starts_with("2 tasks: 1 done, 1 failed\n"),
        "{text}"
    );
    let failed = text.lines().find(|l| l.contains("sfess-vr-seed0")).unwrap();
    assert!(failed.contains("failed: ") && failed.contains("at least 2 samples"), "{failed}");
    assert!(stdout(&output).contains("seed 0 failed"), "{}", stdout(&output));
    // Submitted again, only the failed task goes (and fails again); the done one stays.
    let again = cluster.run(&["sweep", &file, "--out", out.to_str().unwrap(), "--scheduler", "slurm", "--wait"]);
    assert!(stderr(&again).contains("(1 task)"), "{}", stderr(&again));
    let text = stdout(&cluster.run(&["sweep", "status", out.to_str().unwrap()]));
    let state = |name: &str| text.lines().find(|l| l.trim_start().starts_with(&format!("{name} "))).unwrap_or_default();
    assert!(state("sfess-seed0").contains(" done") && state("sfess-vr-seed0").contains(" failed: "), "{text}");
}

/// A reward command that takes `seconds` per request (it does not change the rewards).
fn slow_scorer(work: &Path) -> String {
    write(
        &work.join("slow.py"),
        "import json, sys, time\n\
         for line in sys.stdin:\n\
         \x20   batch = json.loads(line)\n\
         \x20   time.sleep(float(sys.argv[1]))\n\
         \x20   print(json.dumps({\"rewards\": [sum(a) / 100.0 for a in batch[\"actions\"]]}), flush=True)\n",
    )
}

/// With a one-minute limit and the signal asked 60 s before it, Slurm signals the task at
/// its first time-limit check, within 30 s of its start (the controller checks every 30 s);
/// the run takes over 35 s, so it is stopped at least once. It checkpoints, the script
/// requeues it, and it resumes until it ends: with exactly the records of the same run made
/// here without stops.
fn a_task_stopped_before_its_time_limit_is_requeued_and_ends_as_if_uninterrupted(cluster: &Cluster, work: &Path) {
    let scorer = slow_scorer(work);
    let file = write(
        &work.join("slow.toml"),
        &format!(
            "[fixed]\nenv = \"cmd\"\nsteps = 700\neval_every = 50\nsamples = 4\nk = 3\n\
             options = {{ command = \"python3 {scorer} 0.05\", n = 20 }}\n[grid]\nseed = [0]\n"
        ),
    );
    let reference = work.join("slow-here");
    let mut here = cluster
        .sfess()
        .args(["sweep", &file, "--out", reference.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = work.join("slow");
    let output = cluster.run(&[
        "sweep",
        &file,
        "--out",
        out.to_str().unwrap(),
        "--scheduler",
        "slurm",
        "--time",
        "1",
        "--signal-before",
        "60",
        "--wait",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(here.wait().unwrap().success());
    let log = std::fs::read_to_string(out.join("slurm/logs/task-0.out")).unwrap();
    assert!(log.contains("requeued"), "never stopped by the time limit: {log}");
    assert!(log.contains("attempt 2"), "{log}");
    assert_eq!(records(&out.join("seed0")), records(&reference.join("seed0")), "{log}");
}

/// `sweep cancel` stops a running task (which checkpoints) and a pending one; the status
/// says so and no process is left; a resubmission sends both again, and a second one
/// while they are queued sends nothing.
fn cancel_stops_the_jobs_and_a_resubmission_resumes_them(cluster: &Cluster, work: &Path) {
    let file = write(
        &work.join("long.toml"),
        "[fixed]\nenv = \"max-coverage\"\nsteps = 10000000\neval_every = 1000\n[grid]\nseed = [0, 1]\n",
    );
    let out = work.join("long");
    let submit = || {
        let args = ["sweep", &file, "--out", out.to_str().unwrap(), "--scheduler", "slurm", "--jobs", "1"];
        cluster.run(&[&args[..], &["--cpus-per-task", "1"]].concat())
    };
    let output = submit();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("2 tasks, at most 1 at a time"), "{}", stderr(&output));
    wait_until(120, "a running task with a checkpoint", || out.join("seed0/checkpoint.ot").exists());
    let status = stdout(&cluster.run(&["sweep", "status", out.to_str().unwrap()]));
    assert!(status.contains("seed0  running at step") && status.contains("seed1  pending"), "{status}");
    // The task uses the one CPU it was given (SLURM_CPUS_PER_TASK), on a node with more.
    let log = std::fs::read_to_string(out.join("slurm/logs/task-0.out")).unwrap();
    assert!(log.contains("task seed0 with 1 threads"), "{log}");
    let cancelled = cluster.run(&["sweep", "cancel", out.to_str().unwrap()]);
    assert!(stdout(&cancelled).starts_with("cancelled Slurm jobs"), "{}", stderr(&cancelled));
    wait_until(60, "the jobs to end", || cluster.active_jobs().trim().is_empty());
    let leftover = Command::new("pgrep").args(["-f", out.to_str().unwrap()]).output().unwrap();
    assert!(leftover.stdout.is_empty(), "processes left: {}", String::from_utf8_lossy(&leftover.stdout));
    let status = stdout(&cluster.run(&["sweep", "status", out.to_str().unwrap()]));
    assert!(status.contains("seed0  stopped at step") && status.contains("submit again"), "{status}");
    assert!(!status.contains("running"), "{status}");
    let again = submit();
    assert!(
        stderr(&again).contains("submitted array job") && stderr(&again).contains("(2 tasks"),
        "{}",
        stderr(&again)
    );
    let nothing = submit();
    assert!(stderr(&nothing).contains("nothing submitted"), "{}", stderr(&nothing));
    assert!(stdout(&cluster.run(&["sweep", "cancel", out.to_str().unwrap()])).starts_with("cancelled"));
    wait_until(60, "the jobs to end", || cluster.active_jobs().trim().is_empty());
}

/// No sbatch on the PATH, no controller, a folder another process holds: one line each,
/// before anything is submitted.
fn missing_clients_controllers_and_locks_are_one_line_errors(cluster: &Cluster, work: &Path) {
    let file = write(&work.join("tiny.toml"), "[fixed]\nenv = \"max-coverage\"\nsteps = 10\n[grid]\nseed = [0]\n");
    let out = work.join("tiny");
    let args = ["sweep", &file, "--out", out.to_str().unwrap(), "--scheduler", "slurm"];
    fails_with(&cluster.sfess().env("PATH", work).args(args).output().unwrap(), "sbatch is not there");
    let nowhere =
        write(&work.join("nowhere.conf"), "ClusterName=nowhere\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=1\n");
    fails_with(&cluster.sfess().env("SLURM_CONF", nowhere).args(args).output().unwrap(), "no Slurm controller answers");
    let missing = work.join("missing.conf");
    fails_with(&cluster.sfess().env("SLURM_CONF", &missing).args(args).output().unwrap(), "which is not a file");
    std::fs::create_dir_all(&out).unwrap();
    let mut holder = Command::new("flock").arg(out.join(".lock")).args(["sleep", "10"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    fails_with(&cluster.run(&args), "in use by another process");
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(!out.join("slurm/submissions.jsonl").exists());
}
