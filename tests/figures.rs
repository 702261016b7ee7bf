//! `show`: the figures of every kind of run folder, on tiny synthetic data, checked as
//! images (valid PNG and SVG files that are not blank) and as data (`subset.json`).

use std::path::Path;

use serde_json::Value;

use crate::common::{fails_with, json, run, stdout};
use crate::train::synthetic_mnist;

/// A short run of `env` with `extra` flags into `out`, without figures.
fn train(out: &Path, env: &str, extra: &[&str]) {
    let mut args =
        vec!["train", "--env", env, "--steps", "20", "--eval-every", "10", "--device", "cpu", "--quiet", "--json"];
    args.extend(["--out", out.to_str().unwrap(), "--no-figures"]);
    args.extend(extra);
    json(&run(&args));
    assert!(!out.join("figures").exists(), "--no-figures drew figures");
}

/// The share of a figure's area that its pixel images fill, at least: what must not be the
/// white background (every grid of images, and the marginals' heat map); curves and scatter
/// plots draw thin lines and points.
fn inked_share(name: &str) -> f64 {
    if ["curve", "embedding"].contains(&name) { 0.02 } else { 0.25 }
}

/// A PNG that decodes, of a reasonable size, with more than a few colours and at least
/// `share` of its pixels not the white background.
fn assert_drawn_png(path: &Path, share: f64) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).unwrap();
    assert!(info.width >= 300 && info.height >= 200, "{}: {}×{}", path.display(), info.width, info.height);
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buffer[..info.buffer_size()].chunks(channels).collect();
    let colours: std::collections::HashSet<&[u8]> = pixels.iter().copied().collect();
    let inked = pixels.iter().filter(|p| p[..3] != [255, 255, 255]).count();
    assert!(colours.len() >= 8, "{}: {} colours", path.display(), colours.len());
    let drawn = inked as f64 / pixels.len() as f64;
    assert!(drawn >= share, "{}: {drawn:.3} of the pixels drawn, not {share}", path.display());
}

/// An SVG that parses as XML, whose root is `<svg>` with drawn elements inside.
fn assert_drawn_svg(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let document = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(document.root_element().tag_name().name(), "svg", "{}", path.display());
    let drawn = document
        .descendants()
        .filter(|n| ["image", "circle", "rect", "polyline", "path", "text"].contains(&n.tag_name().name()))
        .count();
    assert!(drawn >= 10, "{}: {drawn} drawn elements", path.display());
}

/// `show RUN` prints the files it wrote: each expected figure as SVG and PNG, and
/// `subset.json`; every image is drawn; the subset is the policy's top-k, its marginals
/// sum to k.
fn assert_shows(dir: &Path, figures: &[&str]) -> Value {
    let output = run(&["show", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", crate::common::stderr(&output));
    let printed: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    let folder = dir.join("figures");
    for name in figures.iter().chain(&["curve", "marginals"]) {
        for ext in ["png", "svg"] {
            let path = folder.join(format!("{name}.{ext}"));
            assert!(printed.contains(&path.display().to_string()), "{} not printed in {printed:?}", path.display());
            if ext == "png" { assert_drawn_png(&path, inked_share(name)) } else { assert_drawn_svg(&path) }
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let subset: Value = serde_json::from_str(&std::fs::read_to_string(folder.join("subset.json")).unwrap()).unwrap();
    let k = subset["k"].as_u64().unwrap() as usize;
    let n = subset["n"].as_u64().unwrap() as usize;
    let rows = subset["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let top_k: Vec<usize> = row["top_k"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as usize).collect();
        let marginals: Vec<f64> = row["marginals"].as_array().unwrap().iter().map(|m| m.as_f64().unwrap()).collect();
        assert_eq!((top_k.len(), marginals.len()), (k, n), "{row}");
        assert!((marginals.iter().sum::<f64>() - k as f64).abs() < 1e-6, "{row}");
        // The top-k items have the k largest marginals (the marginals increase with the logits).
        let smallest_chosen = top_k.iter().map(|&i| marginals[i]).fold(f64::INFINITY, f64::min);
        let largest_other =
            (0..n).filter(|i| !top_k.contains(i)).map(|i| marginals[i]).fold(f64::NEG_INFINITY, f64::max);
        assert!(smallest_chosen >= largest_other - 1e-9, "{row}");
    }
    subset
}

#[test]
fn show_draws_every_kind_of_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_mnist(tmp.path(), 240, 60);
    let data = tmp.path().to_str().unwrap();
    let small = ["--batch-size", "16", "--samples", "4", "--data-dir", data];
    let cases: [(&str, Vec<&str>, &[&str], bool); 7] = [
        ("knn-mnist", [&small[..], &["--candidates", "24", "-k", "3"]].concat(), &["embedding"], true),
        ("feature-selection-mnist", small.to_vec(), &["mask", "reconstructions"], false),
        (
            "vae-mnist",
            [&small[..], &["-k", "3", "--env-option", "items=6"]].concat(),
            &["reconstructions", "samples"],
            true,
        ),
        (
            "sensor-placement-mnist",
            [&small[..], &["-k", "8", "--env-option", "modes=5"]].concat(),
            &["mask", "sensors"],
            false,
        ),
        (
            "feature-selection-knn-mnist",
            [&small[..], &["--env-option", "references=60", "--env-option", "neighbours=3"]].concat(),
            &["mask", "masked-inputs"],
            false,
        ),
        ("max-coverage", vec!["--samples", "4"], &[], false),
        ("slate", vec!["--policy", "mlp", "--hidden", "16", "--batch-size", "4", "--samples", "4"], &[], true),
    ];
    for (env, extra, figures, contextual) in cases {
        let dir = tmp.path().join(env);
        train(&dir, env, &extra);
        let subset = assert_shows(&dir, figures);
        assert_eq!(subset["contextual"], contextual, "{env}: {subset}");
        assert_eq!(subset["step"], 20, "{env}");
        assert_eq!(subset["rows"].as_array().unwrap().len() > 1, contextual, "{env}");
    }
}

#[test]
fn train_draws_the_figures_at_its_end_and_report_links_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("runs").join("cov");
    let out = dir.to_str().unwrap();
    let args = ["train", "--env", "max-coverage", "--steps", "30", "--eval-every", "10", "--quiet", "--out", out];
    assert!(run(&args).status.success());
    for name in ["curve.png", "curve.svg", "marginals.png", "marginals.svg", "subset.json"] {
        assert!(dir.join("figures").join(name).exists(), "{name}");
    }
    assert_drawn_png(&dir.join("figures").join("marginals.png"), inked_share("marginals"));
    // A comparison's report links each run's figures.
    let compare = tmp.path().join("compare");
    let compare_out = compare.to_str().unwrap();
    let output = run(&[
        "compare",
        "--env",
        "max-coverage",
        "--estimators",
        "sfess",
        "--seeds",
        "0",
        "--steps",
        "20",
        "--eval-every",
        "10",
        "--out",
        compare_out,
    ]);
    assert!(output.status.success(), "{}", crate::common::stderr(&output));
    let table = std::fs::read_to_string(compare.join("table.md")).unwrap();
    let link = regex_free_link(&table, "marginals");
    assert!(compare.join(&link).exists(), "{link} in {table}");
}

/// The target of the first Markdown link named `name` in `text`.
fn regex_free_link(text: &str, name: &str) -> String {
    let start = text.find(&format!("[{name}](")).unwrap_or_else(|| panic!("no link {name} in {text}")) + name.len() + 3;
    text[start..start + text[start..].find(')').unwrap()].to_owned()
}

#[test]
fn show_needs_a_run_with_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    fails_with(&run(&["show", tmp.path().to_str().unwrap()]), "holds no run (no config.json)");
    // A run folder whose checkpoint is not written yet: its configuration alone.
    let dir = tmp.path().join("cov");
    train(&dir, "max-coverage", &[]);
    std::fs::remove_file(dir.join("checkpoint.ot")).unwrap();
    fails_with(&run(&["show", dir.to_str().unwrap()]), "has no checkpoint yet (checkpoint.ot)");
    assert!(!dir.join("figures").exists());
}

/// The book's Python reader of a checkpoint (docs/book/src/figures.md) reads a run's step
/// and variables with PyTorch alone (the python3 of scripts/env.sh, which has torch).
#[test]
fn the_books_checkpoint_reader_reads_a_run() {
    let chapter = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/book/src/figures.md")).unwrap();
    let layout = &chapter[chapter.find("## The checkpoint's layout").expect("the layout section")..];
    let start = layout.find("```python\n").expect("a Python block") + "```python\n".len();
    let script = &layout[start..start + layout[start..].find("```").unwrap()];
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cov");
    train(&dir, "max-coverage", &["--env-option", "n=30"]);
    let output = crate::common::run_python(script, &[dir.to_str().unwrap()]);
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(printed, "step 20\nvar.policy.logits [1, 30]\n");
}
