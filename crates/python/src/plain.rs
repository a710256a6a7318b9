//! Plain values (`None`, `bool`, `int`, `float`, `str`, `bytes`, and `list`, `tuple`, `dict`
//! of them) written for the file by the Rust half, with the opcodes Python's pickler would
//! choose: a batch's plain values skip `pickle.dumps` and the reading of its output, which
//! cost as much as the rest of the batch.

use mmappickle::ValueWriter;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// Containers nested deeper than this are left to Python's pickler.
const MAX_DEPTH: usize = 32;

/// Writes `value` into `writer` as its own value (its index there), when it is made only of
/// objects of exactly the plain types (no subclass: its pickle could be anything), ints
/// within 64 bits, strings without lone surrogates, nests at most [`MAX_DEPTH`] deep, and
/// holds no memoized object (a `str`, `bytes`, `list`, `dict`, non-empty `tuple`) twice,
/// where Python's pickler would write a `GET`. Anything else is `None`, with nothing
/// written: Python's pickler stores it. `seen` is scratch space, kept between calls.
pub(crate) fn write_plain(
    writer: &mut ValueWriter,
    value: &Bound<'_, PyAny>,
    seen: &mut Vec<usize>,
) -> Option<usize> {
    seen.clear();
    let written = write_object(writer, value, seen, 0).is_some() && {
        seen.sort_unstable();
        seen.windows(2).all(|pair| pair[0] != pair[1])
    };
    let index = written.then(|| writer.finish_value().ok()).flatten();
    if index.is_none() {
        writer.abandon_value();
    }
    index
}

fn write_object(
    writer: &mut ValueWriter,
    value: &Bound<'_, PyAny>,
    seen: &mut Vec<usize>,
    depth: usize,
) -> Option<()> {
    if value.is_none() {
        return writer.none().ok();
    }
    if let Ok(flag) = value.cast_exact::<PyBool>() {
        return writer.bool(flag.is_true()).ok();
    }
    if value.is_exact_instance_of::<PyInt>() {
        return writer.int(value.extract::<i64>().ok()?).ok();
    }
    if let Ok(float) = value.cast_exact::<PyFloat>() {
        return writer.float(float.value()).ok();
    }
    seen.push(value.as_ptr() as usize);
    if let Ok(text) = value.cast_exact::<PyString>() {
        // UTF-8 from Python's own encoder (which refuses lone surrogates).
        let utf8 = text.encode_utf8().ok()?;
        return writer.str(std::str::from_utf8(utf8.as_bytes()).ok()?).ok();
    }
    if let Ok(bytes) = value.cast_exact::<PyBytes>() {
        return writer.bytes(bytes.as_bytes()).ok();
    }
    if depth == MAX_DEPTH {
        return None;
    }
    if let Ok(list) = value.cast_exact::<PyList>() {
        writer.begin_list(list.len()).ok()?;
        for item in list.iter() {
            write_object(writer, &item, seen, depth + 1)?;
        }
    } else if let Ok(tuple) = value.cast_exact::<PyTuple>() {
        if tuple.is_empty() {
            // The empty tuple is never memoized (a singleton).
            seen.pop();
        }
        writer.begin_tuple(tuple.len()).ok()?;
        for item in tuple.iter() {
            write_object(writer, &item, seen, depth + 1)?;
        }
    } else if let Ok(dict) = value.cast_exact::<PyDict>() {
        writer.begin_dict(dict.len()).ok()?;
        for (key, item) in dict.iter() {
            write_object(writer, &key, seen, depth + 1)?;
            write_object(writer, &item, seen, depth + 1)?;
        }
    } else {
        return None;
    }
    writer.end().ok()
}
