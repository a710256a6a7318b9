"""Values the CLI shows as Python does, written by numpy 1.x and 2.x, and what Python says of them.

Usage (run by `known_forms.rs`):

- `python known_forms.py write DIR`: writes the cases as plain pickles of a dict
  (`numpy<major>-<protocol>.pkl`, protocols 0, 2 and 4) and, where Python mmappickle 1.0
  is installed, as an mmappickle file (`numpy<major>.mmdpickle`);
- `python known_forms.py expect FILE...` (numpy 2's environment): loads each file with
  `pickle` and prints, per file, each key's `repr()` and its value in the CLI's JSON
  mapping, as JSON;
- `python known_forms.py printed-manifest MANIFEST`: the fixtures' manifest with the
  descriptions of dates, times and datetimes replaced by their `isoformat()`, as the CLI's
  JSON shows them;
- `python known_forms.py floats FILE` (numpy 2's environment): pickles every float16,
  and random float32, float64, complex64 and complex128 bit patterns (seeded) as a list of
  scalars into FILE, and prints the list's `repr()`.
"""

import base64
import collections
import datetime
import decimal
import json
import os
import pickle
import sys
import warnings
import zoneinfo
from typing import Any

import numpy as np

sys.path.insert(
    0,
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "tests", "python"),
)
from describe import describe

NAN = float("nan")
INF = float("inf")
UTC = datetime.UTC


def numpy_cases() -> list[tuple[str, Any]]:
    cases: list[tuple[str, Any]] = [
        ("bool_true", np.bool_(True)),
        ("bool_false", np.bool_(False)),
    ]
    for name in [
        f"{kind}{bits}" for kind in ("int", "uint") for bits in (8, 16, 32, 64)
    ]:
        info = np.iinfo(name)
        for label, value in [("min", info.min), ("max", info.max), ("mid", 7)]:
            cases.append((f"{name}_{label}", np.dtype(name).type(value)))
    floats = {
        "float16": [
            0.1,
            1.5,
            65504,
            1e-5,
            6e-8,
            999.5,
            1000,
            1e-4,
            -0.0,
            NAN,
            INF,
            -INF,
        ],
        "float32": [
            0.1,
            1e16,
            1e-5,
            1e-4,
            123456789,
            950000,
            1e6,
            3.4e38,
            -0.0,
            NAN,
            -INF,
        ],
        "float64": [
            0.1,
            1e16,
            9.5e15,
            1e-5,
            1e-4,
            3.141592653589793,
            -0.0,
            NAN,
            5e-324,
        ],
    }
    for name, values in floats.items():
        for idx, value in enumerate(values):
            cases.append((f"{name}_{idx}", np.dtype(name).type(value)))
    complexes = [
        complex(1.5, 0),
        complex(0, 2),
        complex(0, -1),
        complex(-0.0, 0),
        complex(-0.0, 2),
        complex(1, -0.0),
        complex(NAN, INF),
        complex(-INF, -INF),
        complex(1e20, 1e-7),
        complex(0.1, 0.2),
        complex(0, 0),
    ]
    for name in ["complex64", "complex128"]:
        for idx, value in enumerate(complexes):
            cases.append((f"{name}_{idx}", np.dtype(name).type(value)))
    datetimes = [
        ("NaT", "generic"),
        ("NaT", "D"),
        ("NaT", "25s"),
        ("2021", "Y"),
        ("2021-03", "M"),
        ("2021-03-04", "W"),
        ("2021-03-04", "D"),
        ("2021-03-04T05", "h"),
        ("2021-03-04T05:06", "m"),
        ("2021-03-04T05:06:07", "s"),
        ("2021-03-04T05:06:07.123", "ms"),
        ("1969-12-31T23:59:59.999999", "us"),
        ("2021-03-04T05:06:00", "ns"),
        (5, "ps"),
        (5, "fs"),
        (-5, "as"),
        (10, "25s"),
        (10, "2D"),
        (-1, "Y"),
        (-1, "M"),
        (-2000, "Y"),
        ("-0100-01-01", "D"),
        ("10000-01-01", "D"),
    ]
    for idx, (value, unit) in enumerate(datetimes):
        cases.append((f"datetime64_{idx}", np.datetime64(value, unit)))
    timedeltas = [
        (5, "s"),
        ("NaT", "s"),
        ("NaT", "generic"),
        (5, "generic"),
        (-3, "25ms"),
        (7, "Y"),
        (2, "W"),
        (90061, "s"),
        (-1500, "ms"),
        (0, "h"),
        (123456789, "ns"),
    ]
    for idx, (value, unit) in enumerate(timedeltas):
        cases.append((f"timedelta64_{idx}", np.timedelta64(value, unit)))
    cases += [
        ("str_empty", np.str_("")),
        ("str_quote", np.str_("it's")),
        ("str_accents", np.str_("hé\n")),
        ("bytes_empty", np.bytes_(b"")),
        ("bytes_nul", np.bytes_(b"a\x00b")),
        ("void", np.void(b"ab")),
        ("scalars_in_a_list", [np.float32(2.5), np.int64(7), {"k": np.bool_(True)}]),
    ]
    for name in [
        "f8",
        ">i4",
        "M8[ns]",
        "U5",
        "S3",
        "bool",
        "c8",
        "m8",
        "f2",
        "V3",
        ">m8[25s]",
    ]:
        cases.append((f"dtype_{name}", np.dtype(name)))
    return cases


def python_cases() -> list[tuple[str, Any]]:
    offset = datetime.timezone(datetime.timedelta(seconds=-3601, microseconds=5))
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    return [
        ("datetime", datetime.datetime(2021, 3, 4, 5, 6, 7, 890123)),
        ("datetime_midnight", datetime.datetime(2021, 3, 4)),
        ("datetime_seconds", datetime.datetime(2021, 3, 4, 5, 6, 7)),
        ("datetime_utc", datetime.datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("datetime_offset", datetime.datetime(1, 1, 1, tzinfo=offset)),
        (
            "datetime_named",
            datetime.datetime(
                9999,
                12,
                31,
                23,
                59,
                59,
                999999,
                tzinfo=datetime.timezone(-datetime.timedelta(hours=3), "X"),
            ),
        ),
        ("datetime_fold", datetime.datetime(2021, 10, 31, 2, 30, fold=1, tzinfo=UTC)),
        ("datetime_zoneinfo", datetime.datetime(2021, 3, 4, 5, 6, tzinfo=paris)),
        ("date", datetime.date(2020, 2, 29)),
        ("time", datetime.time(5, 6)),
        ("time_midnight", datetime.time(0, 0)),
        ("time_utc", datetime.time(5, 6, 7, 8, tzinfo=UTC)),
        ("time_fold", datetime.time(5, 6, fold=1, tzinfo=offset)),
        ("timedelta", datetime.timedelta(1, 2, 3)),
        ("timedelta_zero", datetime.timedelta(0)),
        ("timedelta_negative", datetime.timedelta(-1)),
        ("timedelta_micro", datetime.timedelta(microseconds=5)),
        ("timedelta_mixed", datetime.timedelta(days=-1, seconds=5)),
        ("timezone_utc", UTC),
        ("timezone_named", datetime.timezone(datetime.timedelta(hours=1), "CET")),
        ("zoneinfo", paris),
        ("decimal", decimal.Decimal("1.10")),
        ("decimal_negative_zero", decimal.Decimal("-0")),
        ("decimal_exponent", decimal.Decimal("1.2E+10")),
        ("decimal_small", decimal.Decimal("0E-7")),
        ("decimal_nan", decimal.Decimal("NaN")),
        ("decimal_snan", decimal.Decimal("-sNaN12")),
        ("decimal_infinity", decimal.Decimal("-Infinity")),
        ("decimal_big", decimal.Decimal(2) ** 100),
        ("complex", complex(1.5, -2)),
        ("complex_imaginary", complex(0, 2)),
        ("complex_negative_zero", complex(-0.0, 2)),
        ("complex_nan", complex(1e16, NAN)),
        ("complex_imag_negative_zero", complex(1, -0.0)),
        ("complex_infinite", complex(INF, -INF)),
        ("ordered_dict", collections.OrderedDict([("z", 1), ("a", np.float32(0.1))])),
        ("ordered_dict_empty", collections.OrderedDict()),
        # Before protocol 4, `builtins.set([...])` calls (ints: the same order everywhere).
        ("set", {3, 1, 2}),
        ("frozenset", frozenset({7, -1})),
        ("set_empty", set()),
        ("bytes_before_protocol_3", b"\x00\xff'"),
    ]


def write(directory: str) -> None:
    cases = numpy_cases() + python_cases()
    major = np.__version__.split(".")[0]
    for protocol in (0, 2, 4):
        with open(os.path.join(directory, f"numpy{major}-{protocol}.pkl"), "wb") as f:
            pickle.dump(dict(cases), f, protocol)
    try:
        import mmappickle
    except ImportError:
        return
    store = mmappickle.mmapdict(os.path.join(directory, f"numpy{major}.mmdpickle"))
    for key, value in cases:
        store[key] = value


def float_json(value: Any) -> Any:
    """A float of any width as the CLI writes it: the digits numpy prints, as a float."""
    return describe(float(str(value)))


def iso_duration(count: int, unit: str) -> str:
    sign, count = ("-" if count < 0 else ""), abs(count)
    if unit in ("Y", "M"):
        return f"{sign}P{count}{unit}"
    seconds_per_unit = {"W": 604800, "D": 86400, "h": 3600, "m": 60}
    if unit in seconds_per_unit:
        seconds, fraction, digits = count * seconds_per_unit[unit], 0, 0
    else:
        digits = {"s": 0, "ms": 3, "us": 6, "ns": 9, "ps": 12, "fs": 15, "as": 18}[unit]
        seconds, fraction = divmod(count, 10**digits)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if seconds or fraction or not (days or hours or minutes):
        decimals = f"{fraction:0{digits}d}".rstrip("0") if fraction else ""
        time += f"{seconds}" + (f".{decimals}" if decimals else "") + "S"
    return f"{sign}P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")


def cli_json(value: Any) -> Any:
    """`value` in the CLI's JSON mapping: numpy scalars, dates and Decimals as plain values."""
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    if isinstance(value, np.timedelta64):
        if np.isnat(value):
            return None
        unit, multiplier = np.datetime_data(value.dtype)
        count = int(value.astype("int64"))
        return count if unit == "generic" else iso_duration(count * multiplier, unit)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return describe(int(value))
    if isinstance(value, np.floating):
        return float_json(value)
    if isinstance(value, np.complexfloating):
        return {
            "object": {
                "callable": {"global": ["builtins", "complex"]},
                "args": [float_json(value.real), float_json(value.imag)],
            }
        }
    if isinstance(value, np.str_):
        return str(value)
    if isinstance(value, (np.bytes_, np.void)):
        return {"bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (datetime.datetime, datetime.time)):
        if value.tzinfo is None or isinstance(value.tzinfo, datetime.timezone):
            return value.isoformat()
        # The object, whose tzinfo pickles differently in each protocol.
        return {"structural": describe(type(value))}
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return iso_duration(value // datetime.timedelta(microseconds=1), "us")
    if isinstance(value, zoneinfo.ZoneInfo):
        return {"structural": None}
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, collections.OrderedDict):
        return {
            "object": {
                "callable": {"global": ["collections", "OrderedDict"]},
                "args": [],
                **(
                    {
                        "dictitems": [
                            [cli_json(k), cli_json(v)] for k, v in value.items()
                        ]
                    }
                    if value
                    else {}
                ),
            }
        }
    if type(value) is list:
        return [cli_json(item) for item in value]
    if type(value) is dict:
        return {"dict": [[cli_json(k), cli_json(v)] for k, v in value.items()]}
    return describe(value)


def expect(paths: list[str]) -> None:
    expected = {}
    for path in paths:
        with open(path, "rb") as f, warnings.catch_warnings():
            # numpy 2 warns of numpy.core, which numpy 1's pickles name.
            warnings.simplefilter("ignore")
            loaded = pickle.load(f)
        expected[os.path.basename(path)] = {
            "dict": repr(loaded),
            "keys": [
                [key, repr(value), cli_json(value)] for key, value in loaded.items()
            ],
        }
    print(json.dumps(expected))


def printed(description: Any) -> Any:
    """A `describe` description as the CLI's JSON shows it (Python rebuilds its dates)."""
    if isinstance(description, list):
        return [printed(item) for item in description]
    if not isinstance(description, dict):
        return description
    node = description.get("object")
    if (
        len(description) == 1
        and isinstance(node, dict)
        and set(node) == {"callable", "args"}
    ):
        module, name = node["callable"].get("global", [None, None])
        if module == "datetime" and name in ("date", "datetime", "time"):
            args = [base64.b64decode(arg["bytes"]) for arg in node["args"]]
            return getattr(datetime, name)(*args).isoformat()
    return {key: printed(value) for key, value in description.items()}


def floats(path: str) -> None:
    random = np.random.default_rng(5)
    every_half = np.arange(2**16, dtype="uint16").view("float16")
    singles = random.integers(0, 2**32, 5000, dtype="uint32").view("float32")
    doubles = random.integers(0, 2**64, 5000, dtype="uint64").view("float64")
    complexes = [
        random.integers(0, 2**64, 2000, dtype="uint64").view("complex64"),
        random.integers(0, 2**64, 4000, dtype="uint64").view("complex128"),
    ]
    scalars = [x for group in [every_half, singles, doubles, *complexes] for x in group]
    with open(path, "wb") as f:
        pickle.dump(scalars, f, 4)
    print(repr(scalars))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    elif sys.argv[1] == "printed-manifest":
        with open(sys.argv[2]) as f:
            print(json.dumps(printed(json.load(f))))
    elif sys.argv[1] == "floats":
        floats(sys.argv[2])
    else:
        expect(sys.argv[2:])
