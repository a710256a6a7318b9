"""``.. console-doctest::``: a console session shown as typed, and run by the doctest builder.

Each ``$ command`` line is run (no shell: words split as a shell would, ``mmappickle`` being
the command-line tool of the repository, ``python`` this interpreter), in the working
directory of the page's Python examples, so that the files they wrote are there; what it
prints (standard output, then standard error) must be the lines that follow it, with
doctest's ``...`` ellipsis.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

PROMPT = "$ "

#: Where the doctest builder finds the command-line tool: the variable, else ``PATH``.
CLI_VARIABLE = "MMAPPICKLE_CLI"


def run_command(line: str) -> None:
    """Runs one console line and prints what it printed (the doctest compares it)."""
    words = shlex.split(line)
    if words[0] == "mmappickle":
        cli = os.environ.get(CLI_VARIABLE) or shutil.which("mmappickle")
        if cli is None:
            raise RuntimeError(
                f"the console examples run the mmappickle command: set {CLI_VARIABLE} to it "
                "or put it on PATH (cargo build -p mmappickle-cli)"
            )
        words[0] = cli
    elif words[0] == "python":
        words[0] = sys.executable
    completed = subprocess.run(words, capture_output=True, text=True, check=False)
    print(completed.stdout + completed.stderr, end="")


def as_doctest(session: str) -> str:
    """The doctest source of a console session: ``$ command`` becomes a call of
    :func:`run_command`, its output stays (blank lines as ``<BLANKLINE>``)."""
    lines = []
    for line in session.splitlines():
        if line.startswith(PROMPT):
            lines.append(f">>> _run_command({line[len(PROMPT) :]!r})")
        else:
            lines.append(line if line.strip() else "<BLANKLINE>")
    return "\n".join(lines)


class ConsoleDoctest(SphinxDirective):
    """A ``console`` literal block that the doctest builder runs through :func:`run_command`
    (``node['test']`` is what it runs, the block's text what readers see)."""

    has_content = True

    def run(self) -> list[nodes.Node]:
        session = "\n".join(self.content)
        if not session.startswith(PROMPT):
            raise self.error(f"a console-doctest starts with a {PROMPT!r} line")
        node = nodes.literal_block(session, session, testnodetype="doctest", groups=["default"])
        node["language"] = "console"
        node["test"] = as_doctest(session)
        node["options"] = {}
        self.set_source_info(node)
        return [node]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("console-doctest", ConsoleDoctest)
    return {"parallel_read_safe": True}
