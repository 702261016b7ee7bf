//! The IDX file format of the MNIST family of data sets, raw or gzip-compressed.
//!
//! An IDX file is a header followed by the data, in row-major order:
//! - two zero bytes;
//! - the data type byte: only `0x08` (unsigned byte) is supported here;
//! - the number of dimensions, one byte;
//! - each dimension as a big-endian `u32`;
//! - the data: exactly the product of the dimensions, in bytes.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::DataError;

/// The data type byte of unsigned bytes, the only one supported.
const UNSIGNED_BYTE: u8 = 0x08;

/// The first two bytes of every gzip file.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The contents of an IDX file of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first (e.g. `[N, 28, 28]` for N images).
    pub dims: Vec<usize>,
    /// The data in row-major order; its length is the product of `dims`.
    pub data: Vec<u8>,
}

/// Human-readable name of an IDX data type byte, for error messages.
fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "i16",
        0x0C => "i32",
        0x0D => "f32",
        0x0E => "f64",
        _ => "unknown",
    }
}

/// Reads an IDX file of unsigned bytes, raw or gzip-compressed.
///
/// Gzip is recognised by the file's first two bytes (`0x1f 0x8b`), not by its name.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read, [`DataError::Gzip`] if it looks like
/// gzip but does not decompress, and [`DataError::Format`] if the contents are not an
/// IDX file of unsigned bytes whose data length is exactly the product of its dimensions
/// (bad magic, another data type, a truncated file, trailing bytes).
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_owned(), source })?;
    let bytes = if raw.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|source| DataError::Gzip { path: path.to_owned(), source })?;
        out
    } else {
        raw
    };
    parse_idx(bytes).map_err(|problem| DataError::Format { path: path.to_owned(), problem })
}

/// Parses the (decompressed) contents of an IDX file; the error is the problem found.
fn parse_idx(mut bytes: Vec<u8>) -> Result<IdxArray, String> {
    if bytes.len() < 4 {
        return Err(format!("the file is {} bytes long, too short for the 4-byte IDX magic number", bytes.len()));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format!(
            "bad magic number: it starts with 0x{:02x} 0x{:02x}, expected 0x00 0x00",
            bytes[0], bytes[1]
        ));
    }
    let code = bytes[2];
    if code != UNSIGNED_BYTE {
        return Err(format!(
            "data type 0x{code:02x} ({}) is not supported, only 0x{UNSIGNED_BYTE:02x} (unsigned byte)",
            type_name(code)
        ));
    }
    let ndim = usize::from(bytes[3]);
    if ndim == 0 {
        return Err("the header declares 0 dimensions".to_owned());
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(format!("truncated header: {ndim} dimensions need {header} header bytes, found {}", bytes.len()));
    }
    let dims: Vec<usize> =
        bytes[4..header].chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("dimensions {dims:?} are too large"))?;
    let found = bytes.len() - header;
    if found < expected {
        return Err(format!("truncated: dimensions {dims:?} need {expected} data bytes, found {found}"));
    }
    if found > expected {
        return Err(format!(
            "{} trailing bytes after the {expected} data bytes of dimensions {dims:?}",
            found - expected
        ));
    }
    bytes.drain(..header);
    Ok(IdxArray { dims, data: bytes })
}

/// Writes an IDX file of unsigned bytes, gzip-compressed if `gzip` (for test fixtures and
/// tools; the name is not changed, so pass a path ending in `.gz` for a gzip file).
///
/// # Errors
/// [`DataError::Format`] (naming `path`, nothing written) if `data.len()` is not the
/// product of `dims`, if there are no dimensions or more than 255, or if a dimension does
/// not fit in a `u32`; [`DataError::Io`] if the file cannot be written.
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8], gzip: bool) -> Result<(), DataError> {
    let format = |problem: String| DataError::Format { path: path.to_owned(), problem };
    if dims.is_empty() || dims.len() > 255 {
        return Err(format(format!("cannot write {} dimensions (1 to 255 are possible)", dims.len())));
    }
    let mut header = vec![0, 0, UNSIGNED_BYTE, dims.len() as u8];
    for &d in dims {
        let d = u32::try_from(d).map_err(|_| format(format!("dimension {d} does not fit in a u32")))?;
        header.extend_from_slice(&d.to_be_bytes());
    }
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if expected != Some(data.len()) {
        return Err(format(format!("{} data bytes do not match dimensions {dims:?}", data.len())));
    }
    let io = |source: std::io::Error| DataError::Io { path: path.to_owned(), source };
    let file = BufWriter::new(File::create(path).map_err(io)?);
    if gzip {
        let mut encoder = GzEncoder::new(file, Compression::default());
        encoder.write_all(&header).map_err(io)?;
        encoder.write_all(data).map_err(io)?;
        encoder.finish().map_err(io)?.flush().map_err(io)?;
    } else {
        let mut file = file;
        file.write_all(&header).map_err(io)?;
        file.write_all(data).map_err(io)?;
        file.flush().map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips_raw_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let dims = [3, 2, 5];
        let data: Vec<u8> = (0..30).map(|i| (i * 37 % 256) as u8).collect();
        for gzip in [false, true] {
            let path = dir.path().join(if gzip { "a.gz" } else { "a" });
            write_idx(&path, &dims, &data, gzip).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(bytes.starts_with(&GZIP_MAGIC), gzip);
            let read = read_idx(&path).unwrap();
            assert_eq!(read, IdxArray { dims: dims.to_vec(), data: data.clone() });
        }
        // Gzip is detected by content, not name.
        let path = dir.path().join("gzip-without-extension");
        write_idx(&path, &[4], &[9, 8, 7, 6], true).unwrap();
        assert_eq!(read_idx(&path).unwrap().data, [9, 8, 7, 6]);
    }

    #[test]
    fn raw_layout_is_the_idx_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels");
        write_idx(&path, &[2], &[5, 0], false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), [0, 0, 8, 1, 0, 0, 0, 2, 5, 0]);
    }

    #[test]
    fn write_rejects_inconsistent_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        assert!(matches!(write_idx(&path, &[2, 2], &[1, 2, 3], false), Err(DataError::Format { .. })));
        assert!(matches!(write_idx(&path, &[], &[], false), Err(DataError::Format { .. })));
        assert!(!path.exists());
    }

    #[test]
    fn parse_reports_each_problem() {
        let err = |b: &[u8]| parse_idx(b.to_vec()).unwrap_err();
        assert!(err(&[0, 0]).contains("too short"));
        assert!(err(&[1, 0, 8, 1, 0, 0, 0, 0]).contains("bad magic"));
        assert!(err(&[0, 0, 0x0d, 1, 0, 0, 0, 0]).contains("0x0d (f32) is not supported"));
        assert!(err(&[0, 0, 8, 0]).contains("0 dimensions"));
        assert!(err(&[0, 0, 8, 2, 0, 0, 0, 1]).contains("truncated header"));
        assert!(err(&[0, 0, 8, 1, 0, 0, 0, 3, 1, 2]).contains("need 3 data bytes, found 2"));
        assert!(err(&[0, 0, 8, 1, 0, 0, 0, 1, 1, 2]).contains("1 trailing bytes"));
        assert_eq!(parse_idx(vec![0, 0, 8, 1, 0, 0, 0, 0]).unwrap(), IdxArray { dims: vec![0], data: vec![] });
    }
}
