//! The TensorBoard event file of a run, read with the decoder of `tensorboard/tests/decoder`
//! (its own CRC-32C and protobuf reader, nothing of the encoder): it holds every record of
//! `metrics.jsonl` and `marginals.jsonl` at its step, once, and a resumed run's holds
//! exactly the straight run's (the resumption tests of `run_folder` check that too).

use std::path::Path;

use crate::common::{json, run};
use crate::decoder::{Decoded, DecodedEvent, decode_file};
use crate::train::lines;

const EVENTS: &str = "events.out.tfevents.sfess-agent";

fn decoded(dir: &Path) -> Vec<DecodedEvent> {
    decode_file(&std::fs::read(dir.join(EVENTS)).unwrap())
}

/// The values of the run's events without its clocks (the seconds per step and the step
/// rate): `(step, tag, value)` in file order. Checks the header and that no tag is
/// recorded twice at a step.
pub(crate) fn events(dir: &Path) -> Vec<(i64, String, Decoded)> {
    let events = decoded(dir);
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"), "{}", dir.display());
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for event in &events[1..] {
        for (tag, value) in event.summary.as_ref().expect("a summary") {
            assert!(seen.insert((event.step, tag.clone())), "{tag} twice at step {} in {}", event.step, dir.display());
            if !tag.ends_with("/seconds_per_step") && !tag.ends_with("/steps_per_second") {
                out.push((event.step, tag.clone(), value.clone()));
            }
        }
    }
    out
}

/// Every metrics record is the scalar `SPLIT/METRIC` at its step, as an f32, at the wall time
/// of the run's start plus its elapsed seconds; the step rate is one over the seconds per
/// step; every validation's marginals are a histogram of the n values over [0, 1]; and the
/// file holds nothing else.
#[test]
fn the_event_file_decodes_to_the_logged_values() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cov");
    let out = dir.to_str().unwrap();
    json(&run(&[
        "train",
        "--env",
        "max-coverage",
        "--steps",
        "300",
        "--eval-every",
        "100",
        "--quiet",
        "--json",
        "--out",
        out,
    ]));
    let events = decoded(&dir);
    let started = events[0].wall_time;
    let scalar = |step: u64, tag: &str| -> Option<(f32, f64)> {
        events.iter().filter(|e| e.step == step as i64).find_map(|e| {
            e.summary.as_ref()?.iter().find(|(t, _)| t == tag).map(|(_, v)| match v {
                Decoded::Scalar(bits) => (f32::from_bits(*bits), e.wall_time),
                other => panic!("{tag}: {other:?}"),
            })
        })
    };
    let records = lines(&dir.join("metrics.jsonl"));
    for record in &records {
        let (step, value) = (record["step"].as_u64().unwrap(), record["value"].as_f64().unwrap());
        let tag = format!("{}/{}", record["split"].as_str().unwrap(), record["metric"].as_str().unwrap());
        let (logged, wall_time) = scalar(step, &tag).unwrap_or_else(|| panic!("no {tag} at step {step}"));
        assert_eq!(logged, value as f32, "{tag} at step {step}");
        let elapsed = record["elapsed_seconds"].as_f64().unwrap();
        assert!((wall_time - (started + elapsed)).abs() < 1e-6, "{tag}: {wall_time} vs {started} + {elapsed}");
        if tag == "train/seconds_per_step" {
            let rate = scalar(step, "train/steps_per_second").unwrap().0;
            assert!((f64::from(rate) * value - 1.0).abs() < 1e-6, "{rate} steps/s against {value} s/step");
        }
    }
    let marginals = lines(&dir.join("marginals.jsonl"));
    assert_eq!(marginals.len(), 4, "validations at steps 0, 100, 200, 300");
    for record in &marginals {
        let values: Vec<f64> = record["marginals"].as_array().unwrap().iter().map(|m| m.as_f64().unwrap()).collect();
        let step = record["step"].as_i64().unwrap();
        let histogram = events
            .iter()
            .filter(|e| e.step == step)
            .find_map(|e| e.summary.as_ref()?.iter().find(|(t, _)| t == "validation/marginals"))
            .unwrap_or_else(|| panic!("no marginals at step {step}"));
        let Decoded::Histo { min, max, num, sum, buckets, limits, .. } = &histogram.1 else { panic!("{histogram:?}") };
        assert_eq!(*num, values.len() as f64);
        assert!((sum - values.iter().sum::<f64>()).abs() < 1e-6 && (sum - 5.0).abs() < 1e-4, "sum {sum}: k = 5");
        // marginals.jsonl holds f32s: compare in f32.
        let range =
            values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v as f32), b.max(v as f32)));
        assert_eq!((*min as f32, *max as f32), range);
        assert_eq!(buckets.iter().sum::<f64>(), *num);
        assert!(limits[0] > 0.0 && limits[limits.len() - 2] >= 1.0, "{limits:?}");
    }
    // Nothing else: one value per record, the step rates, and the histograms.
    let values: usize = events[1..].iter().map(|e| e.summary.as_ref().unwrap().len()).sum();
    let rates = records.iter().filter(|r| r["metric"] == "seconds_per_step").count();
    assert_eq!(values, records.len() + rates + marginals.len());
}

/// A complete run whose last step is on the validation schedule but inside a loss window
/// (150 steps, validations every 150, windows of 100), extended to 300 steps: the event
/// file is rebuilt without the records only its end wrote (they sit between kept ones),
/// and holds exactly the straight 300-step run's values.
#[test]
fn an_extended_run_rebuilds_its_event_file_without_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let train = |dir: &Path, steps: &str| {
        let out = dir.to_str().unwrap();
        let args = ["train", "--env", "max-coverage", "--steps", steps, "--eval-every", "150", "--no-figures"];
        json(&run(&[&args[..], &["--quiet", "--json", "--out", out]].concat()));
    };
    let (short, straight) = (tmp.path().join("short"), tmp.path().join("straight"));
    train(&short, "150");
    train(&straight, "300");
    assert!(events(&short).iter().any(|e| e.0 == 150 && e.1 == "test/coverage"));
    json(&run(&["train", "--resume", short.to_str().unwrap(), "--steps", "300", "--quiet", "--json"]));
    assert_eq!(events(&short), events(&straight));
}
