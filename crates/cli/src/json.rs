//! The JSON mapping of pickled values, both ways (a contract: see the crate's README).
//!
//! | Python | JSON |
//! |---|---|
//! | `None`, `bool`, `str`, `list` | `null`, `true`/`false`, a string, an array |
//! | `int` with \|n\| < 2^53 | a number; else `{"int": "<decimal>"}` |
//! | `float` | a number (with a `.` or an exponent); else `{"float": "nan" \| "inf" \| "-inf"}` |
//! | `bytes` / `bytearray` | `{"bytes": "<base64>"}` / `{"bytearray": "<base64>"}` |
//! | `tuple`, `set`, `frozenset` | `{"tuple": [...]}`, `{"set": [...]}`, `{"frozenset": [...]}` |
//! | `dict` | `{"dict": [[k, v], ...]}` (any keys, order kept) |
//! | a global | `{"global": ["module", "name"]}` |
//! | an object | `{"object": {"callable", "args", "new", "kwargs", "state", "listitems", "dictitems"}}` |
//! | an array | `{"ndarray": {"dtype", "shape", "sha256"}}` |
//! | a masked array | `{"masked": {"data": {..}, "mask": {..}}}` |
//! | a numpy scalar, a date, a `Decimal` | its plain value ([`known_forms`]): a number, ISO 8601 text |
//!
//! Reading JSON back, a plain object whose keys are not one of these tags
//! becomes a dict with string keys; arrays cannot be read back from their
//! digest (use `import-npy`), plain values are read as what they are.

use base64::Engine as _;
use mmappickle::{Construct, Global, Object, Value};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Number, Value as Json};
use std::fmt;

use crate::arrays;
use crate::known_forms;

/// The largest magnitude (exclusive) that a JSON number may carry exactly: 2^53.
const EXACT_JSON_INT_LIMIT: i64 = 1 << 53;

/// A JSON document that does not describe a value, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// The path of the offending node, like `$.dict[2][1]`.
    pub path: String,
    /// What was expected there.
    pub expected: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JSON value at {}: expected {}", self.path, self.expected)
    }
}

impl std::error::Error for JsonError {}

/// `value` in the JSON mapping (arrays inside it become `ndarray` digests, the objects
/// [`known_forms`] recognises their plain values), serialized as it is written: no JSON
/// tree is built, so a value of millions of elements costs no memory beyond its own.
pub struct JsonOf<'a>(pub &'a Value);

impl Serialize for JsonOf<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        JsonValue {
            value: self.0,
            plain: true,
        }
        .serialize(serializer)
    }
}

/// A value in the mapping; with `plain`, a recognised object as its plain value where it
/// has one. The arguments of an object that stays an object are written as pickled (not
/// plain): they are what its callable is called with (`timezone(timedelta(0))`, not
/// `timezone("PT0S")`), so that `set` reading the JSON back builds the same object.
#[derive(Clone, Copy)]
struct JsonValue<'a> {
    value: &'a Value,
    plain: bool,
}

/// A sequence of values in the mapping.
struct JsonSeq<'a>(&'a [Value], bool);

/// Pairs in the mapping: `[[k, v], ...]`.
struct JsonPairs<'a>(&'a [(Value, Value)], bool);

/// An object node's fields, those that are absent left out.
struct JsonObject<'a>(&'a Object, bool);

/// `{tag: content}`, the mapping's tagged forms.
fn tagged<S: Serializer, T: Serialize + ?Sized>(
    serializer: S,
    tag: &str,
    content: &T,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry(tag, content)?;
    map.end()
}

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Some(array) = arrays::array_json(self.value) {
            return array.serialize(serializer);
        }
        let plain = self.plain;
        match self.value {
            Value::None => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(n) if n.unsigned_abs() < EXACT_JSON_INT_LIMIT.unsigned_abs() => {
                serializer.serialize_i64(*n)
            }
            Value::Int(n) => tagged(serializer, "int", &n.to_string()),
            Value::BigInt(big) => tagged(serializer, "int", &big.to_decimal()),
            Value::Float(x) if x.is_finite() => serializer.serialize_f64(*x),
            Value::Float(x) if x.is_nan() => tagged(serializer, "float", "nan"),
            Value::Float(x) if *x > 0.0 => tagged(serializer, "float", "inf"),
            Value::Float(_) => tagged(serializer, "float", "-inf"),
            Value::Str(text) => serializer.serialize_str(text),
            Value::Bytes(b) => tagged(serializer, "bytes", &base64_encode(b)),
            Value::ByteArray(b) => tagged(serializer, "bytearray", &base64_encode(b)),
            Value::List(items) => JsonSeq(items, plain).serialize(serializer),
            Value::Tuple(items) => tagged(serializer, "tuple", &JsonSeq(items, plain)),
            Value::Set(items) => tagged(serializer, "set", &JsonSeq(items, plain)),
            Value::FrozenSet(items) => tagged(serializer, "frozenset", &JsonSeq(items, plain)),
            Value::Dict(pairs) => JsonDict(pairs, plain).serialize(serializer),
            Value::Global(global) => tagged(serializer, "global", &[&global.module, &global.name]),
            Value::Object(object) => {
                let plain_value = plain
                    .then(|| known_forms::recognise(object)?.json_equivalent())
                    .flatten();
                match plain_value {
                    Some(value) => JsonOf(&value).serialize(serializer),
                    None => tagged(serializer, "object", &JsonObject(object, plain)),
                }
            }
            // `Value` may grow variants in the codec; say what it is rather than fail.
            #[allow(unreachable_patterns)]
            other => tagged(serializer, "unknown", &format!("{other:?}")),
        }
    }
}

impl Serialize for JsonSeq<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let plain = self.1;
        serializer.collect_seq(self.0.iter().map(|value| JsonValue { value, plain }))
    }
}

impl Serialize for JsonPairs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let plain = self.1;
        let json = |value| JsonValue { value, plain };
        serializer.collect_seq(self.0.iter().map(|(k, v)| (json(k), json(v))))
    }
}

impl Serialize for JsonObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let JsonObject(object, plain) = *self;
        let as_pickled = |value| JsonValue {
            value,
            plain: false,
        };
        let mut fields = serializer.serialize_map(None)?;
        fields.serialize_entry("callable", &as_pickled(&object.callable))?;
        fields.serialize_entry("args", &JsonSeq(&object.args, false))?;
        if matches!(object.construct, Construct::NewObj | Construct::NewObjEx) {
            fields.serialize_entry("new", &true)?;
        }
        if object.construct == Construct::NewObjEx || !object.kwargs.is_empty() {
            // A dict like any other (what the fixtures' manifest writes too).
            fields.serialize_entry("kwargs", &JsonDict(&object.kwargs, false))?;
        }
        if let Some(state) = &object.state {
            fields.serialize_entry(
                "state",
                &JsonValue {
                    value: state,
                    plain,
                },
            )?;
        }
        if !object.list_items.is_empty() {
            fields.serialize_entry("listitems", &JsonSeq(&object.list_items, plain))?;
        }
        if !object.dict_items.is_empty() {
            fields.serialize_entry("dictitems", &JsonPairs(&object.dict_items, plain))?;
        }
        fields.end()
    }
}

/// `{"dict": [[k, v], ...]}`.
struct JsonDict<'a>(&'a [(Value, Value)], bool);

impl Serialize for JsonDict<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        tagged(serializer, "dict", &JsonPairs(self.0, self.1))
    }
}

/// The value that `json` describes.
pub fn json_to_value(json: &Json) -> Result<Value, JsonError> {
    to_value(json, &mut String::from("$"))
}

fn fail<T>(path: &str, expected: impl Into<String>) -> Result<T, JsonError> {
    Err(JsonError {
        path: path.to_owned(),
        expected: expected.into(),
    })
}

/// Runs `f` with `suffix` appended to `path`, restoring it afterwards.
fn nested<T>(
    path: &mut String,
    suffix: impl fmt::Display,
    f: impl FnOnce(&mut String) -> Result<T, JsonError>,
) -> Result<T, JsonError> {
    let len = path.len();
    path.push_str(&suffix.to_string());
    let result = f(path);
    path.truncate(len);
    result
}

/// The single-key objects that are tags rather than dicts.
const TAGS: [&str; 12] = [
    "int",
    "float",
    "bytes",
    "bytearray",
    "tuple",
    "set",
    "frozenset",
    "dict",
    "global",
    "object",
    "ndarray",
    "masked",
];

fn to_value(json: &Json, path: &mut String) -> Result<Value, JsonError> {
    match json {
        Json::Null => Ok(Value::None),
        Json::Bool(b) => Ok(Value::Bool(*b)),
        Json::Number(number) => Ok(number_to_value(number)),
        Json::String(s) => Ok(Value::Str(s.clone())),
        Json::Array(items) => Ok(Value::List(items_to_values(items, path)?)),
        Json::Object(fields) => match single_tag(fields) {
            Some((tag, body)) => nested(path, format_args!(".{tag}"), |path| {
                tagged_to_value(tag, body, path)
            }),
            None => Ok(Value::Dict(
                fields
                    .iter()
                    .map(|(key, value)| {
                        nested(path, format_args!(".{key}"), |path| {
                            Ok((Value::Str(key.clone()), to_value(value, path)?))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            )),
        },
    }
}

fn single_tag(fields: &Map<String, Json>) -> Option<(&str, &Json)> {
    let mut iter = fields.iter();
    match (iter.next(), iter.next()) {
        (Some((key, body)), None) if TAGS.contains(&key.as_str()) => Some((key.as_str(), body)),
        _ => None,
    }
}

fn number_to_value(number: &Number) -> Value {
    if let Some(n) = number.as_i64() {
        Value::Int(n)
    } else if let Some(n) = number.as_u64() {
        Value::from(n)
    } else {
        // serde_json gives every other number as an f64.
        Value::Float(number.as_f64().unwrap_or(f64::NAN))
    }
}

fn items_to_values(items: &[Json], path: &mut String) -> Result<Vec<Value>, JsonError> {
    items
        .iter()
        .enumerate()
        .map(|(idx, item)| nested(path, format_args!("[{idx}]"), |path| to_value(item, path)))
        .collect()
}

fn expect_array<'a>(json: &'a Json, path: &str) -> Result<&'a [Json], JsonError> {
    match json {
        Json::Array(items) => Ok(items),
        _ => fail(path, "an array"),
    }
}

fn expect_str<'a>(json: &'a Json, path: &str, what: &str) -> Result<&'a str, JsonError> {
    match json {
        Json::String(s) => Ok(s),
        _ => fail(path, what),
    }
}

fn pairs_to_values(json: &Json, path: &mut String) -> Result<Vec<(Value, Value)>, JsonError> {
    let items = expect_array(json, path)?;
    items
        .iter()
        .enumerate()
        .map(|(idx, pair)| {
            nested(path, format_args!("[{idx}]"), |path| match pair {
                Json::Array(kv) if kv.len() == 2 => {
                    let key = nested(path, "[0]", |path| to_value(&kv[0], path))?;
                    let value = nested(path, "[1]", |path| to_value(&kv[1], path))?;
                    Ok((key, value))
                }
                _ => fail(path, "a [key, value] pair"),
            })
        })
        .collect()
}

fn tagged_to_value(tag: &str, body: &Json, path: &mut String) -> Result<Value, JsonError> {
    match tag {
        "int" => {
            let text = expect_str(body, path, "a decimal integer string")?;
            match decimal_to_value(text) {
                Some(value) => Ok(value),
                None => fail(path, "a decimal integer string"),
            }
        }
        "float" => match expect_str(body, path, r#""nan", "inf" or "-inf""#)? {
            "nan" => Ok(Value::Float(f64::NAN)),
            "inf" => Ok(Value::Float(f64::INFINITY)),
            "-inf" => Ok(Value::Float(f64::NEG_INFINITY)),
            _ => fail(path, r#""nan", "inf" or "-inf""#),
        },
        "bytes" | "bytearray" => {
            let text = expect_str(body, path, "a base64 string")?;
            let bytes = match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(bytes) => bytes,
                Err(_) => return fail(path, "a base64 string"),
            };
            Ok(if tag == "bytes" {
                Value::Bytes(bytes)
            } else {
                Value::ByteArray(bytes)
            })
        }
        "tuple" => Ok(Value::Tuple(items_to_values(
            expect_array(body, path)?,
            path,
        )?)),
        "set" => Ok(Value::Set(items_to_values(
            expect_array(body, path)?,
            path,
        )?)),
        "frozenset" => Ok(Value::FrozenSet(items_to_values(
            expect_array(body, path)?,
            path,
        )?)),
        "dict" => Ok(Value::Dict(pairs_to_values(body, path)?)),
        "global" => match expect_array(body, path)? {
            [Json::String(module), Json::String(name)] => {
                Ok(Value::Global(Global::new(module.clone(), name.clone())))
            }
            _ => fail(path, r#"["module", "name"]"#),
        },
        "object" => object_to_value(body, path),
        _ => fail(
            path,
            "a value that can be stored from JSON (an array digest cannot: use import-npy)",
        ),
    }
}

fn object_to_value(body: &Json, path: &mut String) -> Result<Value, JsonError> {
    let Json::Object(fields) = body else {
        return fail(path, "an object with a \"callable\"");
    };
    const FIELDS: [&str; 7] = [
        "callable",
        "args",
        "new",
        "kwargs",
        "state",
        "listitems",
        "dictitems",
    ];
    if let Some(unknown) = fields.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return fail(path, format!("one of {FIELDS:?}, not {unknown:?}"));
    }
    let Some(callable) = fields.get("callable") else {
        return fail(path, "an object with a \"callable\"");
    };
    let callable = nested(path, ".callable", |path| to_value(callable, path))?;
    let args = match fields.get("args") {
        Some(args) => nested(path, ".args", |path| {
            items_to_values(expect_array(args, path)?, path)
        })?,
        None => Vec::new(),
    };
    let is_new = match fields.get("new") {
        None | Some(Json::Bool(false)) => false,
        Some(Json::Bool(true)) => true,
        Some(_) => return nested(path, ".new", |path| fail(path, "true or false")),
    };
    let kwargs = match fields.get("kwargs") {
        None => None,
        Some(kwargs) => Some(nested(path, ".kwargs", |path| {
            match to_value(kwargs, path)? {
                Value::Dict(pairs) => Ok(pairs),
                _ => fail(path, "an object of keyword arguments"),
            }
        })?),
    };
    let construct = match (is_new, &kwargs) {
        (false, None) => Construct::Reduce,
        (true, None) => Construct::NewObj,
        (true, Some(_)) => Construct::NewObjEx,
        (false, Some(_)) => {
            return fail(path, "\"kwargs\" only with \"new\": true (NEWOBJ_EX)");
        }
    };
    let mut object = Object::new(construct, callable, args);
    object.kwargs = kwargs.unwrap_or_default();
    if let Some(state) = fields.get("state") {
        object.state = Some(nested(path, ".state", |path| to_value(state, path))?);
    }
    if let Some(items) = fields.get("listitems") {
        object.list_items = nested(path, ".listitems", |path| {
            items_to_values(expect_array(items, path)?, path)
        })?;
    }
    if let Some(pairs) = fields.get("dictitems") {
        object.dict_items = nested(path, ".dictitems", |path| pairs_to_values(pairs, path))?;
    }
    Ok(Value::Object(Box::new(object)))
}

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The integer that `text` (an optional sign, then decimal digits) writes.
///
/// The codec's decimal parser (with its digit limit against quadratic time) is
/// reached through protocol 0's `LONG` opcode, whose argument is that text.
pub fn decimal_to_value(text: &str) -> Option<Value> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    mmappickle::loads(format!("L{text}L\n.").as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// [`JsonOf`] as a JSON tree, to compare with expected documents.
    fn value_to_json(value: &Value) -> Json {
        serde_json::to_value(JsonOf(value)).unwrap()
    }

    fn round_trip(value: Value) {
        let json = value_to_json(&value);
        let text = serde_json::to_string(&json).unwrap();
        let parsed: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(json_to_value(&parsed).unwrap(), value, "through {text}");
    }

    #[test]
    fn scalars_map_as_the_contract_says() {
        assert_eq!(value_to_json(&Value::None), json!(null));
        assert_eq!(value_to_json(&Value::Bool(true)), json!(true));
        assert_eq!(value_to_json(&Value::Int(-5)), json!(-5));
        assert_eq!(
            value_to_json(&Value::Int((1 << 53) - 1)),
            json!(9007199254740991_i64)
        );
        assert_eq!(
            value_to_json(&Value::Int(1 << 53)),
            json!({"int": "9007199254740992"})
        );
        assert_eq!(
            value_to_json(&Value::Int(-(1 << 53))),
            json!({"int": "-9007199254740992"})
        );
        assert_eq!(value_to_json(&Value::Float(1.5)), json!(1.5));
        assert_eq!(
            value_to_json(&Value::Float(f64::NEG_INFINITY)),
            json!({"float": "-inf"})
        );
        assert_eq!(
            value_to_json(&Value::Bytes(b"hi!".to_vec())),
            json!({"bytes": "aGkh"})
        );
    }

    #[test]
    fn floats_stay_floats_in_text() {
        // A float that is a whole number must not come back as an int.
        let text = serde_json::to_string(&value_to_json(&Value::Float(2.0))).unwrap();
        assert_eq!(text, "2.0");
        let text = serde_json::to_string(&value_to_json(&Value::Float(-0.0))).unwrap();
        assert_eq!(text, "-0.0");
    }

    #[test]
    fn big_integers_print_in_decimal() {
        for n in [
            i128::from(i64::MAX) + 1,
            i128::from(i64::MIN) - 1,
            1 << 100,
            -(1 << 100),
            10_i128.pow(30),
            -(10_i128.pow(30)) + 7,
            i128::MIN,
        ] {
            let Value::BigInt(big) = Value::from(n) else {
                panic!("{n} should be a BigInt");
            };
            assert_eq!(big.to_decimal(), n.to_string());
            assert_eq!(decimal_to_value(&n.to_string()), Some(Value::from(n)));
        }
        assert_eq!(decimal_to_value("-0"), Some(Value::Int(0)));
        assert_eq!(decimal_to_value("+17"), Some(Value::Int(17)));
        assert_eq!(decimal_to_value("1e3"), None);
        assert_eq!(decimal_to_value("-"), None);
        assert_eq!(decimal_to_value("1\n."), None);
        // More digits than CPython's default `int_max_str_digits` are refused.
        assert_eq!(decimal_to_value(&"9".repeat(5000)), None);
    }

    #[test]
    fn every_kind_of_value_round_trips() {
        let mut object = Object::new(
            Construct::NewObjEx,
            Value::Global(Global::new("mod", "Cls")),
            vec![Value::Int(1)],
        );
        object.kwargs = vec![(Value::from("k"), Value::Float(f64::NAN))];
        object.state = Some(Value::Dict(vec![(Value::from("x"), Value::None)]));
        object.list_items = vec![Value::from("item")];
        object.dict_items = vec![(Value::Int(3), Value::Tuple(vec![]))];
        let mut reduce = Object::new(
            Construct::Reduce,
            Value::Global(Global::new("collections", "OrderedDict")),
            vec![],
        );
        reduce.dict_items = vec![(Value::from("a"), Value::Int(1))];
        round_trip(Value::List(vec![
            Value::None,
            Value::Bool(false),
            Value::Int(i64::MIN),
            Value::from(u128::MAX),
            Value::Float(5e-324),
            Value::Float(1e308),
            Value::Float(f64::INFINITY),
            Value::Str("héllo \u{1F600}".into()),
            Value::Bytes(vec![0, 255, 1]),
            Value::ByteArray(vec![]),
            Value::Tuple(vec![Value::Int(1), Value::Tuple(vec![])]),
            Value::Set(vec![Value::Int(2)]),
            Value::FrozenSet(vec![]),
            Value::Dict(vec![
                (Value::Tuple(vec![Value::Int(1)]), Value::from("tuple key")),
                (Value::from("int"), Value::from("a key that is also a tag")),
            ]),
            Value::Global(Global::new("builtins", "len")),
            Value::Object(Box::new(object)),
            Value::Object(Box::new(reduce)),
        ]));
    }

    #[test]
    fn keyword_arguments_are_a_dict() {
        let mut object = Object::new(
            Construct::NewObjEx,
            Value::Global(Global::new("m", "C")),
            vec![],
        );
        object.kwargs = vec![(Value::from("k"), Value::Int(1))];
        let value = Value::Object(Box::new(object));
        let expected = json!({"object": {"callable": {"global": ["m", "C"]}, "args": [],
            "new": true, "kwargs": {"dict": [["k", 1]]}}});
        assert_eq!(value_to_json(&value), expected);
        // A plain JSON object is read as the same keywords.
        let plain = json!({"object": {"callable": {"global": ["m", "C"]}, "new": true,
            "kwargs": {"k": 1}}});
        assert_eq!(json_to_value(&plain).unwrap(), value);
    }

    #[test]
    fn plain_objects_become_dicts() {
        let value = json_to_value(&json!({"a": 1, "b": [true]})).unwrap();
        assert_eq!(
            value,
            Value::Dict(vec![
                (Value::from("a"), Value::Int(1)),
                (Value::from("b"), Value::List(vec![Value::Bool(true)])),
            ])
        );
    }

    #[test]
    fn bad_documents_say_where_and_what() {
        let err = json_to_value(&json!([1, {"bytes": "not base64!"}])).unwrap_err();
        assert_eq!(err.path, "$[1].bytes");
        assert_eq!(err.expected, "a base64 string");
        let err = json_to_value(&json!({"dict": [[1, 2], [3]]})).unwrap_err();
        assert_eq!(err.path, "$.dict[1]");
        let err = json_to_value(&json!({"ndarray": {}})).unwrap_err();
        assert!(err.expected.contains("import-npy"), "{err}");
        let err = json_to_value(&json!({"object": {"args": []}})).unwrap_err();
        assert!(err.expected.contains("callable"), "{err}");
        let err = json_to_value(&json!({"float": "NaN"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"JSON value at $.float: expected "nan", "inf" or "-inf""#
        );
    }
}
