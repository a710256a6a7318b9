//! A readable, Python-like rendering of values: what `repr()` would print,
//! with objects shown as the calls that would build them and arrays summarised.

use mmappickle::{Construct, Object, Value};

use crate::arrays;

/// `value` the way Python's `repr` would print it.
pub fn repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(value, &mut out);
    out
}

fn write_repr(value: &Value, out: &mut String) {
    if let Some(summary) = arrays::array_repr(value) {
        out.push_str(&summary);
        return;
    }
    match value {
        Value::None => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(n) => out.push_str(&n.to_string()),
        Value::BigInt(big) => out.push_str(&big.to_decimal()),
        Value::Float(x) => out.push_str(&float_repr(*x)),
        Value::Str(s) => out.push_str(&str_repr(s)),
        Value::Bytes(b) => out.push_str(&bytes_repr(b)),
        Value::ByteArray(b) => {
            out.push_str("bytearray(");
            out.push_str(&bytes_repr(b));
            out.push(')');
        }
        Value::List(items) => write_seq(items, "[", "]", out),
        Value::Tuple(items) if items.len() == 1 => write_seq(items, "(", ",)", out),
        Value::Tuple(items) => write_seq(items, "(", ")", out),
        Value::Set(items) if items.is_empty() => out.push_str("set()"),
        Value::Set(items) => write_seq(items, "{", "}", out),
        Value::FrozenSet(items) if items.is_empty() => out.push_str("frozenset()"),
        Value::FrozenSet(items) => write_seq(items, "frozenset({", "})", out),
        Value::Dict(pairs) => write_pairs(pairs, out),
        Value::Global(global) => {
            out.push_str(&global.module);
            out.push('.');
            out.push_str(&global.name);
        }
        Value::Object(object) => write_object(object, out),
        #[allow(unreachable_patterns)]
        other => out.push_str(&format!("{other:?}")),
    }
}

fn write_seq(items: &[Value], open: &str, close: &str, out: &mut String) {
    out.push_str(open);
    for (idx, item) in items.iter().enumerate() {
        if idx > 0 {
            out.push_str(", ");
        }
        write_repr(item, out);
    }
    out.push_str(close);
}

fn write_pairs(pairs: &[(Value, Value)], out: &mut String) {
    out.push('{');
    for (idx, (key, value)) in pairs.iter().enumerate() {
        if idx > 0 {
            out.push_str(", ");
        }
        write_repr(key, out);
        out.push_str(": ");
        write_repr(value, out);
    }
    out.push('}');
}

/// An object as the calls that build it: `f(args)`, `cls.__new__(cls, args)`,
/// then `.extend([...])`, `.update({...})` and `.__setstate__(state)` for what
/// APPENDS, SETITEMS and BUILD applied to it.
fn write_object(object: &Object, out: &mut String) {
    let mut callable = String::new();
    write_repr(&object.callable, &mut callable);
    out.push_str(&callable);
    let is_new = matches!(object.construct, Construct::NewObj | Construct::NewObjEx);
    if is_new {
        out.push_str(".__new__(");
        out.push_str(&callable);
    } else {
        out.push('(');
    }
    for (idx, arg) in object.args.iter().enumerate() {
        if idx > 0 || is_new {
            out.push_str(", ");
        }
        write_repr(arg, out);
    }
    for (idx, (key, value)) in object.kwargs.iter().enumerate() {
        if idx > 0 || is_new || !object.args.is_empty() {
            out.push_str(", ");
        }
        match key {
            Value::Str(name) => out.push_str(name),
            other => {
                out.push_str("**{");
                write_repr(other, out);
                out.push_str(": ...}");
            }
        }
        out.push('=');
        write_repr(value, out);
    }
    out.push(')');
    if !object.list_items.is_empty() {
        out.push_str(".extend(");
        write_seq(&object.list_items, "[", "]", out);
        out.push(')');
    }
    if !object.dict_items.is_empty() {
        out.push_str(".update(");
        write_pairs(&object.dict_items, out);
        out.push(')');
    }
    if let Some(state) = &object.state {
        out.push_str(".__setstate__(");
        write_repr(state, out);
        out.push(')');
    }
}

/// Python's `repr(float)`: shortest round-trip digits, exponent form below
/// 1e-4 and from 1e16 on, with a signed two-digit exponent.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `Debug` picks the same digits and the same thresholds as Python;
    // only the exponent is spelled differently (`1e16` against `1e+16`).
    let text = format!("{x:?}");
    match text.split_once('e') {
        None => text,
        Some((mantissa, exponent)) => {
            let (sign, digits) = match exponent.strip_prefix('-') {
                Some(digits) => ('-', digits),
                None => ('+', exponent),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
    }
}

/// Python's `repr(str)`: single quotes unless the text has one and no double.
pub fn str_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            // What Python's `str.isprintable` rejects among Latin-1.
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) || c == '\u{ad}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr(bytes)`.
pub fn bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::with_capacity(bytes.len() + 3);
    out.push('b');
    out.push(char::from(quote));
    for &byte in bytes {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b if b == quote => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push(char::from(quote));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmappickle::Global;

    #[test]
    fn floats_print_as_python_does() {
        for (x, python) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (1e308, "1e+308"),
            (5e-324, "5e-324"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(float_repr(x), python, "{x}");
        }
    }

    #[test]
    fn strings_and_bytes_quote_as_python_does() {
        assert_eq!(str_repr("it's"), "\"it's\"");
        assert_eq!(str_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(str_repr("tab\there\x01é"), "'tab\\there\\x01é'");
        assert_eq!(bytes_repr(b"\x00ab'"), "b\"\\x00ab'\"");
        assert_eq!(bytes_repr(b"\\\xff"), "b'\\\\\\xff'");
    }

    #[test]
    fn containers_and_objects_read_like_python() {
        let mut ordered = Object::new(
            Construct::Reduce,
            Value::Global(Global::new("collections", "OrderedDict")),
            vec![],
        );
        ordered.dict_items = vec![(Value::from("a"), Value::Int(1))];
        let value = Value::Dict(vec![
            (Value::from("t"), Value::Tuple(vec![Value::Int(1)])),
            (Value::from("s"), Value::Set(vec![])),
            (Value::from("f"), Value::FrozenSet(vec![Value::None])),
            (Value::from("b"), Value::ByteArray(b"x".to_vec())),
            (Value::from("o"), Value::Object(Box::new(ordered))),
            (
                Value::from("n"),
                Value::Object(Box::new(Object::new(
                    Construct::NewObj,
                    Value::Global(Global::new("m", "C")),
                    vec![Value::Bool(true)],
                ))),
            ),
        ]);
        assert_eq!(
            repr(&value),
            "{'t': (1,), 's': set(), 'f': frozenset({None}), 'b': bytearray(b'x'), \
             'o': collections.OrderedDict().update({'a': 1}), 'n': m.C.__new__(m.C, True)}"
        );
    }
}
