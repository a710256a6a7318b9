"""numpy arrays: written from their buffer, read back as numpy.memmap of the file."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from mmappickle import mmapdict
from mmappickle.stubs import EmptyNDArray

DTYPES = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    ">i4",
    ">f8",
    ">c16",
    "<U5",
    "S3",
    "datetime64[ns]",
    "timedelta64[s]",
]


def sample(dtype: str, shape: tuple = (3, 4)) -> np.ndarray:
    n = int(np.prod(shape))
    kind = np.dtype(dtype).kind
    if kind == "b":
        values = np.arange(n) % 3 == 0
    elif kind in "US":
        values = np.array([f"s{i}" for i in range(n)])
    elif kind in "mM":
        values = np.arange(n).astype("int64")
    elif kind == "c":
        values = np.arange(n) + 1j * np.arange(n)
    else:
        values = np.arange(n) % 100
    return values.astype(dtype).reshape(shape)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes_round_trip_as_memmaps(path: str, dtype: str) -> None:
    m = mmapdict(path)
    array = sample(dtype)
    m["a"] = array
    got = mmapdict(path)["a"]
    assert type(got) is np.memmap
    assert got.dtype == array.dtype and got.shape == array.shape
    assert np.array_equal(got, array)


@pytest.mark.parametrize("shape", [(), (0,), (3, 0), (0, 5), (1,) * 32, (2, 3, 4, 5), (70000,)])
def test_shapes(path: str, shape: tuple) -> None:
    m = mmapdict(path)
    array = sample("float64", shape)
    m["a"] = array
    got = m["a"]
    assert got.shape == shape and np.array_equal(got, array)


def test_non_contiguous_and_fortran_inputs(path: str) -> None:
    m = mmapdict(path)
    base = np.arange(60, dtype=np.int32).reshape(6, 10)
    inputs = {
        "strided": base[::2, ::3],
        "fortran": np.asfortranarray(base),
        "transposed": base.T,
        "reversed": base[::-1],
    }
    for key, array in inputs.items():
        m[key] = array
    for key, array in inputs.items():
        got = m[key]
        assert got.flags.c_contiguous and np.array_equal(got, array), key


def test_memmap_input_and_in_place_writes(path: str, tmp_path) -> None:
    source = np.memmap(tmp_path / "raw", dtype=np.float32, mode="w+", shape=(4,))
    source[:] = [1, 2, 3, 4]
    m = mmapdict(path)
    m["a"] = source
    a = m["a"]
    assert a.mode == "r+"
    a[0] = 42
    a.flush()
    assert mmapdict(path)["a"][0] == 42
    ro = mmapdict(path, True)["a"]
    assert ro.mode == "r" and not ro.flags.writeable


def test_masked_arrays(path: str) -> None:
    m = mmapdict(path)
    explicit = np.ma.MaskedArray([1.0, 2.0, 3.0], mask=[False, True, False])
    no_mask = np.ma.MaskedArray(np.arange(4, dtype=np.int16))
    m["explicit"] = explicit
    m["nomask"] = no_mask
    got = m["explicit"]
    assert type(got) is np.ma.MaskedArray
    # The data is a map of the file, the mask a view of its map (numpy's public API).
    assert isinstance(got.data, np.memmap) and not got.mask.flags.owndata
    assert got.mask.tolist() == [False, True, False]
    assert got.data.tolist() == [1.0, 2.0, 3.0]
    assert got.sum() == 4.0
    got = m["nomask"]
    assert isinstance(got.data, np.memmap) and not got.mask.flags.owndata
    assert not got.mask.any() and got.data.tolist() == [0, 1, 2, 3]
    # Changes of the data and of the mask reach the file.
    got[1] = np.ma.masked
    got[2] = 7
    del got
    again = mmapdict(path, readonly=True)["nomask"]
    assert again.mask.tolist() == [False, True, False, False]
    assert again.data.tolist() == [0, 1, 7, 3]


def test_stubs(path: str) -> None:
    m = mmapdict(path)
    m["small"] = EmptyNDArray((3, 4), dtype=np.int16)
    small = m["small"]
    assert small.dtype == np.int16 and small.shape == (3, 4) and not small.any()
    small[1, 2] = 7
    assert m["small"][1, 2] == 7
    # A 1 TiB stub: a hole in the file, no RAM, kilobytes of disk.
    m["huge"] = EmptyNDArray((2**37,), dtype=np.float64)
    assert os.stat(path).st_size > 2**40
    assert os.stat(path).st_blocks * 512 < 1 << 20
    huge = m["huge"]
    assert huge.shape == (2**37,) and huge[-1] == 0.0
    del huge
    del m["huge"]
    m.vacuum()
    assert os.stat(path).st_size < 1 << 20
    assert m["small"][1, 2] == 7


def test_object_and_structured_arrays_are_pickled_values(path: str) -> None:
    m = mmapdict(path)
    objects = np.array([1, "a", None], dtype=object)
    structured = np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")])
    m["objects"] = objects
    m["structured"] = structured
    assert type(m["objects"]) is np.ndarray and m["objects"].tolist() == [1, "a", None]
    assert m["structured"].dtype == structured.dtype


def test_portable_encoding_loads_with_plain_pickle(path: str) -> None:
    m = mmapdict(path, encoding="portable")
    m["a"] = np.arange(6, dtype=np.float64).reshape(2, 3)
    m["b"] = [1, 2]
    m["stub"] = EmptyNDArray((5,))
    got = m["a"]
    assert type(got) is np.memmap and got.tolist() == [[0, 1, 2], [3, 4, 5]]
    with open(path, "rb") as file:
        whole = pickle.load(file)
    assert np.array_equal(whole["a"], np.arange(6.0).reshape(2, 3))
    assert whole["a"].flags.writeable and whole["b"] == [1, 2]
    assert whole["stub"].tolist() == [0.0] * 5


def test_arrays_inside_generic_values(path: str) -> None:
    m = mmapdict(path)
    m["list"] = [np.arange(3), {"x": np.ones(2)}]
    got = m["list"]
    assert np.array_equal(got[0], np.arange(3)) and np.array_equal(got[1]["x"], np.ones(2))


def test_plain_pickle_with_arrays_is_converted_to_mapped_entries(path: str) -> None:
    with open(path, "wb") as file:
        pickle.dump({"a": np.arange(4, dtype=np.int16), "b": "text"}, file)
    m = mmapdict(path)
    assert type(m["a"]) is np.memmap and m["a"].tolist() == [0, 1, 2, 3]
    assert m["b"] == "text"


def test_too_many_dimensions_is_a_value_error(path: str) -> None:
    if np.lib.NumpyVersion(np.__version__) < "2.0.0":
        pytest.skip("numpy 1.x arrays have at most 32 dimensions")
    m = mmapdict(path)
    with pytest.raises(ValueError, match="dimensions"):
        m["a"] = np.zeros((1,) * 33)
    assert "a" not in m


def maps_of(path: str) -> int:
    """How many maps of ``path`` this process has (``/proc/self/maps``)."""
    real = os.path.realpath(path)
    with open("/proc/self/maps") as maps:
        return sum(1 for line in maps if line.rstrip().endswith(real))


def test_arrays_are_views_of_one_map_per_handle(path: str) -> None:
    m = mmapdict(path)
    for i in range(20):
        m[f"a{i}"] = np.arange(1000, dtype="f8") + i
    m["small"] = np.arange(3, dtype="u1")
    arrays = [m["a0"]]
    maps = maps_of(path)  # the Rust half's and the one arrays are views of
    arrays += [m[f"a{i % 20}"] for i in range(1, 200)]
    # No new map for 199 more reads (numpy.memmap(path) per read made one each).
    assert maps_of(path) == maps <= 2
    first = arrays[0]
    assert type(first) is np.memmap and type(first[10:20]) is np.memmap
    assert first.filename == os.path.realpath(path)
    with open(path, "rb") as file:
        file.seek(first.offset)
        assert file.read(16) == first[:2].tobytes()
    assert [float(a[5]) for a in arrays[:20]] == [5.0 + i for i in range(20)]
    # Writes through a view reach the file; flush() syncs the map.
    first[0] = -1.0
    first.flush()
    assert mmapdict(path, readonly=True)["a0"][0] == -1.0
    # A 0-d, an empty, and an array the file grew to hold after the map was made.
    m["scalar"] = np.array(7, dtype="i4")
    m["empty"] = np.zeros((0, 3))
    m["late"] = np.full(100_000, 2.5)
    assert int(m["scalar"]) == 7 and m["empty"].shape == (0, 3)
    assert float(m["late"].sum()) == 250_000.0
    assert m["small"].tolist() == [0, 1, 2]


def test_the_map_follows_a_vacuum_of_another_handle(path: str) -> None:
    m = mmapdict(path)
    m["gone"] = np.zeros(10_000)
    m["kept"] = np.arange(5, dtype="i8")
    assert m["kept"].tolist() == [0, 1, 2, 3, 4]
    old = m["kept"]
    other = mmapdict(path)
    del other["gone"]
    other.vacuum()  # a new file renamed over the path: "kept" moved
    other["kept"] = np.arange(5, 10, dtype="i8")
    assert m["kept"].tolist() == [5, 6, 7, 8, 9]
    # Arrays handed out before keep mapping the old file.
    assert old.tolist() == [0, 1, 2, 3, 4]
