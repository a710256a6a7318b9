"""How an ``mmapdict`` and a ``RemoteDict`` show in Jupyter and IPython: the HTML table and
the text of ``_repr_pretty_`` (escaped keys, the "more" row, masked arrays, stubs, values
never unpickled, arrays never mapped), a notebook executed headless by ``nbclient``, and its
output rendered by Debian's Chromium into a screenshot that is not blank."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run_ours
from mmappickle import RemoteDict, mmapdict
from mmappickle.stubs import EmptyNDArray

HOSTILE_KEY = '<script>alert("key")</script>'
LOADS: list[str] = []


def record_load(tag: str) -> str:
    """What unpickling a ``Loud`` value calls: a display must never get here."""
    LOADS.append(tag)
    return tag


class Loud:
    def __reduce__(self) -> tuple[Any, ...]:
        return (record_load, ("unpickled",))


def fill(m: mmapdict) -> None:
    """One entry of each kind, a hostile key and values with markup in them."""
    m["text"] = "<b>bold</b> & 'quoted'"
    m[HOSTILE_KEY] = [1, 2.5, None]
    m["grid"] = np.arange(12, dtype=np.int32).reshape(3, 4)
    m["masked"] = np.ma.MaskedArray([1.0, 2.0, 3.0], mask=[False, True, False])
    m["stub"] = EmptyNDArray((256, 1024, 1024), dtype=np.uint8)
    m["large"] = list(range(100_000))
    m["loud"] = Loud()


def rows_of(html: str) -> list[list[str]]:
    """The cells of each body row of the table (their markup removed)."""
    body = html.split("<tbody>", 1)[1]
    rows = re.findall(r"<tr>(.*?)</tr>", body)
    return [
        [re.sub(r"<[^>]*>", "", cell) for cell in re.findall(r"<td.*?</td>", row)] for row in rows
    ]


def test_html_lists_every_kind_escaped(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    m = mmapdict(path)
    fill(m)

    def no_map(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an array was mapped to show the dict")

    monkeypatch.setattr(np, "memmap", no_map)
    html = m._repr_html_()
    assert "<script>" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(&quot;key&quot;)&lt;/script&gt;" in html
    rows = rows_of(html)
    size = os.path.getsize(path)
    assert f'{size:,} bytes"' in html and "7 entries" in html and path in html

    def value_row(key: str, shown: str) -> list[str]:
        nbytes = m._native.locate(key).length
        return [escape(key), "value", "", "", f"{nbytes:,}", escape(shown)]

    assert rows == [
        # Small generic values as Python's repr shows them.
        value_row("text", repr(m["text"])),
        value_row(HOSTILE_KEY, repr(m[HOSTILE_KEY])),
        ["grid", "array", "int32", "(3, 4)", "48", ""],
        ["masked", "masked", "float64", "(3,)", "27", ""],
        ["stub", "array", "uint8", "(256, 1024, 1024)", f"{256 << 20:,}", ""],
        # Too long to read for a summary.
        value_row("large", "\N{HORIZONTAL ELLIPSIS}"),
        # Shown by the codec's decoder: nothing the file names was run.
        value_row("loud", "test_display.record_load('unpickled')"),
    ]
    assert "&lt;b&gt;bold&lt;/b&gt; &amp;" in rows[0][5] and LOADS == []
    assert m._native.locate("large").length > 64 * 1024


def test_many_entries_end_with_a_count(path: str) -> None:
    m = mmapdict(path)
    m.update({f"key {idx}": "x" * idx for idx in range(120)})
    m["long"] = "y" * 1000
    html = m._repr_html_()
    rows = rows_of(html)
    assert len(rows) == 51 and rows[-1] == ["... and 71 more"]
    assert rows[49][:2] == ["key 49", "value"] and "121 entries" in html
    # A long repr is cut to a line.
    assert len(m._native.summary(200)[2][-1].description or "") == 103


def test_malformed_entry_shows_its_error(path: str) -> None:
    m = mmapdict(path)
    m["before"] = 1
    m["bad"] = np.arange(7, dtype=np.int32)
    m["after"] = "x"
    m.close()
    data = bytearray(Path(path).read_bytes())
    # The shape (7,) becomes (9,): 28 raw bytes no longer fit it.
    data[data.index(b"K\x07", data.index(b"bad")) + 1] = 9
    Path(path).write_bytes(data)
    damaged = mmapdict(path, readonly=True)
    with pytest.raises(ValueError, match="need 36") as error:
        damaged["bad"]
    rows = rows_of(damaged._repr_html_())
    assert [row[:2] for row in rows] == [
        ["before", "value"],
        ["bad", "malformed"],
        ["after", "value"],
    ]
    assert rows[1][5] == escape(str(error.value)) and rows[2][5] == escape("'x'")
    assert Path(path).read_bytes() == data


def test_pretty_text(path: str) -> None:
    from IPython.lib.pretty import pretty

    m = mmapdict(path)
    fill(m)
    m["two\nlines"] = 1
    lines = pretty(m).splitlines()
    assert lines[0] == f"mmapdict {path!r}: 8 entries, {os.path.getsize(path) / (1 << 20):.1f} MiB"
    assert lines[1].split() == ["key", "kind", "dtype", "shape", "bytes", "value"]
    assert lines[4].split() == ["grid", "array", "int32", "(3,", "4)", "48"]
    assert lines[9].split() == ["'two\\nlines'", "value", "2", "1"]
    assert len(lines) == 10 and LOADS == []
    m.update({f"k{idx}": idx for idx in range(60)})
    lines = pretty(m).splitlines()
    assert len(lines) == 53 and lines[-1] == "  ... and 18 more"
    m.close()
    assert pretty(m) == f"<mmapdict {path!r} closed>"
    assert "(closed)" in m._repr_html_()


def test_remote_dict_shows_without_reading_arrays(path: str, nginx: Any) -> None:
    from IPython.lib.pretty import pretty

    m = mmapdict(path)
    fill(m)
    m["big"] = np.ones((1024, 1024, 4), dtype=np.float64)  # 32 MiB
    m.close()
    shutil.copy(path, nginx.root / "data.mmdpickle")
    url = nginx.url("data.mmdpickle")
    local = mmapdict(path, readonly=True)
    for remote in [RemoteDict(url), RemoteDict("file://" + path)]:
        html = remote._repr_html_()
        assert rows_of(html) == rows_of(local._repr_html_())
        assert f"<code>{url if url in html else 'file://' + path}</code>" in html
        assert pretty(remote).splitlines()[0].startswith(f"RemoteDict {remote.url!r}: 8 entries")
        assert LOADS == []
        requests, received = remote.transfer()
        # The table and heads of values came in a few blocks; no array's data came.
        assert received < 4 << 20, (requests, received)
        remote.close()
        assert "(closed)" in remote._repr_html_()
    # The masked array's parts, the stub and the big array were never fetched.
    assert sum(sent for _, sent, _ in nginx.accesses()) < 4 << 20


def test_display_is_not_imported_with_the_package() -> None:
    completed = run_ours(
        """
        import sys
        import mmappickle
        print(sorted(name for name in ("html", "mmappickle._display") if name in sys.modules))
        """
    )
    assert completed.stdout.strip() == "[]", completed.stderr


# ---- a notebook run headless, and its output in a browser ----


@pytest.fixture(scope="module")
def notebook_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The HTML output of a notebook cell that shows an mmapdict, the notebook run by
    nbclient on an ipykernel of this environment's interpreter."""
    import nbformat
    from nbclient import NotebookClient

    tmp = tmp_path_factory.mktemp("notebook")
    kernel = tmp / "jupyter" / "kernels" / "mmappickle-test"
    kernel.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "mmappickle test", "language": "python"}
    (kernel / "kernel.json").write_text(json.dumps(spec))
    path = str(tmp / "shown.mmdpickle")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import numpy as np\n"
            "from mmappickle import mmapdict\n"
            f"m = mmapdict({path!r})\n"
            f"m[{HOSTILE_KEY!r}] = 'markup & more'\n"
            "m['grid'] = np.arange(12, dtype=np.int32).reshape(3, 4)\n"
            "m['masked'] = np.ma.MaskedArray([1.0, 2.0], mask=[True, False])\n"
            "m.update({f'entry {idx}': idx for idx in range(60)})"
        ),
        nbformat.v4.new_code_cell("m"),
    ]
    environment = {
        "JUPYTER_PATH": str(tmp / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "IPYTHONDIR": str(tmp / "ipython"),
    }
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        client = NotebookClient(
            notebook, kernel_name="mmappickle-test", timeout=120, startup_timeout=120
        )
        client.execute(cwd=str(tmp))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    (output,) = notebook.cells[1].outputs
    assert output["output_type"] == "execute_result"
    # The text form is IPython's pretty printer's.
    assert output["data"]["text/plain"].startswith(f"mmapdict {path!r}: 63 entries, ")
    return str(output["data"]["text/html"])


def test_notebook_output_is_the_table(notebook_html: str) -> None:
    rows = rows_of(notebook_html)
    assert notebook_html.startswith("<style>.mmappickle caption") and "<table" in notebook_html
    assert rows[0][:2] == ["&lt;script&gt;alert(&quot;key&quot;)&lt;/script&gt;", "value"]
    assert rows[0][5] == "&#x27;markup &amp; more&#x27;"
    assert rows[1] == ["grid", "array", "int32", "(3, 4)", "48", ""]
    assert rows[2] == ["masked", "masked", "float64", "(2,)", "18", ""]
    assert len(rows) == 51 and rows[-1] == ["... and 13 more"]
    assert "<script>" not in notebook_html


def png_pixels(png: bytes) -> tuple[int, int, int, bytes]:
    """``(width, height, bytes per pixel, pixel bytes)`` of an 8-bit RGB or RGBA PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, chunks, idat = 8, {}, b""
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        data = png[position + 8 : position + 8 + length]
        chunks[kind] = data
        idat += data if kind == b"IDAT" else b""
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour, interlace) in {(8, 2, 0), (8, 6, 0)}, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    pixels = bytearray()
    previous = bytearray(stride)
    for row_idx in range(height):
        start = row_idx * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for idx in range(stride):
            left = line[idx - bpp] if idx >= bpp else 0
            up = previous[idx]
            up_left = previous[idx - bpp] if idx >= bpp else 0
            if kind == 1:
                line[idx] = (line[idx] + left) & 0xFF
            elif kind == 2:
                line[idx] = (line[idx] + up) & 0xFF
            elif kind == 3:
                line[idx] = (line[idx] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - up_left
                near = min((abs(guess - left), 0), (abs(guess - up), 1), (abs(guess - up_left), 2))
                line[idx] = (line[idx] + (left, up, up_left)[near[1]]) & 0xFF
        pixels += line
        previous = line
    return width, height, bpp, bytes(pixels)


def test_browser_screenshot_is_not_blank(notebook_html: str, tmp_path: Path) -> None:
    chromium = os.environ.get("MMAPPICKLE_CHROMIUM") or shutil.which(
        "chromium", path="/usr/bin:/usr/local/bin"
    )
    if chromium is None:
        pytest.fail(
            "Chromium is missing: apt-get install -y chromium (or set MMAPPICKLE_CHROMIUM)",
            pytrace=False,
        )
    page = tmp_path / "page.html"
    page.write_text(f"<!DOCTYPE html><html><body>{notebook_html}</body></html>")
    screenshot = tmp_path / "page.png"
    completed = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={screenshot}",
            "--window-size=1000,600",
            page.as_uri(),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert screenshot.exists(), completed.stderr[-2000:]
    width, height, bpp, pixels = png_pixels(screenshot.read_bytes())
    assert (width, height) == (1000, 600)
    rgb = np.frombuffer(pixels, dtype=np.uint8).reshape(-1, bpp)[:, :3]
    colours = len(np.unique(rgb, axis=0))
    inked = int((rgb != 255).any(axis=1).sum())
    # Text is drawn anti-aliased: many shades of grey, on a good share of the page.
    assert colours > 10 and inked > 5000, (colours, inked)
