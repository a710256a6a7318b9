//! The `.npy` file header, versions 1.0, 2.0 and 3.0, read and written as numpy does.
//!
//! ```text
//! \x93NUMPY  major minor  header_len (u16 for 1.0, u32 for 2.0 and 3.0)
//! {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }   + spaces + '\n'
//! ```
//!
//! The magic, the length and the header together take a multiple of 64 bytes,
//! so the data that follows is aligned. Version 3.0 only changes the header's
//! encoding (UTF-8 instead of Latin-1).

use std::fmt;
use std::io::Read;

/// The six bytes every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy aligns the data to this many bytes.
const ARRAY_ALIGN: usize = 64;
/// numpy leaves room in the header for the growing axis to reach this many digits.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;
/// The longest header we read: numpy itself refuses more than 10,000 characters
/// by default; this leaves room without letting a file size our allocation.
const MAX_HEADER_LEN: usize = 1 << 20;
/// The most dimensions numpy supports (`NPY_MAXDIMS` in numpy 2).
const MAX_DIMS: usize = 64;

/// What a `.npy` header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The format version: (1, 0), (2, 0) or (3, 0).
    pub version: (u8, u8),
    /// The dtype in numpy's array-protocol form (`'<f8'`, `'|b1'`, `'<U5'`).
    pub descr: String,
    /// Whether the data is in Fortran (column-major) order.
    pub fortran_order: bool,
    /// The shape.
    pub shape: Vec<u64>,
    /// Where the data starts: the header's total length in bytes.
    pub data_offset: u64,
}

/// A `.npy` header that is not one, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyError {
    /// The byte offset in the file where the problem was found.
    pub offset: u64,
    /// What was expected there.
    pub expected: String,
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not a valid .npy header: expected {} at byte offset {}",
            self.expected, self.offset
        )
    }
}

impl std::error::Error for NpyError {}

fn npy_error<T>(offset: usize, expected: impl Into<String>) -> Result<T, NpyError> {
    Err(NpyError {
        offset: offset as u64,
        expected: expected.into(),
    })
}

/// Reads exactly `buf.len()` bytes, or says what was cut short at `offset`.
fn read_part(
    reader: &mut impl Read,
    buf: &mut [u8],
    offset: usize,
    what: &str,
) -> Result<(), NpyError> {
    reader.read_exact(buf).or_else(|_| npy_error(offset, what))
}

/// Reads the header from the start of `reader`, leaving it at the first data byte.
pub fn read_header(reader: &mut impl Read) -> Result<NpyHeader, NpyError> {
    let mut preamble = [0u8; 8];
    read_part(reader, &mut preamble, 0, "the .npy magic \\x93NUMPY")?;
    if &preamble[..6] != MAGIC {
        return npy_error(0, "the .npy magic \\x93NUMPY");
    }
    let version = (preamble[6], preamble[7]);
    let header_len = match version {
        (1, 0) => {
            let mut len = [0u8; 2];
            read_part(reader, &mut len, 8, "a 2-byte header length")?;
            usize::from(u16::from_le_bytes(len))
        }
        (2, 0) | (3, 0) => {
            let mut len = [0u8; 4];
            read_part(reader, &mut len, 8, "a 4-byte header length")?;
            usize::try_from(u32::from_le_bytes(len)).unwrap_or(usize::MAX)
        }
        _ => return npy_error(6, "format version 1.0, 2.0 or 3.0"),
    };
    let header_start = if version == (1, 0) { 10 } else { 12 };
    if header_len > MAX_HEADER_LEN {
        return npy_error(
            8,
            format!("a header length of at most {MAX_HEADER_LEN} bytes"),
        );
    }
    let mut header = vec![0u8; header_len];
    read_part(
        reader,
        &mut header,
        header_start,
        format!("{header_len} header bytes").as_str(),
    )?;
    let text = if version == (3, 0) {
        match std::str::from_utf8(&header) {
            Ok(text) => text.to_owned(),
            Err(err) => return npy_error(header_start + err.valid_up_to(), "UTF-8 text"),
        }
    } else {
        header.iter().map(|&b| char::from(b)).collect() // Latin-1
    };
    let fields = parse_header_dict(&text, header_start)?;
    Ok(NpyHeader {
        version,
        descr: fields.descr,
        fortran_order: fields.fortran_order,
        shape: fields.shape,
        data_offset: (header_start + header_len) as u64,
    })
}

/// The header bytes numpy (2.x) writes for an array of `descr` and `shape`:
/// the oldest version that can hold it, padded so the data is 64-aligned.
pub fn write_header(descr: &str, fortran_order: bool, shape: &[u64]) -> Vec<u8> {
    let mut dict = format!(
        "{{'descr': {}, 'fortran_order': {}, 'shape': {}, }}",
        python_str_repr(descr),
        if fortran_order { "True" } else { "False" },
        python_tuple_repr(shape)
    );
    // Spare room for the axis that grows when appending, as numpy 2 leaves it.
    let growing_axis = if fortran_order {
        shape.last()
    } else {
        shape.first()
    };
    if let Some(extent) = growing_axis {
        let digits = extent.to_string().len();
        dict.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }
    let (version, len_size) = if dict.is_ascii() && padded_len(&dict, 2) <= usize::from(u16::MAX) {
        ((1, 0), 2)
    } else if dict.chars().all(|c| u32::from(c) < 256) {
        ((2, 0), 4)
    } else {
        ((3, 0), 4)
    };
    let header_len = padded_len(&dict, len_size);
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + len_size + header_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version.0, version.1]);
    if len_size == 2 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header_len as u32).to_le_bytes());
    }
    let dict_start = out.len();
    if version == (3, 0) {
        out.extend_from_slice(dict.as_bytes());
    } else {
        // Latin-1: every char is below 256 here.
        out.extend(dict.chars().map(|c| c as u8));
    }
    let dict_len = out.len() - dict_start;
    out.resize(dict_start + header_len - 1, b' ');
    debug_assert!(dict_len < header_len);
    out.push(b'\n');
    out
}

/// The header length (dict + padding + newline) that aligns the data to 64.
fn padded_len(dict: &str, len_size: usize) -> usize {
    let encoded_len = dict.chars().map(char::len_utf8).sum::<usize>();
    let unpadded = MAGIC.len() + 2 + len_size + encoded_len + 1;
    let padding = ARRAY_ALIGN - unpadded % ARRAY_ALIGN;
    encoded_len + 1 + padding
}

/// A `str`'s repr the way Python writes the simple strings dtype descrs are.
fn python_str_repr(text: &str) -> String {
    let mut repr = String::from("'");
    for c in text.chars() {
        match c {
            '\'' => repr.push_str("\\'"),
            '\\' => repr.push_str("\\\\"),
            _ => repr.push(c),
        }
    }
    repr.push('\'');
    repr
}

/// A tuple of ints as Python's repr writes it: `()`, `(3,)`, `(3, 4)`.
pub fn python_tuple_repr(items: &[u64]) -> String {
    match items {
        [] => "()".into(),
        [only] => format!("({only},)"),
        _ => format!(
            "({})",
            items
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The three fields of the header dict.
struct HeaderFields {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// A cursor over the header text that reports errors at file offsets.
struct DictParser<'a> {
    chars: Vec<(usize, char)>,
    pos: usize,
    text: &'a str,
    base: usize,
}

impl DictParser<'_> {
    /// The file offset of the current position.
    fn offset(&self) -> usize {
        let in_text = self
            .chars
            .get(self.pos)
            .map_or(self.text.len(), |&(idx, _)| idx);
        self.base + in_text
    }

    fn fail<T>(&self, expected: impl Into<String>) -> Result<T, NpyError> {
        npy_error(self.offset(), expected)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|&(_, c)| c)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// Consumes `c` (after whitespace) when it is next.
    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), NpyError> {
        if self.eat(c) {
            Ok(())
        } else {
            self.fail(format!("'{c}'"))
        }
    }

    fn word(&mut self) -> String {
        self.skip_space();
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.pos += 1;
        }
        self.chars[start..self.pos]
            .iter()
            .map(|&(_, c)| c)
            .collect()
    }

    /// A quoted string literal with the escapes a dtype descr may hold.
    fn string(&mut self) -> Result<String, NpyError> {
        self.skip_space();
        let quote = match self.peek() {
            Some(q @ ('\'' | '"')) => q,
            Some('[') => return self.fail("a simple dtype (structured dtypes are not supported)"),
            _ => return self.fail("a quoted string"),
        };
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return self.fail("the end of a string"),
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ ('\\' | '\'' | '"')) => out.push(c),
                        _ => return self.fail("a simple string escape"),
                    }
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn bool(&mut self) -> Result<bool, NpyError> {
        let start = self.pos;
        match self.word().as_str() {
            "True" => Ok(true),
            "False" => Ok(false),
            _ => {
                self.pos = start;
                self.fail("True or False")
            }
        }
    }

    /// A tuple of non-negative ints; Python 2's `3L` is accepted.
    fn shape(&mut self) -> Result<Vec<u64>, NpyError> {
        self.expect('(')?;
        let mut shape = Vec::new();
        loop {
            if self.eat(')') {
                break;
            }
            let start = self.pos;
            let digits = self.word();
            let digits = digits.strip_suffix('L').unwrap_or(&digits);
            match digits.parse::<u64>() {
                Ok(extent) if shape.len() < MAX_DIMS => shape.push(extent),
                Ok(_) => return self.fail(format!("at most {MAX_DIMS} dimensions")),
                Err(_) => {
                    self.pos = start;
                    return self.fail("a non-negative integer dimension");
                }
            }
            if !self.eat(',') {
                self.expect(')')?;
                break;
            }
        }
        Ok(shape)
    }
}

fn parse_header_dict(text: &str, base: usize) -> Result<HeaderFields, NpyError> {
    let mut parser = DictParser {
        chars: text.char_indices().collect(),
        pos: 0,
        text,
        base,
    };
    parser.expect('{')?;
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    loop {
        if parser.eat('}') {
            break;
        }
        let key_offset = parser.offset();
        let key = parser.string()?;
        parser.expect(':')?;
        let duplicate = match key.as_str() {
            "descr" => descr.replace(parser.string()?).is_some(),
            "fortran_order" => fortran_order.replace(parser.bool()?).is_some(),
            "shape" => shape.replace(parser.shape()?).is_some(),
            _ => return npy_error(key_offset, "'descr', 'fortran_order' or 'shape'"),
        };
        if duplicate {
            return npy_error(key_offset, format!("'{key}' only once"));
        }
        if !parser.eat(',') {
            parser.expect('}')?;
            break;
        }
    }
    parser.skip_space();
    if parser.peek().is_some() {
        return parser.fail("only padding after the header dict");
    }
    match (descr, fortran_order, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(HeaderFields {
            descr,
            fortran_order,
            shape,
        }),
        _ => npy_error(base, "'descr', 'fortran_order' and 'shape' in the header"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What numpy 1.23.5 and 2.4 both write for `np.zeros((3, 4))`.
    const NUMPY_F8_3X4: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }                                                          \n";
    /// What numpy writes for a Fortran-ordered (2, 3) bool array with `version=(3, 0)`.
    const NUMPY_B1_FORTRAN_V3: &[u8] = b"\x93NUMPY\x03\x00t\x00\x00\x00{'descr': '|b1', 'fortran_order': True, 'shape': (2, 3), }                                                         \n";
    /// What numpy writes for a 0-d `>i4`.
    const NUMPY_I4_0D: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '>i4', 'fortran_order': False, 'shape': (), }                                                              \n";

    fn parse(bytes: &[u8]) -> Result<NpyHeader, NpyError> {
        read_header(&mut &bytes[..])
    }

    #[test]
    fn reads_what_numpy_writes() {
        let header = parse(NUMPY_F8_3X4).unwrap();
        assert_eq!(
            header,
            NpyHeader {
                version: (1, 0),
                descr: "<f8".into(),
                fortran_order: false,
                shape: vec![3, 4],
                data_offset: 128,
            }
        );
        let header = parse(NUMPY_B1_FORTRAN_V3).unwrap();
        assert_eq!(header.version, (3, 0));
        assert!(header.fortran_order);
        assert_eq!(header.shape, [2, 3]);
        assert_eq!(parse(NUMPY_I4_0D).unwrap().shape, Vec::<u64>::new());
    }

    #[test]
    fn writes_what_numpy_writes() {
        assert_eq!(write_header("<f8", false, &[3, 4]), NUMPY_F8_3X4);
        assert_eq!(write_header(">i4", false, &[]), NUMPY_I4_0D);
    }

    #[test]
    fn written_headers_read_back_and_align() {
        for (descr, fortran, shape) in [
            ("<u2", false, vec![7]),
            ("<c16", true, vec![1, 2, 3, 4, 5, 6, 7, 8]),
            ("<U5", false, vec![0, 3]),
            ("|b1", false, vec![u64::MAX / 2]),
        ] {
            let bytes = write_header(descr, fortran, &shape);
            assert_eq!(bytes.len() % 64, 0, "{descr} {shape:?}");
            let header = parse(&bytes).unwrap();
            assert_eq!(header.descr, descr);
            assert_eq!(header.fortran_order, fortran);
            assert_eq!(header.shape, shape);
            assert_eq!(header.data_offset, bytes.len() as u64);
            assert_eq!(header.version, (1, 0));
        }
    }

    #[test]
    fn a_huge_header_needs_version_2() {
        // A descr long enough to push the header past 65535 bytes.
        let descr = format!("<V{}", "9".repeat(70_000));
        let bytes = write_header(&descr, false, &[1]);
        assert_eq!(&bytes[6..8], &[2, 0]);
        assert_eq!(bytes.len() % 64, 0);
        assert_eq!(parse(&bytes).unwrap().descr, descr);
    }

    #[test]
    fn python2_headers_and_loose_spacing_are_read() {
        let dict = "{ \"shape\" : (5L,) , 'fortran_order':False,'descr':'|u1'}";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(dict.len() as u16 + 1).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.push(b'\n');
        let header = parse(&bytes).unwrap();
        assert_eq!(header.shape, [5]);
        assert_eq!(header.descr, "|u1");
    }

    #[test]
    fn bad_headers_say_what_and_where() {
        let err = parse(b"\x93NUMPX\x01\x00").unwrap_err();
        assert_eq!(err.offset, 0);
        let err = parse(b"\x93NUMPY\x04\x00\x00\x00").unwrap_err();
        assert_eq!(
            (err.offset, err.expected.as_str()),
            (6, "format version 1.0, 2.0 or 3.0")
        );
        // A declared length beyond the file.
        let err = parse(b"\x93NUMPY\x01\x00\xff\x00{}").unwrap_err();
        assert_eq!(err.offset, 10);
        // A declared length of 4 GiB is refused before anything is allocated.
        let err = parse(b"\x93NUMPY\x02\x00\xff\xff\xff\xff").unwrap_err();
        assert_eq!(err.offset, 8);
        let cases: [(&str, usize, &str); 5] = [
            (
                "{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (1,), }",
                20,
                "structured",
            ),
            (
                "{'descr': '<f8', 'fortran_order': 0, 'shape': (1,), }",
                43,
                "True or False",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }",
                61,
                "non-negative",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, }",
                10,
                "'descr', 'fortran_order' and 'shape'",
            ),
            (
                "{'descr': '<f8', 'descr': '<f8', }",
                27,
                "'descr' only once",
            ),
        ];
        for (dict, offset, expected) in cases {
            let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
            bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
            bytes.extend_from_slice(dict.as_bytes());
            let err = parse(&bytes).unwrap_err();
            assert!(err.expected.contains(expected), "{dict}: {err}");
            assert_eq!(err.offset, offset as u64, "{dict}: {err}");
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for end in 0..NUMPY_F8_3X4.len() {
            assert!(parse(&NUMPY_F8_3X4[..end]).is_err(), "cut at {end}");
        }
    }
}
