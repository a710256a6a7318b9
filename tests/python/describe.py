"""The JSON description of a value, as the conformance suite and the CLI use it.

The description says what a protocol-4 pickle of the value holds, without
running anything (the contract shared with the Rust side, see
`tests/README.md`):

- None, bools, str and lists map to themselves;
- int -> a number when |n| < 2**53, else {"int": "<decimal>"};
- float -> a number, or {"float": "nan" | "inf" | "-inf"};
- bytes -> {"bytes": "<base64>"}, bytearray -> {"bytearray": "<base64>"}
  (protocol 4 pickles it as a call of builtins.bytearray, which the codec
  loads as a bytearray), tuple -> {"tuple": [...]},
  dict -> {"dict": [[k, v], ...]}, set / frozenset -> {"set": [...]} /
  {"frozenset": [...]} in pickle order, a class or function ->
  {"global": [module, name]};
- any other object -> {"object": {"callable", "args", "new", "kwargs",
  "state", "listitems", "dictitems"}} as `pickle.dumps(v, 4)` reduces it
  (copyreg's dispatch table first, then `__reduce_ex__(4)`), absent parts
  left out;
- a numpy array (also a memmap or an EmptyNDArray stub) ->
  {"ndarray": {"dtype", "shape", "sha256"}}, the hash being over the C-order
  raw bytes as mmappickle stores them; a masked array ->
  {"masked": {"data": {...}, "mask": {...}}}.

`build` is the inverse for the plain types (used to write the same values
from Python and from Rust); it also accepts {"ndarray": {"dtype", "shape",
"base64"}} to build an array from its raw bytes, and {"masked": {"data":
{...}, "mask": {...}}} with two such arrays.
"""

import base64
import copyreg
import hashlib
import importlib
import math
import types

try:
    import numpy
except ImportError:  # describing generic values needs no numpy
    numpy = None

SAFE_INT = 2**53


def _array_description(dtype, shape, raw):
    return {
        "dtype": str(dtype),
        "shape": [int(n) for n in shape],
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def _describe_array(value):
    """ndarray, memmap, EmptyNDArray stub, or the numpy scalar of a missing mask."""
    if type(value).__name__ == "EmptyNDArray":
        n_bytes = value.dtype.itemsize * int(numpy.prod(value.shape))
        return _array_description(value.dtype, value.shape, bytes(n_bytes))
    array = numpy.asarray(value)
    return _array_description(array.dtype, array.shape, array.tobytes(order="C"))


def _is_array(value):
    if numpy is None:
        return False
    return isinstance(value, numpy.ndarray) or type(value).__name__ == "EmptyNDArray"


def describe(value):
    """The JSON description (a plain Python structure) of `value`."""
    if numpy is not None and isinstance(value, numpy.ma.MaskedArray):
        return {
            "masked": {
                "data": _describe_array(value.data),
                "mask": _describe_array(value.mask),
            }
        }
    if _is_array(value):
        return {"ndarray": _describe_array(value)}
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if abs(value) < SAFE_INT else {"int": str(value)}
    if kind is float:
        if math.isnan(value):
            return {"float": "nan"}
        if math.isinf(value):
            return {"float": "inf" if value > 0 else "-inf"}
        return value
    if kind is bytes:
        return {"bytes": base64.b64encode(value).decode("ascii")}
    if kind is bytearray:
        return {"bytearray": base64.b64encode(value).decode("ascii")}
    if kind is list:
        return [describe(item) for item in value]
    if kind is tuple:
        return {"tuple": [describe(item) for item in value]}
    if kind is dict:
        return {"dict": [[describe(k), describe(v)] for k, v in value.items()]}
    if kind is set:
        return {"set": [describe(item) for item in value]}
    if kind is frozenset:
        return {"frozenset": [describe(item) for item in value]}
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return {"global": [value.__module__, value.__qualname__]}
    return {"object": _describe_reduced(value)}


def _describe_reduced(value):
    """What pickle protocol 4 writes for an object: its reduce tuple."""
    reducer = copyreg.dispatch_table.get(type(value))
    reduced = reducer(value) if reducer else value.__reduce_ex__(4)
    func, args, *rest = reduced
    rest += [None] * (4 - len(rest))
    state, listitems, dictitems, _state_setter = rest[:4]
    node = {}
    if getattr(func, "__name__", "") == "__newobj_ex__":
        cls, args, kwargs = args
        node = {"callable": describe(cls), "args": [describe(a) for a in args], "new": True}
        node["kwargs"] = {"dict": [[describe(k), describe(v)] for k, v in kwargs.items()]}
    elif getattr(func, "__name__", "") == "__newobj__":
        cls, *args = args
        node = {"callable": describe(cls), "args": [describe(a) for a in args], "new": True}
    else:
        node = {"callable": describe(func), "args": [describe(a) for a in args]}
    if listitems is not None:
        node["listitems"] = [describe(item) for item in listitems]
    if dictitems is not None:
        node["dictitems"] = [[describe(k), describe(v)] for k, v in dictitems]
    if state is not None:
        node["state"] = describe(state)
    return node


def build(description):
    """The Python value that `description` describes (plain types and arrays)."""
    if description is None or isinstance(description, (bool, int, float, str)):
        return description
    if isinstance(description, list):
        return [build(item) for item in description]
    (tag, inner), = description.items()
    if tag == "int":
        return int(inner)
    if tag == "float":
        return float(inner)
    if tag == "bytes":
        return base64.b64decode(inner)
    if tag == "bytearray":
        return bytearray(base64.b64decode(inner))
    if tag == "tuple":
        return tuple(build(item) for item in inner)
    if tag == "dict":
        return {build(k): build(v) for k, v in inner}
    if tag == "set":
        return {build(item) for item in inner}
    if tag == "frozenset":
        return frozenset(build(item) for item in inner)
    if tag == "global":
        module, name = inner
        return getattr(importlib.import_module(module), name)
    if tag == "ndarray":
        raw = base64.b64decode(inner["base64"])
        return numpy.frombuffer(raw, dtype=inner["dtype"]).reshape(inner["shape"]).copy()
    if tag == "masked":
        data = build({"ndarray": inner["data"]})
        return numpy.ma.MaskedArray(data, mask=build({"ndarray": inner["mask"]}))
    raise ValueError(f"cannot build a value from {tag!r}")
