//! [`Value`] -> `T: Deserialize`.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

use super::{impls, SerdeError, MAX_NESTING};
use crate::Value;

/// The `T` that `value` describes, accepting what Python would naturally
/// write for it (see the [mapping](crate#serde)); an error names the path of the
/// field that does not fit.
///
/// ```
/// use mmappickle_codec::{from_value, Value};
///
/// // A tuple or a list for a Vec, an int for a float.
/// let value = Value::tuple([Value::Int(1), Value::Float(2.5)]);
/// assert_eq!(from_value::<Vec<f64>>(&value)?, [1.0, 2.5]);
///
/// let value: Value = [("a", Value::from(vec![Value::from("x")]))].into_iter().collect();
/// let error = from_value::<std::collections::HashMap<String, Vec<f64>>>(&value).unwrap_err();
/// assert_eq!(error.to_string(), "a[0]: expected float, found str");
/// # Ok::<(), mmappickle_codec::SerdeError>(())
/// ```
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, SerdeError> {
    T::deserialize(ValueDeserializer::new(value, 0))
}

/// Deserializes from a borrowed value nested `depth` containers deep; strings
/// and bytes are lent, not copied.
struct ValueDeserializer<'de> {
    value: &'de Value,
    depth: usize,
}

impl<'de> ValueDeserializer<'de> {
    fn new(value: &'de Value, depth: usize) -> Self {
        ValueDeserializer { value, depth }
    }

    fn mismatch(&self, expected: &str) -> SerdeError {
        SerdeError::mismatch(expected, self.value.type_name())
    }

    /// The depth of this container's items, refused past [`MAX_NESTING`].
    fn item_depth(&self) -> Result<usize, SerdeError> {
        match self.depth + 1 {
            depth if depth > MAX_NESTING => Err(SerdeError::too_deep()),
            depth => Ok(depth),
        }
    }

    fn visit_int<V: Visitor<'de>>(
        &self,
        visitor: V,
        expected: &str,
    ) -> Result<V::Value, SerdeError> {
        match self.value {
            Value::Int(int) => visitor.visit_i64(*int),
            Value::BigInt(big) => visit_big_int(big, visitor),
            _ => Err(self.mismatch(expected)),
        }
    }

    fn visit_items<V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, SerdeError> {
        let depth = self.item_depth()?;
        match self.value {
            Value::List(items)
            | Value::Tuple(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => visit_all(
                visitor,
                items.iter().map(|item| ValueDeserializer::new(item, depth)),
            ),
            // A `Vec<u8>` read from `bytes`: its visitor wants a sequence of ints.
            Value::Bytes(bytes) | Value::ByteArray(bytes) => {
                visit_all(visitor, bytes.iter().map(|byte| byte.into_deserializer()))
            }
            _ => Err(self.mismatch("list or tuple")),
        }
    }
}

/// Visits every item of `items`; a visitor that stops early (a tuple of a
/// fixed length) is an error.
fn visit_all<'de, V, I, D>(visitor: V, items: I) -> Result<V::Value, SerdeError>
where
    V: Visitor<'de>,
    I: ExactSizeIterator<Item = D>,
    D: de::Deserializer<'de, Error = SerdeError>,
{
    let len = items.len();
    let mut access = SeqAccess { items, index: 0 };
    let result = visitor.visit_seq(&mut access)?;
    access.expect_end(len)?;
    Ok(result)
}

/// An int beyond `i64`: to the visitor as the narrowest of `u64`, `i128`,
/// `u128` that holds it (serde's visitors of narrower ints accept wider calls
/// only from there).
fn visit_big_int<'de, V: Visitor<'de>>(
    big: &crate::BigInt,
    visitor: V,
) -> Result<V::Value, SerdeError> {
    let bytes = big.to_le_bytes();
    let fill = if big.is_negative() { 0xff } else { 0 };
    if bytes.len() <= 17 && bytes.get(16).is_none_or(|&sign| sign == 0) {
        let mut buf = [fill; 16];
        buf[..bytes.len().min(16)].copy_from_slice(&bytes[..bytes.len().min(16)]);
        if big.is_negative() {
            return visitor.visit_i128(i128::from_le_bytes(buf));
        }
        let int = u128::from_le_bytes(buf);
        return match u64::try_from(int) {
            Ok(int) => visitor.visit_u64(int),
            Err(_) => visitor.visit_u128(int),
        };
    }
    Err(SerdeError::new(format_args!(
        "expected an int of at most 128 bits, found {}",
        big.to_decimal()
    )))
}

/// The items of a sequence, handed out one at a time with their index for errors.
struct SeqAccess<I> {
    items: I,
    index: usize,
}

impl<I> SeqAccess<I> {
    /// A type that reads a fixed number of items (a tuple) must find no more.
    fn expect_end(&self, len: usize) -> Result<(), SerdeError> {
        if self.index < len {
            return Err(SerdeError::new(format_args!(
                "expected {} items, found {len}",
                self.index
            )));
        }
        Ok(())
    }
}

impl<'de, I, D> de::SeqAccess<'de> for SeqAccess<I>
where
    I: ExactSizeIterator<Item = D>,
    D: de::Deserializer<'de, Error = SerdeError>,
{
    type Error = SerdeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, SerdeError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(item)
            .map(Some)
            .map_err(|e| e.within_index(index))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// The pairs of a dict; a value's errors are reported under its key.
struct MapAccess<'de> {
    depth: usize,
    pairs: std::slice::Iter<'de, (Value, Value)>,
    value: Option<&'de Value>,
    key: Option<&'de Value>,
}

impl<'de> de::MapAccess<'de> for MapAccess<'de> {
    type Error = SerdeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, SerdeError> {
        let Some((key, value)) = self.pairs.next() else {
            return Ok(None);
        };
        self.key = Some(key);
        self.value = Some(value);
        seed.deserialize(ValueDeserializer::new(key, self.depth))
            .map(Some)
            .map_err(|e| SerdeError::new(format_args!("key {key}: {e}")))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, SerdeError> {
        let (Some(key), Some(value)) = (self.key.take(), self.value.take()) else {
            return Err(SerdeError::new("a map value was asked for before its key"));
        };
        seed.deserialize(ValueDeserializer::new(value, self.depth))
            .map_err(|e| e.within_key(key))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.pairs.len())
    }
}

/// An enum in serde's externally tagged form: `'Variant'` or `{'Variant': content}`.
struct EnumAccess<'de> {
    depth: usize,
    variant: &'de str,
    content: Option<&'de Value>,
}

impl<'de> de::EnumAccess<'de> for EnumAccess<'de> {
    type Error = SerdeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), SerdeError> {
        let variant = seed.deserialize(self.variant.into_deserializer())?;
        Ok((variant, self))
    }
}

impl<'de> EnumAccess<'de> {
    fn content(&self) -> Result<ValueDeserializer<'de>, SerdeError> {
        self.content
            .map(|content| ValueDeserializer::new(content, self.depth))
            .ok_or_else(|| {
                SerdeError::new(format_args!(
                    "expected {{'{}': content}}, found the bare variant name",
                    self.variant
                ))
            })
    }
}

impl<'de> de::VariantAccess<'de> for EnumAccess<'de> {
    type Error = SerdeError;

    fn unit_variant(self) -> Result<(), SerdeError> {
        match self.content {
            None | Some(Value::None) => Ok(()),
            Some(other) => {
                Err(SerdeError::mismatch("None", other.type_name()).within_field(self.variant))
            }
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, SerdeError> {
        seed.deserialize(self.content()?)
            .map_err(|e| e.within_field(self.variant))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.content()?
            .visit_items(visitor)
            .map_err(|e| e.within_field(self.variant))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        de::Deserializer::deserialize_struct(self.content()?, "", fields, visitor)
            .map_err(|e| e.within_field(self.variant))
    }
}

macro_rules! int_methods {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
            self.visit_int(visitor, "int")
        }
    )*};
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'de> {
    type Error = SerdeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        if impls::needs_handover(self.value) && impls::is_value_visitor(&visitor) {
            impls::hand_over(self.value.clone());
            return visitor.visit_borrowed_str(impls::HANDOVER_TOKEN);
        }
        match self.value {
            Value::None => visitor.visit_unit(),
            Value::Bool(flag) => visitor.visit_bool(*flag),
            Value::Int(_) | Value::BigInt(_) => self.visit_int(visitor, "int"),
            Value::Float(float) => visitor.visit_f64(*float),
            Value::Str(text) => visitor.visit_borrowed_str(text),
            Value::Bytes(bytes) | Value::ByteArray(bytes) => visitor.visit_borrowed_bytes(bytes),
            Value::List(_) | Value::Tuple(_) | Value::Set(_) | Value::FrozenSet(_) => {
                self.visit_items(visitor)
            }
            Value::Dict(_) => self.deserialize_map(visitor),
            Value::Global(_) | Value::Object(_) => Err(self.mismatch("a plain value")),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.value {
            Value::Bool(flag) => visitor.visit_bool(*flag),
            _ => Err(self.mismatch("bool")),
        }
    }

    int_methods!(
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128
    );

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_f64(visitor)
    }

    /// A float, or an int as Python would convert it (`float(n)`).
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.value {
            Value::Float(float) => visitor.visit_f64(*float),
            Value::Int(int) => visitor.visit_f64(*int as f64),
            Value::BigInt(big) => match big.to_decimal().parse::<f64>() {
                Ok(float) if float.is_finite() => visitor.visit_f64(float),
                _ => Err(SerdeError::new(
                    "expected float, found an int too large for a float",
                )),
            },
            _ => Err(self.mismatch("float")),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.value {
            Value::Str(text) => visitor.visit_borrowed_str(text),
            _ => Err(self.mismatch("str")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.value {
            Value::Bytes(bytes) | Value::ByteArray(bytes) => visitor.visit_borrowed_bytes(bytes),
            Value::List(_) | Value::Tuple(_) => self.visit_items(visitor),
            _ => Err(self.mismatch("bytes")),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.value {
            Value::None => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.value {
            Value::None => visitor.visit_unit(),
            _ => Err(self.mismatch("None")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.visit_items(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.visit_items(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.visit_items(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.value {
            Value::Dict(pairs) => visitor.visit_map(MapAccess {
                depth: self.item_depth()?,
                pairs: pairs.iter(),
                value: None,
                key: None,
            }),
            _ => Err(self.mismatch("dict")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        match self.value {
            Value::Str(variant) => visitor.visit_enum(EnumAccess {
                depth: self.depth,
                variant,
                content: None,
            }),
            Value::Dict(pairs) => match pairs.as_slice() {
                [(Value::Str(variant), content)] => visitor.visit_enum(EnumAccess {
                    depth: self.item_depth()?,
                    variant,
                    content: Some(content),
                }),
                _ => Err(SerdeError::new(format_args!(
                    "expected a variant name or a dict of one str key, found a dict of {} items",
                    pairs.len()
                ))),
            },
            _ => Err(self.mismatch("a variant name or a dict of one str key")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_unit()
    }
}
