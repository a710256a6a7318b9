//! serde for [`Value`] itself, so a value read from a file can be written as
//! JSON, TOML or anything serde speaks, and read back from them.
//!
//! For other formats the mapping is the natural one, as lossy as Python's own
//! `json` module: a tuple, set or frozenset is a sequence, a bytearray bytes,
//! a global its `"module.name"`. An int beyond 128 bits and an object node
//! (which would need Python code to build) have no such form and are errors.
//!
//! Between a `Value` and this crate's own [`to_value`](super::to_value) /
//! [`from_value`](super::from_value), nothing is lost: `to_value(&v) == v`,
//! and a `Value` field of a struct read by `from_value` is the value as it
//! was (an object node included). The value is handed over whole through a
//! thread-local slot, announced by [`HANDOVER_TOKEN`] (a newtype struct's name
//! on the way in, a string on the way out, sent only to `Value`'s own
//! visitor).

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, Serialize, SerializeMap, Serializer};

use crate::{BigInt, Value};

/// Names a value handed over whole through [`HANDOVER`].
pub(super) const HANDOVER_TOKEN: &str = "$mmappickle_codec::Value";

thread_local! {
    /// The value being handed over between `Value`'s serde impls and this
    /// crate's serializer / deserializer; empty between two handovers.
    static HANDOVER: RefCell<Option<Value>> = const { RefCell::new(None) };
}

pub(super) fn hand_over(value: Value) {
    HANDOVER.with(|slot| *slot.borrow_mut() = Some(value));
}

pub(super) fn take_handed_over() -> Option<Value> {
    HANDOVER.with(|slot| slot.borrow_mut().take())
}

/// Whether serde's data model would lose something of `value`'s own kind.
pub(super) fn needs_handover(value: &Value) -> bool {
    matches!(
        value,
        Value::BigInt(_)
            | Value::ByteArray(_)
            | Value::Tuple(_)
            | Value::Set(_)
            | Value::FrozenSet(_)
            | Value::Global(_)
            | Value::Object(_)
    )
}

/// Whether `visitor` is `Value`'s own (it says so in `expecting`).
pub(super) fn is_value_visitor<'de, V: Visitor<'de>>(visitor: &V) -> bool {
    format!("{}", visitor as &dyn de::Expected) == HANDOVER_TOKEN
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if needs_handover(self) {
            // This crate's serializer takes the value whole; any other sees a
            // transparent newtype around the natural form.
            hand_over(self.clone());
            let result = serializer.serialize_newtype_struct(HANDOVER_TOKEN, &Natural(self));
            take_handed_over();
            return result;
        }
        Natural(self).serialize(serializer)
    }
}

/// A value in serde's data model, as other formats see it.
struct Natural<'a>(&'a Value);

impl Serialize for Natural<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::None => serializer.serialize_unit(),
            Value::Bool(flag) => serializer.serialize_bool(*flag),
            Value::Int(int) => serializer.serialize_i64(*int),
            Value::BigInt(big) => serialize_big_int(big, serializer),
            Value::Float(float) => serializer.serialize_f64(*float),
            Value::Str(text) => serializer.serialize_str(text),
            Value::Bytes(bytes) | Value::ByteArray(bytes) => serializer.serialize_bytes(bytes),
            Value::Tuple(items) => {
                use ser::SerializeTuple;
                let mut tuple = serializer.serialize_tuple(items.len())?;
                for item in items {
                    tuple.serialize_element(item)?;
                }
                tuple.end()
            }
            Value::List(items) | Value::Set(items) | Value::FrozenSet(items) => {
                serializer.collect_seq(items)
            }
            Value::Dict(pairs) => {
                let mut map = serializer.serialize_map(Some(pairs.len()))?;
                for (key, value) in pairs {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
            Value::Global(global) => {
                serializer.collect_str(&format_args!("{}.{}", global.module, global.name))
            }
            Value::Object(_) => Err(ser::Error::custom(format_args!(
                "a {} object node has no serde form (Python would run code to build it)",
                self.0.type_name()
            ))),
        }
    }
}

/// As an `i128` or `u128` when it fits (the widest ints serde has).
fn serialize_big_int<S: Serializer>(big: &BigInt, serializer: S) -> Result<S::Ok, S::Error> {
    let text = big.to_decimal();
    if let Ok(int) = text.parse::<i128>() {
        return serializer.serialize_i128(int);
    }
    if let Ok(int) = text.parse::<u128>() {
        return serializer.serialize_u128(int);
    }
    Err(ser::Error::custom(format_args!(
        "the int {text} does not fit in 128 bits, the widest serde has"
    )))
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    /// The token by which this crate's deserializer knows it may hand a value over.
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HANDOVER_TOKEN)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        if v == HANDOVER_TOKEN {
            if let Some(value) = take_handed_over() {
                return Ok(value);
            }
        }
        Ok(Value::from(v))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::bytes(v))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        // The hint is the input's claim, not a promise: capacity bounded.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        Ok(Value::Dict(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{from_value, to_value, Global};

    // Through serde_json: JSON's natural shapes, ints past i64 included.
    #[test]
    fn value_through_json() {
        let value: Value = [
            (
                "n",
                Value::from(vec![Value::Int(1), Value::Float(0.5), Value::None]),
            ),
            ("t", Value::tuple([Value::from(u64::MAX), Value::from("x")])),
            ("g", Value::Global(Global::new("numpy", "ndarray"))),
        ]
        .into_iter()
        .collect();
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(
            json,
            r#"{"n":[1,0.5,null],"t":[18446744073709551615,"x"],"g":"numpy.ndarray"}"#
        );
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.get("t"),
            Some(&Value::from(vec![Value::from(u64::MAX), Value::from("x")]))
        );
        assert_eq!(back.get("g"), Some(&Value::from("numpy.ndarray")));
    }

    #[test]
    fn values_without_a_serde_form_are_errors() {
        let object = Value::from(crate::Object::new(
            crate::Construct::Reduce,
            Value::Global(Global::new("datetime", "date")),
            vec![],
        ));
        let error = serde_json::to_string(&object).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("a date object node has no serde form"),
            "{error}"
        );
        let huge = Value::from(u128::MAX);
        let Value::BigInt(big) = huge else {
            unreachable!()
        };
        let mut bytes = big.to_le_bytes().to_vec();
        bytes.push(1);
        let huger = BigInt::value_from_le_bytes(&bytes);
        let error = serde_json::to_string(&huger).unwrap_err();
        assert!(
            error.to_string().contains("does not fit in 128 bits"),
            "{error}"
        );
    }

    // Through this crate's own serializer and deserializer nothing is lost.
    #[test]
    fn value_through_to_value_and_from_value() {
        let date = Value::from(crate::Object::new(
            crate::Construct::Reduce,
            Value::Global(Global::new("datetime", "date")),
            vec![Value::Int(2024)],
        ));
        let value = Value::tuple([
            Value::from(1i128 << 100),
            Value::bytearray(*b"ab"),
            Value::Set(vec![Value::tuple([1, 2])]),
            date,
        ]);
        assert_eq!(to_value(&value).unwrap(), value);
        assert_eq!(from_value::<Value>(&value).unwrap(), value);
        assert_eq!(take_handed_over(), None, "nothing left behind");
        // A string that looks like the token is a string.
        let token = Value::from(HANDOVER_TOKEN);
        assert_eq!(from_value::<Value>(&token).unwrap(), token);
        let json = serde_json::to_value(Value::Set(vec![Value::Int(1)])).unwrap();
        assert_eq!(json, serde_json::json!([1]));
        assert_eq!(take_handed_over(), None, "nothing left behind");
    }
}
