#!/usr/bin/env python3
"""Writes the golden pickles of mmappickle-codec: values and the exact bytes of
`pickle.dumps(v, protocol=p)` for p in 0..5, as CPython (the `_pickle` C module)
writes them.

    python3 crates/codec/tests/golden/make_golden.py crates/codec/tests/golden/golden.json
    python3 crates/codec/tests/golden/make_golden.py --big OUT.json   # big cases, made at test time

Deterministic: the same Python gives the same file byte for byte (a test checks).

Each case: {"name", "exact", "value", "native"?, "protocols": [{"protocol", "pickle", "value"?}]}.
- "pickle": hex of the stream;
- "value": what a safe unpickler builds from a stream (no global is
  imported or called: globals stay (module, name), REDUCE / NEWOBJ / BUILD
  stay object nodes, except the exact REDUCE forms CPython writes for bytes,
  bytearray, set and frozenset, which give those values: see native_call),
  computed by loading the stream with pickle's own pure-Python unpickler
  whose constructing opcodes are replaced by recorders.
  The case's "value" is that of the protocol 4 stream; a protocol's own
  "value" is given only where it differs (bytes at protocols 0-2...);
- "native": the value described with the codec's native variants (bytearray,
  set...), given only when it has one that differs from "value";
- "exact": the protocol 4 stream has no memo GET, i.e. no object appears twice,
  so the Rust pickler must reproduce it byte for byte.

Value descriptions (tagged JSON):
  null, true, false, {"int": "decimal"} (fits i64), {"long": "hex of minimal
  little-endian two's complement bytes"}, {"float": "hex of big-endian f64"},
  {"str": s}, {"bytes": hex}, {"bytearray": hex}, {"list": [v]}, {"tuple": [v]},
  {"dict": [[k, v]]}, {"set": [v]}, {"frozenset": [v]}, {"global": [module, name]},
  {"object": {"construct": "reduce"|"newobj"|"newobj_ex"|"inst"|"obj",
              "callable": v, "args": [v], "kwargs": [[k, v]],
              "list_items": [v], "dict_items": [[k, v]], "state": v (optional)}}.
"""

import collections
import datetime
import io
import json
import pickle
import pickletools
import struct
import sys


class GlobalRef:
    """A (module, name) pair, never imported."""

    def __init__(self, module, name):
        self.module, self.name = module, name


class ObjectNode:
    """What a constructing opcode would have built."""

    def __init__(self, construct, callable_, args, kwargs=()):
        self.construct = construct
        self.callable = callable_
        self.args = list(args)
        self.kwargs = list(kwargs)
        self.list_items = []
        self.dict_items = []
        self.state = None
        self.has_state = False

    # APPEND / APPENDS / SETITEM / SETITEMS onto the object.
    def append(self, item):
        self.list_items.append(item)

    def extend(self, items):
        self.list_items.extend(items)

    def __setitem__(self, key, value):
        self.dict_items.append((key, value))


class SetNode(list):
    """A set or frozenset in pickle order (a real set would reorder it)."""

    def __init__(self, frozen, items=()):
        super().__init__(items)
        self.frozen = frozen

    __hash__ = object.__hash__


class RecordingUnpickler(pickle._Unpickler):
    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module, name):
        return GlobalRef(module, name)

    def load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        self.stack[-1] = ObjectNode("reduce", func, args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(ObjectNode("newobj", cls, args))

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(ObjectNode("newobj_ex", cls, args, kwargs.items()))

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def load_inst(self):
        module = self.readline()[:-1].decode("ascii")
        name = self.readline()[:-1].decode("ascii")
        args = self.pop_mark()  # before self.append, which pop_mark rebinds
        self.append(ObjectNode("inst", GlobalRef(module, name), args))

    dispatch[pickle.INST[0]] = load_inst

    def load_obj(self):
        args = self.pop_mark()
        cls = args.pop(0)
        self.append(ObjectNode("obj", cls, args))

    dispatch[pickle.OBJ[0]] = load_obj

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        inst.state, inst.has_state = state, True

    dispatch[pickle.BUILD[0]] = load_build

    def load_empty_set(self):
        self.append(SetNode(False))

    dispatch[pickle.EMPTY_SET[0]] = load_empty_set

    def load_additems(self):
        items = self.pop_mark()
        self.stack[-1].extend(items)

    dispatch[pickle.ADDITEMS[0]] = load_additems

    def load_frozenset(self):
        items = self.pop_mark()  # before self.append, which pop_mark rebinds
        self.append(SetNode(True, items))

    dispatch[pickle.FROZENSET[0]] = load_frozenset


def recorded_load(data):
    return RecordingUnpickler(io.BytesIO(data), fix_imports=False).load()


def describe_int(value):
    if -(2**63) <= value < 2**63:
        return {"int": str(value)}
    nbytes = (value.bit_length() >> 3) + 1
    raw = value.to_bytes(nbytes, "little", signed=True)
    if value < 0 and len(raw) > 1 and raw[-1] == 0xFF and raw[-2] & 0x80:
        raw = raw[:-1]
    return {"long": raw.hex()}


def describe_pairs(pairs):
    return [[describe(k), describe(v)] for k, v in pairs]


def describe(value):
    """Describes a recorded load (or a native value); raises on anything else."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return describe_int(value)
    if isinstance(value, float):
        return {"float": struct.pack(">d", value).hex()}
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, bytearray):
        return {"bytearray": value.hex()}
    if isinstance(value, SetNode):
        return {"frozenset" if value.frozen else "set": [describe(v) for v in value]}
    if type(value) is list:  # a list subclass is an object, not a list
        return {"list": [describe(v) for v in value]}
    if type(value) is tuple:
        return {"tuple": [describe(v) for v in value]}
    if type(value) is dict:
        return {"dict": describe_pairs(value.items())}
    if type(value) in (set, frozenset):
        items = [describe(v) for v in value]
        return {"frozenset" if isinstance(value, frozenset) else "set": items}
    if isinstance(value, GlobalRef):
        return {"global": [value.module, value.name]}
    if isinstance(value, ObjectNode):
        node = {
            "construct": value.construct,
            "callable": describe(value.callable),
            "args": [describe(v) for v in value.args],
            "kwargs": describe_pairs(value.kwargs),
            "list_items": [describe(v) for v in value.list_items],
            "dict_items": describe_pairs(value.dict_items),
        }
        if value.has_state:
            node["state"] = describe(value.state)
        return native_call(node) or {"object": node}
    raise TypeError(f"no description for {type(value).__name__}")


BUILTIN_MODULES = ("builtins", "__builtin__")  # protocols 0-2 write __builtin__
LATIN1_NAMES = ("latin1", "latin-1")


def native_call(node):
    """The description of the native value that the described object node is,
    if it is exactly a call CPython writes for a builtin (the rule of the
    codec's src/builtins.rs: exact callable, argument count and types, no
    keyword arguments, nothing applied afterwards); None otherwise."""
    if node["construct"] != "reduce" or "state" in node:
        return None
    if node["kwargs"] or node["list_items"] or node["dict_items"]:
        return None
    callable_, args = node["callable"], node["args"]
    if not (isinstance(callable_, dict) and "global" in callable_):
        return None
    module, name = callable_["global"]
    tags = [next(iter(arg)) if isinstance(arg, dict) else None for arg in args]

    def latin1_hex():  # for args (str, 'latin1'): the bytes, if every char is below 256
        if tags != ["str", "str"] or args[1]["str"] not in LATIN1_NAMES:
            return None
        text = args[0]["str"]
        return text.encode("latin-1").hex() if all(ord(ch) < 256 for ch in text) else None

    if module == "_codecs" and name == "encode":
        encoded = latin1_hex()
        return None if encoded is None else {"bytes": encoded}
    if module not in BUILTIN_MODULES:
        return None
    if name == "bytes" and not args:
        return {"bytes": ""}
    if name == "bytearray":
        if not args:
            return {"bytearray": ""}
        if tags == ["bytes"]:
            return {"bytearray": args[0]["bytes"]}
        encoded = latin1_hex()
        return None if encoded is None else {"bytearray": encoded}
    if name in ("set", "frozenset") and tags == ["list"]:
        return {name: args[0]["list"]}
    return None


def native(value):
    try:
        return describe(value)
    except TypeError:
        return None


def has_memo_get(data):
    return any("GET" in op.name for op, _, _ in pickletools.genops(data))


def pattern_bytes(length):
    return bytes(i % 251 for i in range(length))


class Point:
    """An instance pickled with NEWOBJ and BUILD (protocols 2+)."""

    def __init__(self, x, y):
        self.x, self.y = x, y


class Keyworded:
    """An instance pickled with NEWOBJ_EX (protocol 4+)."""

    def __init__(self, size):
        self.size = size

    def __getnewargs_ex__(self):
        return (1,), {"size": self.size}

    def __getstate__(self):
        return None


class Items(list):
    """A list subclass: items go through APPEND / APPENDS after NEWOBJ."""


class Table(dict):
    """A dict subclass: items go through SETITEM / SETITEMS after NEWOBJ."""


def small_cases():
    """(name, value) pairs; each value is built fresh so nothing is shared."""
    ints = [0, 1, 255, 256, 65535, 65536, 2**31 - 1, -1, -2**31, 2**31, -2**31 - 1,
            2**63 - 1, -2**63, 2**63, 2**64, -2**100, 10**50, -128, 128, 2**2040]
    floats = [0.0, -0.0, 1.5, float("nan"), float("inf"), float("-inf"), 1e308, 5e-324, -2.25]
    yield "None", None
    yield "True", True
    yield "False", False
    for value in ints:
        yield f"int {value}", value
    for value in floats:
        yield f"float {value!r}", value
    yield "str empty", ""
    yield "str ascii", "hello, world"
    yield "str non-ascii", "h\u00e9llo \u2603 \U0001f600 \u4e2d"
    yield "str 255 bytes", "x" * 255
    yield "str 256 bytes", "y" * 256
    yield "str 254 bytes + 2-byte char", "z" * 254 + "\u00e9"
    yield "str with newline and backslash", "a\nb\\c\r\x00"
    yield "bytes empty", b""
    yield "bytes short", b"\x00\x01abc\xff"
    yield "bytes 255", pattern_bytes(255)
    yield "bytes 256", pattern_bytes(256)
    yield "bytearray empty", bytearray()
    yield "bytearray short", bytearray(b"\x00hi\xff")
    yield "list empty", []
    yield "list 1", [7]
    yield "list 3 mixed", [1, "a", None]
    for n in range(6):
        yield f"tuple {n}", tuple(range(10, 10 + n))
    yield "dict empty", {}
    yield "dict 1", {"only": 1}
    yield "dict str keys", {"a": 1, "b": 2.5, "c": None}
    yield "dict int keys", {1: "one", 2: "two", -3: "minus three"}
    yield "dict tuple keys", {(1, 2): "x", (3, "s"): "y"}
    yield "dict nested", {"a": {"b": [1, {"c": (2,)}]}, "d": []}
    yield "list 1001", list(range(1001))
    yield "set empty", set()
    yield "set ints", {1, 2, 3, 300}
    yield "frozenset empty", frozenset()
    yield "frozenset ints", frozenset([5, 6, 7])
    yield "nested containers", [(1, [2, (3, {"k": {4}})]), {"x": frozenset([9])}, [[[]]]]
    yield "OrderedDict", collections.OrderedDict([("z", 1), ("a", 2)])
    yield "datetime", datetime.datetime(2020, 1, 2, 3, 4, 5, 6)
    yield "date", datetime.date(1999, 12, 31)
    yield "complex", complex(1.5, -2.0)
    yield "object with state", Point(1, "two")
    yield "object with keyword arguments", Keyworded(7)
    yield "list subclass 1 item", Items([1])
    yield "list subclass 3 items", Items([1, 2, 3])
    yield "dict subclass 1 item", Table(a=1)
    yield "dict subclass 2 items", Table(a=1, b=2)
    yield "two datetimes (shared global)", [datetime.date(2000, 1, 1), datetime.date(2001, 1, 1)]
    yield "shared list", (lambda shared: [shared, shared])([1, 2])


def big_cases():
    yield "set 1000", set(range(1000))
    yield "str long", "".join(chr(0x20 + i % 90) for i in range(5000))
    yield "OrderedDict 1001", collections.OrderedDict((i, i) for i in range(1001))
    yield "set 1001", set(range(1001))
    yield "dict 1001", {i: -i for i in range(1001)}
    yield "dict 1000", {i: i for i in range(1000)}
    yield "list 1000", list(range(1000))
    yield "list 2500", list(range(2500))
    yield "list subclass 1001 items", Items(range(1001))
    yield "list subclass 1000 items", Items(range(1000))
    yield "dict subclass 1001 items", Table((i, i) for i in range(1001))


def big_framing_cases():
    yield "str 70 KiB", "s" * (70 * 1024)
    yield "bytes 65535", pattern_bytes(65535)
    yield "bytes 65536", pattern_bytes(65536)
    yield "bytes 70 KiB", pattern_bytes(70 * 1024)
    yield "list of strings over 64 KiB", [f"string number {i:06d}" + "-" * (i % 50) for i in range(3000)]
    yield "dict str to int over 64 KiB", {f"key{i:07d}": i for i in range(6000)}
    yield "list of tuples over 64 KiB", [(i, str(i), (i,)) for i in range(5000)]
    yield "bytes 100 KiB in list", [1, pattern_bytes(100 * 1024), "after"]
    yield "nested lists over 128 KiB", [[f"{j}:{i}" for i in range(1001)] for j in range(10)]


ALL_PROTOCOLS = range(6)
# Big payloads and containers only test framing, which protocols 4 and 5 have.
FRAMING_PROTOCOLS = (4, 5)


def make_case(name, value, protocols_to_write=ALL_PROTOCOLS):
    loaded4 = describe(recorded_load(pickle.dumps(value, protocol=4)))
    protocols = []
    for protocol in protocols_to_write:
        data = pickle.dumps(value, protocol=protocol)
        entry = {"protocol": protocol, "pickle": data.hex()}
        loaded = describe(recorded_load(data))
        if loaded != loaded4:
            entry["value"] = loaded
        protocols.append(entry)
    case = {
        "name": name,
        "exact": not has_memo_get(pickle.dumps(value, protocol=4)),
        "value": loaded4,
        "protocols": protocols,
    }
    native_value = native(value)
    if native_value is not None and native_value != loaded4:
        case["native"] = native_value
    return case


def main(argv):
    big = "--big" in argv
    paths = [arg for arg in argv if not arg.startswith("--")]
    if len(paths) != 1:
        sys.exit("usage: make_golden.py [--big] OUT.json")
    if big:
        cases = [make_case(name, value) for name, value in big_cases()]
        cases += [make_case(name, value, FRAMING_PROTOCOLS) for name, value in big_framing_cases()]
    else:
        cases = [make_case(name, value) for name, value in small_cases()]
    document = {
        "generator": "crates/codec/tests/golden/make_golden.py",
        "cases": cases,
    }
    with open(paths[0], "w", encoding="utf-8") as out:
        json.dump(document, out, indent=None, separators=(",", ":"), sort_keys=False)
        out.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
