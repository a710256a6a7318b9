//! Objects that Python users know by their `repr`, recognised in the calls a pickle
//! records: numpy scalars and dtypes, `datetime` objects, `Decimal`, `complex`,
//! `OrderedDict`. Shown as Python shows them (numpy 2's reprs), and in the JSON output
//! by their plain value where there is one (a number, an ISO 8601 string). Anything
//! else, or a malformed one (bytes that are not one element of the dtype, a month 13),
//! stays the call it is.

mod datetime;
mod numpy;

use mmappickle::{Construct, DType, Object, Value};

use self::datetime::{python_time, PythonTime};
pub use self::numpy::NumpyScalar;
use crate::pretty::push_repr;
use crate::scalars::complex_repr;

/// A recognised object.
#[derive(Debug, Clone, PartialEq)]
pub enum Known<'a> {
    /// A numpy scalar: `np.float32(2.5)`.
    NumpyScalar(NumpyScalar),
    /// A `numpy.dtype`: `dtype('float64')`.
    NumpyDType(DType),
    /// An object of the `datetime` module (or a `zoneinfo.ZoneInfo`).
    Time(PythonTime<'a>),
    /// `decimal.Decimal`, its text as `str()` gives it.
    Decimal(&'a str),
    /// `complex`.
    Complex {
        /// The real part.
        real: f64,
        /// The imaginary part.
        imag: f64,
    },
    /// `collections.OrderedDict`, its items in order.
    OrderedDict(&'a [(Value, Value)]),
}

/// What `object` is, when it is one of the objects recognised here.
pub fn recognise(object: &Object) -> Option<Known<'_>> {
    // The callable's module tells which recogniser applies: most objects are none of these.
    let module = match &object.callable {
        Value::Global(global) => global.module.as_str(),
        Value::Object(_) => "zoneinfo", // getattr(zoneinfo.ZoneInfo, "_unpickle")
        _ => return None,
    };
    match module {
        "numpy.core.multiarray" | "numpy._core.multiarray" => {
            numpy::numpy_scalar(object).map(Known::NumpyScalar)
        }
        "numpy" => numpy::numpy_dtype(object).map(Known::NumpyDType),
        "datetime" | "zoneinfo" => python_time(object).map(Known::Time),
        "decimal" => decimal(object).map(Known::Decimal),
        "builtins" | "__builtin__" => complex(object),
        "collections" => ordered_dict(object).map(Known::OrderedDict),
        _ => None,
    }
}

/// Whether `object` is a call and nothing more, of `module.name`.
fn is_plain_call(object: &Object, modules: &[&str], name: &str) -> bool {
    matches!(&object.callable, Value::Global(global) if modules.contains(&global.module.as_str()) && global.name == name)
        && object.kwargs.is_empty()
        && object.list_items.is_empty()
        && object.dict_items.is_empty()
        && object.state.is_none()
}

/// `decimal.Decimal('1.10')`: its text, when it is a number as `str(Decimal)` writes one.
fn decimal(object: &Object) -> Option<&str> {
    if object.construct != Construct::Reduce || !is_plain_call(object, &["decimal"], "Decimal") {
        return None;
    }
    let [Value::Str(text)] = object.args.as_slice() else {
        return None;
    };
    is_decimal_text(text).then_some(text.as_str())
}

/// `[sign] (digits [. digits] | . digits) [E [sign] digits]`, `Infinity`, `NaN` or `sNaN`
/// with optional diagnostic digits.
fn is_decimal_text(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if unsigned == "Infinity" {
        return true;
    }
    if let Some(payload) = unsigned
        .strip_prefix("NaN")
        .or_else(|| unsigned.strip_prefix("sNaN"))
    {
        return all_digits(payload);
    }
    let (mantissa, exponent) = match unsigned.split_once(['E', 'e']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mantissa_ok =
        all_digits(whole) && all_digits(fraction) && !(whole.is_empty() && fraction.is_empty());
    let exponent_ok = exponent.is_none_or(|exponent| {
        let digits = exponent.strip_prefix(['-', '+']).unwrap_or(exponent);
        !digits.is_empty() && all_digits(digits)
    });
    mantissa_ok && exponent_ok
}

/// `complex(1.5, -2.0)`, reduced (protocols 0, 1, 4) or `__new__` (protocols 2, 3).
fn complex(object: &Object) -> Option<Known<'_>> {
    if !matches!(object.construct, Construct::Reduce | Construct::NewObj)
        || !is_plain_call(object, &["builtins", "__builtin__"], "complex")
    {
        return None;
    }
    match object.args.as_slice() {
        [Value::Float(real), Value::Float(imag)] => Some(Known::Complex {
            real: *real,
            imag: *imag,
        }),
        _ => None,
    }
}

/// `collections.OrderedDict()` with its items set afterwards.
fn ordered_dict(object: &Object) -> Option<&[(Value, Value)]> {
    let is_ordered_dict =
        matches!(&object.callable, Value::Global(global) if global.name == "OrderedDict");
    let plain = object.construct == Construct::Reduce
        && is_ordered_dict
        && object.args.is_empty()
        && object.kwargs.is_empty()
        && object.list_items.is_empty()
        && object.state.is_none();
    plain.then_some(object.dict_items.as_slice())
}

impl Known<'_> {
    /// Python's `repr` (numpy 2's for numpy objects; `None` when there is none, as for a
    /// datetime64 of the generic unit that is not NaT).
    pub fn push_repr(&self, out: &mut String) -> Option<()> {
        match self {
            Known::NumpyScalar(scalar) => out.push_str(&scalar.repr()?),
            Known::NumpyDType(dtype) => out.push_str(&numpy::dtype_repr(dtype)),
            Known::Time(time) => time.push_repr(out),
            Known::Decimal(text) => {
                out.push_str("Decimal('");
                out.push_str(text);
                out.push_str("')");
            }
            Known::Complex { real, imag } => out.push_str(&complex_repr(*real, *imag)),
            // As Python before 3.12 writes it: a list of pairs.
            Known::OrderedDict([]) => out.push_str("OrderedDict()"),
            Known::OrderedDict(items) => {
                out.push_str("OrderedDict([");
                for (idx, (key, value)) in items.iter().enumerate() {
                    if idx > 0 {
                        out.push_str(", ");
                    }
                    out.push('(');
                    push_repr(key, out);
                    out.push_str(", ");
                    push_repr(value, out);
                    out.push(')');
                }
                out.push_str("])");
            }
        }
        Some(())
    }

    /// The plain value the JSON output shows instead of the object, if any: numpy
    /// scalars as their Python values, dates, times and durations as ISO 8601 text, a
    /// Decimal as its exact text. `None` keeps the object (a dtype, a complex, an
    /// OrderedDict, a time zone, a datetime in a zone whose offset needs its rules).
    pub fn json_equivalent(&self) -> Option<Value> {
        match self {
            Known::NumpyScalar(scalar) => Some(scalar.json_equivalent()),
            Known::Time(time) => time.iso().map(Value::Str),
            Known::Decimal(text) => Some(Value::from(*text)),
            Known::NumpyDType(_) | Known::Complex { .. } | Known::OrderedDict(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_texts() {
        for good in [
            "1.10",
            "-0",
            "1.2E+10",
            "0E-7",
            ".5",
            "5.",
            "Infinity",
            "-Infinity",
            "NaN",
            "sNaN12",
        ] {
            assert!(is_decimal_text(good), "{good}");
        }
        for bad in ["", ".", "1.2.3", "1e", "NaNx", "inf", "1_000", "0x10", "1 "] {
            assert!(!is_decimal_text(bad), "{bad}");
        }
    }
}
