//! The array expression: `reshape(fromstring(raw, dtype), shape)` (compatible)
//! and `_reconstruct(ndarray, (0,), b'b')` + `BUILD` (portable), read and written.
//!
//! The raw bytes are one contiguous `BINBYTES*` payload in both encodings, so
//! a reader maps `value_offset + raw_offset .. + raw_len`.

mod read;
mod write;

pub(crate) use self::read::may_be_array_expression;
pub use self::read::{
    parse_array_value, parse_masked_value, read_array_header, read_masked_header, FileValue,
    ValueSource,
};
pub use self::write::{ArrayLayout, MaskedLayout};

use crate::dtype::{DType, MAX_DIMS};

// Pickle opcodes: the codec defines them.
use mmappickle_codec::opcode::{
    BINBYTES, BINBYTES8, BININT, BININT1, BININT2, BUILD, EMPTY_TUPLE, LONG1, MARK, NEWFALSE,
    NEWTRUE, NONE, REDUCE, SHORT_BINBYTES, SHORT_BINUNICODE, STACK_GLOBAL, TUPLE, TUPLE1, TUPLE2,
    TUPLE3,
};

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

#[cfg(test)]
mod tests {
    use super::write::push_shape;
    use super::*;
    use crate::error::{Error, ErrorKind};

    #[test]
    fn every_array_form_passes_the_quick_check() -> Result<(), Error> {
        let f64_array = |encoding| {
            let layout = ArrayLayout::new(&f64_dtype(), &[2], encoding)?;
            layout.to_value_bytes(&[0; 16])
        };
        for value in [
            f64_array(ArrayEncoding::Compatible)?,
            f64_array(ArrayEncoding::Portable)?,
            MaskedLayout::new(&f64_dtype(), &[2])?.to_value_bytes(&[0; 16], &[0; 2])?,
        ] {
            assert!(may_be_array_expression(&mut value.as_slice())?);
        }
        for generic in [&b"J\x01\x00\x00\x00"[..], &[b'X'; 64][..]] {
            assert!(!may_be_array_expression(&mut &generic[..])?);
        }
        Ok(())
    }

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
        assert_eq!(err.offset(), Some(95));
        // Trailing bytes.
        let mut trailing = good.clone();
        trailing.push(b'0');
        assert_eq!(
            parse_array_value(&trailing).unwrap_err().offset(),
            Some(good.len() as u64)
        );
        // Bad raw opcode.
        let mut bad = good.clone();
        bad[70] = b'X';
        let err = parse_array_value(&bad).unwrap_err();
        assert!(matches!(
            err.kind(),
            ErrorKind::UnexpectedOpcode { found: b'X', .. }
        ));
        assert_eq!(err.offset(), Some(70));
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
            assert_eq!(error.offset(), Some(79 + 8), "{name}");
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
