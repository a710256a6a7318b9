"""Sphinx configuration of the Python package's documentation.

``cargo xtask docs`` builds it (warnings are errors) into ``target/docs/python``;
``cargo xtask test`` runs every example in it with the doctest builder. Both import the
installed wheel: autodoc documents the real package.
"""

import os
import sys

import mmappickle

# The local extension (``.. console-doctest::``).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

project = "mmappickle-rs"
author = "the mmappickle-rs authors"
copyright = "the mmappickle-rs authors; LGPL-3.0-or-later"
release = mmappickle.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "myst_parser",
    "console_doctest",
]
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "_ext"]
html_theme = "alabaster"
html_theme_options = {
    "description": "mmappickle on Rust: memory-mapped arrays in a pickle",
    "page_width": "1120px",
}
html_show_sourcelink = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"
myst_heading_anchors = 3

# Each page's examples run in a fresh temporary directory (made before its first example,
# removed after its last), so that relative file names in them are the page's own.
doctest_global_setup = """
import os as _os
import tempfile as _tempfile
from console_doctest import run_command as _run_command
_docs_cwd = _os.getcwd()
_docs_dir = _tempfile.mkdtemp(prefix="mmappickle-docs-")
_os.chdir(_docs_dir)
"""
doctest_global_cleanup = """
import shutil as _shutil
_os.chdir(_docs_cwd)
_shutil.rmtree(_docs_dir)
"""
