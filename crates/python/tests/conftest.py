"""Fixtures of the suite: run by `cargo xtask test` on numpy 1.23.5 and the newest numpy 2.x,
each in an environment with our wheel installed (never the Python library: that one runs in
its own environment, `MMAPPICKLE_PYTHON`, as a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def path(tmp_path: Path) -> str:
    """A fresh file path in a temporary directory."""
    return str(tmp_path / "test.mmdpickle")


def library_python() -> str:
    """The interpreter of the Python library's environment (mmappickle 1.0, numpy 1.23.5)."""
    python = os.environ.get("MMAPPICKLE_PYTHON")
    if not python:
        raise RuntimeError(
            "MMAPPICKLE_PYTHON must name the interpreter of the Python library's environment "
            "(cargo xtask venv makes it; cargo xtask test sets it)"
        )
    return python


def run_library(script: str, *args: str) -> Any:
    """Runs `script` with the Python library's interpreter; returns the JSON it prints."""
    completed = subprocess.run(
        [library_python(), "-c", textwrap.dedent(script), *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if completed.returncode != 0:
        raise AssertionError(f"the Python library failed:\n{completed.stderr}")
    return json.loads(completed.stdout)


def run_ours(script: str, *args: str) -> subprocess.CompletedProcess:
    """Runs `script` with this environment's interpreter (our package) in a fresh process."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        check=False,
        capture_output=True,
        text=True,
    )
