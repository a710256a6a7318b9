//! `T: Serialize` -> [`Value`].

use serde::ser::{self, Serialize};

use super::impls::{take_handed_over, HANDOVER_TOKEN};
use super::{SerdeError, MAX_NESTING};
use crate::Value;

/// The Python value that `value` serializes to (see the [mapping](crate#serde)).
///
/// ```
/// use mmappickle_codec::{to_value, Value};
///
/// let value = to_value(&(1u8, vec!["a"], Some(2.5)))?;
/// assert_eq!(value.to_string(), "(1, ['a'], 2.5)");
/// # Ok::<(), mmappickle_codec::SerdeError>(())
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, SerdeError> {
    value.serialize(ValueSerializer { depth: 0 })
}

/// Serializes a value nested `depth` containers deep.
struct ValueSerializer {
    depth: usize,
}

/// `value`, one level below a container at `parent_depth`.
fn nested<T: Serialize + ?Sized>(value: &T, parent_depth: usize) -> Result<Value, SerdeError> {
    let depth = parent_depth + 1;
    if depth > MAX_NESTING {
        return Err(SerdeError::too_deep());
    }
    value.serialize(ValueSerializer { depth })
}

/// A sequence being built: a list or a tuple, the tuple maybe a variant's content.
struct SeqBuilder {
    depth: usize,
    items: Vec<Value>,
    is_tuple: bool,
    variant: Option<&'static str>,
}

/// A dict being built: a map, a struct, or a struct variant's content.
struct DictBuilder {
    depth: usize,
    pairs: Vec<(Value, Value)>,
    pending_key: Option<Value>,
    variant: Option<&'static str>,
}

/// `{variant: content}`, serde's externally tagged form.
fn tagged(variant: &'static str, content: Value) -> Value {
    Value::Dict(vec![(Value::from(variant), content)])
}

/// A map key as Python can hash it: sequences become tuples, sets frozensets.
fn hashable_key(key: Value) -> Result<Value, SerdeError> {
    let all_hashable = |items: Vec<Value>| {
        items
            .into_iter()
            .map(hashable_key)
            .collect::<Result<_, _>>()
    };
    match key {
        Value::List(items) | Value::Tuple(items) => Ok(Value::Tuple(all_hashable(items)?)),
        Value::Set(items) | Value::FrozenSet(items) => Ok(Value::FrozenSet(all_hashable(items)?)),
        Value::Dict(_) | Value::ByteArray(_) => Err(SerdeError::mismatch(
            "a map key Python can hash",
            key.kind_name(),
        )),
        other => Ok(other),
    }
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = SerdeError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = SeqBuilder;
    type SerializeMap = DictBuilder;
    type SerializeStruct = DictBuilder;
    type SerializeStructVariant = DictBuilder;

    fn serialize_bool(self, v: bool) -> Result<Value, SerdeError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, SerdeError> {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, SerdeError> {
        Ok(Value::bytes(v))
    }
    fn serialize_none(self) -> Result<Value, SerdeError> {
        Ok(Value::None)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, SerdeError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, SerdeError> {
        Ok(Value::None)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, SerdeError> {
        Ok(Value::None)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, SerdeError> {
        Ok(Value::from(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Value, SerdeError> {
        if name == HANDOVER_TOKEN {
            if let Some(value) = take_handed_over() {
                return Ok(value);
            }
        }
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, SerdeError> {
        let content = nested(value, self.depth).map_err(|e| e.within_field(variant))?;
        Ok(tagged(variant, content))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, SerdeError> {
        Ok(SeqBuilder::new(self.depth, len, false, None))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, SerdeError> {
        Ok(SeqBuilder::new(self.depth, Some(len), true, None))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, SerdeError> {
        Ok(SeqBuilder::new(self.depth, Some(len), true, None))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, SerdeError> {
        Ok(SeqBuilder::new(self.depth, Some(len), true, Some(variant)))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<DictBuilder, SerdeError> {
        Ok(DictBuilder::new(self.depth, len, None))
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<DictBuilder, SerdeError> {
        Ok(DictBuilder::new(self.depth, Some(len), None))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<DictBuilder, SerdeError> {
        Ok(DictBuilder::new(self.depth, Some(len), Some(variant)))
    }
}

/// The capacity for a length hint, bounded: a hint is not a promise.
fn capacity(len: Option<usize>) -> usize {
    len.unwrap_or(0).min(4096)
}

impl SeqBuilder {
    fn new(
        depth: usize,
        len: Option<usize>,
        is_tuple: bool,
        variant: Option<&'static str>,
    ) -> Self {
        SeqBuilder {
            depth,
            items: Vec::with_capacity(capacity(len)),
            is_tuple,
            variant,
        }
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        let index = self.items.len();
        let item = nested(value, self.depth).map_err(|e| {
            let e = e.within_index(index);
            match self.variant {
                Some(variant) => e.within_field(variant),
                None => e,
            }
        })?;
        self.items.push(item);
        Ok(())
    }

    fn finish(self) -> Result<Value, SerdeError> {
        let seq = if self.is_tuple {
            Value::Tuple(self.items)
        } else {
            Value::List(self.items)
        };
        Ok(match self.variant {
            Some(variant) => tagged(variant, seq),
            None => seq,
        })
    }
}

macro_rules! seq_impls {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for SeqBuilder {
            type Ok = Value;
            type Error = SerdeError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
                self.push(value)
            }
            fn end(self) -> Result<Value, SerdeError> {
                self.finish()
            }
        }
    )*};
}
seq_impls!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl DictBuilder {
    fn new(depth: usize, len: Option<usize>, variant: Option<&'static str>) -> Self {
        DictBuilder {
            depth,
            pairs: Vec::with_capacity(capacity(len)),
            pending_key: None,
            variant,
        }
    }

    fn within_variant(&self, error: SerdeError) -> SerdeError {
        match self.variant {
            Some(variant) => error.within_field(variant),
            None => error,
        }
    }

    fn field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerdeError> {
        let value =
            nested(value, self.depth).map_err(|e| self.within_variant(e.within_field(key)))?;
        self.pairs.push((Value::from(key), value));
        Ok(())
    }

    fn finish(self) -> Result<Value, SerdeError> {
        let dict = Value::Dict(self.pairs);
        Ok(match self.variant {
            Some(variant) => tagged(variant, dict),
            None => dict,
        })
    }
}

impl ser::SerializeMap for DictBuilder {
    type Ok = Value;
    type Error = SerdeError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), SerdeError> {
        let key = nested(key, self.depth)
            .and_then(hashable_key)
            .map_err(|e| SerdeError::new(format_args!("map key: {e}")))?;
        self.pending_key = Some(key);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        let key = self
            .pending_key
            .take()
            .ok_or_else(|| SerdeError::new("a map value was given before its key"))?;
        let value = nested(value, self.depth).map_err(|e| e.within_key(&key))?;
        self.pairs.push((key, value));
        Ok(())
    }

    fn end(self) -> Result<Value, SerdeError> {
        self.finish()
    }
}

macro_rules! struct_impls {
    ($($trait:ident),*) => {$(
        impl ser::$trait for DictBuilder {
            type Ok = Value;
            type Error = SerdeError;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), SerdeError> {
                self.field(key, value)
            }
            fn end(self) -> Result<Value, SerdeError> {
                self.finish()
            }
        }
    )*};
}
struct_impls!(SerializeStruct, SerializeStructVariant);
