//! Values whose stored opcodes are one scalar opcode: read without an unpickler.

use mmappickle_codec::{parse_op, Op};

/// A stored value that is one scalar opcode (then at most the op that memoizes it): what
/// `pickle.loads` makes of it, read straight from the bytes. Readers use it to skip a whole
/// unpickler for the small values most dicts hold (a third of a small value's get in
/// Python).
///
/// ```
/// use mmappickle::Scalar;
///
/// assert_eq!(Scalar::from_value_bytes(b"K\x2a"), Some(Scalar::Int(42))); // BININT1 42
/// assert_eq!(Scalar::from_value_bytes(b"\x8c\x02h\xc3\x94"), None); // not UTF-8 text
/// assert_eq!(Scalar::from_value_bytes(b"]\x94"), None); // a list
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An int that fits in an `i64` (`BININT1`, `BININT2`, `BININT`, `LONG1` of up to 8
    /// bytes).
    Int(i64),
    /// A float (`BINFLOAT`).
    Float(f64),
    /// Text that is strict UTF-8 (`SHORT_BINUNICODE`, `BINUNICODE`): a `str` holding a lone
    /// surrogate, which pickle writes with `surrogatepass`, is not a scalar here.
    Str(&'a str),
    /// Bytes (`SHORT_BINBYTES`, `BINBYTES`).
    Bytes(&'a [u8]),
}

impl<'a> Scalar<'a> {
    /// The scalar of a stored value's opcodes (without `PROTO`, `FRAME`, `STOP`), if they
    /// are one scalar opcode, then at most `MEMOIZE`, `BINPUT` or `LONG_BINPUT`.
    pub fn from_value_bytes(value_bytes: &'a [u8]) -> Option<Scalar<'a>> {
        let (op, op_len) = parse_op(value_bytes).ok()?;
        let rest = &value_bytes[op_len..];
        if !rest.is_empty() {
            let (memo, memo_len) = parse_op(rest).ok()?;
            let memoizes = matches!(memo, Op::Memoize | Op::BinPut(_) | Op::LongBinPut(_));
            if !memoizes || memo_len != rest.len() {
                return None;
            }
        }
        Some(match op {
            Op::None => Scalar::None,
            Op::NewTrue => Scalar::Bool(true),
            Op::NewFalse => Scalar::Bool(false),
            Op::BinInt1(int) => Scalar::Int(int.into()),
            Op::BinInt2(int) => Scalar::Int(int.into()),
            Op::BinInt(int) => Scalar::Int(int.into()),
            Op::Long1(bytes) => Scalar::Int(int_of_le_bytes(bytes)?),
            Op::BinFloat(float) => Scalar::Float(float),
            Op::ShortBinUnicode(text) | Op::BinUnicode(text) => Scalar::Str(text),
            Op::ShortBinBytes(bytes) | Op::BinBytes(bytes) => Scalar::Bytes(bytes),
            _ => return None,
        })
    }
}

/// The int of `LONG1`'s little-endian two's complement bytes, when it fits in an `i64`.
fn int_of_le_bytes(bytes: &[u8]) -> Option<i64> {
    if bytes.len() > 8 {
        return None;
    }
    let negative = bytes.last().is_some_and(|&last| last & 0x80 != 0);
    let mut word = [if negative { 0xff } else { 0 }; 8];
    word[..bytes.len()].copy_from_slice(bytes);
    Some(i64::from_le_bytes(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_read_as_pickle_loads_reads_them() {
        let cases: &[(&[u8], Option<Scalar<'_>>)] = &[
            (b"N", Some(Scalar::None)),
            (b"\x88", Some(Scalar::Bool(true))),
            (b"\x89", Some(Scalar::Bool(false))),
            (b"K\xff", Some(Scalar::Int(255))),
            (b"M\x00\x01", Some(Scalar::Int(256))),
            (b"J\xff\xff\xff\xff", Some(Scalar::Int(-1))),
            // pickle.dumps(-2**31 - 1, 4): LONG1 of 5 bytes, sign-extended.
            (
                b"\x8a\x05\xff\xff\xff\x7f\xff",
                Some(Scalar::Int(-(1 << 31) - 1)),
            ),
            (b"\x8a\x00", Some(Scalar::Int(0))),
            (b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01", None), // 2**64
            (
                b"G\xbf\xf0\x00\x00\x00\x00\x00\x00",
                Some(Scalar::Float(-1.0)),
            ),
            (b"\x8c\x03\xc3\xa9a\x94", Some(Scalar::Str("éa"))),
            (b"X\x01\x00\x00\x00aq\x05", Some(Scalar::Str("a"))),
            (
                b"C\x02\x00\xffr\x07\x00\x00\x00",
                Some(Scalar::Bytes(b"\x00\xff")),
            ),
            (b"\x8c\x03\xed\xa0\x80", None), // '\ud800'
            (b"K\x01K\x02", None),
            (b"K\x01\x94\x94", None),
            (b"K", None),
            (b"", None),
        ];
        for (bytes, expected) in cases {
            assert_eq!(Scalar::from_value_bytes(bytes), *expected, "{bytes:?}");
        }
    }
}
