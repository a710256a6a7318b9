//! The value tree that the unpickler builds and the pickler writes.

use std::fmt;

/// A Python value as a pickle describes it, without running anything.
///
/// Python objects that a real unpickler would build by calling code (a
/// `datetime`, an `OrderedDict`, a numpy array) stay [`Value::Object`] nodes
/// that record the callable, its arguments, and what was applied afterwards.
///
/// Equality compares floats by bit pattern, so a NaN equals the same NaN and
/// `loads(dumps(v)) == v` holds for every value.
#[derive(Debug, Clone)]
pub enum Value {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An `int` that fits in an `i64`.
    Int(i64),
    /// An `int` that does not fit in an `i64` (always outside the `i64` range).
    BigInt(BigInt),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `bytes`.
    Bytes(Vec<u8>),
    /// A `bytearray`.
    ByteArray(Vec<u8>),
    /// A `list`.
    List(Vec<Value>),
    /// A `tuple`.
    Tuple(Vec<Value>),
    /// A `dict`, in insertion order; keys may be any value.
    Dict(Vec<(Value, Value)>),
    /// A `set`, in pickle order.
    Set(Vec<Value>),
    /// A `frozenset`, in pickle order.
    FrozenSet(Vec<Value>),
    /// A reference to a module attribute (`GLOBAL` / `STACK_GLOBAL`), never imported.
    Global(Global),
    /// An object that Python would build by calling code.
    Object(Box<Object>),
}

/// A `(module, name)` pair naming a Python global.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Global {
    /// The module, e.g. `"collections"`.
    pub module: String,
    /// The attribute, e.g. `"OrderedDict"`.
    pub name: String,
}

impl Global {
    /// A global from its module and name.
    pub fn new(module: impl Into<String>, name: impl Into<String>) -> Self {
        Global {
            module: module.into(),
            name: name.into(),
        }
    }
}

/// How an [`Object`] was constructed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Construct {
    /// `REDUCE`: `callable(*args)`.
    Reduce,
    /// `NEWOBJ`: `cls.__new__(cls, *args)`.
    NewObj,
    /// `NEWOBJ_EX`: `cls.__new__(cls, *args, **kwargs)`.
    NewObjEx,
    /// `INST` (protocol 0): `module.name(*args)`.
    Inst,
    /// `OBJ` (protocol 1): `cls(*args)`.
    Obj,
}

/// An object node: what Python would build by calling code, recorded instead.
///
/// The pickler writes it back in CPython's order: callable, arguments,
/// construction opcode, then `list_items` (`APPENDS`), `dict_items`
/// (`SETITEMS`), then `state` (`BUILD`).
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// How it was constructed.
    pub construct: Construct,
    /// The callable or class (usually a [`Value::Global`]).
    pub callable: Value,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments (`NEWOBJ_EX` only).
    pub kwargs: Vec<(Value, Value)>,
    /// Items appended afterwards (`APPEND` / `APPENDS` onto the object).
    pub list_items: Vec<Value>,
    /// Items set afterwards (`SETITEM` / `SETITEMS` onto the object).
    pub dict_items: Vec<(Value, Value)>,
    /// The state given to `BUILD`, if any.
    pub state: Option<Value>,
}

impl Object {
    /// An object built by `construct` from `callable` and `args`, with nothing applied yet.
    pub fn new(construct: Construct, callable: Value, args: Vec<Value>) -> Self {
        Object {
            construct,
            callable,
            args,
            kwargs: Vec::new(),
            list_items: Vec::new(),
            dict_items: Vec::new(),
            state: None,
        }
    }
}

/// An integer outside the `i64` range, as Python's `LONG1` / `LONG4` store it:
/// little-endian two's complement bytes, minimal (no redundant sign byte).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BigInt {
    le_bytes: Vec<u8>,
}

impl BigInt {
    /// The integer whose little-endian two's complement bytes are `le_bytes`,
    /// as a [`Value`]: [`Value::Int`] when it fits in an `i64`, else [`Value::BigInt`].
    /// An empty slice is zero.
    pub fn value_from_le_bytes(le_bytes: &[u8]) -> Value {
        let minimal = minimal_twos_complement(le_bytes);
        if minimal.len() <= 8 {
            let fill = if minimal.last().is_some_and(|b| b & 0x80 != 0) {
                0xff
            } else {
                0
            };
            let mut buf = [fill; 8];
            buf[..minimal.len()].copy_from_slice(minimal);
            Value::Int(i64::from_le_bytes(buf))
        } else {
            Value::BigInt(BigInt {
                le_bytes: minimal.to_vec(),
            })
        }
    }

    /// The minimal little-endian two's complement bytes (what `LONG1` / `LONG4` carry).
    pub fn to_le_bytes(&self) -> &[u8] {
        &self.le_bytes
    }

    /// Whether the integer is negative.
    pub fn is_negative(&self) -> bool {
        self.le_bytes.last().is_some_and(|b| b & 0x80 != 0)
    }
}

/// Drops redundant sign-extension bytes from the high end.
fn minimal_twos_complement(le_bytes: &[u8]) -> &[u8] {
    let mut len = le_bytes.len();
    while len > 1 {
        let top = le_bytes[len - 1];
        let next_sign = le_bytes[len - 2] & 0x80;
        if (top == 0 && next_sign == 0) || (top == 0xff && next_sign != 0) {
            len -= 1;
        } else {
            break;
        }
    }
    &le_bytes[..len]
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (None, None) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (BigInt(a), BigInt(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Str(a), Str(b)) => a == b,
            (Bytes(a), Bytes(b)) | (ByteArray(a), ByteArray(b)) => a == b,
            (List(a), List(b))
            | (Tuple(a), Tuple(b))
            | (Set(a), Set(b))
            | (FrozenSet(a), FrozenSet(b)) => a == b,
            (Dict(a), Dict(b)) => a == b,
            (Global(a), Global(b)) => a == b,
            (Object(a), Object(b)) => a == b,
            _ => false,
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        match i64::try_from(v) {
            Ok(small) => Value::Int(small),
            Err(_) => BigInt::value_from_le_bytes(&u128::from(v).to_le_bytes()),
        }
    }
}

impl From<i128> for Value {
    fn from(v: i128) -> Self {
        BigInt::value_from_le_bytes(&v.to_le_bytes())
    }
}

impl From<u128> for Value {
    fn from(v: u128) -> Self {
        let mut bytes = v.to_le_bytes().to_vec();
        bytes.push(0);
        BigInt::value_from_le_bytes(&bytes)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(f64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl From<Global> for Value {
    fn from(v: Global) -> Self {
        Value::Global(v)
    }
}

impl From<Object> for Value {
    fn from(v: Object) -> Self {
        Value::Object(Box::new(v))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::None, Into::into)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}

impl<K: Into<Value>, V: Into<Value>> FromIterator<(K, V)> for Value {
    /// Collects pairs into a [`Value::Dict`], keeping their order.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl Value {
    /// A `bytes` value (a `Vec<u8>` converts to a list of ints, not to bytes).
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Value::Bytes(bytes.into())
    }

    /// A `bytearray` value.
    pub fn bytearray(bytes: impl Into<Vec<u8>>) -> Self {
        Value::ByteArray(bytes.into())
    }

    /// A `tuple` value.
    pub fn tuple(items: impl IntoIterator<Item = impl Into<Value>>) -> Self {
        Value::Tuple(items.into_iter().map(Into::into).collect())
    }

    /// Whether the value is `None`.
    pub fn is_none(&self) -> bool {
        matches!(self, Value::None)
    }

    /// The `bool`, if the value is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(flag) => Some(*flag),
            _ => None,
        }
    }

    /// The `int`, if the value is one that fits in an `i64` (a `bool` is not).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(int) => Some(*int),
            _ => None,
        }
    }

    /// The `float`, if the value is one (an `int` is not converted).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(float) => Some(*float),
            _ => None,
        }
    }

    /// The `str`, if the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(text) => Some(text),
            _ => None,
        }
    }

    /// The bytes of a `bytes` or `bytearray` value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(bytes) | Value::ByteArray(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The items of a `list`.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// The items of a `tuple`.
    pub fn as_tuple(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// The items of a `dict`, in order.
    pub fn as_dict(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Dict(pairs) => Some(pairs),
            _ => None,
        }
    }

    /// The global, if the value is one.
    pub fn as_global(&self) -> Option<&Global> {
        match self {
            Value::Global(global) => Some(global),
            _ => None,
        }
    }

    /// The object node, if the value is one.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(object) => Some(object),
            _ => None,
        }
    }

    /// The value under the `str` key `key` of a `dict` (the last one set,
    /// as Python keeps when a pickle sets a key twice); `None` otherwise.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_dict()?
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The Python type name: `"int"`, `"str"`, `"dict"`..., and for a global
    /// or an object node the name of the global (`"OrderedDict"`), else `"object"`.
    pub fn type_name(&self) -> &str {
        match self {
            Value::Global(global) => &global.name,
            Value::Object(object) => match &object.callable {
                Value::Global(global) => &global.name,
                _ => "object",
            },
            other => other.kind_name(),
        }
    }

    /// The kind of value, as a static name for messages: Python's type name for
    /// builtins (`"NoneType"`, `"int"`, `"dict"`...), `"global"` or `"object"`
    /// for the nodes.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::ByteArray(_) => "bytearray",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Set(_) => "set",
            Value::FrozenSet(_) => "frozenset",
            Value::Global(_) => "global",
            Value::Object(_) => "object",
        }
    }
}

impl fmt::Display for Value {
    /// Python's `repr`: `{'a': [1, 2.5, None]}`, `b'\x00'`, `True`. A global
    /// shows as `module.name`; an object node as its call, with what was
    /// applied afterwards: `collections.OrderedDict() with dict {'a': 1}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => f.write_str("None"),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::Int(int) => write!(f, "{int}"),
            Value::BigInt(big) => f.write_str(&big.to_decimal()),
            Value::Float(float) => write_float_repr(f, *float),
            Value::Str(text) => write_str_repr(f, text),
            Value::Bytes(bytes) => write_bytes_repr(f, bytes),
            Value::ByteArray(bytes) => {
                f.write_str("bytearray(")?;
                write_bytes_repr(f, bytes)?;
                f.write_str(")")
            }
            Value::List(items) => write_seq(f, "[", items, "]"),
            Value::Tuple(items) if items.len() == 1 => write_seq(f, "(", items, ",)"),
            Value::Tuple(items) => write_seq(f, "(", items, ")"),
            Value::Dict(pairs) => write_dict(f, pairs),
            Value::Set(items) if items.is_empty() => f.write_str("set()"),
            Value::Set(items) => write_seq(f, "{", items, "}"),
            Value::FrozenSet(items) if items.is_empty() => f.write_str("frozenset()"),
            Value::FrozenSet(items) => write_seq(f, "frozenset({", items, "})"),
            Value::Global(global) => write!(f, "{}.{}", global.module, global.name),
            Value::Object(object) => write_object(f, object),
        }
    }
}

fn write_seq(f: &mut fmt::Formatter<'_>, open: &str, items: &[Value], close: &str) -> fmt::Result {
    f.write_str(open)?;
    for (idx, item) in items.iter().enumerate() {
        if idx > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    f.write_str(close)
}

fn write_dict(f: &mut fmt::Formatter<'_>, pairs: &[(Value, Value)]) -> fmt::Result {
    f.write_str("{")?;
    for (idx, (key, value)) in pairs.iter().enumerate() {
        if idx > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{key}: {value}")?;
    }
    f.write_str("}")
}

fn write_object(f: &mut fmt::Formatter<'_>, object: &Object) -> fmt::Result {
    let new = match object.construct {
        Construct::NewObj | Construct::NewObjEx => ".__new__",
        Construct::Reduce | Construct::Inst | Construct::Obj => "",
    };
    write!(f, "{}{new}(", object.callable)?;
    for (idx, arg) in object.args.iter().enumerate() {
        if idx > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{arg}")?;
    }
    if !object.kwargs.is_empty() {
        if !object.args.is_empty() {
            f.write_str(", ")?;
        }
        f.write_str("**")?;
        write_dict(f, &object.kwargs)?;
    }
    f.write_str(")")?;
    if !object.list_items.is_empty() {
        write_seq(f, " with items [", &object.list_items, "]")?;
    }
    if !object.dict_items.is_empty() {
        f.write_str(" with dict ")?;
        write_dict(f, &object.dict_items)?;
    }
    if let Some(state) = &object.state {
        write!(f, " with state {state}")?;
    }
    Ok(())
}

/// Python's `repr(float)`: the shortest digits that read back the same,
/// positional for exponents -4 to 15, else scientific (`1e+16`, `5e-324`).
fn write_float_repr(f: &mut fmt::Formatter<'_>, float: f64) -> fmt::Result {
    if float.is_nan() {
        return f.write_str("nan");
    }
    if float.is_infinite() {
        return f.write_str(if float > 0.0 { "inf" } else { "-inf" });
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e17".
    let scientific = format!("{float:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exponent) {
        let n_digits = i32::try_from(digits.len()).unwrap_or(i32::MAX);
        if exponent < 0 {
            let zeros = "0".repeat(usize::try_from(-exponent - 1).unwrap_or(0));
            write!(f, "{sign}0.{zeros}{digits}")
        } else if n_digits <= exponent + 1 {
            let zeros = "0".repeat(usize::try_from(exponent + 1 - n_digits).unwrap_or(0));
            write!(f, "{sign}{digits}{zeros}.0")
        } else {
            let (int_part, frac_part) = digits.split_at(usize::try_from(exponent + 1).unwrap_or(0));
            write!(f, "{sign}{int_part}.{frac_part}")
        }
    } else {
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        write!(
            f,
            "{sign}{mantissa}e{exp_sign}{:02}",
            exponent.unsigned_abs()
        )
    }
}

/// The quote Python's `repr` picks: `'` unless the text has `'` and no `"`.
fn repr_quote(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

fn write_str_repr(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    let quote = repr_quote(text.contains('\''), text.contains('"'));
    write!(f, "{quote}")?;
    for ch in text.chars() {
        match ch {
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            _ if ch == quote => write!(f, "\\{ch}")?,
            _ if ch.is_control() => match u32::from(ch) {
                code @ 0..=0xff => write!(f, "\\x{code:02x}")?,
                code @ 0x100..=0xffff => write!(f, "\\u{code:04x}")?,
                code => write!(f, "\\U{code:08x}")?,
            },
            _ => write!(f, "{ch}")?,
        }
    }
    write!(f, "{quote}")
}

fn write_bytes_repr(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    let quote = repr_quote(bytes.contains(&b'\''), bytes.contains(&b'"'));
    write!(f, "b{quote}")?;
    for &byte in bytes {
        match byte {
            b'\\' => f.write_str("\\\\")?,
            b'\n' => f.write_str("\\n")?,
            b'\r' => f.write_str("\\r")?,
            b'\t' => f.write_str("\\t")?,
            _ if char::from(byte) == quote => write!(f, "\\{quote}")?,
            0x20..=0x7e => write!(f, "{}", char::from(byte))?,
            _ => write!(f, "\\x{byte:02x}")?,
        }
    }
    write!(f, "{quote}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each expected text is what CPython 3.11's repr() prints for the same value.
    #[test]
    fn display_is_python_repr() {
        let dict: Value = [(
            "a",
            Value::from(vec![Value::Int(1), Value::Float(2.5), Value::None]),
        )]
        .into_iter()
        .collect();
        assert_eq!(dict.to_string(), "{'a': [1, 2.5, None]}");
        assert_eq!(Value::bytes(*b"\x00a'\n").to_string(), r#"b"\x00a'\n""#);
        assert_eq!(Value::bytearray(*b"hi").to_string(), "bytearray(b'hi')");
        assert_eq!(Value::Bool(true).to_string(), "True");
        assert_eq!(Value::tuple([1]).to_string(), "(1,)");
        assert_eq!(Value::tuple(Vec::<Value>::new()).to_string(), "()");
        assert_eq!(Value::Set(vec![]).to_string(), "set()");
        assert_eq!(
            Value::FrozenSet(vec![Value::Int(3)]).to_string(),
            "frozenset({3})"
        );
        assert_eq!(
            Value::from("it's \u{e9}\t").to_string(),
            "\"it's \u{e9}\\t\""
        );
        assert_eq!(Value::from("\u{1}").to_string(), "'\\x01'");
        assert_eq!(
            Value::from(1u128 << 100).to_string(),
            "1267650600228229401496703205376"
        );
    }

    // Float repr switches to scientific notation where Python does.
    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789.125, "123456789.125"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e308, "1e+308"),
            (5e-324, "5e-324"),
            (-2.5e-7, "-2.5e-07"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (float, repr) in cases {
            assert_eq!(Value::Float(float).to_string(), repr, "{float:e}");
        }
    }

    #[test]
    fn accessors_find_what_they_name() {
        let dict: Value = [("k", 1), ("k", 2)].into_iter().collect();
        assert_eq!(dict.get("k").and_then(Value::as_i64), Some(2));
        assert_eq!(dict.get("missing"), None);
        assert_eq!(Value::Int(1).get("k"), None);
        assert!(Value::None.is_none());
        assert_eq!(Value::from("s").as_str(), Some("s"));
        assert_eq!(Value::Float(1.0).as_f64(), Some(1.0));
        assert_eq!(Value::Int(1).as_f64(), None);
        assert_eq!(Value::bytearray(*b"x").as_bytes(), Some(&b"x"[..]));
        assert_eq!(Value::from(vec![1]).as_list().map(<[Value]>::len), Some(1));
        assert_eq!(Value::from(Global::new("m", "N")).type_name(), "N");
        assert_eq!(Value::from(Global::new("m", "N")).kind_name(), "global");
        assert_eq!(Value::Tuple(vec![]).kind_name(), "tuple");
    }
}
