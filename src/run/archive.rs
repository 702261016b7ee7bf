//! A strict reader of the archives that tch's `Tensor::save_multi_to_stream` writes (what a
//! `checkpoint.ot` is), for files that may be damaged or hostile: everything is checked
//! before any tensor is made, and libtorch's own loader, which trusts the sizes it reads
//! (a patched size crashes it) and inflates whatever an entry declares, is never run.
//!
//! The archive is a zip holding a TorchScript module: `PREFIX/data.pkl` (a pickle of the
//! module, whose state maps each tensor's name to
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
//! OrderedDict())`, the storage a persistent id `("storage", torch.KindStorage, KEY,
//! LOCATION, ELEMENTS)`), `PREFIX/data/KEY` (each storage's bytes), `PREFIX/byteorder`, and
//! entries this reader never opens (the TorchScript code, its debug records, the version).
//! [`read`] checks, in order:
//! 1. the zip: its end records and central directory lie inside the file, and each entry it
//!    reads (`data.pkl`, `byteorder`, the storages) is *stored*, as libtorch writes them,
//!    with its local header and bytes before the central directory, and the sizes of those
//!    entries add up to no more than the file. Nothing is ever decompressed;
//! 2. the pickle: only the opcodes and the globals above, nothing else (no other callable
//!    is ever named, let alone called), and no value nested deeper than such a pickle's
//!    (so that nothing recurses on a hostile one);
//! 3. each tensor: the whole of a storage of its own, of a supported type, with an offset of
//!    0, contiguous strides and as many elements as the storage, whose entry has exactly
//!    `elements × element size` bytes.
//!
//! Only then is each tensor made, as a copy of its bytes ([`ArchivedTensor::to_tensor`]): the
//! memory a read takes is at most twice the file's size.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::rc::Rc;

use sfess_envs::printable;
use tch::{Kind, TchError, Tensor};

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The zip structure is damaged, or not what libtorch writes.
    #[error("not a libtorch archive: {0}")]
    Zip(String),
    /// `data.pkl` is not the pickle of named tensors that libtorch writes.
    #[error("its data.pkl is not the pickle of named tensors libtorch writes: {problem} (byte {at})")]
    Pickle {
        /// Offset of the opcode in `data.pkl`.
        at: usize,
        /// What is wrong.
        problem: String,
    },
    /// A tensor's record does not fit its storage.
    #[error("its tensor {name} {problem}")]
    Tensor {
        /// The tensor's name in the archive (control characters escaped).
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// libtorch failed to make a tensor that passed every check (out of memory).
    #[error("making a tensor: {0}")]
    Torch(#[from] TchError),
}

/// A tensor of an archive, checked against its storage, not made yet.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedTensor {
    /// Its name in the archive (tch writes `.` as `|`).
    pub name: String,
    /// Its element type.
    pub kind: Kind,
    /// Its shape.
    pub size: Vec<i64>,
    /// Where its bytes are in the file: `elements × element size` of them.
    bytes: Range<usize>,
}

impl ArchivedTensor {
    /// The tensor (on the CPU), a copy of its bytes in `file`, the archive [`read`] gave it
    /// from.
    ///
    /// # Errors
    /// `file` is not that archive (the bytes do not fit); a boolean that is not 0 or 1;
    /// libtorch cannot allocate it.
    pub fn to_tensor(&self, file: &[u8]) -> Result<Tensor, ArchiveError> {
        let problem = |problem: &str| ArchiveError::Tensor { name: printable(&self.name), problem: problem.to_owned() };
        let bytes = file.get(self.bytes.clone()).ok_or_else(|| problem("lies outside the file"))?;
        // `from_data_size` copies `elements × element size` bytes whatever the slice holds.
        if elements(&self.size).and_then(|n| n.checked_mul(self.kind.elt_size_in_bytes())) != Some(bytes.len()) {
            return Err(problem("does not have as many bytes as elements"));
        }
        if self.kind == Kind::Bool && bytes.iter().any(|&b| b > 1) {
            return Err(problem("is boolean but holds a byte other than 0 and 1"));
        }
        Ok(Tensor::f_from_data_size(bytes, &self.size, self.kind)?)
    }
}

/// The tensors of the archive `file`, each checked as the [module docs](self) say.
///
/// # Errors
/// The first check that fails, in one line.
pub fn read(file: &[u8]) -> Result<Vec<ArchivedTensor>, ArchiveError> {
    let entries = zip_entries(file)?;
    let pickles: Vec<&str> = entries.keys().filter(|name| is_data_pkl(name)).map(String::as_str).collect();
    let [pickle] = *pickles.as_slice() else {
        return Err(ArchiveError::Zip(format!("it has {} data.pkl records, not one", pickles.len())));
    };
    let prefix = &pickle[..pickle.len() - "data.pkl".len()];
    let mut read_bytes = 0u64;
    let mut entry = |name: &str| -> Result<Option<Range<usize>>, ArchiveError> {
        let Some(entry) = entries.get(name) else { return Ok(None) };
        let range = entry.stored_bytes(file, name)?;
        read_bytes += range.len() as u64;
        if read_bytes > file.len() as u64 {
            return Err(ArchiveError::Zip("its entries are larger than the file".to_owned()));
        }
        Ok(Some(range))
    };
    if let Some(order) = entry(&format!("{prefix}byteorder"))?
        && &file[order] != b"little"
    {
        return Err(ArchiveError::Zip("its byte order is not little-endian".to_owned()));
    }
    let pickle = entry(pickle)?.map(|range| &file[range]).unwrap_or_default();
    let records = unpickle(pickle)?;
    let mut storages = HashSet::new();
    let mut names = HashSet::new();
    let mut tensors = Vec::with_capacity(records.len());
    for (name, record) in records {
        let problem = |problem: String| ArchiveError::Tensor { name: printable(&name), problem };
        if !names.insert(name.clone()) {
            return Err(problem("is named twice".to_owned()));
        }
        let storage = &record.storage;
        if !storages.insert(storage.key.clone()) {
            return Err(problem(format!("shares the storage {} with another tensor", printable(&storage.key))));
        }
        let bytes = entry(&format!("{prefix}data/{}", storage.key))?
            .ok_or_else(|| problem(format!("has no storage record data/{}", printable(&storage.key))))?;
        let declared = usize::try_from(storage.elements)
            .ok()
            .and_then(|n| n.checked_mul(storage.kind.elt_size_in_bytes()))
            .filter(|&n| n == bytes.len());
        if declared.is_none() {
            return Err(problem(format!(
                "declares a storage of {} elements of {:?}, but its record holds {} bytes",
                storage.elements,
                storage.kind,
                bytes.len()
            )));
        }
        check_layout(&record, storage.elements).map_err(problem)?;
        tensors.push(ArchivedTensor { name, kind: storage.kind, size: record.size.clone(), bytes });
    }
    Ok(tensors)
}

/// Whether `name` is an archive's `data.pkl`: `PREFIX/data.pkl` with a prefix of one folder.
fn is_data_pkl(name: &str) -> bool {
    name.strip_suffix("/data.pkl").is_some_and(|prefix| !prefix.is_empty() && !prefix.contains('/'))
}

/// Checks that a tensor is the whole of its storage of `elements`: offset 0, contiguous
/// strides, as many elements.
fn check_layout(record: &TensorRecord, elements: i64) -> Result<(), String> {
    let TensorRecord { offset, size, stride, .. } = record;
    if *offset != 0 {
        return Err(format!("starts at element {offset} of its storage, not at 0"));
    }
    if size.len() > MAX_DIMS || stride.len() != size.len() {
        return Err(format!("has {} sizes and {} strides (at most {MAX_DIMS})", size.len(), stride.len()));
    }
    if elements_of(size) != Some(elements) {
        return Err(format!("has size {size:?}, not the {elements} elements of its storage"));
    }
    // Contiguous strides, as libtorch computes them (a size of 0 counts as 1): with a size
    // of 0 among them, the other sizes may multiply past `i64`.
    let mut expected = vec![1i64; size.len()];
    for i in (0..size.len().saturating_sub(1)).rev() {
        expected[i] = expected[i + 1]
            .checked_mul(size[i + 1].max(1))
            .ok_or_else(|| format!("has size {size:?}, whose strides overflow"))?;
    }
    if *stride != expected {
        return Err(format!("has strides {stride:?}, not the contiguous {expected:?} of its size {size:?}"));
    }
    Ok(())
}

/// The most dimensions a tensor may have (libtorch's own limit is 64).
const MAX_DIMS: usize = 64;

/// The number of elements of `size`, if every size is non-negative and the product fits.
fn elements_of(size: &[i64]) -> Option<i64> {
    size.iter().try_fold(1i64, |n, &d| if d < 0 { None } else { n.checked_mul(d) })
}

/// As [`elements_of`], as a `usize`.
fn elements(size: &[i64]) -> Option<usize> {
    elements_of(size).and_then(|n| usize::try_from(n).ok())
}

// ---------------------------------------------------------------------------------------
// The zip.

/// An entry of the central directory.
#[derive(Debug)]
struct ZipEntry {
    flags: u16,
    method: u16,
    compressed: u64,
    size: u64,
    local_header: u64,
    /// Where the central directory starts: every entry's bytes lie before it.
    directory: u64,
}

impl ZipEntry {
    /// The bytes of the entry `name` in `file`, if it is stored (not compressed, not
    /// encrypted) and lies, with a matching local header, before the central directory.
    fn stored_bytes(&self, file: &[u8], name: &str) -> Result<Range<usize>, ArchiveError> {
        let bad = |problem: &str| ArchiveError::Zip(format!("its entry {} {problem}", printable(name)));
        if self.flags & 1 != 0 {
            return Err(bad("is encrypted"));
        }
        if self.method != 0 || self.compressed != self.size {
            return Err(bad("is compressed (libtorch stores the entries it reads)"));
        }
        let local = Bytes::at(file, self.local_header, self.directory).map_err(|_| bad("has no local header"))?;
        let mut header = local;
        if header.u32().ok() != Some(LOCAL_HEADER) {
            return Err(bad("has no local header"));
        }
        let lengths = header.skip(22).and_then(|()| Ok((header.u16()?, header.u16()?)));
        let (name_length, extra_length) = lengths.map_err(|_| bad("has a cut local header"))?;
        if header.take(usize::from(name_length)).ok() != Some(name.as_bytes()) {
            return Err(bad("has another name in its local header"));
        }
        header.skip(usize::from(extra_length)).map_err(|_| bad("has a cut local header"))?;
        let start = header.position();
        let end = start.checked_add(self.size).filter(|&end| end <= self.directory).ok_or_else(|| bad("is cut"))?;
        // Both fit in `usize`: they are at most the central directory's offset, inside the file.
        Ok(start as usize..end as usize)
    }
}

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_DIRECTORY: u32 = 0x0605_4b50;
const ZIP64_END_OF_DIRECTORY: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
/// The zip64 extended information of a central directory entry.
const ZIP64_EXTRA: u16 = 0x0001;

/// The entries of the zip `file`, by name, read from its central directory.
fn zip_entries(file: &[u8]) -> Result<HashMap<String, ZipEntry>, ArchiveError> {
    let bad = |problem: &str| ArchiveError::Zip(problem.to_owned());
    let cut = |_: Cut| bad("its central directory is cut or damaged");
    // The end record (22 bytes and a comment of up to 65,535) ends the file.
    let end = (0..=file.len().saturating_sub(22))
        .rev()
        .take(65_536)
        .find(|&at| {
            let mut record = Bytes { bytes: file, at: at as u64, end: file.len() as u64 };
            record.u32().ok() == Some(END_OF_DIRECTORY)
                && record.skip(16).is_ok()
                && record.u16().is_ok_and(|comment| at + 22 + usize::from(comment) == file.len())
        })
        .ok_or_else(|| bad("it has no end of central directory (a cut file, or not a zip)"))?;
    let mut record = Bytes { bytes: file, at: end as u64 + 4, end: file.len() as u64 };
    let (disk, directory_disk) = (record.u16().map_err(cut)?, record.u16().map_err(cut)?);
    let (_, mut count) = (record.u16().map_err(cut)?, u64::from(record.u16().map_err(cut)?));
    let (mut size, mut offset) = (u64::from(record.u32().map_err(cut)?), u64::from(record.u32().map_err(cut)?));
    let mut directory_end = end as u64;
    if count == 0xffff || size == 0xffff_ffff || offset == 0xffff_ffff {
        // Zip64: the locator just before the end record points to the zip64 end record.
        let mut locator =
            Bytes::at(file, (end as u64).checked_sub(20).ok_or_else(|| cut(Cut))?, end as u64).map_err(cut)?;
        if locator.u32().map_err(cut)? != ZIP64_LOCATOR {
            return Err(bad("its zip64 end of central directory is missing"));
        }
        locator.skip(4).map_err(cut)?;
        let at = locator.u64().map_err(cut)?;
        let limit = end as u64 - 20;
        let mut record = Bytes::at(file, at, limit).map_err(cut)?;
        if record.u32().map_err(cut)? != ZIP64_END_OF_DIRECTORY {
            return Err(bad("its zip64 end of central directory is missing"));
        }
        record.skip(8 + 2 + 2 + 4 + 4 + 8).map_err(cut)?;
        (count, size, offset) = (record.u64().map_err(cut)?, record.u64().map_err(cut)?, record.u64().map_err(cut)?);
        directory_end = at;
    }
    if disk != 0 || directory_disk != 0 {
        return Err(bad("it spans several disks"));
    }
    let directory_start = offset;
    // (libtorch writes zip64 end records between the directory and the end record.)
    if offset.checked_add(size).is_none_or(|end| end > directory_end) {
        return Err(bad("its central directory is not where its end record says"));
    }
    let mut directory = Bytes::at(file, offset, directory_end).map_err(cut)?;
    // Each entry takes at least 46 bytes of the directory.
    if count > size / 46 {
        return Err(bad("its central directory is shorter than its entries"));
    }
    let mut entries = HashMap::new();
    for _ in 0..count {
        let entry = central_entry(&mut directory, directory_start).map_err(cut)?;
        let Some((name, entry)) = entry else { return Err(bad("its central directory is damaged")) };
        let name = String::from_utf8(name.to_vec()).map_err(|_| bad("it has an entry whose name is not UTF-8"))?;
        if entries.insert(name, entry).is_some() {
            return Err(bad("it has two entries of the same name"));
        }
    }
    Ok(entries)
}

/// The next entry of the central directory: its name and what it says, or `None` for one
/// that does not start with the entry's signature.
fn central_entry<'a>(directory: &mut Bytes<'a>, directory_start: u64) -> Result<Option<(&'a [u8], ZipEntry)>, Cut> {
    if directory.u32()? != CENTRAL_HEADER {
        return Ok(None);
    }
    directory.skip(4)?;
    let (flags, method) = (directory.u16()?, directory.u16()?);
    directory.skip(8)?;
    let (mut compressed, mut size) = (u64::from(directory.u32()?), u64::from(directory.u32()?));
    let (name_length, extra_length, comment_length) = (directory.u16()?, directory.u16()?, directory.u16()?);
    directory.skip(8)?;
    let mut local_header = u64::from(directory.u32()?);
    let name = directory.take(usize::from(name_length))?;
    let mut extra = Bytes::within(directory.take(usize::from(extra_length))?);
    // Zip64: the fields that overflowed, in this order, are in the extended information.
    while extra.remaining() >= 4 {
        let (id, length) = (extra.u16()?, extra.u16()?);
        let mut field = Bytes::within(extra.take(usize::from(length))?);
        if id == ZIP64_EXTRA {
            for value in [&mut size, &mut compressed, &mut local_header] {
                if *value == 0xffff_ffff {
                    *value = field.u64()?;
                }
            }
        }
    }
    directory.skip(usize::from(comment_length))?;
    Ok(Some((name, ZipEntry { flags, method, compressed, size, local_header, directory: directory_start })))
}

/// Bytes past the end of what is read.
#[derive(Debug)]
struct Cut;

/// A little-endian reader of `bytes[at..end]` that never reads past `end`.
struct Bytes<'a> {
    bytes: &'a [u8],
    at: u64,
    end: u64,
}

impl<'a> Bytes<'a> {
    /// Reads `file[at..end]`, if that is inside the file.
    fn at(file: &'a [u8], at: u64, end: u64) -> Result<Self, Cut> {
        if at > end || end > file.len() as u64 { Err(Cut) } else { Ok(Self { bytes: file, at, end }) }
    }

    /// Reads the whole of `bytes`.
    fn within(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0, end: bytes.len() as u64 }
    }

    fn position(&self) -> u64 {
        self.at
    }

    fn remaining(&self) -> u64 {
        self.end - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Cut> {
        if (n as u64) > self.remaining() {
            return Err(Cut);
        }
        // Inside `bytes`: `at + n ≤ end ≤ bytes.len()`.
        let start = self.at as usize;
        self.at += n as u64;
        Ok(&self.bytes[start..start + n])
    }

    fn skip(&mut self, n: usize) -> Result<(), Cut> {
        self.take(n).map(|_| ())
    }

    fn u16(&mut self) -> Result<u16, Cut> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().map_err(|_| Cut)?))
    }

    fn u32(&mut self) -> Result<u32, Cut> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| Cut)?))
    }

    fn u64(&mut self) -> Result<u64, Cut> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| Cut)?))
    }
}

// ---------------------------------------------------------------------------------------
// The pickle.

/// A storage, as its persistent id declares it.
#[derive(Debug)]
struct Storage {
    kind: Kind,
    key: String,
    elements: i64,
}

/// A tensor, as `_rebuild_tensor_v2`'s arguments declare it.
#[derive(Debug)]
struct TensorRecord {
    storage: Rc<Storage>,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

/// The globals an archive's pickle may name.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Global {
    /// The module's class (`__torch__.*`).
    Module,
    /// `torch._utils._rebuild_tensor_v2`.
    RebuildTensor,
    /// `collections.OrderedDict` (the empty backward hooks).
    OrderedDict,
    /// `torch.FloatStorage` and the like.
    Storage(Kind),
}

/// A value on the pickle machine's stack. Containers are shared, not copied, so that a
/// value fetched from the memo many times costs nothing, and shallow, so that dropping one
/// never recurses deeper than [`MAX_TUPLE_DEPTH`] and a dictionary never holds itself: a
/// tuple holds no module and is at most that deep, a dictionary holds no container.
#[derive(Debug, Clone)]
enum Value {
    None,
    /// `True` or `False` (a tensor's `requires_grad`, which a loaded tensor does not keep).
    Bool,
    Int(i64),
    Str(Rc<str>),
    Global(Global),
    /// Its items, and its depth (1 for a tuple of scalars).
    Tuple(Rc<[Value]>, usize),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    Storage(Rc<Storage>),
    Tensor(Rc<TensorRecord>),
    /// The module; its state once built.
    Module(Rc<RefCell<Option<Value>>>),
}

/// What is on the stack: a value or a mark.
#[derive(Debug)]
enum Slot {
    Mark,
    Value(Value),
}

/// The storage class `torch.NAME`'s element type.
fn storage_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

/// Runs the pickle `bytes` on a machine that knows only what an archive of named tensors
/// holds; the module's tensors, by name, in the pickle's order.
fn unpickle(bytes: &[u8]) -> Result<Vec<(String, Rc<TensorRecord>)>, ArchiveError> {
    let mut input = Bytes::within(bytes);
    let mut stack: Vec<Slot> = Vec::new();
    let mut memo: HashMap<u32, Value> = HashMap::new();
    loop {
        let at = input.position() as usize;
        let fail = |problem: String| ArchiveError::Pickle { at, problem };
        let cut = |_: Cut| fail("it is cut short".to_owned());
        let op = input.take(1).map_err(cut)?[0];
        if at == 0 && op != 0x80 {
            return Err(fail("it does not start with a protocol".to_owned()));
        }
        let value = match op {
            // PROTO
            0x80 => {
                let version = input.take(1).map_err(cut)?[0];
                if at != 0 || version != 2 {
                    return Err(fail(format!("protocol {version} (libtorch writes 2, first)")));
                }
                continue;
            }
            // GLOBAL
            b'c' => {
                let (module, name) = (line(&mut input).map_err(cut)?, line(&mut input).map_err(cut)?);
                let global = match (module, name) {
                    ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensor),
                    ("collections", "OrderedDict") => Some(Global::OrderedDict),
                    ("torch", storage) => storage_kind(storage).map(Global::Storage),
                    (module, _) if module == "__torch__" || module.starts_with("__torch__.") => Some(Global::Module),
                    _ => None,
                };
                let global =
                    global.ok_or_else(|| fail(format!("the global {}.{}", printable(module), printable(name))))?;
                Value::Global(global)
            }
            // BINPUT, LONG_BINPUT
            b'q' | b'r' => {
                let index =
                    if op == b'q' { u32::from(input.take(1).map_err(cut)?[0]) } else { input.u32().map_err(cut)? };
                match stack.last() {
                    Some(Slot::Value(top)) => memo.insert(index, top.clone()),
                    _ => return Err(fail("a memo of nothing".to_owned())),
                };
                continue;
            }
            // BINGET, LONG_BINGET
            b'h' | b'j' => {
                let index =
                    if op == b'h' { u32::from(input.take(1).map_err(cut)?[0]) } else { input.u32().map_err(cut)? };
                memo.get(&index).cloned().ok_or_else(|| fail(format!("memo {index} is not set")))?
            }
            // MARK
            b'(' => {
                stack.push(Slot::Mark);
                continue;
            }
            b')' => tuple(Vec::new()).map_err(fail)?,
            b'}' => Value::Dict(Rc::default()),
            b'N' => Value::None,
            0x88 | 0x89 => Value::Bool,
            // BININT, BININT1, BININT2, LONG1
            b'J' => Value::Int(i64::from(input.u32().map_err(cut)? as i32)),
            b'K' => Value::Int(i64::from(input.take(1).map_err(cut)?[0])),
            b'M' => Value::Int(i64::from(input.u16().map_err(cut)?)),
            0x8a => {
                let length = usize::from(input.take(1).map_err(cut)?[0]);
                let digits = input.take(length).map_err(cut)?;
                if length > 8 {
                    return Err(fail(format!("an integer of {length} bytes")));
                }
                // Two's complement, little-endian, sign-extended.
                let fill = if digits.last().is_some_and(|&b| b & 0x80 != 0) { 0xff } else { 0 };
                let mut full = [fill; 8];
                full[..length].copy_from_slice(digits);
                Value::Int(i64::from_le_bytes(full))
            }
            // BINUNICODE
            b'X' => {
                let length = input.u32().map_err(cut)? as usize;
                let text = std::str::from_utf8(input.take(length).map_err(cut)?)
                    .map_err(|_| fail("a string that is not UTF-8".to_owned()))?;
                Value::Str(Rc::from(text))
            }
            // TUPLE, TUPLE1, TUPLE2, TUPLE3
            b't' => tuple(pop_to_mark(&mut stack).map_err(fail)?).map_err(fail)?,
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                tuple(pop_values(&mut stack, n).map_err(fail)?).map_err(fail)?
            }
            // SETITEMS, SETITEM
            b'u' | b's' => {
                let items =
                    if op == b'u' { pop_to_mark(&mut stack) } else { pop_values(&mut stack, 2) }.map_err(fail)?;
                let Some(Slot::Value(Value::Dict(dict))) = stack.last() else {
                    return Err(fail("items set on something other than a dictionary".to_owned()));
                };
                if items.len() % 2 != 0 {
                    return Err(fail("a key without a value".to_owned()));
                }
                if items.iter().any(|item| matches!(item, Value::Tuple(..) | Value::Dict(_) | Value::Module(_))) {
                    return Err(fail("a container in a dictionary".to_owned()));
                }
                let mut items = items.into_iter();
                while let (Some(key), Some(value)) = (items.next(), items.next()) {
                    dict.borrow_mut().push((key, value));
                }
                continue;
            }
            // BINPERSID
            b'Q' => {
                let [id] = <[Value; 1]>::try_from(pop_values(&mut stack, 1).map_err(fail)?)
                    .map_err(|_| fail("no persistent id".to_owned()))?;
                Value::Storage(Rc::new(storage(&id).map_err(fail)?))
            }
            // REDUCE
            b'R' => {
                let [callable, arguments] = <[Value; 2]>::try_from(pop_values(&mut stack, 2).map_err(fail)?)
                    .map_err(|_| fail("a call without its arguments".to_owned()))?;
                let Value::Tuple(arguments, _) = arguments else {
                    return Err(fail("a call whose arguments are not a tuple".to_owned()));
                };
                match callable {
                    Value::Global(Global::RebuildTensor) => Value::Tensor(Rc::new(tensor(&arguments).map_err(fail)?)),
                    Value::Global(Global::OrderedDict) if arguments.is_empty() => Value::Dict(Rc::default()),
                    _ => {
                        return Err(fail("a call of something other than a tensor or an empty OrderedDict".to_owned()));
                    }
                }
            }
            // NEWOBJ
            0x81 => {
                let [class, arguments] = <[Value; 2]>::try_from(pop_values(&mut stack, 2).map_err(fail)?)
                    .map_err(|_| fail("an object without its class".to_owned()))?;
                match (class, arguments) {
                    (Value::Global(Global::Module), Value::Tuple(arguments, _)) if arguments.is_empty() => {
                        Value::Module(Rc::default())
                    }
                    _ => return Err(fail("an object other than the module".to_owned())),
                }
            }
            // BUILD
            b'b' => {
                let [state] = <[Value; 1]>::try_from(pop_values(&mut stack, 1).map_err(fail)?)
                    .map_err(|_| fail("a build without a state".to_owned()))?;
                let Some(Slot::Value(Value::Module(module))) = stack.last() else {
                    return Err(fail("a build of something other than the module".to_owned()));
                };
                if !matches!(state, Value::Dict(_)) {
                    return Err(fail("a module whose state is not a dictionary".to_owned()));
                }
                if module.borrow().is_some() {
                    return Err(fail("the module built twice".to_owned()));
                }
                *module.borrow_mut() = Some(state);
                continue;
            }
            // STOP
            b'.' => {
                let module = match stack.as_slice() {
                    [Slot::Value(Value::Module(module))] => module.clone(),
                    _ => return Err(fail("it does not end with the module alone".to_owned())),
                };
                return module_tensors(&module.borrow()).map_err(fail);
            }
            op => return Err(fail(format!("the opcode 0x{op:02x}"))),
        };
        stack.push(Slot::Value(value));
    }
}

/// How deep tuples may nest: `_rebuild_tensor_v2`'s arguments hold its size and stride.
const MAX_TUPLE_DEPTH: usize = 2;

/// The tuple of `items`, if it holds no module and is at most [`MAX_TUPLE_DEPTH`] deep.
fn tuple(items: Vec<Value>) -> Result<Value, String> {
    let mut depth = 1;
    for item in &items {
        let below = match item {
            Value::Tuple(_, depth) => *depth,
            Value::Dict(_) => 1,
            Value::Module(_) => return Err("a module in a tuple".to_owned()),
            _ => 0,
        };
        depth = depth.max(below + 1);
    }
    if depth > MAX_TUPLE_DEPTH {
        return Err(format!("tuples nested {depth} deep"));
    }
    Ok(Value::Tuple(Rc::from(items), depth))
}

/// The next line of a `GLOBAL` (ASCII, at most 256 bytes).
fn line<'a>(input: &mut Bytes<'a>) -> Result<&'a str, Cut> {
    let mut length = 0;
    loop {
        let rest = input.bytes.get(input.at as usize + length..input.end as usize).ok_or(Cut)?;
        match rest.first() {
            Some(b'\n') => break,
            Some(c) if c.is_ascii_graphic() && length < 256 => length += 1,
            _ => return Err(Cut),
        }
    }
    let text = input.take(length)?;
    input.skip(1)?;
    std::str::from_utf8(text).map_err(|_| Cut)
}

/// Pops the values down to the last mark, and the mark.
fn pop_to_mark(stack: &mut Vec<Slot>) -> Result<Vec<Value>, String> {
    let mark = stack.iter().rposition(|slot| matches!(slot, Slot::Mark)).ok_or("a missing mark")?;
    let values = stack.split_off(mark + 1);
    stack.pop();
    values.into_iter().map(|slot| if let Slot::Value(v) = slot { Ok(v) } else { Err("a mark".to_owned()) }).collect()
}

/// Pops `n` values (no mark among them).
fn pop_values(stack: &mut Vec<Slot>, n: usize) -> Result<Vec<Value>, String> {
    let from = stack.len().checked_sub(n).ok_or("too few values on the stack")?;
    if stack[from..].iter().any(|slot| matches!(slot, Slot::Mark)) {
        return Err("a mark among a call's values".to_owned());
    }
    Ok(stack
        .split_off(from)
        .into_iter()
        .filter_map(|slot| if let Slot::Value(v) = slot { Some(v) } else { None })
        .collect())
}

/// A storage's persistent id: `("storage", torch.KindStorage, KEY, LOCATION, ELEMENTS)`.
fn storage(id: &Value) -> Result<Storage, String> {
    let Value::Tuple(fields, _) = id else { return Err("a persistent id that is not a tuple".to_owned()) };
    match &fields[..] {
        [
            Value::Str(tag),
            Value::Global(Global::Storage(kind)),
            Value::Str(key),
            Value::Str(location),
            Value::Int(n),
        ] if &**tag == "storage" && location.len() <= 64 && *n >= 0 && !key.is_empty() && key.len() <= 64 => {
            Ok(Storage { kind: *kind, key: key.to_string(), elements: *n })
        }
        _ => Err("a persistent id other than a storage's".to_owned()),
    }
}

/// A tensor from `_rebuild_tensor_v2`'s arguments: `(storage, offset, size, stride,
/// requires_grad, OrderedDict())`.
fn tensor(arguments: &[Value]) -> Result<TensorRecord, String> {
    let ints = |value: &Value| -> Option<Vec<i64>> {
        let Value::Tuple(items, _) = value else { return None };
        items.iter().map(|item| if let Value::Int(i) = item { Some(*i) } else { None }).collect()
    };
    match arguments {
        [Value::Storage(storage), Value::Int(offset), size, stride, Value::Bool, Value::Dict(hooks)]
            if hooks.borrow().is_empty() =>
        {
            let (size, stride) = (
                ints(size).ok_or("a size that is not integers")?,
                ints(stride).ok_or("a stride that is not integers")?,
            );
            Ok(TensorRecord { storage: storage.clone(), offset: *offset, size, stride })
        }
        _ => Err("a tensor whose arguments are not (storage, offset, size, stride, requires_grad, hooks)".to_owned()),
    }
}

/// The tensors of the module's state: a dictionary of names to tensors.
fn module_tensors(state: &Option<Value>) -> Result<Vec<(String, Rc<TensorRecord>)>, String> {
    let Some(Value::Dict(state)) = state else { return Err("a module whose state is not a dictionary".to_owned()) };
    state
        .borrow()
        .iter()
        .map(|(name, value)| match (name, value) {
            (Value::Str(name), Value::Tensor(tensor)) => Ok((name.to_string(), tensor.clone())),
            _ => Err("a module attribute other than a named tensor".to_owned()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, size: &[i64], stride: &[i64]) -> TensorRecord {
        let storage = Rc::new(Storage { kind: Kind::Float, key: "0".to_owned(), elements: 0 });
        TensorRecord { storage, offset, size: size.to_vec(), stride: stride.to_vec() }
    }

    #[test]
    fn a_tensor_must_be_its_whole_storage_contiguously() {
        assert_eq!(check_layout(&record(0, &[2, 3], &[3, 1]), 6), Ok(()));
        assert_eq!(check_layout(&record(0, &[], &[]), 1), Ok(()));
        assert_eq!(check_layout(&record(0, &[0, 3], &[3, 1]), 0), Ok(()));
        for (offset, size, stride, elements) in [
            (1, &[2, 3][..], &[3, 1][..], 6),
            (0, &[2, 3], &[1, 2], 6),
            (0, &[2, 3], &[3], 6),
            (0, &[1, i64::from(i32::MAX)], &[i64::from(i32::MAX), 1], 50),
            (0, &[-2, -3], &[3, 1], 6),
            (0, &[1 << 40, 1 << 40], &[1 << 40, 1], 0),
            // The sizes' product is 0, their strides' overflows.
            (0, &[0, 1 << 40, 1 << 40], &[0, 0, 1], 0),
        ] {
            assert!(check_layout(&record(offset, size, stride), elements).is_err(), "{size:?} {stride:?}");
        }
        let many = vec![1; MAX_DIMS + 1];
        assert!(check_layout(&record(0, &many, &many), 1).unwrap_err().len() < 100);
    }

    fn refused(pickle: &[u8]) -> String {
        match unpickle(pickle) {
            Err(ArchiveError::Pickle { problem, .. }) => problem,
            other => panic!("{other:?}"),
        }
    }

    /// What would make the machine recurse, loop, call or keep anything is refused.
    #[test]
    fn deep_and_unexpected_pickles_are_refused() {
        // A million nested tuples (dropping them would overflow the stack).
        let deep = [&[0x80, 2, b')'][..], &[0x85; 1_000_000], b"."].concat();
        assert_eq!(refused(&deep), "tuples nested 3 deep");
        // A dictionary put into another through the memo.
        let nested = [0x80, 2, b'}', b'q', 0, b'}', b'X', 1, 0, 0, 0, b'k', b'h', 0, b's', b'.'];
        assert_eq!(refused(&nested), "a container in a dictionary");
        // Any other callable.
        assert_eq!(refused(b"\x80\x02cos\nsystem\nX\x02\0\0\0ls\x85R."), "the global os.system");
        // The module as its own state.
        let own = b"\x80\x02c__torch__\nModule\n)\x81q\x00h\x00b.";
        assert_eq!(refused(own), "a module whose state is not a dictionary");
        for (pickle, problem) in [
            (&b"\x80\x02."[..], "it does not end with the module alone"),
            (b"\x80\x02", "it is cut short"),
            (b"c__torch__\nModule\n", "it does not start with a protocol"),
            (b"\x80\x04.", "protocol 4 (libtorch writes 2, first)"),
            (b"\x80\x02h\x05", "memo 5 is not set"),
            (b"\x80\x02X\xff\xff\xff\xff", "it is cut short"),
            (b"\x80\x02\x8a\x09123456789", "an integer of 9 bytes"),
            (b"\x80\x02t", "a missing mark"),
            (b"\x80\x02\x94", "the opcode 0x94"),
        ] {
            assert_eq!(refused(pickle), problem);
        }
    }
}
