//! Writing the array expression: [`ArrayLayout`] and [`MaskedLayout`] build the bytes around
//! the raw data.

use super::*;
use crate::dtype::{DType, Kind};
use crate::error::{Error, ErrorKind};

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
            return Err(Error::unplaced(ErrorKind::UnsupportedDType(dtype.name())));
        }
        if shape.len() > MAX_DIMS {
            return Err(Error::unplaced(ErrorKind::TooManyDims(shape.len())));
        }
        let raw_len = checked_raw_len(dtype, shape).ok_or(Error::unplaced(ErrorKind::Overflow))?;
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
                    push_int(&mut prefix, i128::from(number));
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
            .ok_or(Error::unplaced(ErrorKind::Overflow))?;
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
            return Err(Error::unplaced(ErrorKind::DataLength {
                found: raw.len() as u64,
                expected: self.header.raw_len,
            }));
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
        let overflow = || Error::unplaced(ErrorKind::Overflow);
        let data_offset = head.len() as u64;
        let data_end = data_offset
            .checked_add(data.raw_len())
            .ok_or_else(overflow)?;
        let mask_offset = data_end
            .checked_add(middle.len() as u64)
            .ok_or_else(overflow)?;
        let mask_end = mask_offset
            .checked_add(mask.raw_len())
            .ok_or_else(overflow)?;
        let end = mask_end
            .checked_add(tail.len() as u64)
            .ok_or_else(overflow)?;
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
                return Err(Error::unplaced(ErrorKind::DataLength {
                    found: raw.len() as u64,
                    expected: part.raw_len,
                }));
            }
        }
        Ok([&self.head[..], data, &self.middle, mask, &self.tail].concat())
    }
}

/// The numbers after `(3, order, None, None, None, ...)` in numpy's dtype state.
fn portable_dtype_state(dtype: &DType) -> Result<[i64; 3], Error> {
    let size =
        i64::try_from(dtype.item_size()).map_err(|_| Error::unplaced(ErrorKind::Overflow))?;
    match dtype.kind() {
        Kind::Bool | Kind::Int | Kind::UInt | Kind::Float | Kind::Complex => Ok([-1, -1, 0]),
        Kind::Bytes | Kind::Void => Ok([size, 1, 0]),
        Kind::Unicode => Ok([size, 4, 8]),
        _ => Err(Error::unplaced(ErrorKind::UnsupportedDType(dtype.name()))),
    }
}

fn push_short_str(out: &mut Vec<u8>, text: &str) -> Result<(), Error> {
    let len = u8::try_from(text.len())
        .map_err(|_| Error::unplaced(ErrorKind::UnsupportedDType(text.to_owned())))?;
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
fn push_int(out: &mut Vec<u8>, value: i128) {
    out.extend_from_slice(mmappickle_codec::encode_int(value).as_bytes());
}

/// A shape tuple as `pickle.dumps` writes it.
pub(super) fn push_shape(out: &mut Vec<u8>, shape: &[usize]) {
    if shape.len() > 3 {
        out.push(MARK);
    }
    for &dim in shape {
        push_int(out, dim as i128);
    }
    out.push(match shape.len() {
        0 => EMPTY_TUPLE,
        1 => TUPLE1,
        2 => TUPLE2,
        3 => TUPLE3,
        _ => TUPLE,
    });
}
