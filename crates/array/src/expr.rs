//! The array expression: `reshape(fromstring(raw, dtype), shape)` (compatible)
//! and `_reconstruct(ndarray, (0,), b'b')` + `BUILD` (portable), read and written.
//!
//! The raw bytes are one contiguous `BINBYTES*` payload in both encodings, so
//! a reader maps `value_offset + raw_offset .. + raw_len`.

use crate::dtype::{DType, Kind, MAX_DIMS};
use crate::error::{Error, ErrorKind};

// Pickle opcodes the expressions use.
const MARK: u8 = 0x28;
const TUPLE: u8 = 0x74;
const EMPTY_TUPLE: u8 = 0x29;
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const REDUCE: u8 = 0x52;
const BUILD: u8 = 0x62;
const STACK_GLOBAL: u8 = 0x93;
const SHORT_BINUNICODE: u8 = 0x8c;
const SHORT_BINBYTES: u8 = 0x43;
const BINBYTES: u8 = 0x42;
const BINBYTES8: u8 = 0x8e;
const BININT1: u8 = 0x4b;
const BININT2: u8 = 0x4d;
const BININT: u8 = 0x4a;
const LONG1: u8 = 0x8a;
const NONE: u8 = 0x4e;
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;

/// The 70 bytes every compatible array value starts with:
/// `numpy.core.fromnumeric.reshape`, `numpy.core.multiarray.fromstring`.
pub const COMPATIBLE_PREFIX: &[u8; 70] = b"\x8c\x16numpy.core.fromnumeric\x8c\x07reshape\x93\x8c\x15numpy.core.multiarray\x8c\x0afromstring\x93";

/// The 29 bytes every masked array value starts with: `numpy.ma.core.MaskedArray`.
pub const MASKED_PREFIX: &[u8; 29] = b"\x8c\x0dnumpy.ma.core\x8c\x0bMaskedArray\x93";

/// How an array is encoded in a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ArrayEncoding {
    /// `reshape(fromstring(raw, dtype), shape)`, byte-identical to Python
    /// `mmappickle` 1.0; plain `pickle.load` of it fails from numpy 2.3 on.
    #[default]
    Compatible,
    /// numpy's own `numpy.core.multiarray._reconstruct` + `BUILD` form, raw
    /// bytes as one `BINBYTES8`: loads writable with plain `pickle.load` on
    /// numpy 1.23 to 2.x; Python `mmappickle` reads it as an ordinary value.
    Portable,
}

/// Where an array's parts are in a value: what the reader found or the writer will write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayHeader {
    /// The element type.
    pub dtype: DType,
    /// The shape (C order).
    pub shape: Vec<usize>,
    /// Offset of the first raw byte, from the start of the value.
    pub raw_offset: u64,
    /// Number of raw bytes (`product(shape) * item_size`).
    pub raw_len: u64,
    /// Offset just past the expression, from the start of the value.
    pub end: u64,
    /// The encoding.
    pub encoding: ArrayEncoding,
}

impl ArrayHeader {
    /// Offset of the first raw byte from the start of the value.
    pub fn raw_offset(&self) -> u64 {
        self.raw_offset
    }

    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A masked array's two arrays: the data and the mask (dtype `bool`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedHeader {
    /// The data array.
    pub data: ArrayHeader,
    /// The mask: same shape as the data, or a 0-d array when the array had no mask.
    pub mask: ArrayHeader,
    /// Offset just past the expression.
    pub end: u64,
}

/// Number of elements of `shape`, checked.
pub fn checked_n_elements(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &dim| acc.checked_mul(dim))
}

/// Raw byte length of `shape` elements of `dtype`, checked.
pub fn checked_raw_len(dtype: &DType, shape: &[usize]) -> Option<u64> {
    let n = u64::try_from(checked_n_elements(shape)?).ok()?;
    n.checked_mul(u64::try_from(dtype.item_size()).ok()?)
}

// ---------------------------------------------------------------- writing

/// The bytes of an array value around its raw data: `prefix`, then
/// `raw_len` raw bytes (C order), then `suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayLayout {
    header: ArrayHeader,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

impl ArrayLayout {
    /// The layout of an array of `dtype` and `shape` in `encoding`.
    ///
    /// Refuses dtypes numpy cannot parse back (structured, object, ...),
    /// shapes of more than 32 dimensions and sizes that overflow.
    pub fn new(
        dtype: &DType,
        shape: &[usize],
        encoding: ArrayEncoding,
    ) -> Result<ArrayLayout, Error> {
        if !dtype.is_writable() {
            return Err(Error::new(ErrorKind::UnsupportedDType(dtype.name()), 0));
        }
        if shape.len() > MAX_DIMS {
            return Err(Error::new(ErrorKind::TooManyDims(shape.len()), 0));
        }
        let raw_len = checked_raw_len(dtype, shape).ok_or(Error::new(ErrorKind::Overflow, 0))?;
        let mut prefix = Vec::with_capacity(256);
        let mut suffix = Vec::with_capacity(64);
        match encoding {
            ArrayEncoding::Compatible => {
                prefix.extend_from_slice(COMPATIBLE_PREFIX);
                push_binbytes8_len(&mut prefix, raw_len);
                push_short_str(&mut suffix, &dtype.name())?;
                suffix.extend_from_slice(&[TUPLE2, REDUCE]);
                push_shape(&mut suffix, shape);
                suffix.extend_from_slice(&[TUPLE2, REDUCE]);
            }
            ArrayEncoding::Portable => {
                let state = portable_dtype_state(dtype)?;
                push_short_str(&mut prefix, "numpy.core.multiarray")?;
                push_short_str(&mut prefix, "_reconstruct")?;
                prefix.push(STACK_GLOBAL);
                push_short_str(&mut prefix, "numpy")?;
                push_short_str(&mut prefix, "ndarray")?;
                prefix.push(STACK_GLOBAL);
                prefix.extend_from_slice(&[
                    BININT1,
                    0,
                    TUPLE1,
                    SHORT_BINBYTES,
                    1,
                    b'b',
                    TUPLE3,
                    REDUCE,
                ]);
                prefix.extend_from_slice(&[MARK, BININT1, 1]);
                push_shape(&mut prefix, shape);
                push_short_str(&mut prefix, "numpy")?;
                push_short_str(&mut prefix, "dtype")?;
                prefix.push(STACK_GLOBAL);
                push_short_str(&mut prefix, &dtype.descr())?;
                prefix.extend_from_slice(&[NEWFALSE, NEWTRUE, TUPLE3, REDUCE]);
                prefix.extend_from_slice(&[MARK, BININT1, 3]);
                push_short_str(&mut prefix, &dtype.byte_order().code().to_string())?;
                prefix.extend_from_slice(&[NONE, NONE, NONE]);
                for number in state {
                    push_int(&mut prefix, number);
                }
                prefix.extend_from_slice(&[TUPLE, BUILD, NEWFALSE]);
                push_binbytes8_len(&mut prefix, raw_len);
                suffix.extend_from_slice(&[TUPLE, BUILD]);
            }
        }
        let raw_offset = prefix.len() as u64;
        let end = raw_offset
            .checked_add(raw_len)
            .and_then(|e| e.checked_add(suffix.len() as u64))
            .ok_or(Error::new(ErrorKind::Overflow, 0))?;
        Ok(ArrayLayout {
            header: ArrayHeader {
                dtype: dtype.clone(),
                shape: shape.to_vec(),
                raw_offset,
                raw_len,
                end,
                encoding,
            },
            prefix,
            suffix,
        })
    }

    /// The bytes before the raw data.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The bytes after the raw data.
    pub fn suffix(&self) -> &[u8] {
        &self.suffix
    }

    /// Number of raw bytes.
    pub fn raw_len(&self) -> u64 {
        self.header.raw_len
    }

    /// Offset of the raw data within the value (the offset to align).
    pub fn raw_offset(&self) -> u64 {
        self.header.raw_offset
    }

    /// The value's total length.
    pub fn value_len(&self) -> u64 {
        self.header.end
    }

    /// The header a reader will find.
    pub fn header(&self) -> &ArrayHeader {
        &self.header
    }

    /// The whole value with `raw` as data (which must be `raw_len` bytes).
    pub fn to_value_bytes(&self, raw: &[u8]) -> Result<Vec<u8>, Error> {
        self.check_raw(raw)?;
        let mut out = Vec::with_capacity(self.prefix.len() + raw.len() + self.suffix.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(raw);
        out.extend_from_slice(&self.suffix);
        Ok(out)
    }

    pub(crate) fn check_raw(&self, raw: &[u8]) -> Result<(), Error> {
        if raw.len() as u64 != self.header.raw_len {
            return Err(Error::new(
                ErrorKind::DataLength {
                    found: raw.len() as u64,
                    expected: self.header.raw_len,
                },
                0,
            ));
        }
        Ok(())
    }
}

/// The bytes of a masked array value: `head`, data raw bytes, `middle`, mask raw bytes, `tail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedLayout {
    header: MaskedHeader,
    head: Vec<u8>,
    middle: Vec<u8>,
    tail: Vec<u8>,
}

impl MaskedLayout {
    /// The layout of a masked array of `dtype` and `shape` (mask of the same shape), compatible encoding.
    pub fn new(dtype: &DType, shape: &[usize]) -> Result<MaskedLayout, Error> {
        let data = ArrayLayout::new(dtype, shape, ArrayEncoding::Compatible)?;
        let mask = ArrayLayout::new(
            &<crate::Bool as crate::Element>::dtype(),
            shape,
            ArrayEncoding::Compatible,
        )?;
        let mut head = MASKED_PREFIX.to_vec();
        head.extend_from_slice(data.prefix());
        let mut middle = data.suffix().to_vec();
        middle.extend_from_slice(mask.prefix());
        let mut tail = mask.suffix().to_vec();
        tail.extend_from_slice(&[TUPLE2, REDUCE]);
        let overflow = Error::new(ErrorKind::Overflow, 0);
        let data_offset = head.len() as u64;
        let data_end = data_offset
            .checked_add(data.raw_len())
            .ok_or(overflow.clone())?;
        let mask_offset = data_end
            .checked_add(middle.len() as u64)
            .ok_or(overflow.clone())?;
        let mask_end = mask_offset
            .checked_add(mask.raw_len())
            .ok_or(overflow.clone())?;
        let end = mask_end.checked_add(tail.len() as u64).ok_or(overflow)?;
        let mut data_header = data.header().clone();
        data_header.raw_offset = data_offset;
        data_header.end = data_end + data.suffix().len() as u64;
        let mut mask_header = mask.header().clone();
        mask_header.raw_offset = mask_offset;
        mask_header.end = end - 2;
        Ok(MaskedLayout {
            header: MaskedHeader {
                data: data_header,
                mask: mask_header,
                end,
            },
            head,
            middle,
            tail,
        })
    }

    /// Bytes before the data's raw bytes.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Bytes between the data's and the mask's raw bytes.
    pub fn middle(&self) -> &[u8] {
        &self.middle
    }

    /// Bytes after the mask's raw bytes.
    pub fn tail(&self) -> &[u8] {
        &self.tail
    }

    /// Where the parts are.
    pub fn header(&self) -> &MaskedHeader {
        &self.header
    }

    /// The value's total length.
    pub fn value_len(&self) -> u64 {
        self.header.end
    }

    /// Offset of the data's raw bytes (the offset to align).
    pub fn raw_offset(&self) -> u64 {
        self.header.data.raw_offset
    }

    /// The whole value from the data's and the mask's raw bytes.
    pub fn to_value_bytes(&self, data: &[u8], mask: &[u8]) -> Result<Vec<u8>, Error> {
        for (raw, part) in [(data, &self.header.data), (mask, &self.header.mask)] {
            if raw.len() as u64 != part.raw_len {
                return Err(Error::new(
                    ErrorKind::DataLength {
                        found: raw.len() as u64,
                        expected: part.raw_len,
                    },
                    0,
                ));
            }
        }
        Ok([&self.head[..], data, &self.middle, mask, &self.tail].concat())
    }
}

/// The numbers after `(3, order, None, None, None, ...)` in numpy's dtype state.
fn portable_dtype_state(dtype: &DType) -> Result<[i64; 3], Error> {
    let size = i64::try_from(dtype.item_size()).map_err(|_| Error::new(ErrorKind::Overflow, 0))?;
    match dtype.kind() {
        Kind::Bool | Kind::Int | Kind::UInt | Kind::Float | Kind::Complex => Ok([-1, -1, 0]),
        Kind::Bytes | Kind::Void => Ok([size, 1, 0]),
        Kind::Unicode => Ok([size, 4, 8]),
        _ => Err(Error::new(ErrorKind::UnsupportedDType(dtype.name()), 0)),
    }
}

fn push_short_str(out: &mut Vec<u8>, text: &str) -> Result<(), Error> {
    let len = u8::try_from(text.len())
        .map_err(|_| Error::new(ErrorKind::UnsupportedDType(text.to_owned()), 0))?;
    out.push(SHORT_BINUNICODE);
    out.push(len);
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn push_binbytes8_len(out: &mut Vec<u8>, len: u64) {
    out.push(BINBYTES8);
    out.extend_from_slice(&len.to_le_bytes());
}

/// An int as `pickle.dumps` writes it (protocol >= 2).
fn push_int(out: &mut Vec<u8>, value: i64) {
    if (0..=0xff).contains(&value) {
        out.extend_from_slice(&[BININT1, value as u8]);
    } else if (0..=0xffff).contains(&value) {
        out.push(BININT2);
        out.extend_from_slice(&(value as u16).to_le_bytes());
    } else if let Ok(small) = i32::try_from(value) {
        out.push(BININT);
        out.extend_from_slice(&small.to_le_bytes());
    } else {
        push_long1(out, i128::from(value));
    }
}

/// `LONG1`: minimal little-endian two's complement, as `pickle.encode_long`.
fn push_long1(out: &mut Vec<u8>, value: i128) {
    let bytes = value.to_le_bytes();
    let mut len = bytes.len();
    while len > 1 {
        let top = bytes[len - 1];
        let sign = bytes[len - 2] & 0x80;
        if (top == 0 && sign == 0) || (top == 0xff && sign != 0) {
            len -= 1;
        } else {
            break;
        }
    }
    out.push(LONG1);
    out.push(len as u8);
    out.extend_from_slice(&bytes[..len]);
}

/// A shape tuple as `pickle.dumps` writes it.
fn push_shape(out: &mut Vec<u8>, shape: &[usize]) {
    if shape.len() > 3 {
        out.push(MARK);
    }
    for &dim in shape {
        match i64::try_from(dim) {
            Ok(dim) => push_int(out, dim),
            Err(_) => push_long1(out, dim as i128),
        }
    }
    out.push(match shape.len() {
        0 => EMPTY_TUPLE,
        1 => TUPLE1,
        2 => TUPLE2,
        3 => TUPLE3,
        _ => TUPLE,
    });
}

// ---------------------------------------------------------------- reading

/// Bytes of a value, read at offsets: a slice, or a region of a file.
pub trait ValueSource {
    /// The value's length.
    fn value_len(&self) -> u64;
    /// Fills `buf` with the bytes at `offset`; an error if they are not all there.
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error>;
}

impl ValueSource for &[u8] {
    fn value_len(&self) -> u64 {
        self.len() as u64
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let start = usize::try_from(offset).ok();
        let bytes = start
            .and_then(|s| Some((s, s.checked_add(buf.len())?)))
            .and_then(|(s, e)| self.get(s..e))
            .ok_or(Error::new(
                ErrorKind::UnexpectedEof {
                    expected: "more bytes",
                },
                offset,
            ))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// A value inside a file, read with positioned reads through a small window
/// (the file's cursor is not moved).
#[derive(Debug)]
pub struct FileValue<'a> {
    file: &'a std::fs::File,
    value_offset: u64,
    value_len: u64,
    window: Vec<u8>,
    window_start: u64,
}

const WINDOW: usize = 4096;

impl<'a> FileValue<'a> {
    /// The `value_len` bytes of `file` at `value_offset`.
    pub fn new(file: &'a std::fs::File, value_offset: u64, value_len: u64) -> Self {
        FileValue {
            file,
            value_offset,
            value_len,
            window: Vec::new(),
            window_start: 0,
        }
    }
}

fn read_file_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }
}

impl ValueSource for FileValue<'_> {
    fn value_len(&self) -> u64 {
        self.value_len
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let eof = || {
            Error::new(
                ErrorKind::UnexpectedEof {
                    expected: "more bytes",
                },
                offset,
            )
        };
        let end = offset.checked_add(buf.len() as u64).ok_or_else(eof)?;
        if end > self.value_len {
            return Err(eof());
        }
        let window_end = self.window_start + self.window.len() as u64;
        if offset < self.window_start || end > window_end {
            // Refill the window from `offset` (reads are small: a window holds several).
            let want = usize::try_from((self.value_len - offset).min(WINDOW as u64))
                .unwrap_or(WINDOW)
                .max(buf.len());
            self.window.clear();
            self.window.resize(want, 0);
            let mut filled = 0;
            while filled < want {
                let file_offset = self
                    .value_offset
                    .checked_add(offset + filled as u64)
                    .ok_or_else(eof)?;
                let slot = self.window.get_mut(filled..).ok_or_else(eof)?;
                match read_file_at(self.file, slot, file_offset) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io(&e, offset)),
                }
            }
            self.window.truncate(filled);
            self.window_start = offset;
        }
        let start = usize::try_from(offset - self.window_start).map_err(|_| eof())?;
        let bytes = self.window.get(start..start + buf.len()).ok_or_else(eof)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// A checked cursor over a [`ValueSource`].
struct Cursor<'s, S: ValueSource + ?Sized> {
    source: &'s mut S,
    pos: u64,
}

impl<S: ValueSource + ?Sized> Cursor<'_, S> {
    fn eof(&self, expected: &'static str) -> Error {
        Error::new(ErrorKind::UnexpectedEof { expected }, self.pos)
    }

    fn read<const N: usize>(&mut self, expected: &'static str) -> Result<[u8; N], Error> {
        let mut buf = [0u8; N];
        self.source.read_exact_at(self.pos, &mut buf).map_err(|e| {
            if matches!(e.kind(), ErrorKind::Io { .. }) {
                e
            } else {
                self.eof(expected)
            }
        })?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn byte(&mut self, expected: &'static str) -> Result<u8, Error> {
        Ok(self.read::<1>(expected)?[0])
    }

    fn peek(&mut self, expected: &'static str) -> Result<u8, Error> {
        let byte = self.byte(expected)?;
        self.pos -= 1;
        Ok(byte)
    }

    /// The next byte, which must be `opcode`.
    fn expect(&mut self, opcode: u8, expected: &'static str) -> Result<(), Error> {
        let at = self.pos;
        let found = self.byte(expected)?;
        if found != opcode {
            return Err(Error::new(
                ErrorKind::UnexpectedOpcode { expected, found },
                at,
            ));
        }
        Ok(())
    }

    /// Whether the next bytes are `bytes` (the cursor moves past them if so).
    fn matches(&mut self, bytes: &[u8]) -> Result<bool, Error> {
        let end = self.pos.checked_add(bytes.len() as u64);
        if end.is_none_or(|end| end > self.source.value_len()) {
            return Ok(false);
        }
        let mut buf = vec![0u8; bytes.len()];
        self.source.read_exact_at(self.pos, &mut buf)?;
        if buf == bytes {
            self.pos += bytes.len() as u64;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// A `SHORT_BINUNICODE` string.
    fn short_str(&mut self, expected: &'static str) -> Result<String, Error> {
        self.expect(SHORT_BINUNICODE, expected)?;
        let len = self.byte(expected)?;
        let mut buf = vec![0u8; usize::from(len)];
        let at = self.pos;
        self.source
            .read_exact_at(at, &mut buf)
            .map_err(|_| self.eof(expected))?;
        self.pos += u64::from(len);
        String::from_utf8(buf).map_err(|_| Error::new(ErrorKind::Malformed { expected }, at))
    }

    /// A `SHORT_BINBYTES` / `BINBYTES` / `BINBYTES8` header: the payload's (offset, length).
    fn bytes_header(&mut self) -> Result<(u64, u64), Error> {
        const EXPECTED: &str = "BINBYTES8, BINBYTES or SHORT_BINBYTES";
        let at = self.pos;
        let len = match self.byte(EXPECTED)? {
            SHORT_BINBYTES => u64::from(self.byte(EXPECTED)?),
            BINBYTES => u64::from(u32::from_le_bytes(self.read(EXPECTED)?)),
            BINBYTES8 => u64::from_le_bytes(self.read(EXPECTED)?),
            found => {
                return Err(Error::new(
                    ErrorKind::UnexpectedOpcode {
                        expected: EXPECTED,
                        found,
                    },
                    at,
                ))
            }
        };
        let start = self.pos;
        let end = start
            .checked_add(len)
            .ok_or(Error::new(ErrorKind::Overflow, at))?;
        if end > self.source.value_len() {
            return Err(Error::new(
                ErrorKind::UnexpectedEof {
                    expected: "the array's raw bytes",
                },
                at,
            ));
        }
        self.pos = end;
        Ok((start, len))
    }

    /// An int as pickle writes it (`BININT1`, `BININT2`, `BININT`, `LONG1` up to 8 bytes).
    fn int(&mut self, expected: &'static str) -> Result<i64, Error> {
        let at = self.pos;
        Ok(match self.byte(expected)? {
            BININT1 => i64::from(self.byte(expected)?),
            BININT2 => i64::from(u16::from_le_bytes(self.read(expected)?)),
            BININT => i64::from(i32::from_le_bytes(self.read(expected)?)),
            LONG1 => {
                let len = usize::from(self.byte(expected)?);
                let mut buf = [0u8; 9];
                let slot = buf
                    .get_mut(..len)
                    .ok_or(Error::new(ErrorKind::Overflow, at))?;
                self.source
                    .read_exact_at(self.pos, slot)
                    .map_err(|_| self.eof(expected))?;
                self.pos += len as u64;
                let negative = len > 0 && buf[len - 1] & 0x80 != 0;
                let fill = if negative { 0xff } else { 0 };
                let value =
                    i128::from_le_bytes(std::array::from_fn(
                        |i| if i < len { buf[i] } else { fill },
                    ));
                i64::try_from(value).map_err(|_| Error::new(ErrorKind::Overflow, at))?
            }
            found => {
                return Err(Error::new(
                    ErrorKind::UnexpectedOpcode { expected, found },
                    at,
                ))
            }
        })
    }

    /// A shape tuple: `EMPTY_TUPLE`, 1 to 3 ints and `TUPLE1..3`, or `MARK` ints `TUPLE`.
    fn shape(&mut self) -> Result<Vec<usize>, Error> {
        const EXPECTED: &str = "a shape tuple of ints";
        let start = self.pos;
        let marked = match self.peek(EXPECTED)? {
            EMPTY_TUPLE => {
                self.pos += 1;
                return Ok(Vec::new());
            }
            MARK => {
                self.pos += 1;
                true
            }
            _ => false,
        };
        let mut shape = Vec::new();
        loop {
            let at = self.pos;
            let op = self.peek(EXPECTED)?;
            let count_ok = match op {
                TUPLE1 => Some(!marked && shape.len() == 1),
                TUPLE2 => Some(!marked && shape.len() == 2),
                TUPLE3 => Some(!marked && shape.len() == 3),
                TUPLE => Some(marked),
                _ => None,
            };
            if let Some(ok) = count_ok {
                if !ok {
                    return Err(Error::new(
                        ErrorKind::UnexpectedOpcode {
                            expected: EXPECTED,
                            found: op,
                        },
                        at,
                    ));
                }
                self.pos += 1;
                return Ok(shape);
            }
            if shape.len() >= MAX_DIMS {
                return Err(Error::new(ErrorKind::TooManyDims(shape.len() + 1), start));
            }
            let dim = self.int(EXPECTED)?;
            let dim = usize::try_from(dim).map_err(|_| {
                if dim < 0 {
                    Error::new(ErrorKind::NegativeDim(dim), at)
                } else {
                    Error::new(ErrorKind::Overflow, at)
                }
            })?;
            shape.push(dim);
        }
    }
}

/// The dtype named `name` for an array of `shape` with `raw_len` raw bytes,
/// checking `raw_len == product(shape) * item_size`. Names numpy writes but
/// that are not understood here (structured dtypes, ...) become opaque dtypes
/// whose item size is deduced from the length.
fn dtype_for(name: &str, shape: &[usize], raw_len: u64, at: u64) -> Result<DType, Error> {
    let n = checked_n_elements(shape)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or(Error::new(ErrorKind::Overflow, at))?;
    let dtype = match DType::parse(name) {
        Ok(dtype) => dtype,
        Err(_) if names_no_numpy_number(name) => {
            return Err(Error::new(ErrorKind::BadDType(name.to_owned()), at))
        }
        Err(_) => {
            let item_size = raw_len.checked_div(n).unwrap_or(0);
            DType::opaque(
                name,
                usize::try_from(item_size).map_err(|_| Error::new(ErrorKind::Overflow, at))?,
            )
        }
    };
    let expected = n
        .checked_mul(dtype.item_size() as u64)
        .ok_or(Error::new(ErrorKind::Overflow, at))?;
    if expected != raw_len {
        return Err(Error::new(
            ErrorKind::LengthMismatch {
                found: raw_len,
                expected,
            },
            at,
        ));
    }
    Ok(dtype)
}

/// Whether `name` is a number type name of a size that numpy has no type for
/// (`float1024`, `int7`, `uint`): numpy refuses it, so the expression is malformed.
/// Other names that are not understood here (structured dtypes, `float128`) stay
/// opaque dtypes, read as raw bytes.
fn names_no_numpy_number(name: &str) -> bool {
    // Sizes in bits of numpy's number types on any platform (float96 and complex192 are
    // the 32-bit x86 long double).
    let families: [(&str, &[u32]); 4] = [
        ("uint", &[8, 16, 32, 64]),
        ("int", &[8, 16, 32, 64]),
        ("float", &[16, 32, 64, 80, 96, 128]),
        ("complex", &[64, 128, 160, 192, 256]),
    ];
    families.iter().any(|(prefix, sizes)| {
        name.strip_prefix(prefix)
            .is_some_and(|bits| !bits.parse::<u32>().is_ok_and(|bits| sizes.contains(&bits)))
    })
}

/// Reads a compatible array expression at the cursor (the prefix already matched).
fn compatible_after_prefix<S: ValueSource + ?Sized>(
    cursor: &mut Cursor<'_, S>,
) -> Result<ArrayHeader, Error> {
    let (raw_offset, raw_len) = cursor.bytes_header()?;
    let name_at = cursor.pos;
    let name = cursor.short_str("the dtype name as SHORT_BINUNICODE")?;
    cursor.expect(TUPLE2, "TUPLE2 after the dtype name")?;
    cursor.expect(REDUCE, "REDUCE after the dtype name")?;
    let shape = cursor.shape()?;
    cursor.expect(TUPLE2, "TUPLE2 after the shape")?;
    cursor.expect(REDUCE, "REDUCE after the shape")?;
    let dtype = dtype_for(&name, &shape, raw_len, name_at)?;
    Ok(ArrayHeader {
        dtype,
        shape,
        raw_offset,
        raw_len,
        end: cursor.pos,
        encoding: ArrayEncoding::Compatible,
    })
}

/// Reads a portable expression after its `_reconstruct` global; `None` when it
/// is some other form of numpy pickle (then it is an ordinary value).
fn portable_after_global<S: ValueSource + ?Sized>(
    cursor: &mut Cursor<'_, S>,
) -> Result<Option<ArrayHeader>, Error> {
    let head: &[u8] = b"\x8c\x05numpy\x8c\x07ndarray\x93K\x00\x85C\x01b\x87R(K\x01";
    if !cursor.matches(head)? {
        return Ok(None);
    }
    let Ok(shape) = cursor.shape() else {
        return Ok(None);
    };
    if !cursor.matches(b"\x8c\x05numpy\x8c\x05dtype\x93")? {
        return Ok(None);
    }
    let descr_at = cursor.pos;
    let Ok(descr) = cursor.short_str("the dtype") else {
        return Ok(None);
    };
    if !cursor.matches(&[NEWFALSE, NEWTRUE, TUPLE3, REDUCE, MARK, BININT1, 3])? {
        return Ok(None);
    }
    let Ok(order) = cursor.short_str("the byte order") else {
        return Ok(None);
    };
    if !cursor.matches(&[NONE, NONE, NONE])? {
        return Ok(None);
    }
    for _ in 0..3 {
        if cursor.int("an int of the dtype state").is_err() {
            return Ok(None);
        }
    }
    // `NEWFALSE`: C order. Fortran-ordered arrays stay ordinary values.
    if !cursor.matches(&[TUPLE, BUILD, NEWFALSE])? {
        return Ok(None);
    }
    let (raw_offset, raw_len) = cursor.bytes_header()?;
    if !cursor.matches(&[TUPLE, BUILD])? {
        return Ok(None);
    }
    let order = if order == "|" { "" } else { order.as_str() };
    let Ok(dtype) = DType::parse(&format!("{order}{descr}")) else {
        return Ok(None);
    };
    let dtype = dtype_for(&dtype.name(), &shape, raw_len, descr_at)?;
    Ok(Some(ArrayHeader {
        dtype,
        shape,
        raw_offset,
        raw_len,
        end: cursor.pos,
        encoding: ArrayEncoding::Portable,
    }))
}

fn array_at<S: ValueSource + ?Sized>(
    cursor: &mut Cursor<'_, S>,
) -> Result<Option<ArrayHeader>, Error> {
    if cursor.matches(COMPATIBLE_PREFIX)? {
        return compatible_after_prefix(cursor).map(Some);
    }
    for module in ["numpy.core.multiarray", "numpy._core.multiarray"] {
        let mut global = vec![SHORT_BINUNICODE, module.len() as u8];
        global.extend_from_slice(module.as_bytes());
        global.extend_from_slice(b"\x8c\x0c_reconstruct\x93");
        if cursor.matches(&global)? {
            return portable_after_global(cursor);
        }
    }
    Ok(None)
}

/// The array expression that is the whole value read from `source`, or `None`
/// when the value is not an array expression (an ordinary value).
///
/// Errors when the value starts like an array but is malformed: a bad opcode,
/// a raw length that is not `product(shape) * item_size`, bytes after it.
pub fn read_array_header<S: ValueSource + ?Sized>(
    source: &mut S,
) -> Result<Option<ArrayHeader>, Error> {
    let value_len = source.value_len();
    let mut cursor = Cursor { source, pos: 0 };
    let Some(header) = array_at(&mut cursor)? else {
        return Ok(None);
    };
    if header.end != value_len {
        return Err(Error::new(
            ErrorKind::UnexpectedOpcode {
                expected: "the end of the value after the array",
                found: cursor.peek("").unwrap_or(0),
            },
            header.end,
        ));
    }
    Ok(Some(header))
}

/// [`read_array_header`] over the value's bytes.
pub fn parse_array_value(value: &[u8]) -> Result<Option<ArrayHeader>, Error> {
    let mut source = value;
    read_array_header(&mut source)
}

/// The masked array expression that is the whole value, or `None` when the
/// value is not a masked array.
pub fn read_masked_header<S: ValueSource + ?Sized>(
    source: &mut S,
) -> Result<Option<MaskedHeader>, Error> {
    let value_len = source.value_len();
    let mut cursor = Cursor { source, pos: 0 };
    if !cursor.matches(MASKED_PREFIX)? {
        return Ok(None);
    }
    let data_at = cursor.pos;
    let data = array_at(&mut cursor)?.ok_or(Error::new(
        ErrorKind::Malformed {
            expected: "the data array of a MaskedArray",
        },
        data_at,
    ))?;
    let mask_at = cursor.pos;
    let mask = array_at(&mut cursor)?.ok_or(Error::new(
        ErrorKind::Malformed {
            expected: "the mask array of a MaskedArray",
        },
        mask_at,
    ))?;
    if mask.dtype.kind() != Kind::Bool || !(mask.shape == data.shape || mask.shape.is_empty()) {
        return Err(Error::new(
            ErrorKind::DTypeMismatch {
                dtype: format!("{} {:?}", mask.dtype.name(), mask.shape),
                element: "a bool mask of the data's shape",
            },
            mask_at,
        ));
    }
    cursor.expect(TUPLE2, "TUPLE2 after the mask")?;
    cursor.expect(REDUCE, "REDUCE after the mask")?;
    if cursor.pos != value_len {
        let found = cursor.peek("").unwrap_or(0);
        return Err(Error::new(
            ErrorKind::UnexpectedOpcode {
                expected: "the end of the value after the masked array",
                found,
            },
            cursor.pos,
        ));
    }
    Ok(Some(MaskedHeader {
        data,
        mask,
        end: cursor.pos,
    }))
}

/// [`read_masked_header`] over the value's bytes.
pub fn parse_masked_value(value: &[u8]) -> Result<Option<MaskedHeader>, Error> {
    let mut source = value;
    read_masked_header(&mut source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f64_dtype() -> DType {
        DType::parse("float64").unwrap()
    }

    // The compatible prefix is 70 bytes and the raw data starts at 79.
    #[test]
    fn compatible_layout_offsets() {
        let layout = ArrayLayout::new(&f64_dtype(), &[2, 3], ArrayEncoding::Compatible).unwrap();
        assert_eq!(COMPATIBLE_PREFIX.len(), 70);
        assert_eq!(layout.raw_offset(), 79);
        assert_eq!(layout.raw_len(), 48);
        assert_eq!(layout.suffix(), b"\x8c\x07float64\x86RK\x02K\x03\x86\x86R");
    }

    // Both encodings read back to the header they were written with, for every shape form.
    #[test]
    fn round_trip_shapes() {
        let shapes: Vec<Vec<usize>> = vec![
            vec![],
            vec![0],
            vec![3],
            vec![300, 2],
            vec![70000, 1, 1],
            vec![1, 2, 1, 2, 1],
            vec![1; 32],
        ];
        for encoding in [ArrayEncoding::Compatible, ArrayEncoding::Portable] {
            for shape in &shapes {
                for name in ["float64", "bool", ">i4", "<U3", "|S2", "complex64"] {
                    let dtype = DType::parse(name).unwrap();
                    let layout = ArrayLayout::new(&dtype, shape, encoding).unwrap();
                    let raw = vec![0u8; layout.raw_len() as usize];
                    let value = layout.to_value_bytes(&raw).unwrap();
                    let header = parse_array_value(&value).unwrap().unwrap();
                    assert_eq!(&header, layout.header(), "{name} {shape:?} {encoding:?}");
                }
            }
        }
    }

    // Dimensions of 2^31 and more are LONG1, as pickle writes them; the reader takes them.
    #[test]
    fn long1_dims() {
        let mut out = Vec::new();
        push_shape(&mut out, &[1 << 31]);
        assert_eq!(out, b"\x8a\x05\x00\x00\x00\x80\x00\x85");
        let mut value = COMPATIBLE_PREFIX.to_vec();
        value.extend_from_slice(b"\x8e\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x05uint8\x86R");
        value.extend_from_slice(b"\x8a\x05\x00\x00\x00\x80\x00K\x00\x86\x86R");
        let header = parse_array_value(&value).unwrap().unwrap();
        assert_eq!(header.shape, vec![1 << 31, 0]);
    }

    // SHORT_BINBYTES and BINBYTES are read too.
    #[test]
    fn short_bytes_forms() {
        for (op, len) in [(&b"C\x02"[..], 2u64), (&b"B\x02\x00\x00\x00"[..], 2)] {
            let mut value = COMPATIBLE_PREFIX.to_vec();
            value.extend_from_slice(op);
            value.extend_from_slice(b"\x01\x02\x8c\x04int8\x86R(K\x01K\x02K\x01K\x01t\x86R");
            let header = parse_array_value(&value).unwrap().unwrap();
            assert_eq!(
                (header.raw_offset, header.raw_len),
                (70 + op.len() as u64, len)
            );
            assert_eq!(header.shape, vec![1, 2, 1, 1]);
        }
    }

    // A value that does not start like an array is not one.
    #[test]
    fn not_an_array() {
        assert_eq!(parse_array_value(b"K\x01"), Ok(None));
        assert_eq!(parse_array_value(b""), Ok(None));
        assert_eq!(parse_masked_value(COMPATIBLE_PREFIX), Ok(None));
    }

    // Each malformation is an error at its offset.
    #[test]
    fn malformed_arrays() {
        let good = ArrayLayout::new(&f64_dtype(), &[2], ArrayEncoding::Compatible)
            .unwrap()
            .to_value_bytes(&[0; 16])
            .unwrap();
        // Cut anywhere after the prefix: an error, never a panic.
        for cut in 70..good.len() {
            assert!(parse_array_value(&good[..cut]).is_err(), "cut at {cut}");
        }
        // Wrong length for the shape.
        let mut wrong = good.clone();
        let shape_at = good.len() - 5;
        wrong[shape_at + 1] = 3;
        let err = parse_array_value(&wrong).unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::LengthMismatch {
                found: 16,
                expected: 24
            }
        );
        assert_eq!(err.offset(), 95);
        // Trailing bytes.
        let mut trailing = good.clone();
        trailing.push(b'0');
        assert_eq!(
            parse_array_value(&trailing).unwrap_err().offset(),
            good.len() as u64
        );
        // Bad raw opcode.
        let mut bad = good.clone();
        bad[70] = b'X';
        let err = parse_array_value(&bad).unwrap_err();
        assert!(matches!(
            err.kind(),
            ErrorKind::UnexpectedOpcode { found: b'X', .. }
        ));
        assert_eq!(err.offset(), 70);
        // A huge raw length cannot be read past the end.
        let mut huge = good.clone();
        huge[71..79].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse_array_value(&huge).is_err());
        // A negative dimension.
        let mut value = COMPATIBLE_PREFIX.to_vec();
        value.extend_from_slice(b"C\x00\x8c\x04int8\x86RJ\xff\xff\xff\xff\x85\x86R");
        assert_eq!(
            parse_array_value(&value).unwrap_err().kind(),
            &ErrorKind::NegativeDim(-1)
        );
        // 33 dimensions.
        let mut value = COMPATIBLE_PREFIX.to_vec();
        value.extend_from_slice(b"C\x00\x8c\x04int8\x86R(");
        value.extend_from_slice(&b"K\x01".repeat(33));
        value.extend_from_slice(b"t\x86R");
        assert_eq!(
            parse_array_value(&value).unwrap_err().kind(),
            &ErrorKind::TooManyDims(33)
        );
    }

    // Masked arrays: data then mask, both headers right, with and without a mask.
    #[test]
    fn masked_round_trip() {
        let layout = MaskedLayout::new(&DType::parse("int16").unwrap(), &[3]).unwrap();
        let value = layout
            .to_value_bytes(&[1, 0, 2, 0, 3, 0], &[0, 1, 0])
            .unwrap();
        let header = parse_masked_value(&value).unwrap().unwrap();
        assert_eq!(&header, layout.header());
        assert_eq!(&value[header.mask.raw_offset as usize..][..3], &[0, 1, 0]);
        // No mask: a 0-d bool array.
        let data = ArrayLayout::new(
            &DType::parse("int16").unwrap(),
            &[3],
            ArrayEncoding::Compatible,
        )
        .unwrap();
        let nomask = ArrayLayout::new(
            &DType::parse("bool").unwrap(),
            &[],
            ArrayEncoding::Compatible,
        )
        .unwrap();
        let value = [
            &MASKED_PREFIX[..],
            &data.to_value_bytes(&[0; 6]).unwrap(),
            &nomask.to_value_bytes(&[0]).unwrap(),
            b"\x86R",
        ]
        .concat();
        assert!(parse_masked_value(&value)
            .unwrap()
            .unwrap()
            .mask
            .shape
            .is_empty());
    }

    // A number type name of a size numpy has no type for is a malformed header (numpy
    // would refuse it); float128 and other names not understood here stay opaque bytes.
    #[test]
    fn impossible_number_dtype_is_an_error() {
        for name in ["float1024", "int7", "uint", "complex8"] {
            let mut value = COMPATIBLE_PREFIX.to_vec();
            value.push(BINBYTES8);
            value.extend(8u64.to_le_bytes());
            value.extend([0u8; 8]);
            value.push(SHORT_BINUNICODE);
            value.push(name.len() as u8);
            value.extend(name.as_bytes());
            value.extend([TUPLE2, REDUCE, BININT1, 1, TUPLE1, TUPLE2, REDUCE]);
            let error = parse_array_value(&value).unwrap_err();
            assert_eq!(
                error.kind(),
                &ErrorKind::BadDType(name.to_owned()),
                "{name}"
            );
            assert_eq!(error.offset(), 79 + 8, "{name}");
        }
        for name in ["float128", "[('a', '<i4')]"] {
            let mut value = COMPATIBLE_PREFIX.to_vec();
            value.push(BINBYTES8);
            value.extend(16u64.to_le_bytes());
            value.extend([0u8; 16]);
            value.push(SHORT_BINUNICODE);
            value.push(name.len() as u8);
            value.extend(name.as_bytes());
            value.extend([TUPLE2, REDUCE, BININT1, 1, TUPLE1, TUPLE2, REDUCE]);
            let header = parse_array_value(&value).unwrap().unwrap();
            assert_eq!(header.dtype.item_size(), 16, "{name}");
        }
    }

    // Structured dtypes are refused for writing and read as opaque bytes.
    #[test]
    fn structured_dtypes() {
        let name = "[('a', '<i4'), ('b', '<f8')]";
        let err = ArrayLayout::new(&DType::opaque(name, 12), &[1], ArrayEncoding::Compatible)
            .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::UnsupportedDType(_)));
        let mut value = COMPATIBLE_PREFIX.to_vec();
        value.extend_from_slice(b"C\x18");
        value.extend_from_slice(&[7; 24]);
        value.push(SHORT_BINUNICODE);
        value.push(name.len() as u8);
        value.extend_from_slice(name.as_bytes());
        value.extend_from_slice(b"\x86RK\x02\x85\x86R");
        let header = parse_array_value(&value).unwrap().unwrap();
        assert_eq!(
            (header.dtype.name(), header.dtype.item_size()),
            (name.to_owned(), 12)
        );
    }

    // Reading from a file region through the window gives the same header as
    // the bytes, for values longer than the window, with the file's other bytes around.
    #[test]
    fn file_value_reads_like_bytes() {
        use std::io::Write;
        for (shape, encoding) in [
            (vec![3000usize, 2], ArrayEncoding::Compatible),
            (vec![5], ArrayEncoding::Portable),
            (vec![1, 2, 3, 4, 5], ArrayEncoding::Portable),
        ] {
            let layout = ArrayLayout::new(&f64_dtype(), &shape, encoding).unwrap();
            let value = layout
                .to_value_bytes(&vec![1; layout.raw_len() as usize])
                .unwrap();
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(&[9; 100]).unwrap();
            file.write_all(&value).unwrap();
            file.write_all(&[9; 100]).unwrap();
            let mut source = FileValue::new(&file, 100, value.len() as u64);
            let header = read_array_header(&mut source).unwrap();
            assert_eq!(header.as_ref(), Some(layout.header()));
            // A region cut short is an error, not a panic.
            let mut short = FileValue::new(&file, 100, value.len() as u64 - 3);
            assert!(read_array_header(&mut short).is_err());
        }
    }

    proptest::proptest! {
        // Any dtype, shape and encoding reads back to what was written.
        #[test]
        fn layouts_round_trip(
            name_index in 0usize..12,
            shape in proptest::collection::vec(0usize..70_000, 0..6),
            portable in proptest::bool::ANY,
        ) {
            let names = ["bool", "int8", ">i2", "uint32", "int64", "float16", ">f4", "float64",
                         "complex128", "|S3", "<U2", "|V5"];
            let dtype = DType::parse(names[name_index]).unwrap();
            // Keep the data small: cut the shape until it fits in 64 KiB.
            let mut shape = shape;
            while checked_raw_len(&dtype, &shape).is_none_or(|len| len > 1 << 16) {
                shape.pop();
            }
            let encoding = if portable { ArrayEncoding::Portable } else { ArrayEncoding::Compatible };
            let layout = ArrayLayout::new(&dtype, &shape, encoding).unwrap();
            let raw = vec![0x5a; layout.raw_len() as usize];
            let value = layout.to_value_bytes(&raw).unwrap();
            let header = parse_array_value(&value).unwrap();
            proptest::prop_assert_eq!(header.as_ref(), Some(layout.header()));
        }

        // Arbitrary bytes after the prefix never panic the reader.
        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut value = COMPATIBLE_PREFIX.to_vec();
            value.extend_from_slice(&tail);
            let _ = parse_array_value(&value);
            let mut masked = MASKED_PREFIX.to_vec();
            masked.extend_from_slice(&value);
            let _ = parse_masked_value(&masked);
        }
    }
}
