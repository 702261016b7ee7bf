//! Writes a small event file into the folder given as the only argument (created if missing):
//! scalars `train/loss` and `train/lr` for steps 0..5, a histogram `weights` at steps 0 and 1,
//! and NaN, +inf and -inf under `nonfinite`. Read it back with `scripts/read_events.py DIR`, or
//! look at it with `tensorboard --logdir DIR`.

use sfess_tensorboard::{Event, Histogram, Value, encode, file_header};
use std::time::{SystemTime, UNIX_EPOCH};

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).expect("usage: write DIR");
    std::fs::create_dir_all(&dir)?;
    let start = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs_f64();
    // TensorBoard reads only files whose name contains "tfevents".
    let path = std::path::Path::new(&dir).join(format!("events.out.tfevents.{}.sfess", start as u64));
    let mut file = file_header(start);
    let edges = [-1.0, -0.5, 0.0, 0.5, 1.0];
    for step in 0..5i64 {
        let mut values = vec![
            ("train/loss".to_string(), Value::Scalar(1.0 / (1.0 + step as f32))),
            ("train/lr".to_string(), Value::Scalar(1e-3 * 0.5f32.powi(step as i32))),
        ];
        if step < 2 {
            let weights: Vec<f64> = (0..10).map(|i| (i as f64 - 4.5) / (4.0 + step as f64)).collect();
            values.push(("weights".to_string(), Value::Histogram(Histogram::of(&weights, &edges))));
        }
        if let Some(x) = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY].get(step as usize) {
            values.push(("nonfinite".to_string(), Value::Scalar(*x)));
        }
        file.extend(encode(&Event { wall_time: start + step as f64, step, values }));
    }
    std::fs::write(&path, &file)?;
    println!("{}", path.display());
    Ok(())
}
