//! The value tree that the unpickler builds and the pickler writes.

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
