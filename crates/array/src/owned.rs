//! Arrays inside generic values: numpy's own pickles decoded to owned arrays.

use mmappickle_codec::{Construct, Global, Object, Value};

use crate::dtype::{DType, Kind};
use crate::element::{check_element, elements, Element};
use crate::error::{Error, ErrorKind};
use crate::expr::checked_raw_len;

/// An array held in memory: dtype, shape and raw bytes in C order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedArray {
    /// The element type.
    pub dtype: DType,
    /// The shape.
    pub shape: Vec<usize>,
    /// The raw bytes, C order, in the dtype's byte order.
    pub data: Vec<u8>,
}

fn bad(expected: &'static str) -> Error {
    Error::unplaced(ErrorKind::Malformed { expected })
}

fn is_global(value: &Value, modules: &[&str], name: &str) -> bool {
    matches!(value, Value::Global(Global { module, name: n }) if modules.contains(&module.as_str()) && n == name)
}

/// The bytes of a `bytes` / `bytearray` value, also in protocol 0-2's forms
/// (`_codecs.encode(text, 'latin1')`, `bytes()`).
fn bytes_of(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Bytes(bytes) | Value::ByteArray(bytes) => Some(bytes.clone()),
        Value::Object(object) if object.construct == Construct::Reduce => {
            if is_global(&object.callable, &["_codecs"], "encode") {
                match object.args.as_slice() {
                    [Value::Str(text), Value::Str(encoding)]
                        if encoding == "latin1" || encoding == "latin-1" =>
                    {
                        text.chars()
                            .map(|c| u8::try_from(u32::from(c)).ok())
                            .collect()
                    }
                    _ => None,
                }
            } else if is_global(&object.callable, &["builtins", "__builtin__"], "bytes")
                || is_global(&object.callable, &["builtins", "__builtin__"], "bytearray")
            {
                object.args.is_empty().then(Vec::new)
            } else {
                None
            }
        }
        _ => None,
    }
}

fn int_of(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

fn shape_of(value: &Value) -> Result<Vec<usize>, Error> {
    let Value::Tuple(dims) = value else {
        return Err(bad("a shape tuple"));
    };
    if dims.len() > crate::dtype::MAX_DIMS {
        return Err(Error::unplaced(ErrorKind::TooManyDims(dims.len())));
    }
    dims.iter()
        .map(|dim| {
            let dim = int_of(dim).ok_or(bad("an int in the shape"))?;
            usize::try_from(dim).map_err(|_| Error::unplaced(ErrorKind::NegativeDim(dim)))
        })
        .collect()
}

/// A `numpy.dtype(descr, False, True)` + `BUILD` state value to a dtype.
fn dtype_of(value: &Value) -> Result<DType, Error> {
    let Value::Object(object) = value else {
        return Err(bad("a numpy.dtype object"));
    };
    if !is_global(&object.callable, &["numpy"], "dtype") {
        return Err(bad("a numpy.dtype object"));
    }
    let Some(Value::Str(descr)) = object.args.first() else {
        return Err(bad("the dtype's type string"));
    };
    let state = match &object.state {
        Some(Value::Tuple(state)) => state.as_slice(),
        _ => &[],
    };
    let order = match state.get(1) {
        Some(Value::Str(order)) if order != "|" => order.as_str(),
        _ => "",
    };
    // A structured dtype (field names in the state) has no name we parse: raw bytes only.
    if matches!(state.get(3), Some(Value::Tuple(_))) || matches!(state.get(4), Some(Value::Dict(_)))
    {
        let item_size = state
            .get(5)
            .and_then(int_of)
            .and_then(|s| usize::try_from(s).ok())
            .unwrap_or(0);
        return Ok(DType::opaque(descr, item_size));
    }
    let mut text = format!("{order}{descr}");
    // datetime64 / timedelta64: the unit is in the state's metadata: (b'ns', multiplier, 1, 1).
    if let Some(Value::Tuple(metadata)) = state.get(8) {
        if let Some(Value::Tuple(unit)) = metadata.get(1) {
            let name = unit
                .first()
                .and_then(bytes_of)
                .and_then(|b| String::from_utf8(b).ok());
            let multiplier = unit.get(1).and_then(int_of).unwrap_or(1);
            if let Some(name) = name.filter(|n| n != "generic") {
                if multiplier == 1 {
                    text = format!("{text}[{name}]");
                } else {
                    text = format!("{text}[{multiplier}{name}]");
                }
            }
        }
    }
    DType::parse(&text)
}

/// Converts Fortran-ordered raw bytes to C order.
fn fortran_to_c(data: &[u8], shape: &[usize], item_size: usize) -> Vec<u8> {
    let n: usize = shape.iter().product();
    if shape.len() < 2 || item_size == 0 || n == 0 {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(data.len());
    let mut index = vec![0usize; shape.len()];
    for _ in 0..n {
        // Offset of `index` in Fortran order: the first dimension varies fastest.
        let mut f_offset = 0usize;
        let mut stride = 1usize;
        for (&i, &dim) in index.iter().zip(shape) {
            f_offset += i * stride;
            stride *= dim;
        }
        let start = f_offset * item_size;
        if let Some(item) = data.get(start..start + item_size) {
            out.extend_from_slice(item);
        }
        // Next C-order index: the last dimension varies fastest.
        for (i, &dim) in index.iter_mut().zip(shape).rev() {
            *i += 1;
            if *i < dim {
                break;
            }
            *i = 0;
        }
    }
    out
}

/// A masked array held in memory: its data, and its mask (dtype `bool`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMasked {
    /// The data.
    pub data: OwnedArray,
    /// The mask: the data's shape, or 0-d when the array had no mask.
    pub mask: OwnedArray,
}

impl OwnedMasked {
    /// `numpy.ma.core.MaskedArray(data, mask)` as mmappickle writes it, decoded as a generic
    /// value; `None` for anything else.
    pub fn from_expression(value: &Value) -> Option<OwnedMasked> {
        let Value::Object(object) = value else {
            return None;
        };
        if object.construct != Construct::Reduce
            || !is_global(&object.callable, &["numpy.ma.core"], "MaskedArray")
            || object.state.is_some()
            || !object.list_items.is_empty()
            || !object.dict_items.is_empty()
        {
            return None;
        }
        let owned = |value| OwnedArray::from_value(value)?.ok();
        match object.args.as_slice() {
            [data, mask] => Some(OwnedMasked {
                data: owned(data)?,
                mask: owned(mask)?,
            }),
            _ => None,
        }
    }

    /// The data and mask of a masked array as numpy pickles it:
    /// `numpy.ma.core._mareconstruct(...)` + `BUILD` with the state
    /// `(version, shape, dtype, is_fortran, data_bytes, mask_bytes, fill_value)`.
    ///
    /// Each part is read by rebuilding the `_reconstruct` form of a plain array around it, so
    /// the array layer's decoding (byte forms of every protocol, Fortran order) applies. `None`
    /// for anything else, or a mask that is not one bool per element (structured dtypes).
    pub fn from_numpy_pickle(value: &Value) -> Option<OwnedMasked> {
        let Value::Object(object) = value else {
            return None;
        };
        let is_mareconstruct = object.construct == Construct::Reduce
            && matches!(&object.callable, Value::Global(global)
                if global.module == "numpy.ma.core" && global.name == "_mareconstruct");
        let Some(Value::Tuple(state)) = object.state.as_ref().filter(|_| is_mareconstruct) else {
            return None;
        };
        let [version, shape, dtype, is_fortran, data, mask, _fill_value] = state.as_slice() else {
            return None;
        };
        let plain_array = |raw: &Value, dtype: Value| {
            let mut array = Object::new(
                Construct::Reduce,
                Value::Global(Global::new("numpy.core.multiarray", "_reconstruct")),
                vec![
                    Value::Global(Global::new("numpy", "ndarray")),
                    Value::Tuple(vec![Value::Int(0)]),
                    Value::Bytes(b"b".to_vec()),
                ],
            );
            array.state = Some(Value::Tuple(vec![
                version.clone(),
                shape.clone(),
                dtype,
                is_fortran.clone(),
                raw.clone(),
            ]));
            OwnedArray::from_value(&Value::from(array))?.ok()
        };
        let data = plain_array(data, dtype.clone())?;
        let mask = plain_array(mask, numpy_dtype_value("b1", "|"))?;
        (data.dtype.is_writable() && mask.dtype.kind() == Kind::Bool && mask.shape == data.shape)
            .then_some(OwnedMasked { data, mask })
    }
}

/// A `numpy.dtype` object as numpy pickles it, for `descr` (`"b1"`) and byte order `order`.
fn numpy_dtype_value(descr: &str, order: &str) -> Value {
    let mut dtype = Object::new(
        Construct::Reduce,
        Value::Global(Global::new("numpy", "dtype")),
        vec![Value::from(descr), Value::Bool(false), Value::Bool(true)],
    );
    dtype.state = Some(Value::Tuple(vec![
        Value::Int(3),
        Value::from(order),
        Value::None,
        Value::None,
        Value::None,
        Value::Int(-1),
        Value::Int(-1),
        Value::Int(0),
    ]));
    Value::from(dtype)
}

impl OwnedArray {
    /// An array from its parts, checking `data.len() == product(shape) * item_size`.
    pub fn new(dtype: DType, shape: Vec<usize>, data: Vec<u8>) -> Result<OwnedArray, Error> {
        let expected =
            checked_raw_len(&dtype, &shape).ok_or(Error::unplaced(ErrorKind::Overflow))?;
        if dtype.kind() != Kind::Other && data.len() as u64 != expected {
            return Err(Error::unplaced(ErrorKind::LengthMismatch {
                found: data.len() as u64,
                expected,
            }));
        }
        Ok(OwnedArray { dtype, shape, data })
    }

    /// An array from a slice of `T` (machine byte order) and a shape.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Result<OwnedArray, Error> {
        OwnedArray::new(
            T::dtype(),
            shape.to_vec(),
            bytemuck::cast_slice(data).to_vec(),
        )
    }

    /// The numpy array a decoded value stands for, or `None` when the value is
    /// not a numpy array. Recognises numpy's own pickles (`_reconstruct` +
    /// `BUILD` in protocols 0 to 4, with `_codecs.encode` bytes in protocol
    /// 2; `_frombuffer` in protocol 5, from `numpy.core` or `numpy._core`) and
    /// the compatible `reshape(fromstring(...))` expression.
    pub fn from_value(value: &Value) -> Option<Result<OwnedArray, Error>> {
        let Value::Object(object) = value else {
            return None;
        };
        if object.construct != Construct::Reduce {
            return None;
        }
        let multiarray = ["numpy.core.multiarray", "numpy._core.multiarray"];
        let numeric = ["numpy.core.numeric", "numpy._core.numeric"];
        if is_global(&object.callable, &multiarray, "_reconstruct") {
            if !matches!(object.args.first(), Some(v) if is_global(v, &["numpy"], "ndarray")) {
                return None;
            }
            return Some(Self::from_reconstruct_state(object.state.as_ref()));
        }
        if is_global(&object.callable, &numeric, "_frombuffer") {
            return Some(Self::from_frombuffer_args(&object.args));
        }
        if is_global(&object.callable, &["numpy.core.fromnumeric"], "reshape") {
            return Self::from_compatible_args(&object.args);
        }
        None
    }

    fn from_reconstruct_state(state: Option<&Value>) -> Result<OwnedArray, Error> {
        let Some(Value::Tuple(state)) = state else {
            return Err(bad("the ndarray state tuple"));
        };
        // (version, shape, dtype, is_fortran, raw); version 0 pickles omit the version.
        let fields = match state.as_slice() {
            [_, shape, dtype, fortran, raw] => (shape, dtype, fortran, raw),
            [shape, dtype, fortran, raw] => (shape, dtype, fortran, raw),
            _ => return Err(bad("a 5-tuple ndarray state")),
        };
        let (shape, dtype, fortran, raw) = fields;
        let shape = shape_of(shape)?;
        let dtype = dtype_of(dtype)?;
        let fortran = int_of(fortran).ok_or(bad("the is_fortran flag"))? != 0;
        let data =
            bytes_of(raw).ok_or(Error::unplaced(ErrorKind::UnsupportedDType(dtype.name())))?;
        let array = OwnedArray::new(dtype, shape, data)?;
        Ok(array.into_c_order(fortran))
    }

    fn from_frombuffer_args(args: &[Value]) -> Result<OwnedArray, Error> {
        let [raw, dtype, shape, order] = args else {
            return Err(bad("_frombuffer(buffer, dtype, shape, order)"));
        };
        let data = bytes_of(raw).ok_or(bad("the array's buffer"))?;
        let dtype = dtype_of(dtype)?;
        let shape = shape_of(shape)?;
        let fortran = matches!(order, Value::Str(o) if o == "F");
        Ok(OwnedArray::new(dtype, shape, data)?.into_c_order(fortran))
    }

    fn from_compatible_args(args: &[Value]) -> Option<Result<OwnedArray, Error>> {
        let [Value::Object(inner), shape] = args else {
            return None;
        };
        if !is_global(&inner.callable, &["numpy.core.multiarray"], "fromstring") {
            return None;
        }
        let [raw, Value::Str(name)] = inner.args.as_slice() else {
            return None;
        };
        let result = (|| {
            let shape = shape_of(shape)?;
            let data = bytes_of(raw).ok_or(bad("the array's raw bytes"))?;
            let dtype = match DType::parse(name) {
                Ok(dtype) => dtype,
                Err(_) => {
                    let n = crate::expr::checked_n_elements(&shape).unwrap_or(0);
                    DType::opaque(name, data.len().checked_div(n).unwrap_or(0))
                }
            };
            OwnedArray::new(dtype, shape, data)
        })();
        Some(result)
    }

    fn into_c_order(mut self, fortran: bool) -> OwnedArray {
        if fortran {
            self.data = fortran_to_c(&self.data, &self.shape, self.dtype.item_size());
        }
        self
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as `T` (C order), for any byte order; an error when `T` is not the dtype's element.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>, Error> {
        check_element::<T>(&self.dtype, 0)?;
        Ok(elements(&self.data, &self.dtype))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmappickle_codec::Object;

    fn global(module: &str, name: &str) -> Value {
        Value::Global(Global::new(module, name))
    }

    fn reduce(callable: Value, args: Vec<Value>, state: Option<Value>) -> Value {
        let mut object = Object::new(Construct::Reduce, callable, args);
        object.state = state;
        Value::from(object)
    }

    fn dtype_value(descr: &str, order: &str) -> Value {
        reduce(
            global("numpy", "dtype"),
            vec![descr.into(), false.into(), true.into()],
            Some(Value::Tuple(vec![
                3.into(),
                order.into(),
                Value::None,
                Value::None,
                Value::None,
                (-1).into(),
                (-1).into(),
                0.into(),
            ])),
        )
    }

    fn reconstruct(
        module: &str,
        shape: Vec<Value>,
        dtype: Value,
        fortran: bool,
        raw: Value,
    ) -> Value {
        reduce(
            global(module, "_reconstruct"),
            vec![
                global("numpy", "ndarray"),
                Value::Tuple(vec![0.into()]),
                Value::Bytes(b"b".to_vec()),
            ],
            Some(Value::Tuple(vec![
                1.into(),
                Value::Tuple(shape),
                dtype,
                fortran.into(),
                raw,
            ])),
        )
    }

    // Protocol 4's form, as numpy 1.x and 2.x write it.
    #[test]
    fn reconstruct_form() {
        for module in ["numpy.core.multiarray", "numpy._core.multiarray"] {
            let raw: Vec<u8> = [1i16, 2, 3].iter().flat_map(|v| v.to_be_bytes()).collect();
            let value = reconstruct(
                module,
                vec![3.into()],
                dtype_value("i2", ">"),
                false,
                Value::Bytes(raw),
            );
            let array = OwnedArray::from_value(&value).unwrap().unwrap();
            assert_eq!(array.dtype.type_str(), ">i2");
            assert_eq!(array.to_vec::<i16>().unwrap(), vec![1, 2, 3]);
        }
    }

    // Protocol 2's `_codecs.encode(text, 'latin1')` bytes, Fortran order turned to C order.
    #[test]
    fn protocol2_fortran() {
        let fortran: Vec<u8> = [0u8, 3, 1, 4, 2, 5].to_vec();
        let text: String = fortran.iter().map(|&b| char::from(b)).collect();
        let raw = reduce(
            global("_codecs", "encode"),
            vec![text.into(), "latin1".into()],
            None,
        );
        let value = reconstruct(
            "numpy.core.multiarray",
            vec![2.into(), 3.into()],
            dtype_value("u1", "|"),
            true,
            raw,
        );
        let array = OwnedArray::from_value(&value).unwrap().unwrap();
        assert_eq!(array.shape, vec![2, 3]);
        assert_eq!(array.data, vec![0, 1, 2, 3, 4, 5]);
    }

    // Protocol 5's `_frombuffer(bytearray, dtype, shape, order)`.
    #[test]
    fn frombuffer_form() {
        let raw: Vec<u8> = bytemuck::cast_slice(&[1.5f64, 2.5]).to_vec();
        let order = if cfg!(target_endian = "little") {
            "<"
        } else {
            ">"
        };
        let value = reduce(
            global("numpy._core.numeric", "_frombuffer"),
            vec![
                Value::ByteArray(raw),
                dtype_value("f8", order),
                Value::Tuple(vec![2.into(), 1.into()]),
                "C".into(),
            ],
            None,
        );
        let array = OwnedArray::from_value(&value).unwrap().unwrap();
        assert_eq!(array.dtype.name(), "float64");
        assert_eq!(array.to_vec::<f64>().unwrap(), vec![1.5, 2.5]);
    }

    // The compatible expression, decoded generically, is an array too.
    #[test]
    fn compatible_form() {
        let inner = reduce(
            global("numpy.core.multiarray", "fromstring"),
            vec![Value::Bytes(vec![1, 0, 1]), "bool".into()],
            None,
        );
        let value = reduce(
            global("numpy.core.fromnumeric", "reshape"),
            vec![inner, Value::Tuple(vec![3.into()])],
            None,
        );
        let array = OwnedArray::from_value(&value).unwrap().unwrap();
        assert_eq!(array.to_vec::<crate::Bool>().unwrap()[2], crate::Bool::TRUE);
    }

    // Other values are not arrays; malformed arrays are errors.
    #[test]
    fn not_arrays_and_errors() {
        assert!(OwnedArray::from_value(&Value::Int(1)).is_none());
        assert!(OwnedArray::from_value(&reduce(
            global("collections", "OrderedDict"),
            vec![],
            None
        ))
        .is_none());
        let short = reconstruct(
            "numpy.core.multiarray",
            vec![4.into()],
            dtype_value("i2", "<"),
            false,
            Value::Bytes(vec![0; 6]),
        );
        let err = OwnedArray::from_value(&short).unwrap().unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::LengthMismatch {
                found: 6,
                expected: 8
            }
        );
        let object_array = reconstruct(
            "numpy.core.multiarray",
            vec![1.into()],
            dtype_value("O8", "|"),
            false,
            Value::List(vec![]),
        );
        assert!(OwnedArray::from_value(&object_array).unwrap().is_err());
    }
}
