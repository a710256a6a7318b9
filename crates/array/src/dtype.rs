//! numpy dtypes as `str(dtype)` names them: kind, item size, byte order.

use crate::error::{Error, ErrorKind};

/// The kind of a dtype (numpy's `dtype.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// `b`: `bool`, one byte, 0 or 1.
    Bool,
    /// `i`: signed integer.
    Int,
    /// `u`: unsigned integer.
    UInt,
    /// `f`: IEEE float.
    Float,
    /// `c`: complex (two floats).
    Complex,
    /// `S`: fixed-length byte string.
    Bytes,
    /// `U`: fixed-length UCS-4 string.
    Unicode,
    /// `V`: raw bytes (unstructured void).
    Void,
    /// `M`: `datetime64` (8 bytes).
    DateTime,
    /// `m`: `timedelta64` (8 bytes).
    TimeDelta,
    /// Any other dtype (structured, object, ...): readable as raw bytes only.
    Other,
}

impl Kind {
    /// numpy's one-letter kind code.
    pub fn code(self) -> char {
        match self {
            Kind::Bool => 'b',
            Kind::Int => 'i',
            Kind::UInt => 'u',
            Kind::Float => 'f',
            Kind::Complex => 'c',
            Kind::Bytes => 'S',
            Kind::Unicode => 'U',
            Kind::Void => 'V',
            Kind::DateTime => 'M',
            Kind::TimeDelta => 'm',
            Kind::Other => 'O',
        }
    }
}

/// The byte order of a dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// `<`.
    Little,
    /// `>`.
    Big,
    /// `|`: byte order does not apply (one-byte items, strings of bytes).
    NotApplicable,
}

impl ByteOrder {
    /// The machine's byte order.
    pub const NATIVE: ByteOrder = if cfg!(target_endian = "big") {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };

    /// numpy's character for it: `<`, `>` or `|`.
    pub fn code(self) -> char {
        match self {
            ByteOrder::Little => '<',
            ByteOrder::Big => '>',
            ByteOrder::NotApplicable => '|',
        }
    }
}

/// Most dimensions numpy allows.
pub const MAX_DIMS: usize = 32;

/// A numpy dtype: kind, item size and byte order, named as numpy's `str(dtype)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DType {
    kind: Kind,
    item_size: usize,
    byte_order: ByteOrder,
    /// `datetime64` / `timedelta64` unit (`"ns"`, `"25s"`, ...), empty when generic.
    unit: String,
    /// The name as read, for [`Kind::Other`].
    other_name: String,
}

impl DType {
    /// A numeric or boolean dtype in the machine's byte order.
    ///
    /// Returns `None` for a size numpy does not have (e.g. `Int` of 3 bytes).
    pub fn native(kind: Kind, item_size: usize) -> Option<DType> {
        let valid = match kind {
            Kind::Bool => item_size == 1,
            Kind::Int | Kind::UInt => matches!(item_size, 1 | 2 | 4 | 8),
            Kind::Float => matches!(item_size, 2 | 4 | 8 | 16),
            Kind::Complex => matches!(item_size, 8 | 16 | 32),
            _ => false,
        };
        valid.then(|| DType::build(kind, item_size, ByteOrder::NATIVE, String::new()))
    }

    /// A dtype whose name is not understood (structured, object, ...): it can
    /// only be read as raw bytes. `item_size` is 0 when unknown.
    pub fn opaque(name: &str, item_size: usize) -> DType {
        DType {
            kind: Kind::Other,
            item_size,
            byte_order: ByteOrder::NotApplicable,
            unit: String::new(),
            other_name: name.to_owned(),
        }
    }

    fn build(kind: Kind, item_size: usize, byte_order: ByteOrder, unit: String) -> DType {
        let byte_order = if item_size <= 1 || matches!(kind, Kind::Bytes | Kind::Void | Kind::Bool)
        {
            ByteOrder::NotApplicable
        } else {
            byte_order
        };
        DType {
            kind,
            item_size,
            byte_order,
            unit,
            other_name: String::new(),
        }
    }

    /// Parses numpy's `str(dtype)` (`float64`, `>i4`, `<U5`, `datetime64[ns]`)
    /// or a type string (`<f8`, `|b1`, `?`).
    pub fn parse(name: &str) -> Result<DType, Error> {
        let bad = || Error::unplaced(ErrorKind::BadDType(name.to_owned()));
        if name == "bool" {
            return Ok(DType::build(
                Kind::Bool,
                1,
                ByteOrder::NotApplicable,
                String::new(),
            ));
        }
        for (prefix, kind) in [
            ("uint", Kind::UInt),
            ("int", Kind::Int),
            ("float", Kind::Float),
            ("complex", Kind::Complex),
        ] {
            if let Some(bits) = name.strip_prefix(prefix) {
                let bits: usize = bits.parse().map_err(|_| bad())?;
                if bits % 8 != 0 {
                    return Err(bad());
                }
                return DType::native(kind, bits / 8).ok_or_else(bad);
            }
        }
        for (prefix, kind) in [
            ("datetime64", Kind::DateTime),
            ("timedelta64", Kind::TimeDelta),
        ] {
            if let Some(rest) = name.strip_prefix(prefix) {
                let unit = parse_unit(rest).ok_or_else(bad)?;
                return Ok(DType::build(kind, 8, ByteOrder::NATIVE, unit));
            }
        }
        let (order, rest) = match name.chars().next() {
            Some('<') => (ByteOrder::Little, &name[1..]),
            Some('>') => (ByteOrder::Big, &name[1..]),
            Some('=') => (ByteOrder::NATIVE, &name[1..]),
            Some('|') => (ByteOrder::NotApplicable, &name[1..]),
            _ => (ByteOrder::NATIVE, name),
        };
        let mut rest_chars = rest.chars();
        let code = rest_chars.next().ok_or_else(bad)?;
        let tail = rest_chars.as_str();
        let digits_end = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (digits, after) = tail.split_at(digits_end);
        let size: Option<usize> = if digits.is_empty() {
            None
        } else {
            Some(digits.parse().map_err(|_| bad())?)
        };
        let order = if order == ByteOrder::NotApplicable {
            ByteOrder::NATIVE
        } else {
            order
        };
        let dtype = match (code, size) {
            ('?', None) | ('b', Some(1)) => DType::build(Kind::Bool, 1, order, String::new()),
            ('i', Some(n)) | ('u', Some(n)) | ('f', Some(n)) | ('c', Some(n))
                if after.is_empty() =>
            {
                let kind = match code {
                    'i' => Kind::Int,
                    'u' => Kind::UInt,
                    'f' => Kind::Float,
                    _ => Kind::Complex,
                };
                let native = DType::native(kind, n).ok_or_else(bad)?;
                DType::build(native.kind, n, order, String::new())
            }
            ('S', n) if after.is_empty() => {
                DType::build(Kind::Bytes, n.unwrap_or(0), order, String::new())
            }
            ('V', n) if after.is_empty() => {
                DType::build(Kind::Void, n.unwrap_or(0), order, String::new())
            }
            ('U', n) if after.is_empty() => {
                let size = n.unwrap_or(0).checked_mul(4).ok_or_else(bad)?;
                DType::build(Kind::Unicode, size, order, String::new())
            }
            ('M', Some(8)) | ('M', None) | ('m', Some(8)) | ('m', None) => {
                let unit = parse_unit(after).ok_or_else(bad)?;
                let kind = if code == 'M' {
                    Kind::DateTime
                } else {
                    Kind::TimeDelta
                };
                DType::build(kind, 8, order, unit)
            }
            _ => return Err(bad()),
        };
        Ok(dtype)
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Bytes per element.
    pub fn item_size(&self) -> usize {
        self.item_size
    }

    /// The byte order.
    pub fn byte_order(&self) -> ByteOrder {
        self.byte_order
    }

    /// Whether elements are in the machine's byte order (or byte order does not apply).
    pub fn is_native(&self) -> bool {
        self.byte_order == ByteOrder::NotApplicable || self.byte_order == ByteOrder::NATIVE
    }

    /// The same dtype in the other byte order (unchanged when order does not apply).
    pub fn byte_swapped(&self) -> DType {
        let mut swapped = self.clone();
        swapped.byte_order = match self.byte_order {
            ByteOrder::Little => ByteOrder::Big,
            ByteOrder::Big => ByteOrder::Little,
            ByteOrder::NotApplicable => ByteOrder::NotApplicable,
        };
        swapped
    }

    /// numpy's type string (`<f8`, `|b1`, `<U5`, `<M8[ns]`), as `dtype.str` gives it.
    pub fn type_str(&self) -> String {
        format!("{}{}", self.byte_order.code(), self.descr())
    }

    /// The type string without byte order (`f8`, `b1`, `U5`, `M8[ns]`), as
    /// numpy's `dtype.__reduce__` gives it.
    pub fn descr(&self) -> String {
        match self.kind {
            Kind::Unicode => format!("U{}", self.item_size / 4),
            Kind::DateTime | Kind::TimeDelta => {
                format!("{}8{}", self.kind.code(), self.unit_suffix())
            }
            Kind::Other => self.other_name.clone(),
            _ => format!("{}{}", self.kind.code(), self.item_size),
        }
    }

    fn unit_suffix(&self) -> String {
        if self.unit.is_empty() {
            String::new()
        } else {
            format!("[{}]", self.unit)
        }
    }

    /// numpy's `str(dtype)` on this machine: `float64`, `>i4`, `<U5`, `|S3`, `bool`.
    pub fn name(&self) -> String {
        let bits = self.item_size.saturating_mul(8);
        match self.kind {
            Kind::Bool => "bool".to_owned(),
            Kind::Int | Kind::UInt | Kind::Float | Kind::Complex if self.is_native() => {
                let word = match self.kind {
                    Kind::Int => "int",
                    Kind::UInt => "uint",
                    Kind::Float => "float",
                    _ => "complex",
                };
                format!("{word}{bits}")
            }
            Kind::DateTime | Kind::TimeDelta if self.is_native() => {
                let word = if self.kind == Kind::DateTime {
                    "datetime64"
                } else {
                    "timedelta64"
                };
                format!("{word}{}", self.unit_suffix())
            }
            Kind::Other => self.other_name.clone(),
            _ => self.type_str(),
        }
    }

    /// Whether the dtype can be written as an array (it has a name numpy parses back).
    pub fn is_writable(&self) -> bool {
        self.kind != Kind::Other
    }

    /// The `datetime64` / `timedelta64` unit (`"ns"`), empty when generic or not a time.
    pub fn unit(&self) -> &str {
        &self.unit
    }
}

/// `[unit]` (or nothing, for the generic unit) to the unit text.
fn parse_unit(rest: &str) -> Option<String> {
    if rest.is_empty() {
        return Some(String::new());
    }
    let unit = rest.strip_prefix('[')?.strip_suffix(']')?;
    let letters = unit.trim_start_matches(|c: char| c.is_ascii_digit());
    let known = [
        "Y", "M", "W", "D", "h", "m", "s", "ms", "us", "μs", "ns", "ps", "fs", "as", "generic",
    ];
    known.contains(&letters).then(|| unit.to_owned())
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for DType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        DType::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every numpy name parses and is written back as numpy writes it.
    #[test]
    fn names_round_trip() {
        for name in [
            "bool",
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
            "float16",
            "float32",
            "float64",
            "complex64",
            "complex128",
            "|S3",
            "<U5",
            "|V4",
            "datetime64[ns]",
            "timedelta64[25s]",
            "datetime64",
        ] {
            assert_eq!(DType::parse(name).unwrap().name(), name);
        }
        if cfg!(target_endian = "little") {
            assert_eq!(DType::parse(">i4").unwrap().name(), ">i4");
            assert_eq!(DType::parse(">f8").unwrap().name(), ">f8");
            assert_eq!(DType::parse(">M8[ns]").unwrap().name(), ">M8[ns]");
        }
    }

    // Type strings map to kind, size and order.
    #[test]
    fn type_strings() {
        let f8 = DType::parse("<f8").unwrap();
        assert_eq!((f8.kind(), f8.item_size()), (Kind::Float, 8));
        assert_eq!(f8.byte_order(), ByteOrder::Little);
        assert_eq!(DType::parse("|b1").unwrap().name(), "bool");
        assert_eq!(DType::parse("?").unwrap().name(), "bool");
        assert_eq!(DType::parse("|i1").unwrap().name(), "int8");
        assert_eq!(DType::parse(">u1").unwrap().name(), "uint8");
        assert_eq!(DType::parse("U5").unwrap().item_size(), 20);
        assert_eq!(
            DType::parse(">c16").unwrap().byte_swapped().type_str(),
            "<c16"
        );
        assert_eq!(DType::parse("<U5").unwrap().descr(), "U5");
    }

    // Names that are not dtypes are errors naming the text.
    #[test]
    fn bad_names() {
        for name in [
            "",
            "int3",
            "float7",
            "<i3",
            "x4",
            "datetime64[xx]",
            "[('a', '<i4')]",
            "int",
        ] {
            let err = DType::parse(name).unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::BadDType(name.to_owned()), "{name}");
        }
    }
}
