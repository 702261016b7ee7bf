//! The sweep folder: its record of tasks (`sweep.json`, [`SweepRecord`]), a request's
//! merge into it ([`prepare`]), and one task's run ([`run_task`]); what the schedulers, the
//! status and the report read.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sfess_envs::registry::Registry;

use super::spec::Combination;
use crate::config::changed_flags;
use crate::run::lock::{FolderLock, LockError};
use crate::run::{RunOptions, Summary};
use crate::system::files::write_atomically;
use crate::system::names::PathName;
use crate::system::signals::Interrupted;

pub use crate::system::names::sweep_folder::RECORD;
/// A task's failure, in its run folder.
pub const FAILED: &str = "failed.txt";

/// `sweep.json`: what the folder's tasks are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SweepRecord {
    /// The sweep file's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Every task, in the order of its first request.
    pub tasks: Vec<Combination>,
}

impl SweepRecord {
    /// The record of the sweep in `dir`.
    ///
    /// # Errors
    /// No sweep in `dir`, or a record that does not parse: a key given twice, a task name
    /// that is not a [`PathName`], two tasks with one folder (in any case).
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(RECORD);
        let text = crate::system::files::read_text(&path)
            .with_context(|| format!("{} holds no sweep (no {RECORD})", dir.display()))?;
        let record: Self = crate::system::json::parse(&text)
            .and_then(serde_json::from_value)
            .with_context(|| format!("{} is not a sweep record", path.display()))?;
        let mut folders = HashSet::with_capacity(record.tasks.len());
        for task in &record.tasks {
            anyhow::ensure!(
                folders.insert(task.name.folder_key()),
                "{} is not a sweep record: two of its tasks have the folder {}",
                path.display(),
                task.name
            );
        }
        Ok(record)
    }

    /// The task named `name`.
    ///
    /// # Errors
    /// No such task.
    pub fn task(&self, name: &str) -> anyhow::Result<&Combination> {
        self.tasks.iter().find(|t| t.name == name).with_context(|| format!("the sweep has no task {name:?}"))
    }
}

/// What one request asks of a sweep folder.
#[derive(Debug, Clone)]
pub struct Request {
    /// The sweep folder.
    pub out: PathBuf,
    /// What the sweep is.
    pub description: Option<String>,
    /// Its combinations, checked.
    pub tasks: Vec<Combination>,
    /// Who asks (`compare` or `sweep`), for messages.
    pub command: &'static str,
}

/// A sweep folder, locked by this process, with its record merged with the request.
pub struct Prepared {
    /// Held while this process writes the folder's record or runs its tasks.
    pub lock: FolderLock,
    /// The folder's tasks (the request's and any earlier ones).
    pub record: SweepRecord,
}

/// Creates and locks the sweep folder, refuses a request that changes a task already
/// recorded or a run folder trained with other settings, and writes the merged record.
///
/// # Errors
/// The folder is locked by another process, cannot be written, or holds tasks or runs
/// with other settings (each named, with the settings that differ).
pub fn prepare(request: &Request, registry: &Registry) -> anyhow::Result<Prepared> {
    let out = &request.out;
    refuse_a_run_folder(out, &format!("a {}", request.command))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let holder = std::env::args().collect::<Vec<_>>().join(" ");
    let lock = FolderLock::acquire(out, &holder)?;
    // Again under the lock: a run may have started there meanwhile.
    refuse_a_run_folder(out, &format!("a {}", request.command))?;
    let mut record = match SweepRecord::read(out) {
        Ok(record) => record,
        Err(_) if !out.join(RECORD).exists() => SweepRecord::default(),
        Err(error) => return Err(error),
    };
    let recorded: HashMap<&PathName, &Combination> = record.tasks.iter().map(|t| (&t.name, t)).collect();
    let mut differing = Vec::new();
    for task in &request.tasks {
        if let Some(recorded) = recorded.get(&task.name) {
            if let Some(changed) = changed_flags(&recorded.config, &task.config, "it") {
                differing.push(format!("{} ({changed})", task.name));
            }
            continue;
        }
        // A run folder of that name, trained outside this sweep.
        let dir = out.join(&task.name);
        if crate::run::run_file_in(&dir).is_some() {
            let trained = crate::run::read_config(&dir, registry)
                .and_then(|c| Ok(c.with_absolute_paths(registry)?.check(registry)?.into_config()))
                .with_context(|| format!("{} holds a run that cannot be read", dir.display()))?;
            if let Some(changed) = changed_flags(&trained, &task.config, "it") {
                differing.push(format!("{} ({changed})", dir.display()));
            }
        }
    }
    anyhow::ensure!(
        differing.is_empty(),
        "{} holds a {} made with other settings: its runs {}; repeat that request to continue it, or choose \
         another --out",
        out.display(),
        request.command,
        differing.join("; ")
    );
    let new: Vec<Combination> = request.tasks.iter().filter(|t| !recorded.contains_key(&t.name)).cloned().collect();
    record.tasks.extend(new);
    if record.description.is_none() {
        record.description.clone_from(&request.description);
    }
    write_atomically(&out.join(RECORD), (serde_json::to_string_pretty(&record)? + "\n").as_bytes())?;
    Ok(Prepared { lock, record })
}

/// Refuses `dir` as the folder of `what` (`a sweep`, `a report`) when it holds a run: any
/// file a run writes, but for `summary.json`, which a sweep's report writes too, only a
/// run's (one without the report's `groups`).
///
/// # Errors
/// `dir` holds a run, named by the file that shows it.
pub fn refuse_a_run_folder(dir: &Path, what: &str) -> anyhow::Result<()> {
    let file = match crate::run::run_file_in(dir) {
        Some(crate::run::SUMMARY) => {
            let text = crate::system::files::read_text(&dir.join(crate::run::SUMMARY)).unwrap_or_default();
            let report = serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v.get("groups").is_some());
            (!report).then_some(crate::run::SUMMARY)
        }
        other => other,
    };
    match file {
        Some(file) => anyhow::bail!(
            "{} holds a run (its {file}), not {what}: its files would be overwritten; choose another folder",
            dir.display()
        ),
        None => Ok(()),
    }
}

/// Whether the task's run is complete: its summary is there.
pub fn is_complete(out: &Path, task: &Combination) -> bool {
    out.join(&task.name).join(crate::run::SUMMARY).exists()
}

/// `sfess-agent sweep-task DIR NAME`: trains the task `name` of the sweep in `out` into
/// `DIR/NAME`, or resumes it from its checkpoint; a complete run is left as it is. A
/// failure (not a signal, not a folder in use by another process) is written to the run
/// folder's `failed.txt` as one line.
///
/// # Errors
/// As [`crate::run::train`] and [`crate::run::resume`].
pub fn run_task(out: &Path, name: &str, options: &RunOptions) -> anyhow::Result<Summary> {
    let record = SweepRecord::read(out)?;
    let task = record.task(name)?;
    let dir = out.join(&task.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::system::files::remove_if_there(&dir.join(FAILED))?;
    let result = if crate::run::run_file_in(&dir).is_some() {
        crate::run::resume(&dir, Some(task.config.steps), options)
    } else {
        crate::run::train(&task.config, &dir, options)
    };
    if let Err(error) = &result {
        let stopped = error.downcast_ref::<Interrupted>().is_some();
        let in_use = error.chain().any(|c| matches!(c.downcast_ref::<LockError>(), Some(LockError::Held { .. })));
        if !stopped && !in_use {
            let line = crate::system::messages::one_line(&format!("{error:#}"));
            write_atomically(&dir.join(FAILED), format!("{line}\n").as_bytes())?;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `sweep.json` of one task named `name`.
    fn record_naming(name: &str) -> String {
        let task = serde_json::json!({
            "name": name,
            "values": {"seed": "0"},
            "config": crate::config::TrainConfig::of_env("max-coverage"),
        });
        serde_json::json!({ "tasks": [task] }).to_string()
    }

    /// Task names read back from a hand-edited `sweep.json` are checked as the sweep file's
    /// were: no absolute path, no `..`, no two tasks in one folder.
    #[test]
    fn task_names_read_back_are_path_names() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["../../x", "/tmp/x", "..", "", "a/b", "table.md"] {
            std::fs::write(dir.path().join(RECORD), record_naming(name)).unwrap();
            let error = format!("{:#}", SweepRecord::read(dir.path()).unwrap_err());
            assert!(error.contains("is not a sweep record") && error.contains("the name"), "{name}: {error}");
        }
        std::fs::write(dir.path().join(RECORD), record_naming("sfess-seed0")).unwrap();
        assert_eq!(SweepRecord::read(dir.path()).unwrap().tasks[0].name, "sfess-seed0");
        let twice =
            record_naming("a").replace("\"tasks\":[", "\"tasks\":[{\"name\":\"A\",\"values\":{},\"config\":{}},");
        std::fs::write(dir.path().join(RECORD), twice).unwrap();
        let error = format!("{:#}", SweepRecord::read(dir.path()).unwrap_err());
        assert!(error.contains("two of its tasks have the folder a"), "{error}");
    }

    /// A folder that holds a run is not a sweep's: its files would be overwritten. A sweep
    /// folder whose report wrote `summary.json` is one.
    #[test]
    fn a_run_folder_is_refused_as_a_sweep_folder() {
        let dir = tempfile::tempdir().unwrap();
        refuse_a_run_folder(dir.path(), "a sweep").unwrap();
        std::fs::write(dir.path().join(crate::run::SUMMARY), "{\"groups\": []}\n").unwrap();
        refuse_a_run_folder(dir.path(), "a sweep").unwrap();
        std::fs::write(dir.path().join(crate::run::SUMMARY), "{\"env\": \"max-coverage\"}\n").unwrap();
        let error = refuse_a_run_folder(dir.path(), "a sweep").unwrap_err().to_string();
        assert!(error.contains("holds a run (its summary.json), not a sweep"), "{error}");
        std::fs::remove_file(dir.path().join(crate::run::SUMMARY)).unwrap();
        std::fs::write(dir.path().join(crate::run::METRICS), "").unwrap();
        assert!(refuse_a_run_folder(dir.path(), "a sweep").is_err());
    }
}
