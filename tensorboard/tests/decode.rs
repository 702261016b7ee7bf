//! Decodes whole event files written by the crate with a reader of its own: its own bitwise
//! CRC-32C (from the reflected polynomial, not the crate's `crc32c`), its own protobuf wire
//! reader, and the field numbers of TensorBoard's `event.proto`, `summary.proto` and
//! `histogram.proto` written out again here. Nothing of the encoder is reused but its output.

mod decoder;

use decoder::*;

use sfess_tensorboard::{Event, Histogram, Value, encode, file_header, header_wall_time};

fn scalar(tag: &str, x: f32) -> (String, Value) {
    (tag.to_string(), Value::Scalar(x))
}

#[test]
fn crc_of_the_decoder_is_crc32c() {
    assert_eq!(crc32c_bitwise(b"123456789"), 0xe306_9283);
}

#[test]
fn a_whole_file_decodes_back() {
    let start = 1_712_345_678.125;
    let mut file = file_header(start);
    let mut want: Vec<DecodedEvent> =
        vec![DecodedEvent { wall_time: start, file_version: Some("brain.Event:2".into()), ..Default::default() }];
    let mut push = |file: &mut Vec<u8>, e: Event, values: Vec<(String, Decoded)>| {
        file.extend(encode(&e));
        want.push(DecodedEvent { wall_time: e.wall_time, step: e.step, file_version: None, summary: Some(values) });
    };

    // Scalars of several tags, steps 0..N, negative and tiny values.
    let n = 40;
    for step in 0..n {
        let loss = 2.0 - 0.37 * step as f32;
        let lr = 1e-3 / (1 + step) as f32;
        let e = Event {
            wall_time: start + 0.5 * step as f64,
            step,
            values: vec![scalar("train/loss", loss), scalar("train/lr", lr), scalar("eval/tiny", 1e-40)],
        };
        let d = vec![
            ("train/loss".into(), Decoded::Scalar(loss.to_bits())),
            ("train/lr".into(), Decoded::Scalar(lr.to_bits())),
            ("eval/tiny".into(), Decoded::Scalar(1e-40f32.to_bits())),
        ];
        push(&mut file, e, d);
    }

    // A histogram, its expected content worked out by hand: buckets [.., -1), [-1, 0), [0, 2), [2, MAX].
    let values = [-5.0, -1.0, -0.25, 0.0, 1.5, 2.0, 3.0];
    let h = Histogram::of(&values, &[-1.0, 0.0, 2.0]);
    let hand = Decoded::Histo {
        min: -5.0,
        max: 3.0,
        num: 7.0,
        sum: 0.25,
        sum_squares: 25.0 + 1.0 + 0.0625 + 0.0 + 2.25 + 4.0 + 9.0,
        limits: vec![-1.0, 0.0, 2.0, f64::MAX],
        buckets: vec![1.0, 2.0, 2.0, 2.0],
    };
    let e = Event {
        wall_time: start + 100.0,
        step: n,
        values: vec![("weights".into(), Value::Histogram(h.clone())), scalar("train/loss", -0.0)],
    };
    push(&mut file, e, vec![("weights".into(), hand), ("train/loss".into(), Decoded::Scalar((-0.0f32).to_bits()))]);

    // An empty histogram, and one whose fields decode back to what was passed.
    let empty = Histogram::of(&[], &[1.0]);
    let empty_hand = Decoded::Histo {
        min: 0.0,
        max: 0.0,
        num: 0.0,
        sum: 0.0,
        sum_squares: 0.0,
        limits: vec![1.0, f64::MAX],
        buckets: vec![0.0, 0.0],
    };
    push(
        &mut file,
        Event { wall_time: start + 101.0, step: n + 1, values: vec![("empty".into(), Value::Histogram(empty))] },
        vec![("empty".into(), empty_hand)],
    );

    // Large and negative steps, extreme floats, NaN and infinities bit for bit, an empty summary.
    for (step, x) in
        [(1i64 << 40, f32::MIN_POSITIVE), (i64::MAX, -f32::MAX), (-7, f32::NAN), (i64::MIN, f32::NEG_INFINITY)]
    {
        push(
            &mut file,
            Event { wall_time: start + 200.0, step, values: vec![scalar("edge", x)] },
            vec![("edge".into(), Decoded::Scalar(x.to_bits()))],
        );
    }
    push(&mut file, Event { wall_time: -1.0e-300, step: 3, values: vec![] }, vec![]);

    let got: Vec<DecodedEvent> = records(&file).into_iter().map(decode_event).collect();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "record {i}");
    }
    // The histogram as passed, field by field.
    let Some(Decoded::Histo { min, max, num, sum, sum_squares, limits, buckets }) =
        got[n as usize + 1].summary.as_ref().map(|s| &s[0].1)
    else {
        panic!("no histogram")
    };
    assert_eq!(
        Histogram {
            min: *min,
            max: *max,
            num: *num,
            sum: *sum,
            sum_squares: *sum_squares,
            bucket_limits: limits.clone(),
            buckets: buckets.clone()
        },
        h
    );

    assert_eq!(header_wall_time(&file), Some(start));
    assert_eq!(header_wall_time(&file[12..]), None, "not at a record's start");
    let mut bad = file.clone();
    bad[20] ^= 1;
    assert_eq!(header_wall_time(&bad), None, "data CRC");
}
