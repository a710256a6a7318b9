"""Fixtures of the suite: run by `cargo xtask test` on numpy 1.23.5 and the newest numpy 2.x,
each in an environment with our wheel installed (never the Python library: that one runs in
its own environment, `MMAPPICKLE_PYTHON`, as a subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
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


class Nginx:
    """nginx serving a temporary directory on a loopback port, with an access log of
    ``status body_bytes_sent "Range"`` lines (as the remote crate's tests start it)."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "root"
        self.root.mkdir(parents=True)
        self._log = tmp / "access.log"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = tmp / "nginx.conf"
        config.write_text(
            textwrap.dedent(
                f"""\
                daemon off;
                master_process off;
                worker_processes 1;
                pid {tmp}/nginx.pid;
                error_log {tmp}/error.log warn;
                events {{ worker_connections 1024; }}
                http {{
                    log_format counted '$status $body_bytes_sent "$http_range"';
                    access_log {self._log} counted;
                    client_body_temp_path {tmp}/client_body;
                    proxy_temp_path {tmp}/proxy;
                    fastcgi_temp_path {tmp}/fastcgi;
                    uwsgi_temp_path {tmp}/uwsgi;
                    scgi_temp_path {tmp}/scgi;
                    default_type application/octet-stream;
                    sendfile on;
                    keepalive_requests 100000;
                    server {{ listen 127.0.0.1:{self.port}; root {self.root}; }}
                }}
                """
            )
        )
        binary = os.environ.get("MMAPPICKLE_NGINX") or shutil.which(
            "nginx", path="/usr/sbin:/usr/bin"
        )
        if binary is None:
            raise RuntimeError(
                "nginx is not installed: the remote tests serve files with Debian's nginx "
                "(apt-get install -y nginx; or set MMAPPICKLE_NGINX)"
            )
        self._process = subprocess.Popen(
            [binary, "-e", f"{tmp}/error.log", "-p", str(tmp), "-c", str(config)],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("nginx did not start listening") from None
                time.sleep(0.05)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def accesses(self) -> list[tuple[int, int, str]]:
        """``(status, body bytes, Range header)`` of each request so far."""
        lines = self._log.read_text().splitlines() if self._log.exists() else []
        accesses = []
        for line in lines:
            status, sent, rest = line.split(" ", 2)
            accesses.append((int(status), int(sent), rest.strip('"')))
        return accesses

    def stop(self) -> None:
        self._process.kill()
        self._process.wait()


@pytest.fixture
def nginx(tmp_path: Path) -> Any:
    """nginx serving ``nginx.root``, stopped after the test."""
    server = Nginx(tmp_path / "nginx")
    try:
        yield server
    finally:
        server.stop()
