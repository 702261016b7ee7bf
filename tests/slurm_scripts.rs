//! What `--scheduler slurm` writes and asks of sbatch, with stub Slurm commands that save
//! what they are given (no cluster needed): hostile folder names reach the scripts quoted
//! and out of comments, and sbatch's file name patterns exactly; folders no script can
//! hold are refused before anything is written; bad Slurm options are one-line errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::{fails_with, sfess, stderr, usage_error};

/// Stub `sbatch` (saves its arguments, NUL-separated, in `calls/sbatch-N`, and prints job
/// id `100 + N`), `scontrol` (a controller that is up, `MaxArraySize` 1001), `squeue` (no
/// jobs) and `scancel`, in `work/bin`.
fn stubs(work: &Path) -> PathBuf {
    let bin = work.join("bin");
    std::fs::create_dir_all(bin.join("calls")).unwrap();
    let scripts = [
        (
            "sbatch",
            "calls=\"$(dirname \"$0\")/calls\"\nn=$(ls \"$calls\" | grep -c '^sbatch-')\n\
             printf '%s\\0' \"$@\" > \"$calls/sbatch-$n\"\necho $((100 + n))\n",
        ),
        (
            "scontrol",
            "case \"$1\" in\n    ping) echo 'Slurmctld(primary) at stub is UP' ;;\n    \
             show) echo 'MaxArraySize = 1001' ;;\n    *) printf '%s\\0' \"$@\" >> \"$(dirname \"$0\")/calls/scontrol\" ;;\nesac\n",
        ),
        ("squeue", "exit 0\n"),
        ("scancel", "printf '%s\\0' \"$@\" >> \"$(dirname \"$0\")/calls/scancel\"\n"),
    ];
    for (name, body) in scripts {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/bash\n{body}")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// The PATH with the stubs first.
fn path_with(bin: &Path) -> String {
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// `sfess-agent args` with the stubs, from `work`.
fn run_stubbed(work: &Path, bin: &Path, args: &[&str]) -> Output {
    sfess()
        .args(args)
        .env("PATH", path_with(bin))
        .env_remove("SLURM_CONF")
        .current_dir(work)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The arguments of the `n`-th sbatch call.
fn sbatch_call(bin: &Path, n: usize) -> Vec<String> {
    let bytes = std::fs::read(bin.join("calls").join(format!("sbatch-{n}"))).unwrap();
    String::from_utf8(bytes).unwrap().split_terminator('\0').map(str::to_owned).collect()
}

/// The value of `--flag=VALUE` among `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> &'a str {
    args.iter().find_map(|a| a.strip_prefix(&format!("{flag}="))).unwrap_or_else(|| panic!("no {flag} in {args:?}"))
}

/// A Slurm file name pattern as slurmstepd expands it (`%%`, `%a`, `%j`; a backslash
/// turns every replacement off).
fn expand(pattern: &str, job: u32, index: u32) -> String {
    if pattern.contains('\\') {
        return pattern.replace('\\', "");
    }
    let (mut out, mut chars) = (String::new(), pattern.chars());
    while let Some(c) = chars.next() {
        match (c, c == '%') {
            (_, false) => out.push(c),
            (_, true) => match chars.next() {
                Some('%') => out.push('%'),
                Some('a') => out += &index.to_string(),
                Some('j') => out += &job.to_string(),
                other => panic!("unexpected pattern %{other:?} in {pattern}"),
            },
        }
    }
    out
}

/// The `#SBATCH` lines sbatch reads: those before the first line that is not a comment.
fn directives(script: &str) -> Vec<&str> {
    script.lines().skip(1).take_while(|l| l.starts_with('#')).filter(|l| l.starts_with("#SBATCH")).collect()
}

/// Every file and folder under `dir`.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            found.extend(tree(&path));
        }
        found.push(path);
    }
    found
}

const SWEEP: &str =
    "[fixed]\nenv = \"max-coverage\"\nsteps = 20\neval_every = 10\ndevice = \"cpu\"\n[grid]\nseed = [0]\n";

/// A folder whose name holds spaces, quotes, `;`, `$(...)`, backticks, `${HOME}`, globs and
/// `%j`/`%a`/`%%`: the scripts pass `bash -n`, hold it only quoted and in no comment,
/// sbatch gets its exact path (the `%` escaped in `--output`), and the scripts, run as Slurm
/// runs them, train and report into exactly that folder and run nothing else.
#[test]
fn hostile_folder_names_reach_the_scripts_and_sbatch_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let bin = stubs(work);
    std::fs::write(work.join("sweep.toml"), SWEEP).unwrap();
    let name = "a b;c'd\"e$(touch pwned1)`touch pwned2`${HOME}*?[x]|&>%j%a%%x";
    let out = work.join("sweeps").join(name);
    let output =
        run_stubbed(work, &bin, &["sweep", "sweep.toml", "--out", out.to_str().unwrap(), "--scheduler", "slurm"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("submitted array job 100"), "{}", stderr(&output));

    let slurm = out.join("slurm");
    let (array, report) = (sbatch_call(&bin, 0), sbatch_call(&bin, 1));
    let text = out.to_str().unwrap();
    assert_eq!(flag(&array, "--chdir"), text);
    assert_eq!(flag(&report, "--chdir"), text);
    assert_eq!(flag(&array, "--output"), format!("{}/slurm/logs/task-%a.out", text.replace('%', "%%")));
    assert_eq!(expand(flag(&array, "--output"), 100, 7), slurm.join("logs/task-7.out").to_str().unwrap());
    assert_eq!(expand(flag(&report, "--output"), 101, 0), slurm.join("logs/report-101.out").to_str().unwrap());
    assert_eq!(flag(&report, "--dependency"), "afterany:100");
    assert_eq!(array.last().map(PathBuf::from), Some(slurm.join("task.sh")));
    assert_eq!(report.last().map(PathBuf::from), Some(slurm.join("report.sh")));

    for (script, expected) in [
        ("task.sh", vec!["#SBATCH --open-mode=append", "#SBATCH --requeue", "#SBATCH --signal=B:USR1@120"]),
        ("report.sh", vec!["#SBATCH --open-mode=append"]),
    ] {
        let path = slurm.join(script);
        let checked = Command::new("bash").arg("-n").arg(&path).output().unwrap();
        assert!(checked.status.success(), "{script}: {}", String::from_utf8_lossy(&checked.stderr));
        let body = std::fs::read_to_string(&path).unwrap();
        assert_eq!(directives(&body), expected, "{script}");
        for line in body.lines().filter(|l| l.contains(name) || l.contains("pwned")) {
            assert!(!line.trim_start().starts_with('#'), "{script}: the folder in a comment: {line}");
        }
    }

    // The scripts as Slurm runs them: the array's task 0, then the report.
    let record: Value = serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    let task = record["tasks"][0]["name"].as_str().unwrap();
    let bash = |script: &str, env: &[(&str, &str)]| {
        let mut command = Command::new("bash");
        command.arg(slurm.join(script)).env("PATH", path_with(&bin)).env_remove("LD_LIBRARY_PATH").current_dir(work);
        command.envs(env.iter().copied()).stdin(Stdio::null()).output().unwrap()
    };
    let ran = bash("task.sh", &[("SLURM_ARRAY_TASK_ID", "0"), ("SLURM_ARRAY_JOB_ID", "100")]);
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    assert!(out.join(task).join("summary.json").is_file());
    let ran = bash("report.sh", &[("SLURM_JOB_ID", "101")]);
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    assert_eq!(std::fs::read_to_string(slurm.join("report-101.exit")).unwrap(), "0\n");
    assert!(out.join("table.md").is_file());
    // Nothing ran but the tool: no file made by the name's commands, nothing outside the folder.
    let mut made: Vec<PathBuf> =
        tree(work).into_iter().filter(|p| !p.starts_with(&out) && !p.starts_with(&bin)).collect();
    made.sort();
    assert_eq!(made, [work.join("sweep.toml"), work.join("sweeps")]);
}

/// A folder with a control character (a newline would end the script's line and run the
/// next) or, for sbatch's patterns, a backslash is refused before anything is written.
#[test]
fn folders_no_script_can_hold_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let bin = stubs(work);
    std::fs::write(work.join("sweep.toml"), SWEEP).unwrap();
    for (name, phrase) in [
        ("a\ntouch pwned\n", "holds a control character"),
        ("tab\there", "holds a control character"),
        ("back\\slash", "holds a backslash"),
    ] {
        let out = work.join(name);
        let output =
            run_stubbed(work, &bin, &["sweep", "sweep.toml", "--out", out.to_str().unwrap(), "--scheduler", "slurm"]);
        fails_with(&output, phrase);
        assert!(!out.exists(), "{name:?}");
    }
    assert!(!work.join("pwned").exists());
    assert!(!bin.join("calls/sbatch-0").exists());
}

/// `sweep cancel` of a folder that is not a sweep names it; `--signal-before` is bounded
/// by sbatch's limit and by `--time`.
#[test]
fn slurm_options_and_folders_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let bin = stubs(work);
    fails_with(&run_stubbed(work, &bin, &["sweep", "cancel", "/nonexistent"]), "/nonexistent holds no sweep");
    std::fs::create_dir(work.join("plain")).unwrap();
    let plain = work.join("plain");
    fails_with(
        &run_stubbed(work, &bin, &["sweep", "cancel", plain.to_str().unwrap()]),
        &format!("{} holds no sweep", plain.display()),
    );
    std::fs::write(work.join("sweep.toml"), SWEEP).unwrap();
    let sweep = |extra: &[&str]| {
        let args = [&["sweep", "sweep.toml", "--out", "out", "--scheduler", "slurm"][..], extra].concat();
        run_stubbed(work, &bin, &args)
    };
    usage_error(&sweep(&["--signal-before", "99999999999"]), "1..=65535");
    usage_error(&sweep(&["--signal-before", "0"]), "1..=65535");
    fails_with(&sweep(&["--time", "2", "--signal-before", "121"]), "--signal-before 121 is more than --time 2");
    fails_with(&sweep(&["--time", "0-0:1:30"]), "--signal-before 120 is more than --time 0-0:1:30 (90 seconds)");
    assert!(!work.join("out").exists());
    let output = sweep(&["--time", "1:00:00", "--signal-before", "600"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let script = std::fs::read_to_string(work.join("out/slurm/task.sh")).unwrap();
    assert!(directives(&script).contains(&"#SBATCH --signal=B:USR1@600"), "{script}");
    assert_eq!(flag(&sbatch_call(&bin, 0), "--time"), "1:00:00");
    // A sweep folder with nothing queued: nothing to cancel, said so.
    let cancel = run_stubbed(work, &bin, &["sweep", "cancel", "out"]);
    assert!(cancel.status.success(), "{}", stderr(&cancel));
}
