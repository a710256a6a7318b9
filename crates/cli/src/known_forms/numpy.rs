//! numpy scalars (`numpy.core.multiarray.scalar(dtype, raw)`, from numpy 1.x, or
//! `numpy._core...` from numpy 2.x) and `numpy.dtype` objects, decoded by the array crate.

use mmappickle::{f16, Construct, DType, Element, Global, Kind, Object, OwnedArray, Value};

use super::datetime::{civil_from_days, iso_duration, DurationUnit};
use crate::scalars::{
    bytes_repr, numpy_float_text, python_float_text, shortest_as_double, str_repr, FloatWidth,
};

/// One element of a numpy dtype, decoded: a scalar, or an array's item.
#[derive(Debug, Clone, PartialEq)]
pub enum NumpyScalar {
    /// `bool`.
    Bool(bool),
    /// `int8` .. `int64`.
    Int {
        /// The value.
        value: i64,
        /// 8 to 64.
        bits: usize,
    },
    /// `uint8` .. `uint64`.
    UInt {
        /// The value.
        value: u64,
        /// 8 to 64.
        bits: usize,
    },
    /// `float16` .. `float64` (the value exactly, as an f64).
    Float {
        /// The value.
        value: f64,
        /// Its width.
        width: FloatWidth,
    },
    /// `complex64` / `complex128`: two floats of `width`.
    Complex {
        /// The real part.
        real: f64,
        /// The imaginary part.
        imag: f64,
        /// The width of each part.
        width: FloatWidth,
    },
    /// `<U..`, trailing NULs cut as numpy cuts them.
    Str(String),
    /// `S..`, trailing NULs cut.
    Bytes(Vec<u8>),
    /// `V..`: raw bytes.
    Void(Vec<u8>),
    /// `datetime64`.
    DateTime(TimeCount),
    /// `timedelta64`.
    TimeDelta(TimeCount),
}

/// A `datetime64` / `timedelta64` value: a count of units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeCount {
    /// The count (`i64::MIN` is NaT).
    count: i64,
    /// The unit, `None` for numpy's generic unit.
    unit: Option<TimeUnit>,
}

/// A numpy time unit: a base unit and a multiplier (`25s`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct TimeUnit {
    base: &'static str,
    multiplier: i64,
}

/// numpy's not-a-time.
const NAT: i64 = i64::MIN;

/// numpy's base time units, longest first.
const TIME_UNITS: [&str; 13] = [
    "Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as",
];

impl TimeUnit {
    /// The unit of `dtype` (`"25s"`, `"ns"`; `μs` is numpy's other name for `us`), `None`
    /// for the generic unit; `Err` for a unit not understood.
    fn of(dtype: &DType) -> Result<Option<TimeUnit>, ()> {
        let text = dtype.unit();
        if text.is_empty() || text == "generic" {
            return Ok(None);
        }
        let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
        let (digits, base) = text.split_at(digits_end);
        let base = if base == "μs" { "us" } else { base };
        let base = TIME_UNITS.iter().find(|unit| **unit == base).ok_or(())?;
        let multiplier = if digits.is_empty() {
            1
        } else {
            digits.parse().map_err(|_| ())?
        };
        Ok(Some(TimeUnit { base, multiplier }))
    }

    /// numpy's name of the unit: `s`, `25s`.
    fn name(&self) -> String {
        if self.multiplier == 1 {
            self.base.to_owned()
        } else {
            format!("{}{}", self.multiplier, self.base)
        }
    }
}

impl NumpyScalar {
    /// The element of `dtype` whose bytes are `item` (in the dtype's byte order); `None`
    /// when the dtype is not one read here (`float128`, structured, object) or the bytes
    /// are not one element's.
    pub fn decode(dtype: &DType, item: &[u8]) -> Option<NumpyScalar> {
        if item.len() != dtype.item_size() {
            return None;
        }
        let size = item.len();
        let scalar = match dtype.kind() {
            Kind::Bool => NumpyScalar::Bool(item.iter().any(|&byte| byte != 0)),
            Kind::Int => NumpyScalar::Int {
                value: int_of(dtype, item)?,
                bits: size * 8,
            },
            Kind::UInt => NumpyScalar::UInt {
                value: uint_of(dtype, item)?,
                bits: size * 8,
            },
            Kind::Float => NumpyScalar::Float {
                value: float_of(dtype, item)?,
                width: FloatWidth::of_item_size(size)?,
            },
            Kind::Complex => {
                // Two floats of half the size, each in the complex's byte order.
                let native = DType::native(Kind::Float, size / 2)?;
                let part = if native.byte_order() == dtype.byte_order() {
                    native
                } else {
                    native.byte_swapped()
                };
                let (real, imag) = item.split_at(size / 2);
                NumpyScalar::Complex {
                    real: float_of(&part, real)?,
                    imag: float_of(&part, imag)?,
                    width: FloatWidth::of_item_size(size / 2)?,
                }
            }
            Kind::Unicode => {
                let mut text = String::with_capacity(size / 4);
                for unit in item.chunks_exact(4) {
                    text.push(char::from_u32(u32::try_from(uint_of(dtype, unit)?).ok()?)?);
                }
                NumpyScalar::Str(text.trim_end_matches('\0').to_owned())
            }
            Kind::Bytes => {
                let end = item
                    .iter()
                    .rposition(|&b| b != 0)
                    .map_or(0, |last| last + 1);
                NumpyScalar::Bytes(item[..end].to_vec())
            }
            Kind::Void => NumpyScalar::Void(item.to_vec()),
            Kind::DateTime | Kind::TimeDelta => {
                let count = TimeCount {
                    count: int_of(dtype, item)?,
                    unit: TimeUnit::of(dtype).ok()?,
                };
                if dtype.kind() == Kind::DateTime {
                    NumpyScalar::DateTime(count)
                } else {
                    NumpyScalar::TimeDelta(count)
                }
            }
            _ => return None,
        };
        Some(scalar)
    }

    /// numpy 2's `repr`: `np.float32(2.5)`, `np.True_`, `np.datetime64('2021-03-04')`;
    /// `None` for what numpy itself could not build (a generic datetime that is not NaT).
    pub fn repr(&self) -> Option<String> {
        let text = match self {
            NumpyScalar::Bool(true) => "np.True_".to_owned(),
            NumpyScalar::Bool(false) => "np.False_".to_owned(),
            NumpyScalar::Int { value, bits } => format!("np.int{bits}({value})"),
            NumpyScalar::UInt { value, bits } => format!("np.uint{bits}({value})"),
            NumpyScalar::Float { value, width } => format!(
                "np.float{}({})",
                width.bits(),
                numpy_float_text(*value, *width, true, false)
            ),
            NumpyScalar::Complex { real, imag, width } => {
                let name = format!("np.complex{}", 2 * width.bits());
                if *real == 0.0 && real.is_sign_positive() {
                    let imag = numpy_float_text(*imag, *width, false, false);
                    format!("{name}({imag}j)")
                } else {
                    let real = numpy_float_text(*real, *width, false, false);
                    let imag = numpy_float_text(*imag, *width, false, true);
                    format!("{name}({real}{imag}j)")
                }
            }
            NumpyScalar::Str(text) => format!("np.str_({})", str_repr(text)),
            NumpyScalar::Bytes(bytes) => format!("np.bytes_({})", bytes_repr(bytes)),
            NumpyScalar::Void(bytes) => {
                let hex: String = bytes.iter().map(|b| format!("\\x{b:02x}")).collect();
                format!("np.void(b'{hex}')")
            }
            NumpyScalar::DateTime(time) => datetime64_repr(time)?,
            NumpyScalar::TimeDelta(time) => {
                let count = if time.count == NAT {
                    "'NaT'".to_owned()
                } else {
                    time.count.to_string()
                };
                match &time.unit {
                    None => format!("np.timedelta64({count})"),
                    Some(unit) => format!("np.timedelta64({count},'{}')", unit.name()),
                }
            }
        };
        Some(text)
    }

    /// The element as an array summary shows it: Python's reprs of the values
    /// (`1.5`, `(1.0-2.0j)`, `'text'`), a time as its count and unit (`5[ns]`).
    pub fn element_text(&self) -> String {
        match self {
            NumpyScalar::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
            NumpyScalar::Int { value, .. } => value.to_string(),
            NumpyScalar::UInt { value, .. } => value.to_string(),
            NumpyScalar::Float { value, width } => python_float_text(*value, *width, true),
            NumpyScalar::Complex { real, imag, width } => {
                let sign = if imag.is_sign_negative() { "-" } else { "+" };
                format!(
                    "({}{sign}{}j)",
                    python_float_text(*real, *width, true),
                    python_float_text(imag.abs(), *width, true)
                )
            }
            NumpyScalar::Str(text) => str_repr(text),
            NumpyScalar::Bytes(bytes) => bytes_repr(bytes),
            NumpyScalar::Void(bytes) => {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                format!("0x{hex}")
            }
            NumpyScalar::DateTime(time) | NumpyScalar::TimeDelta(time) => match &time.unit {
                None => time.count.to_string(),
                Some(unit) => format!("{}[{}]", time.count, unit.name()),
            },
        }
    }

    /// The plain value the JSON output shows for the scalar: the Python value `.item()`
    /// gives for numbers, bools, strings and bytes (a float16/float32 as its shortest
    /// digits, what numpy prints), an ISO 8601 string for a datetime64 (numpy's `str`) or
    /// a timedelta64 (a duration, `P1DT2H`; a count for the generic unit), `None` for NaT.
    pub fn json_equivalent(&self) -> Value {
        match self {
            NumpyScalar::Bool(b) => Value::Bool(*b),
            NumpyScalar::Int { value, .. } => Value::Int(*value),
            NumpyScalar::UInt { value, .. } => Value::from(*value),
            NumpyScalar::Float { value, width } => Value::Float(shortest_as_double(*value, *width)),
            NumpyScalar::Complex { real, imag, width } => Value::from(Object::new(
                Construct::Reduce,
                Value::Global(Global::new("builtins", "complex")),
                vec![
                    Value::Float(shortest_as_double(*real, *width)),
                    Value::Float(shortest_as_double(*imag, *width)),
                ],
            )),
            NumpyScalar::Str(text) => Value::Str(text.clone()),
            NumpyScalar::Bytes(bytes) | NumpyScalar::Void(bytes) => Value::Bytes(bytes.clone()),
            NumpyScalar::DateTime(time) if time.count == NAT => Value::None,
            NumpyScalar::DateTime(time) => match datetime64_iso(time) {
                Some(text) => Value::Str(text),
                None => Value::Int(time.count),
            },
            NumpyScalar::TimeDelta(time) if time.count == NAT => Value::None,
            NumpyScalar::TimeDelta(time) => match timedelta64_iso(time) {
                Some(text) => Value::Str(text),
                None => Value::Int(time.count),
            },
        }
    }
}

/// One element of type `T` from bytes in `dtype`'s byte order, through the array crate.
fn element<T: Element>(dtype: &DType, item: &[u8]) -> Option<T> {
    let array = OwnedArray::new(dtype.clone(), Vec::new(), item.to_vec()).ok()?;
    array.to_vec::<T>().ok()?.first().copied()
}

/// An integer element of any width, sign-extended.
fn int_of(dtype: &DType, item: &[u8]) -> Option<i64> {
    let unsigned = uint_of(dtype, item)?;
    let shift = 64 - 8 * item.len() as u32;
    Some(((unsigned << shift) as i64) >> shift)
}

/// An unsigned integer element of 1 to 8 bytes.
fn uint_of(dtype: &DType, item: &[u8]) -> Option<u64> {
    if item.is_empty() || item.len() > 8 {
        return None;
    }
    let mut buf = [0u8; 8];
    if dtype.byte_order() == mmappickle::ByteOrder::Big {
        buf[8 - item.len()..].copy_from_slice(item);
        Some(u64::from_be_bytes(buf))
    } else {
        buf[..item.len()].copy_from_slice(item);
        Some(u64::from_le_bytes(buf))
    }
}

/// A float element of 2, 4 or 8 bytes, exactly, as an f64.
fn float_of(dtype: &DType, item: &[u8]) -> Option<f64> {
    match item.len() {
        2 => element::<f16>(dtype, item).map(f16::to_f64),
        4 => element::<f32>(dtype, item).map(f64::from),
        8 => element::<f64>(dtype, item),
        _ => None,
    }
}

/// numpy's ISO text of a datetime64 at its unit's precision (`2021-03-04T05:06`,
/// `NaT`); `None` for a generic unit with a value, or a count out of reach.
fn datetime64_iso(time: &TimeCount) -> Option<String> {
    if time.count == NAT {
        return Some("NaT".to_owned());
    }
    let unit = time.unit.as_ref()?;
    let n = i128::from(time.count).checked_mul(i128::from(unit.multiplier))?;
    let date = |days: i128| {
        let (year, month, day) = civil_from_days(days);
        format!("{year:04}-{month:02}-{day:02}")
    };
    let text = match unit.base {
        "Y" => format!("{:04}", n.checked_add(1970)?),
        "M" => format!("{:04}-{:02}", 1970 + n.div_euclid(12), n.rem_euclid(12) + 1),
        "W" => date(n.checked_mul(7)?),
        "D" => date(n),
        base => {
            // Units per second (10^fraction_digits) and how many of them make a day.
            let (per_second, fraction_digits): (i128, usize) = match base {
                "h" | "m" | "s" => (1, 0),
                "ms" => (1_000, 3),
                "us" => (1_000_000, 6),
                "ns" => (1_000_000_000, 9),
                "ps" => (1_000_000_000_000, 12),
                "fs" => (1_000_000_000_000_000, 15),
                _ => (1_000_000_000_000_000_000, 18),
            };
            let seconds_per_unit = match base {
                "h" => 3600,
                "m" => 60,
                _ => 1,
            };
            let per_day = 86_400 * per_second / seconds_per_unit;
            let (days, in_day) = (n.div_euclid(per_day), n.rem_euclid(per_day));
            let seconds = in_day / per_second * seconds_per_unit;
            let mut text = format!("{}T{:02}", date(days), seconds / 3600);
            if base != "h" {
                text.push_str(&format!(":{:02}", seconds / 60 % 60));
            }
            if base != "h" && base != "m" {
                text.push_str(&format!(":{:02}", seconds % 60));
            }
            if fraction_digits > 0 {
                let fraction = in_day % per_second;
                text.push_str(&format!(".{fraction:0fraction_digits$}"));
            }
            text
        }
    };
    Some(text)
}

/// numpy 2's repr of a datetime64: the unit is left out where the text implies it.
fn datetime64_repr(time: &TimeCount) -> Option<String> {
    let iso = datetime64_iso(time)?;
    let implied = match &time.unit {
        None => true,
        Some(unit) => unit.multiplier == 1 && unit.base != "h",
    };
    let unit = time
        .unit
        .as_ref()
        .map_or("generic".to_owned(), TimeUnit::name);
    Some(if time.count != NAT && implied {
        format!("np.datetime64('{iso}')")
    } else {
        format!("np.datetime64('{iso}','{unit}')")
    })
}

/// A timedelta64 as an ISO 8601 duration; `None` for the generic unit (a bare count).
fn timedelta64_iso(time: &TimeCount) -> Option<String> {
    let unit = time.unit.as_ref()?;
    let n = i128::from(time.count).checked_mul(i128::from(unit.multiplier))?;
    let unit = match unit.base {
        "Y" => DurationUnit::Years,
        "M" => DurationUnit::Months,
        "W" => DurationUnit::Seconds(604_800),
        "D" => DurationUnit::Seconds(86_400),
        "h" => DurationUnit::Seconds(3_600),
        "m" => DurationUnit::Seconds(60),
        "s" => DurationUnit::Seconds(1),
        "ms" => DurationUnit::Fraction(3),
        "us" => DurationUnit::Fraction(6),
        "ns" => DurationUnit::Fraction(9),
        "ps" => DurationUnit::Fraction(12),
        "fs" => DurationUnit::Fraction(15),
        _ => DurationUnit::Fraction(18),
    };
    iso_duration(n, unit)
}

/// The modules numpy's pickles name its functions from: numpy 1.x and 2.x.
const MULTIARRAY: [&str; 2] = ["numpy.core.multiarray", "numpy._core.multiarray"];

fn is_global(value: &Value, modules: &[&str], name: &str) -> bool {
    matches!(value, Value::Global(global) if modules.contains(&global.module.as_str()) && global.name == name)
}

/// An array of `dtype` and `shape` with the bytes `raw`, as numpy pickles one: what the
/// array crate decodes. A scalar is the item of the 0-d array of its dtype and bytes; a
/// dtype alone, that of an empty array.
fn zero_d_array(dtype: Value, shape: Vec<Value>, raw: Value) -> Value {
    let mut array = Object::new(
        Construct::Reduce,
        Value::Global(Global::new(MULTIARRAY[0], "_reconstruct")),
        vec![
            Value::Global(Global::new("numpy", "ndarray")),
            Value::Tuple(vec![Value::Int(0)]),
            Value::Bytes(b"b".to_vec()),
        ],
    );
    array.state = Some(Value::Tuple(vec![
        Value::Int(1),
        Value::Tuple(shape),
        dtype,
        Value::Bool(false),
        raw,
    ]));
    Value::from(array)
}

/// The scalar a `numpy.core.multiarray.scalar(dtype, raw)` object stands for; `None` for
/// anything else, an unknown dtype or bytes that are not one element of it.
pub fn numpy_scalar(object: &Object) -> Option<NumpyScalar> {
    if object.construct != Construct::Reduce || !is_global(&object.callable, &MULTIARRAY, "scalar")
    {
        return None;
    }
    let [dtype, raw] = object.args.as_slice() else {
        return None;
    };
    if !matches!(raw, Value::Bytes(_)) {
        return None;
    }
    let array =
        OwnedArray::from_value(&zero_d_array(dtype.clone(), Vec::new(), raw.clone()))?.ok()?;
    NumpyScalar::decode(&array.dtype, &array.data)
}

/// The dtype a `numpy.dtype(...)` object stands for, when it is a plain one (no fields,
/// no subarray, no metadata but a time unit).
pub fn numpy_dtype(object: &Object) -> Option<DType> {
    if object.construct != Construct::Reduce || !is_global(&object.callable, &["numpy"], "dtype") {
        return None;
    }
    // (version, byte order, subarray, names, fields, item size, alignment, flags[, metadata])
    let Some(Value::Tuple(state)) = &object.state else {
        return None;
    };
    if !matches!(state.get(2), None | Some(Value::None)) {
        return None;
    }
    let dtype = Value::Object(Box::new(object.clone()));
    let empty = zero_d_array(dtype, vec![Value::Int(0)], Value::Bytes(Vec::new()));
    let dtype = OwnedArray::from_value(&empty)?.ok()?.dtype;
    let is_time = matches!(dtype.kind(), Kind::DateTime | Kind::TimeDelta);
    if !is_time && !matches!(state.get(8), None | Some(Value::None)) {
        return None;
    }
    (dtype.kind() != Kind::Other).then_some(dtype)
}

/// numpy 2's repr of a dtype: `dtype('float64')`, `dtype('>i4')`, `dtype('<U5')`.
pub fn dtype_repr(dtype: &DType) -> String {
    let name = match dtype.kind() {
        Kind::Bool => "bool".to_owned(),
        Kind::Int | Kind::UInt | Kind::Float | Kind::Complex if dtype.is_native() => dtype.name(),
        Kind::Bytes | Kind::Void => dtype.descr(),
        _ => dtype.type_str(),
    };
    format!("dtype({})", str_repr(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dtype(name: &str) -> DType {
        DType::parse(name).unwrap()
    }

    fn repr(name: &str, item: &[u8]) -> Option<String> {
        NumpyScalar::decode(&dtype(name), item)?.repr()
    }

    #[test]
    fn byte_order_is_the_dtypes() {
        assert_eq!(repr(">i4", &(-3i32).to_be_bytes()).unwrap(), "np.int32(-3)");
        assert_eq!(repr("<u2", &[0xff, 0x7f]).unwrap(), "np.uint16(32767)");
        assert_eq!(
            repr(">f8", &0.25f64.to_be_bytes()).unwrap(),
            "np.float64(0.25)"
        );
        assert_eq!(repr(">f2", &[0x3c, 0x00]).unwrap(), "np.float16(1.0)");
        let complex: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect();
        assert_eq!(repr(">c8", &complex).unwrap(), "np.complex64(1.5-2j)");
        let text: Vec<u8> = "é\0"
            .chars()
            .flat_map(|c| (c as u32).to_be_bytes())
            .collect();
        assert_eq!(repr(">U2", &text).unwrap(), "np.str_('é')");
    }

    #[test]
    fn what_numpy_cannot_hold_is_not_decoded() {
        // Wrong byte count, float128, a code point beyond Unicode.
        assert_eq!(NumpyScalar::decode(&dtype("<f8"), &[0; 4]), None);
        assert_eq!(NumpyScalar::decode(&dtype("<f16"), &[0; 16]), None);
        assert_eq!(NumpyScalar::decode(&dtype("<U1"), &[0xff; 4]), None);
        // A datetime with the generic unit has no date.
        let generic = NumpyScalar::decode(&dtype("<M8"), &5i64.to_le_bytes()).unwrap();
        assert_eq!(generic.repr(), None);
        assert_eq!(
            NumpyScalar::decode(&dtype("<M8"), &i64::MIN.to_le_bytes())
                .unwrap()
                .repr()
                .unwrap(),
            "np.datetime64('NaT','generic')"
        );
    }

    #[test]
    fn durations_are_iso_8601() {
        let delta = |name: &str, count: i64| {
            NumpyScalar::decode(&dtype(name), &count.to_le_bytes())
                .unwrap()
                .json_equivalent()
        };
        assert_eq!(delta("<m8[s]", 90_061), Value::from("P1DT1H1M1S"));
        assert_eq!(delta("<m8[ms]", -1_500), Value::from("-PT1.5S"));
        assert_eq!(delta("<m8[2Y]", 3), Value::from("P6Y"));
        assert_eq!(delta("<m8", 7), Value::Int(7));
        assert_eq!(delta("<m8[ns]", i64::MIN), Value::None);
    }
}
