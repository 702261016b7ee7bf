//! Decodes whole event files written by the crate with a reader of its own: its own bitwise
//! CRC-32C (from the reflected polynomial, not the crate's `crc32c`), its own protobuf wire
//! reader, and the field numbers of TensorBoard's `event.proto`, `summary.proto` and
//! `histogram.proto` written out again here. Nothing of the encoder is reused but its output.

use sfess_tensorboard::{Event, Histogram, Value, encode, file_header, header_wall_time};

/// CRC-32C, bit by bit: reflected polynomial 0x82F63B78, initial value and final xor !0.
fn crc32c_bitwise(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

/// TFRecord's mask, written as its spec states it (the crate uses `rotate_right`).
#[allow(clippy::manual_rotate)]
fn masked(data: &[u8]) -> u32 {
    let crc = crc32c_bitwise(data);
    ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8)
}

/// Splits a file into its records' data, checking both CRCs of each and that nothing is left.
fn records(mut file: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !file.is_empty() {
        assert!(file.len() >= 12, "partial record header");
        let len_bytes = &file[..8];
        let len_crc = u32::from_le_bytes(file[8..12].try_into().unwrap());
        assert_eq!(len_crc, masked(len_bytes), "length CRC of record {}", out.len());
        let n = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        assert!(file.len() >= 12 + n + 4, "partial record {}", out.len());
        let data = &file[12..12 + n];
        let data_crc = u32::from_le_bytes(file[12 + n..16 + n].try_into().unwrap());
        assert_eq!(data_crc, masked(data), "data CRC of record {}", out.len());
        out.push(data);
        file = &file[16 + n..];
    }
    out
}

/// One protobuf field's payload, by wire type.
#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = bytes[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
        assert!(shift < 70, "varint longer than 10 bytes");
    }
}

/// A message's fields in order, as (field number, payload).
fn fields(msg: &[u8]) -> Vec<(u64, Wire<'_>)> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < msg.len() {
        let key = read_varint(msg, &mut pos);
        let wire = match key % 8 {
            0 => Wire::Varint(read_varint(msg, &mut pos)),
            1 => {
                pos += 8;
                Wire::Fixed64(u64::from_le_bytes(msg[pos - 8..pos].try_into().unwrap()))
            }
            2 => {
                let n = read_varint(msg, &mut pos) as usize;
                pos += n;
                Wire::Len(&msg[pos - n..pos])
            }
            5 => {
                pos += 4;
                Wire::Fixed32(u32::from_le_bytes(msg[pos - 4..pos].try_into().unwrap()))
            }
            w => panic!("wire type {w} in field {}", key / 8),
        };
        out.push((key / 8, wire));
    }
    assert_eq!(pos, msg.len(), "message overruns its length");
    out
}

fn double(w: Wire) -> f64 {
    match w {
        Wire::Fixed64(bits) => f64::from_bits(bits),
        other => panic!("expected a double, got {other:?}"),
    }
}

fn packed_doubles(w: Wire) -> Vec<f64> {
    match w {
        Wire::Len(b) => {
            assert_eq!(b.len() % 8, 0);
            b.chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
        }
        other => panic!("expected packed doubles, got {other:?}"),
    }
}

fn bytes(w: Wire<'_>) -> &[u8] {
    match w {
        Wire::Len(b) => b,
        other => panic!("expected length-delimited, got {other:?}"),
    }
}

/// What the decoder finds in a value: a scalar's bits (to compare NaN too) or a histogram.
#[derive(Debug, PartialEq)]
enum Decoded {
    Scalar(u32),
    Histo { min: f64, max: f64, num: f64, sum: f64, sum_squares: f64, limits: Vec<f64>, buckets: Vec<f64> },
}

#[derive(Debug, Default, PartialEq)]
struct DecodedEvent {
    wall_time: f64,
    step: i64,
    file_version: Option<String>,
    summary: Option<Vec<(String, Decoded)>>,
}

// Field numbers, from TensorBoard's tensorboard/compat/proto/*.proto.
const EVENT_WALL_TIME: u64 = 1;
const EVENT_STEP: u64 = 2;
const EVENT_FILE_VERSION: u64 = 3;
const EVENT_SUMMARY: u64 = 5;
const SUMMARY_VALUE: u64 = 1;
const VALUE_TAG: u64 = 1;
const VALUE_SIMPLE_VALUE: u64 = 2;
const VALUE_HISTO: u64 = 5;

fn decode_histo(msg: &[u8]) -> Decoded {
    let (mut min, mut max, mut num, mut sum, mut sum_squares) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut limits, mut buckets) = (Vec::new(), Vec::new());
    for (f, w) in fields(msg) {
        match f {
            1 => min = double(w),
            2 => max = double(w),
            3 => num = double(w),
            4 => sum = double(w),
            5 => sum_squares = double(w),
            6 => limits.extend(packed_doubles(w)),
            7 => buckets.extend(packed_doubles(w)),
            _ => panic!("unexpected HistogramProto field {f}"),
        }
    }
    Decoded::Histo { min, max, num, sum, sum_squares, limits, buckets }
}

fn decode_value(msg: &[u8]) -> (String, Decoded) {
    let (mut tag, mut value) = (None, None);
    for (f, w) in fields(msg) {
        match (f, w) {
            (VALUE_TAG, w) => tag = Some(String::from_utf8(bytes(w).to_vec()).unwrap()),
            (VALUE_SIMPLE_VALUE, Wire::Fixed32(bits)) => value = Some(Decoded::Scalar(bits)),
            (VALUE_HISTO, w) => value = Some(decode_histo(bytes(w))),
            other => panic!("unexpected Summary.Value field {other:?}"),
        }
    }
    (tag.expect("a tag"), value.expect("a value"))
}

fn decode_event(msg: &[u8]) -> DecodedEvent {
    let mut e = DecodedEvent::default();
    for (f, w) in fields(msg) {
        match (f, w) {
            (EVENT_WALL_TIME, w) => e.wall_time = double(w),
            (EVENT_STEP, Wire::Varint(v)) => e.step = v as i64,
            (EVENT_FILE_VERSION, w) => e.file_version = Some(String::from_utf8(bytes(w).to_vec()).unwrap()),
            (EVENT_SUMMARY, w) => {
                let values = fields(bytes(w))
                    .into_iter()
                    .map(|(f, w)| {
                        assert_eq!(f, SUMMARY_VALUE, "Summary field");
                        decode_value(bytes(w))
                    })
                    .collect();
                e.summary = Some(values);
            }
            other => panic!("unexpected Event field {other:?}"),
        }
    }
    e
}

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
