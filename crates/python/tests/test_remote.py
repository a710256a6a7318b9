"""Reading over URLs: ``httpdict`` and ``RemoteDict`` against nginx started by the test
(and ``file://``) read what ``mmapdict`` reads locally, for files we write and for the
Python library's fixtures."""

from __future__ import annotations

import io
import pickle
import shutil
from pathlib import Path
from typing import Any

import mmappickle
import mmappickle.http
import numpy as np
import pytest
from mmappickle import httpdict, mmapdict
from mmappickle.stubs import EmptyNDArray

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures"


def assert_same(local: Any, remote: Any) -> None:
    """Equal values (their pickles); arrays of equal dtype, shape, data (and mask)."""
    if isinstance(local, np.ma.MaskedArray):
        assert isinstance(remote, np.ma.MaskedArray)
        assert np.array_equal(np.ma.getmaskarray(local), np.ma.getmaskarray(remote))
        local, remote = local.data, remote.data
    if isinstance(local, np.ndarray):
        assert type(remote) is np.ndarray
        assert (remote.dtype, remote.shape) == (local.dtype, local.shape)
        assert local.tobytes() == remote.tobytes()
    else:
        # By their pickles: NaN and nested containers compare as stored.
        assert pickle.dumps(remote, 4) == pickle.dumps(local, 4)


def test_httpdict_reads_what_mmapdict_wrote(path: str, nginx: Any) -> None:
    m = mmapdict(path)
    m["text"] = "value"
    m["list"] = [1, 2.5, {"three": (4, None)}]
    m["grid"] = np.arange(12, dtype=np.int32).reshape(3, 4)
    m["zero_d"] = np.array(2.5)
    m["masked"] = np.ma.MaskedArray([1.0, 2.0, 3.0], mask=[False, True, False])
    m["stub"] = EmptyNDArray((64, 1024), dtype=np.float64)
    m["stub"][5] = 7.0
    m.close()
    shutil.copy(path, nginx.root / "data.mmdpickle")
    url = nginx.url("data.mmdpickle")
    local = mmapdict(path, readonly=True)
    for remote in [httpdict(url), mmappickle.http.httpdict(url, 1 << 20)]:
        assert remote.keys() == local.keys() and len(remote) == len(local)
        assert "grid" in remote and "nope" not in remote and 1 not in remote
        for key in local:
            assert_same(local[key], remote[key])
        assert np.array_equal(remote.read_rows("stub", 4, 6), local["stub"][4:6])
        assert remote.writable() is False
        with pytest.raises(io.UnsupportedOperation):
            remote["text"] = 1
        with pytest.raises(io.UnsupportedOperation):
            del remote["text"]
        with pytest.raises(KeyError):
            remote["nope"]
        # The table came in a block or two; the rows of a stub came exactly.
        requests, received = remote.transfer()
        assert received < 2 * (1 << 20) + 64 * 1024 * 8, (requests, received)
    with mmappickle.RemoteDict("file://" + path) as by_file:
        assert_same(local["grid"], by_file["grid"])
        assert "entries=" in repr(by_file) and not by_file.closed
    # Leaving the block released the cache and the connections.
    assert by_file.closed and "closed" in repr(by_file)
    with pytest.raises(ValueError, match="closed"):
        by_file["grid"]
    assert mmappickle.remote.remotedict is mmappickle.RemoteDict
    assert not hasattr(mmappickle.remote, "open")
    with pytest.raises(OSError):
        mmappickle.RemoteDict("http://127.0.0.1:9/none.mmdpickle")
    with pytest.raises(ValueError):
        mmappickle.RemoteDict("ftp://host/file")


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.glob("*.mmdpickle")))
def test_python_made_fixtures_read_over_http_as_locally(name: str, nginx: Any) -> None:
    shutil.copy(FIXTURES / name, nginx.root / name)
    try:
        local = mmapdict(str(FIXTURES / name), readonly=True)
    except (ValueError, OSError) as error:
        with pytest.raises(type(error)):
            httpdict(nginx.url(name))
        return
    remote = httpdict(nginx.url(name))
    assert remote.keys() == local.keys()
    for key in local:
        try:
            expected = local[key]
        except Exception as error:  # noqa: BLE001  (a malformed entry: the same refusal)
            with pytest.raises(type(error)):
                remote[key]
            continue
        assert_same(expected, remote[key])
