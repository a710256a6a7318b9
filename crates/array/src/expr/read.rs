//! Reading the array expression from a [`ValueSource`]: [`read_array_header`],
//! [`read_masked_header`] and their slice forms.

use super::*;
use crate::dtype::{DType, Kind, MAX_DIMS};
use crate::error::{Error, ErrorKind};

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
                    Err(e) => return Err(Error::io(e, offset)),
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
        // Compared through a buffer on the stack: this runs for every value classified.
        let mut buf = [0u8; 128];
        let mut at = self.pos;
        for expected in bytes.chunks(buf.len()) {
            let found = buf.get_mut(..expected.len()).unwrap_or_default();
            self.source.read_exact_at(at, found)?;
            if found != expected {
                return Ok(false);
            }
            at += expected.len() as u64;
        }
        self.pos = at;
        Ok(true)
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

/// `numpy.core.multiarray._reconstruct` (numpy 1) and `numpy._core.multiarray._reconstruct`
/// (numpy 2) as `SHORT_BINUNICODE` module, name, `STACK_GLOBAL`: how a portable array starts.
const RECONSTRUCT_GLOBALS: [&[u8]; 2] = [
    b"\x8c\x15numpy.core.multiarray\x8c\x0c_reconstruct\x93",
    b"\x8c\x16numpy._core.multiarray\x8c\x0c_reconstruct\x93",
];

/// Whether the value in `source` may be an array or a masked array expression: each starts
/// with a global's module as `SHORT_BINUNICODE "numpy.` (every prefix above) and is longer
/// than the shortest prefix. Most values of a dict fail this after one small read (or none).
pub(crate) fn may_be_array_expression<S: ValueSource + ?Sized>(
    source: &mut S,
) -> Result<bool, Error> {
    if source.value_len() < MASKED_PREFIX.len() as u64 {
        return Ok(false);
    }
    let mut head = [0u8; ARRAY_HEAD.len() + 2];
    source.read_exact_at(0, &mut head)?;
    Ok(head[0] == SHORT_BINUNICODE && head[2..] == *ARRAY_HEAD)
}

/// The module name's start that every array expression's first global has.
const ARRAY_HEAD: &[u8; 6] = b"numpy.";

fn array_at<S: ValueSource + ?Sized>(
    cursor: &mut Cursor<'_, S>,
) -> Result<Option<ArrayHeader>, Error> {
    if cursor.matches(COMPATIBLE_PREFIX)? {
        return compatible_after_prefix(cursor).map(Some);
    }
    for global in RECONSTRUCT_GLOBALS {
        if cursor.matches(global)? {
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
