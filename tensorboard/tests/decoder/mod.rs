//! A reader of TensorBoard event files of its own, independent of `sfess-tensorboard`'s
//! encoder: its own bitwise CRC-32C (from the reflected polynomial, not the crate's
//! `crc32c`), its own protobuf wire reader, and the field numbers of TensorBoard's
//! `event.proto`, `summary.proto` and `histogram.proto` written out again here. Used by this
//! crate's tests and by the root package's (which read the event files of whole runs).
#![allow(dead_code)]

/// CRC-32C, bit by bit: reflected polynomial 0x82F63B78, initial value and final xor !0.
pub fn crc32c_bitwise(data: &[u8]) -> u32 {
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
pub fn masked(data: &[u8]) -> u32 {
    let crc = crc32c_bitwise(data);
    ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8)
}

/// Splits a file into its records' data, checking both CRCs of each and that nothing is left.
pub fn records(mut file: &[u8]) -> Vec<&[u8]> {
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
pub enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

pub fn read_varint(bytes: &[u8], pos: &mut usize) -> u64 {
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
pub fn fields(msg: &[u8]) -> Vec<(u64, Wire<'_>)> {
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

pub fn double(w: Wire) -> f64 {
    match w {
        Wire::Fixed64(bits) => f64::from_bits(bits),
        other => panic!("expected a double, got {other:?}"),
    }
}

pub fn packed_doubles(w: Wire) -> Vec<f64> {
    match w {
        Wire::Len(b) => {
            assert_eq!(b.len() % 8, 0);
            b.chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
        }
        other => panic!("expected packed doubles, got {other:?}"),
    }
}

pub fn bytes(w: Wire<'_>) -> &[u8] {
    match w {
        Wire::Len(b) => b,
        other => panic!("expected length-delimited, got {other:?}"),
    }
}

/// What the decoder finds in a value: a scalar's bits (to compare NaN too) or a histogram.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Scalar(u32),
    Histo { min: f64, max: f64, num: f64, sum: f64, sum_squares: f64, limits: Vec<f64>, buckets: Vec<f64> },
}

#[derive(Debug, Default, PartialEq)]
pub struct DecodedEvent {
    pub wall_time: f64,
    pub step: i64,
    pub file_version: Option<String>,
    pub summary: Option<Vec<(String, Decoded)>>,
}

// Field numbers, from TensorBoard's tensorboard/compat/proto/*.proto.
pub const EVENT_WALL_TIME: u64 = 1;
pub const EVENT_STEP: u64 = 2;
pub const EVENT_FILE_VERSION: u64 = 3;
pub const EVENT_SUMMARY: u64 = 5;
pub const SUMMARY_VALUE: u64 = 1;
pub const VALUE_TAG: u64 = 1;
pub const VALUE_SIMPLE_VALUE: u64 = 2;
pub const VALUE_HISTO: u64 = 5;

pub fn decode_histo(msg: &[u8]) -> Decoded {
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

pub fn decode_value(msg: &[u8]) -> (String, Decoded) {
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

pub fn decode_event(msg: &[u8]) -> DecodedEvent {
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

/// Every event of a whole file, both CRCs of every record checked.
pub fn decode_file(file: &[u8]) -> Vec<DecodedEvent> {
    records(file).into_iter().map(decode_event).collect()
}
