//! A readable, Python-like rendering of values: what `repr()` would print, with the
//! objects Python users know as Python shows them (numpy 2's scalars, datetimes, ...),
//! other objects as the calls that would build them, and arrays summarised.

use mmappickle::{Construct, Object, Value};

use crate::arrays;
use crate::known_forms;
use crate::scalars::{bytes_repr, float_repr, push_str_repr};

/// `value` the way Python's `repr` would print it.
pub fn repr(value: &Value) -> String {
    let mut out = String::new();
    push_repr(value, &mut out);
    out
}

/// [`repr`] of `value`, pushed onto `out`.
pub fn push_repr(value: &Value, out: &mut String) {
    if let Some(summary) = arrays::array_repr(value) {
        out.push_str(&summary);
        return;
    }
    match value {
        Value::None => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(n) => out.push_str(itoa::Buffer::new().format(*n)),
        Value::BigInt(big) => out.push_str(&big.to_decimal()),
        Value::Float(x) => out.push_str(&float_repr(*x)),
        Value::Str(s) => push_str_repr(s, out),
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
        Value::Object(object) => {
            let shown = known_forms::recognise(object).and_then(|known| known.push_repr(out));
            if shown.is_none() {
                write_object(object, out);
            }
        }
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
        push_repr(item, out);
    }
    out.push_str(close);
}

fn write_pairs(pairs: &[(Value, Value)], out: &mut String) {
    out.push('{');
    for (idx, (key, value)) in pairs.iter().enumerate() {
        if idx > 0 {
            out.push_str(", ");
        }
        push_repr(key, out);
        out.push_str(": ");
        push_repr(value, out);
    }
    out.push('}');
}

/// An object as the calls that build it: `f(args)`, `cls.__new__(cls, args)`,
/// then `.extend([...])`, `.update({...})` and `.__setstate__(state)` for what
/// APPENDS, SETITEMS and BUILD applied to it.
fn write_object(object: &Object, out: &mut String) {
    let mut callable = String::new();
    push_repr(&object.callable, &mut callable);
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
        push_repr(arg, out);
    }
    for (idx, (key, value)) in object.kwargs.iter().enumerate() {
        if idx > 0 || is_new || !object.args.is_empty() {
            out.push_str(", ");
        }
        match key {
            Value::Str(name) => out.push_str(name),
            other => {
                out.push_str("**{");
                push_repr(other, out);
                out.push_str(": ...}");
            }
        }
        out.push('=');
        push_repr(value, out);
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
        push_repr(state, out);
        out.push(')');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmappickle::Global;

    #[test]
    fn containers_and_objects_read_like_python() {
        // A class this module does not know: the calls that build it.
        let mut registry = Object::new(
            Construct::Reduce,
            Value::Global(Global::new("m", "Registry")),
            vec![],
        );
        registry.dict_items = vec![(Value::from("a"), Value::Int(1))];
        let value = Value::Dict(vec![
            (Value::from("t"), Value::Tuple(vec![Value::Int(1)])),
            (Value::from("s"), Value::Set(vec![])),
            (Value::from("f"), Value::FrozenSet(vec![Value::None])),
            (Value::from("b"), Value::ByteArray(b"x".to_vec())),
            (Value::from("o"), Value::Object(Box::new(registry))),
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
             'o': m.Registry().update({'a': 1}), 'n': m.C.__new__(m.C, True)}"
        );
    }
}
