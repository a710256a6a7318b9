//! The `REDUCE` forms of Python builtins that `loads` turns into native values.
//!
//! CPython has no opcode for `bytes` before protocol 3, for `bytearray`
//! before protocol 5, or for `set` / `frozenset` before protocol 4: it
//! pickles them as calls of well-known, side-effect-free callables. An
//! object node of exactly such a call (the exact callable, exactly the
//! argument count and types CPython writes, no keyword arguments and nothing
//! applied afterwards) is that builtin value; any other shape stays an
//! object node.

use crate::{Construct, Global, Object, Value};

/// The callables whose calls have a native value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Callable {
    /// `builtins.bytes` (`__builtin__.bytes` at protocols 0-2).
    Bytes,
    /// `builtins.bytearray`.
    ByteArray,
    /// `builtins.set`.
    Set,
    /// `builtins.frozenset`.
    FrozenSet,
    /// `_codecs.encode`, how protocols 0-2 pickle a non-empty `bytes`.
    CodecsEncode,
}

fn callable_of(global: &Global) -> Option<Callable> {
    let name = global.name.as_str();
    match global.module.as_str() {
        // Protocols 0-2 write Python 2's module name (`fix_imports`).
        "builtins" | "__builtin__" => match name {
            "bytes" => Some(Callable::Bytes),
            "bytearray" => Some(Callable::ByteArray),
            "set" => Some(Callable::Set),
            "frozenset" => Some(Callable::FrozenSet),
            _ => None,
        },
        "_codecs" if name == "encode" => Some(Callable::CodecsEncode),
        _ => None,
    }
}

/// Whether `encoding` names Python's latin-1 codec as CPython spells it in
/// these pickles (`'latin1'` for `_codecs.encode`, `'latin-1'` in Python 2's
/// `bytearray` form).
fn is_latin1(encoding: &str) -> bool {
    matches!(encoding, "latin1" | "latin-1")
}

/// The latin-1 encoding of `text`, if every char is below 256.
fn latin1_bytes(text: &str) -> Option<Vec<u8>> {
    text.chars().map(|ch| u8::try_from(ch).ok()).collect()
}

/// `value` itself, or the native value if it is an object node of one of
/// the builtin calls above.
#[inline]
pub(crate) fn native_value(value: Value) -> Value {
    match value {
        Value::Object(object) => native_object(object),
        other => other,
    }
}

fn native_object(mut object: Box<Object>) -> Value {
    let Object {
        construct: Construct::Reduce,
        callable: Value::Global(global),
        args,
        kwargs,
        list_items,
        dict_items,
        state: None,
    } = &mut *object
    else {
        return Value::Object(object);
    };
    if !kwargs.is_empty() || !list_items.is_empty() || !dict_items.is_empty() {
        return Value::Object(object);
    }
    let Some(callable) = callable_of(global) else {
        return Value::Object(object);
    };
    let native = match (callable, args.as_mut_slice()) {
        (Callable::Bytes, []) => Some(Value::Bytes(Vec::new())),
        (Callable::CodecsEncode, [Value::Str(text), Value::Str(encoding)])
            if is_latin1(encoding) =>
        {
            latin1_bytes(text).map(Value::Bytes)
        }
        (Callable::ByteArray, []) => Some(Value::ByteArray(Vec::new())),
        (Callable::ByteArray, [Value::Bytes(bytes)]) => {
            Some(Value::ByteArray(std::mem::take(bytes)))
        }
        (Callable::ByteArray, [Value::Str(text), Value::Str(encoding)]) if is_latin1(encoding) => {
            latin1_bytes(text).map(Value::ByteArray)
        }
        (Callable::Set, [Value::List(items)]) => Some(Value::Set(std::mem::take(items))),
        (Callable::FrozenSet, [Value::List(items)]) => {
            Some(Value::FrozenSet(std::mem::take(items)))
        }
        _ => None,
    };
    native.unwrap_or(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(module: &str, name: &str, args: Vec<Value>) -> Value {
        let callable = Value::Global(Global::new(module, name));
        Value::from(Object::new(Construct::Reduce, callable, args))
    }

    // Every form CPython 3.11 writes at protocols 0 to 4 (see the golden cases).
    #[test]
    fn builtin_calls_become_native() {
        let latin1 = |text: &str, encoding: &str| vec![Value::from(text), Value::from(encoding)];
        let cases = [
            (call("__builtin__", "bytes", vec![]), Value::bytes([])),
            (
                call("_codecs", "encode", latin1("a\u{ff}", "latin1")),
                Value::bytes(*b"a\xff"),
            ),
            (call("builtins", "bytearray", vec![]), Value::bytearray([])),
            (
                call("builtins", "bytearray", vec![Value::bytes(*b"x")]),
                Value::bytearray(*b"x"),
            ),
            (
                call("__builtin__", "bytearray", latin1("\u{e9}", "latin-1")),
                Value::bytearray([0xe9]),
            ),
            (
                call("builtins", "set", vec![Value::from(vec![1, 2])]),
                Value::Set(vec![Value::Int(1), Value::Int(2)]),
            ),
            (
                call(
                    "__builtin__",
                    "frozenset",
                    vec![Value::from(Vec::<Value>::new())],
                ),
                Value::FrozenSet(vec![]),
            ),
        ];
        for (object, native) in cases {
            assert_eq!(native_value(object.clone()), native, "{object}");
        }
    }

    // Anything that is not exactly such a call stays the object node it is.
    #[test]
    fn other_shapes_stay_objects() {
        let mut with_state = Object::new(
            Construct::Reduce,
            Value::Global(Global::new("builtins", "set")),
            vec![Value::from(vec![1])],
        );
        with_state.state = Some(Value::None);
        let mut with_items = with_state.clone();
        with_items.state = None;
        with_items.list_items.push(Value::Int(2));
        let new_obj = Object::new(
            Construct::NewObj,
            Value::Global(Global::new("builtins", "set")),
            vec![],
        );
        let cases = [
            Value::from(with_state),
            Value::from(with_items),
            Value::from(new_obj),
            call("builtins", "set", vec![]),
            call("builtins", "set", vec![Value::tuple([1])]),
            call(
                "builtins",
                "frozenset",
                vec![Value::from(vec![1]), Value::None],
            ),
            call("builtins", "bytes", vec![Value::from(vec![1])]),
            call("builtins", "bytearray", vec![Value::from("x")]),
            call(
                "builtins",
                "bytearray",
                vec![Value::bytes(*b"x"), Value::None],
            ),
            call(
                "_codecs",
                "encode",
                vec![Value::from("\u{100}"), Value::from("latin1")],
            ),
            call(
                "_codecs",
                "encode",
                vec![Value::from("a"), Value::from("utf-8")],
            ),
            call("_codecs", "encode", vec![Value::from("a")]),
            call(
                "codecs",
                "encode",
                vec![Value::from("a"), Value::from("latin1")],
            ),
            call("collections", "set", vec![Value::from(vec![1])]),
            call("builtins", "list", vec![Value::from(vec![1])]),
        ];
        for object in cases {
            assert_eq!(native_value(object.clone()), object, "{object}");
        }
    }
}
