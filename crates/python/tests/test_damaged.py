"""Damaged files: malformed headers are refused untouched; fsck repairs cut files."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import pytest
from mmappickle import mmapdict

GOOD = (
    bytes([0x80, 4, 0x95])
    + struct.pack("<Q", 13)
    + bytes([0x4A, 1, 0, 0, 0, 0x30, 0x4A, 0, 0, 0, 0, 0x30, 0x28])
    + bytes([0x95])
    + struct.pack("<Q", 2)
    + b"d."
)


def with_byte(offset: int, byte: int) -> bytes:
    file = bytearray(GOOD)
    file[offset] = byte
    return bytes(file)


# The 13 malformed headers of the container's tests, with the offset each is refused at.
BAD_HEADERS = {
    "one byte": (b"\x80", 1),
    "not a pickle": (b"hello world", 0),
    "wrong protocol": (with_byte(1, 3), 1),
    "missing FRAME": (with_byte(2, 0x28), 2),
    "frame length cut short": (GOOD[:7], 3),
    "wrong frame length": (with_byte(3, 12), 3),
    "header frame cut short": (GOOD[:20], 20),
    "missing version BININT": (with_byte(11, 0x4B), 11),
    "missing POP after version": (with_byte(16, 0x28), 16),
    "wrong version": (with_byte(12, 2), 12),
    "missing commit BININT": (with_byte(17, 0x4B), 17),
    "missing POP after commit": (with_byte(22, 0x28), 22),
    "missing MARK": (with_byte(23, 0x30), 23),
}


@pytest.mark.parametrize("name", sorted(BAD_HEADERS))
@pytest.mark.parametrize("readonly", [False, True])
def test_malformed_headers_are_value_errors(path: str, name: str, readonly: bool) -> None:
    data, offset = BAD_HEADERS[name]
    with open(path, "wb") as file:
        file.write(data)
    with pytest.raises(ValueError, match=f"at byte offset {offset}"):
        mmapdict(path, readonly)
    with open(path, "rb") as file:
        assert file.read() == data


def test_bad_terminator_is_a_value_error(path: str) -> None:
    m = mmapdict(path)
    m["a"] = 1
    m.close()
    data = bytearray(Path(path).read_bytes())
    data[-2] = ord("e")  # DICT -> APPENDS
    Path(path).write_bytes(bytes(data))
    with pytest.raises(ValueError):
        mmapdict(path)
    assert Path(path).read_bytes() == bytes(data)


def build(path: str) -> bytes:
    m = mmapdict(path)
    m["first"] = {"a": [1, 2, 3]}
    m["last"] = ("x" * 40, 7)
    m.close()
    return Path(path).read_bytes()


@pytest.mark.parametrize("cut", range(1, 21))
def test_fsck_after_truncation(path: str, cut: int) -> None:
    whole = build(path)
    m = mmapdict(path)
    with open(path, "r+b") as file:
        file.truncate(len(whole) - cut)
    m.fsck()
    repaired = Path(path).read_bytes()
    with open(path, "rb") as file:
        loaded = pickle.load(file)  # a valid pickle again
    if cut < 20:
        # Only the terminator and the last entry's closing bytes were cut: the entry is
        # completed, the file has its old size (and bytes, but for the commit number).
        assert len(repaired) == len(whole)
        assert repaired[:18] + repaired[22:] == whole[:18] + whole[22:]
        assert loaded == {"first": {"a": [1, 2, 3]}, "last": ("x" * 40, 7)}
        assert m.keys() == ["first", "last"]
    else:
        # The value itself was cut: the last key is dropped.
        assert loaded == {"first": {"a": [1, 2, 3]}}
        assert m.keys() == ["first"]
    assert mmapdict(path).keys() == list(loaded)


def test_torn_tail_opens_as_in_the_library(path: str) -> None:
    # Cut inside the last value: read-only, the complete entries are read (with a warning)
    # and the file is left as it is; read-write, the open repairs it as fsck does.
    whole = build(path)
    with open(path, "r+b") as file:
        file.truncate(len(whole) - 25)
    torn = Path(path).read_bytes()
    with pytest.warns(RuntimeWarning, match="torn at byte offset"):
        readonly = mmapdict(path, True)
    assert readonly.keys() == ["first"]
    assert readonly["first"] == {"a": [1, 2, 3]}
    readonly.close()
    assert Path(path).read_bytes() == torn
    m = mmapdict(path)
    m.fsck()
    assert m.keys() == ["first"]
    m["after"] = 1
    with open(path, "rb") as file:
        assert pickle.load(file) == {"first": {"a": [1, 2, 3]}, "after": 1}
