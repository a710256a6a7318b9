"""How ``mmapdict`` and ``RemoteDict`` show in Jupyter (``_repr_html_``) and in IPython's
terminal (``_repr_pretty_``): a table of the first entries (key, kind, dtype, shape, bytes,
a short repr of small generic values) under the file's name, entry count and size.

Everything comes from the native handle's ``summary``: no array's data is mapped or read,
and generic values are decoded by the Rust codec, never by Python's unpickler (showing a
dict from an untrusted file runs nothing it names). Imported only when a dict is shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._native import EntrySummary

# The entries shown; the rest are counted.
ROWS = 50
COLUMNS = ("key", "kind", "dtype", "shape", "bytes", "value")
# Shown for a generic value without a repr: too large to read for a summary, or in a layout
# of a pickler's own.
NOT_SHOWN = "\N{HORIZONTAL ELLIPSIS}"
# Text left, numbers right (notebooks align every cell right by default).
STYLE = (
    "<style>.mmappickle caption, .mmappickle th, .mmappickle td { text-align: left }"
    " .mmappickle .number { text-align: right }</style>"
)
NUMBER = ' class="number"'


class Summarized(Protocol):
    """The native handle of an ``mmapdict`` or a ``RemoteDict``."""

    def closed(self) -> bool: ...

    def summary(self, limit: int) -> tuple[int, int, list[EntrySummary]]: ...


def _size(nbytes: int) -> str:
    """``nbytes`` in binary units (``1.5 MiB``)."""
    size = float(nbytes)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024:
            break
    return f"{nbytes} bytes" if nbytes < 1024 else f"{size:.1f} {unit}"


def _cells(entry: EntrySummary) -> tuple[str, str, str, str, str, str]:
    """The row of ``entry`` as text cells, in the order of ``COLUMNS``."""
    shape = "" if entry.shape is None else str(tuple(entry.shape))
    value = entry.description or ("" if entry.kind in ("array", "masked") else NOT_SHOWN)
    return (entry.key, entry.kind, entry.dtype or "", shape, f"{entry.nbytes:,}", value)


def _count(n_entries: int) -> str:
    return f"{n_entries} {'entry' if n_entries == 1 else 'entries'}"


def html(class_name: str, name: str, native: Summarized) -> str:
    """The HTML table of the first ``ROWS`` entries (every text escaped: keys are data)."""
    from html import escape

    title = f"<b>{escape(class_name)}</b> <code>{escape(name)}</code>"
    if native.closed():
        return f"<p>{title} (closed)</p>"
    n_entries, file_len, entries = native.summary(ROWS)
    head = "".join(f"<th{NUMBER if column == 'bytes' else ''}>{column}</th>" for column in COLUMNS)
    rows = []
    for entry in entries:
        key, kind, dtype, shape, nbytes, value = map(escape, _cells(entry))
        rows.append(
            f"<tr><td><code>{key}</code></td><td>{kind}</td><td>{dtype}</td><td>{shape}</td>"
            f"<td{NUMBER}>{nbytes}</td><td><code>{value}</code></td></tr>"
        )
    if n_entries > len(entries):
        more = n_entries - len(entries)
        rows.append(f'<tr><td colspan="{len(COLUMNS)}">... and {more} more</td></tr>')
    size = f'<span title="{file_len:,} bytes">{_size(file_len)}</span>'
    return (
        f'{STYLE}<table class="mmappickle"><caption>{title}: {_count(n_entries)}, {size}'
        f"</caption><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def pretty(class_name: str, name: str, native: Summarized, printer: Any, cycle: bool) -> None:
    """IPython's pretty printer (``_repr_pretty_``): the same table as text columns."""
    if cycle or native.closed():
        printer.text(f"<{class_name} {name!r}{'' if cycle else ' closed'}>")
        return
    n_entries, file_len, entries = native.summary(ROWS)
    rows: list[tuple[str, ...]] = [COLUMNS]
    for entry in entries:
        key, *cells = _cells(entry)
        # A key with a line break or another control character is shown as its repr.
        rows.append((key if key.isprintable() else repr(key), *cells))
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    lines = [f"{class_name} {name!r}: {_count(n_entries)}, {_size(file_len)}"]
    for row in rows:
        cells = [
            cell.rjust(width) if column == "bytes" else cell.ljust(width)
            for cell, width, column in zip(row, widths, COLUMNS)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    if n_entries > len(entries):
        lines.append(f"  ... and {n_entries - len(entries)} more")
    for line_idx, line in enumerate(lines):
        if line_idx:
            printer.break_()
        printer.text(line)
