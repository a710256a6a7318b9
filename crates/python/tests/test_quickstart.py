"""The Python library's quick start, verbatim, as a doctest."""

from __future__ import annotations

import doctest
import os
from pathlib import Path

QUICKSTART = Path(__file__).with_name("quickstart.rst")


class _Checker(doctest.OutputChecker):
    """numpy now names its memmap class `numpy.memmap` (it was `numpy.core.memmap.memmap`
    when the quick start was written): the same class, printed under its current name."""

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        want = want.replace("numpy.core.memmap.memmap", "numpy.memmap")
        return super().check_output(want, got, optionflags)


def test_quickstart_runs_verbatim(tmp_path: Path) -> None:
    # The quick start uses /tmp/test.mmdpickle ("could be an existing file"): run it in a
    # fresh file there, and put back whatever was there before.
    target = Path("/tmp/test.mmdpickle")
    saved = tmp_path / "saved"
    if target.exists():
        target.rename(saved)
    try:
        text = QUICKSTART.read_text()
        parser = doctest.DocTestParser()
        test = parser.get_doctest(text, {}, "quickstart", str(QUICKSTART), 0)
        runner = doctest.DocTestRunner(checker=_Checker(), optionflags=doctest.ELLIPSIS)
        runner.run(test)
        result = runner.summarize(verbose=False)
        assert result.attempted == 26
        assert result.failed == 0
        size = target.stat().st_size
        # The 216 MB stub was given back.
        assert size < 100_000, size
    finally:
        if target.exists():
            os.remove(target)
        if saved.exists():
            saved.rename(target)


def test_typed_example_runs(tmp_path: Path) -> None:
    """The example that ``mypy --strict`` checks against the package's annotations runs."""
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[1] / "examples" / "typed_usage.py"
    completed = subprocess.run(
        [sys.executable, str(example), str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert completed.stdout.strip() == "ok", completed.stderr
