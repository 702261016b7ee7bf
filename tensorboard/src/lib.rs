//! # sfess-tensorboard: TensorBoard event files, written by hand
//!
//! An event file is a sequence of TFRecords ([`record`]), each holding one serialized
//! `tensorflow.Event` protobuf. This crate writes the few fields that TensorBoard needs for
//! scalars and histograms, with no protobuf dependency. The messages are defined in
//! TensorBoard's copies of TensorFlow's protos: `tensorboard/compat/proto/event.proto`,
//! `summary.proto` and `histogram.proto`.
//!
//! Writing a run: [`file_header`] once, then one [`encode`] per step, appended to a file in
//! the run's folder whose name contains `tfevents` (TensorBoard reads no other file; the
//! usual name is `events.out.tfevents.<unix seconds>.<host>`). TensorBoard reads a file while
//! it grows, so records can be appended and flushed as they come.
//!
//! ```
//! use sfess_tensorboard::{Event, Histogram, Value, encode, file_header, header_wall_time};
//!
//! let start = 1.7e9; // seconds since the epoch
//! let mut file = file_header(start);
//! file.extend(encode(&Event {
//!     wall_time: start + 1.0,
//!     step: 0,
//!     values: vec![
//!         ("train/loss".into(), Value::Scalar(0.5)),
//!         ("weights".into(), Value::Histogram(Histogram::of(&[-0.3, 0.1, 0.2], &[0.0, 0.5]))),
//!     ],
//! }));
//! // std::fs::write(run_dir.join(format!("events.out.tfevents.{}.host", start as u64)), &file)?;
//! assert_eq!(header_wall_time(&file), Some(start));
//! ```
//!
//! `scripts/read_events.py DIR` reads a folder back with TensorBoard's own reader and prints
//! its scalars and histograms as JSON.
//!
//! ## TFRecord framing
//! | bytes | content |
//! | --- | --- |
//! | 8 | `n`, the data's length, `u64` little-endian |
//! | 4 | masked CRC-32C of those 8 bytes, `u32` LE |
//! | `n` | the data (here: one serialized `Event`) |
//! | 4 | masked CRC-32C of the data, `u32` LE |
//!
//! CRC-32C is the Castagnoli CRC (reflected polynomial `0x82F63B78`); the mask is
//! `((crc >> 15) | (crc << 17)).wrapping_add(0xa282ead8)` ([`masked_crc32c`]).
//!
//! ## Protobuf fields written
//! Each field is a varint key `(field_number << 3) | wire_type` and its payload. Wire types:
//! 0 varint, 1 eight bytes LE (`double`), 2 varint length then bytes (string, message, packed
//! repeated), 5 four bytes LE (`float`).
//!
//! | message | field | number | type (wire type) |
//! | --- | --- | --- | --- |
//! | `Event` | `wall_time` (seconds since the epoch) | 1 | double (1) |
//! | `Event` | `step` | 2 | int64 (0; a negative step is 10 bytes, two's complement) |
//! | `Event` | `file_version` | 3 | string (2), `"brain.Event:2"` |
//! | `Event` | `summary` | 5 | `Summary` (2) |
//! | `Summary` | `value` | 1 | repeated `Summary.Value` (2, one field per value) |
//! | `Summary.Value` | `tag` | 1 | string (2) |
//! | `Summary.Value` | `simple_value` | 2 | float (5) |
//! | `Summary.Value` | `histo` | 5 | `HistogramProto` (2) |
//! | `HistogramProto` | `min`, `max`, `num`, `sum`, `sum_squares` | 1, 2, 3, 4, 5 | double (1) |
//! | `HistogramProto` | `bucket_limit`, `bucket` | 6, 7 | packed repeated double (2) |
//!
//! `file_version`, `summary`, `simple_value` and `histo` are members of `oneof`s: their
//! presence says what the event or value is, so they are written even when zero. The other
//! fields are written even when zero too (proto3 writers skip them; readers accept both).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

/// The `file_version` of the first event of every file: TensorBoard checks the prefix
/// `brain.Event:`.
pub const FILE_VERSION: &str = "brain.Event:2";

/// The masked CRC-32C that TFRecord stores: CRC-32C (Castagnoli) of `data`, rotated right by
/// 15 bits and offset by `0xa282ead8` (TensorFlow masks it so that a CRC of data holding CRCs
/// is not degenerate).
pub fn masked_crc32c(data: &[u8]) -> u32 {
    mask(crc32c::crc32c(data))
}

fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// `data` framed as one TFRecord: length (`u64` LE), masked CRC-32C of the length's 8 bytes,
/// the data, masked CRC-32C of the data (both CRCs `u32` LE).
pub fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// A histogram as TensorFlow's `HistogramProto` stores it: bucket `i` holds `buckets[i]`
/// values in `bucket_limits[i-1] <= v < bucket_limits[i]` (bucket 0 from -inf). TensorBoard
/// draws the first non-empty bucket from `min` and the last from `max`, and hides empty
/// buckets at both ends.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// The smallest value (0 when there is none).
    pub min: f64,
    /// The largest value (0 when there is none).
    pub max: f64,
    /// How many values.
    pub num: f64,
    /// Their sum.
    pub sum: f64,
    /// The sum of their squares.
    pub sum_squares: f64,
    /// Right edges of the buckets, increasing.
    pub bucket_limits: Vec<f64>,
    /// Count of each bucket, as many as `bucket_limits`.
    pub buckets: Vec<f64>,
}

impl Histogram {
    /// The histogram of `values` over the buckets' right edges `right_edges` (finite, strictly
    /// increasing, below `f64::MAX`; none is allowed), by TensorFlow's rule (its
    /// `histogram.cc`, `Histogram::Add`, `std::upper_bound`): a value counts in the first
    /// bucket whose edge is greater than it, so bucket `i` holds
    /// `right_edges[i-1] <= v < right_edges[i]`, bucket 0 everything below `right_edges[0]`, and a
    /// value equal to an edge counts in the bucket to the edge's right.
    ///
    /// One more bucket is always added, with right edge `f64::MAX` (the last of TensorFlow's
    /// default edges), for the values at or above the last edge: `buckets.len() ==
    /// right_edges.len() + 1` and the counts add up to `num`. TensorBoard hides it when empty.
    ///
    /// Empty `values` give `num == 0`, every count 0 and `min == max == sum == 0`. Non-finite
    /// values are counted as TensorFlow does: `-inf` in bucket 0, `+inf` and NaN in the last;
    /// NaN leaves `min`/`max` alone but makes `sum` NaN, so filter NaN out first.
    ///
    /// # Panics
    /// When `right_edges` is not strictly increasing or has an edge that is not finite or is
    /// `f64::MAX`.
    pub fn of(values: &[f64], right_edges: &[f64]) -> Histogram {
        assert!(
            right_edges.iter().all(|e| e.is_finite() && *e < f64::MAX),
            "histogram edges must be finite and below f64::MAX: {right_edges:?}"
        );
        assert!(
            right_edges.windows(2).all(|w| w[0] < w[1]),
            "histogram edges must be strictly increasing: {right_edges:?}"
        );
        let mut bucket_limits = right_edges.to_vec();
        bucket_limits.push(f64::MAX);
        let mut buckets = vec![0.0; bucket_limits.len()];
        let (mut min, mut max, mut sum, mut sum_squares) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0.0);
        for &v in values {
            // std::upper_bound: the first edge `e` with `v < e`; none (v >= every edge, or NaN,
            // which compares false) is the added last bucket.
            let b = right_edges.partition_point(|&e| e <= v || v.is_nan());
            buckets[b] += 1.0;
            if min > v {
                min = v;
            }
            if max < v {
                max = v;
            }
            sum += v;
            sum_squares += v * v;
        }
        if min > max {
            // No value, or only NaN.
            (min, max) = (0.0, 0.0);
        }
        Histogram { min, max, num: values.len() as f64, sum, sum_squares, bucket_limits, buckets }
    }
}

/// One tagged value of an [`Event`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar (`Summary.Value.simple_value`, a float). NaN and infinities are written bit for
    /// bit (protobuf floats carry them) and read back as such by TensorBoard.
    Scalar(f32),
    /// A histogram (`Summary.Value.histo`).
    Histogram(Histogram),
}

/// One event: the values of one step, each under its tag (TensorBoard's series name; `/`
/// groups series into sections).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// The step (x axis of TensorBoard's charts).
    pub step: i64,
    /// The values, in order; an empty list writes an empty summary.
    pub values: Vec<(String, Value)>,
}

/// The first record of every event file: an `Event` with only `wall_time` and
/// `file_version = "brain.Event:2"`, framed as a TFRecord.
pub fn file_header(wall_time: f64) -> Vec<u8> {
    let mut event = Vec::new();
    put_f64(&mut event, 1, wall_time);
    put_bytes(&mut event, 3, FILE_VERSION.as_bytes());
    record(&event)
}

/// One event, serialized (`Event` with `wall_time`, `step` and `summary`) and framed as a
/// TFRecord, to append to an event file after its [`file_header`].
pub fn encode(event: &Event) -> Vec<u8> {
    let mut summary = Vec::new();
    for (tag, value) in &event.values {
        let mut v = Vec::new();
        put_bytes(&mut v, 1, tag.as_bytes());
        match value {
            Value::Scalar(x) => {
                put_key(&mut v, 2, WIRE_FIXED32);
                v.extend_from_slice(&x.to_le_bytes());
            }
            Value::Histogram(h) => put_bytes(&mut v, 5, &histogram_proto(h)),
        }
        put_bytes(&mut summary, 1, &v);
    }
    let mut out = Vec::new();
    put_f64(&mut out, 1, event.wall_time);
    put_key(&mut out, 2, WIRE_VARINT);
    put_varint(&mut out, event.step as u64);
    put_bytes(&mut out, 5, &summary);
    record(&out)
}

fn histogram_proto(h: &Histogram) -> Vec<u8> {
    let mut out = Vec::new();
    for (field, x) in [(1, h.min), (2, h.max), (3, h.num), (4, h.sum), (5, h.sum_squares)] {
        put_f64(&mut out, field, x);
    }
    for (field, xs) in [(6, &h.bucket_limits), (7, &h.buckets)] {
        let packed: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
        put_bytes(&mut out, field, &packed);
    }
    out
}

/// The `wall_time` written by [`file_header`], read back from the start of an event file's
/// bytes: `None` unless they start with a whole record whose two CRCs check and whose `Event`
/// has a `file_version` starting with `brain.Event:` (a missing `wall_time` reads as 0, proto3's
/// default). Only the first record is read; later ones may be partial.
pub fn header_wall_time(bytes: &[u8]) -> Option<f64> {
    let data = first_record(bytes)?;
    let (mut wall_time, mut version_ok) = (0.0, false);
    let mut rest = data;
    while !rest.is_empty() {
        let key = take_varint(&mut rest)?;
        let (field, wire) = (key >> 3, (key & 7) as u8);
        match wire {
            WIRE_VARINT => {
                take_varint(&mut rest)?;
            }
            WIRE_FIXED64 => {
                let b = take(&mut rest, 8)?;
                if field == 1 {
                    wall_time = f64::from_le_bytes(b.try_into().ok()?);
                }
            }
            WIRE_LEN => {
                let n = usize::try_from(take_varint(&mut rest)?).ok()?;
                let b = take(&mut rest, n)?;
                if field == 3 {
                    version_ok = b.starts_with(b"brain.Event:");
                }
            }
            WIRE_FIXED32 => {
                take(&mut rest, 4)?;
            }
            _ => return None,
        }
    }
    version_ok.then_some(wall_time)
}

/// The data of the record at the start of `bytes`, when it is whole and both CRCs check.
fn first_record(bytes: &[u8]) -> Option<&[u8]> {
    let mut rest = bytes;
    let len = take(&mut rest, 8)?;
    let len_crc = u32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?);
    if len_crc != masked_crc32c(len) {
        return None;
    }
    let n = usize::try_from(u64::from_le_bytes(len.try_into().ok()?)).ok()?;
    let data = take(&mut rest, n)?;
    let data_crc = u32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?);
    (data_crc == masked_crc32c(data)).then_some(data)
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Some(head)
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, tail) = bytes.split_first()?;
        *bytes = tail;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

/// Base-128 varint, least significant group first, high bit set on every byte but the last.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn put_f64(out: &mut Vec<u8>, field: u32, x: f64) {
    put_key(out, field, WIRE_FIXED64);
    out.extend_from_slice(&x.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, WIRE_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    #[test]
    fn varints() {
        assert_eq!(varint(0), [0x00]);
        assert_eq!(varint(1), [0x01]);
        assert_eq!(varint(127), [0x7f]);
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(300), [0xac, 0x02]);
        assert_eq!(varint(u64::from(u32::MAX)), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        // int64 -1: ten bytes, as protobuf writes negative int64.
        assert_eq!(varint(-1i64 as u64), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(varint(u64::MAX).len(), 10);
        for v in [0, 1, 127, 128, 300, 1 << 35, i64::MAX as u64, -5i64 as u64, u64::MAX] {
            let bytes = varint(v);
            let mut rest = &bytes[..];
            assert_eq!(take_varint(&mut rest), Some(v));
            assert!(rest.is_empty());
        }
        assert_eq!(take_varint(&mut &[0x80u8][..]), None, "truncated");
    }

    #[test]
    fn crc32c_known_answers() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // RFC 3720 (iSCSI), B.4.
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c::crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c::crc32c(&ascending), 0x46dd_794e);
    }

    #[test]
    fn the_mask() {
        assert_eq!(mask(0), 0xa282_ead8);
        assert_eq!(mask(1), (1u32 << 17).wrapping_add(0xa282_ead8));
        assert_eq!(mask(1 << 15), 1u32.wrapping_add(0xa282_ead8));
        // ((crc >> 15) | (crc << 17)) + 0xa282ead8, worked out in Python.
        assert_eq!(mask(0xe306_9283), 0xc78a_b0e5);
        // TensorBoard's own masked_crc32c (tensorboard.compat.tensorflow_stub.pywrap_tensorflow),
        // run on these inputs when this crate was written.
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
        assert_eq!(masked_crc32c(&13u64.to_le_bytes()), 0x34b8_373c);
        assert_eq!(masked_crc32c(b""), 0xa282_ead8);
    }

    #[test]
    fn record_framing() {
        let r = record(b"abc");
        assert_eq!(r.len(), 8 + 4 + 3 + 4);
        assert_eq!(&r[..8], &3u64.to_le_bytes());
        assert_eq!(&r[8..12], &masked_crc32c(&3u64.to_le_bytes()).to_le_bytes());
        assert_eq!(&r[12..15], b"abc");
        assert_eq!(&r[15..], &masked_crc32c(b"abc").to_le_bytes());
        assert_eq!(first_record(&r), Some(&b"abc"[..]));
        assert_eq!(first_record(&record(b"")), Some(&b""[..]));
    }

    #[test]
    fn scalar_event_bytes() {
        let e = Event { wall_time: 1.5, step: 300, values: vec![("a".into(), Value::Scalar(1.0))] };
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[0x09][..], &1.5f64.to_le_bytes(), // wall_time: field 1, wire type 1
            &[0x10, 0xac, 0x02],                // step: field 2, varint 300
            &[0x2a, 10],                        // summary: field 5, 10 bytes
            &[0x0a, 8],                         //   value: field 1, 8 bytes
            &[0x0a, 1, b'a'],                   //     tag: field 1, "a"
            &[0x15], &1.0f32.to_le_bytes(),     //     simple_value: field 2, wire type 5
        ].concat();
        assert_eq!(encode(&e), record(&want));
    }

    #[test]
    fn histogram_event_bytes() {
        let h = Histogram::of(&[0.5], &[1.0]);
        let e = Event { wall_time: 0.0, step: 0, values: vec![("h".into(), Value::Histogram(h))] };
        let mut histo = Vec::new();
        for (key, x) in [(0x09, 0.5), (0x11, 0.5), (0x19, 1.0), (0x21, 0.5), (0x29, 0.25)] {
            histo.push(key);
            histo.extend_from_slice(&f64::to_le_bytes(x));
        }
        histo.extend_from_slice(&[0x32, 16]); // bucket_limit: field 6, packed, 2 doubles
        histo.extend_from_slice(&1.0f64.to_le_bytes());
        histo.extend_from_slice(&f64::MAX.to_le_bytes());
        histo.extend_from_slice(&[0x3a, 16]); // bucket: field 7, packed
        histo.extend_from_slice(&1.0f64.to_le_bytes());
        histo.extend_from_slice(&0.0f64.to_le_bytes());
        assert_eq!(histo.len(), 5 * 9 + 2 * 18);
        let value = [&[0x0a, 1, b'h'][..], &[0x2a, histo.len() as u8], &histo].concat();
        let summary = [&[0x0a, value.len() as u8][..], &value].concat();
        let event = [&[0x09][..], &0f64.to_le_bytes(), &[0x10, 0x00], &[0x2a, summary.len() as u8], &summary].concat();
        assert_eq!(encode(&e), record(&event));
    }

    #[test]
    fn header() {
        let h = file_header(1_700_000_000.25);
        let mut want = vec![0x09];
        want.extend_from_slice(&1_700_000_000.25f64.to_le_bytes());
        want.extend_from_slice(&[0x1a, 13]);
        want.extend_from_slice(b"brain.Event:2");
        assert_eq!(h, record(&want));
        assert_eq!(header_wall_time(&h), Some(1_700_000_000.25));
        // Followed by events, or by a partial record: still read.
        let mut file = h.clone();
        file.extend(encode(&Event { wall_time: 5.0, step: 1, values: vec![] }));
        file.extend_from_slice(&[1, 2, 3]);
        assert_eq!(header_wall_time(&file), Some(1_700_000_000.25));
    }

    #[test]
    fn header_rejects() {
        let h = file_header(12.5);
        assert_eq!(header_wall_time(&[]), None);
        assert_eq!(header_wall_time(&h[..h.len() - 1]), None, "truncated");
        for i in 0..h.len() {
            let mut bad = h.clone();
            bad[i] ^= 0x04;
            assert_eq!(header_wall_time(&bad), None, "byte {i} flipped");
        }
        // A valid record that is not a header: an ordinary event.
        let e = encode(&Event { wall_time: 12.5, step: 3, values: vec![("x".into(), Value::Scalar(2.0))] });
        assert_eq!(header_wall_time(&e), None);
        // Another file_version prefix.
        let mut other = vec![0x09];
        other.extend_from_slice(&1.0f64.to_le_bytes());
        other.extend_from_slice(&[0x1a, 3]);
        other.extend_from_slice(b"abc");
        assert_eq!(header_wall_time(&record(&other)), None);
    }

    #[test]
    fn histogram_buckets_follow_tensorflow() {
        let h = Histogram::of(&[-3.0, 0.0, 0.5, 1.0, 1.5, 2.0, 7.0, f64::INFINITY], &[0.0, 1.0, 2.0]);
        assert_eq!(h.bucket_limits, [0.0, 1.0, 2.0, f64::MAX]);
        // (-inf, 0): -3 | [0, 1): 0, 0.5 | [1, 2): 1, 1.5 | [2, MAX]: 2, 7, inf
        assert_eq!(h.buckets, [1.0, 2.0, 2.0, 3.0]);
        assert_eq!((h.min, h.max, h.num), (-3.0, f64::INFINITY, 8.0));

        let h = Histogram::of(&[1.0, 2.0, 4.0], &[1.5, 3.0]);
        assert_eq!((h.min, h.max, h.num, h.sum, h.sum_squares), (1.0, 4.0, 3.0, 7.0, 21.0));
        assert_eq!(h.buckets, [1.0, 1.0, 1.0]);

        let empty = Histogram::of(&[], &[1.0, 2.0]);
        assert_eq!((empty.min, empty.max, empty.num, empty.sum, empty.sum_squares), (0.0, 0.0, 0.0, 0.0, 0.0));
        assert_eq!(empty.buckets, [0.0, 0.0, 0.0]);

        let no_edges = Histogram::of(&[-1.0, 1.0], &[]);
        assert_eq!((no_edges.bucket_limits, no_edges.buckets), (vec![f64::MAX], vec![2.0]));

        let nan = Histogram::of(&[f64::NAN, 1.0], &[0.0]);
        assert_eq!(nan.buckets, [0.0, 2.0]);
        assert_eq!((nan.min, nan.max, nan.num), (1.0, 1.0, 2.0));
        assert!(nan.sum.is_nan());
    }

    #[test]
    #[should_panic(expected = "strictly increasing")]
    fn histogram_edges_must_increase() {
        Histogram::of(&[1.0], &[1.0, 1.0]);
    }

    #[test]
    #[should_panic(expected = "finite")]
    fn histogram_edges_must_be_finite() {
        Histogram::of(&[1.0], &[0.0, f64::INFINITY]);
    }
}
