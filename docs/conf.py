"""Sphinx configuration of the torchpatch documentation.

Build with warnings as errors and nitpicky references (``make docs``)::

    sphinx-build -W --keep-going -n -b html docs docs/_build/html

The API pages under ``api/`` are written by :mod:`apigen` (next to this file)
from the ``__all__`` of every public module each time the build starts, so a
new public object appears in the reference without anyone listing it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: no display in CI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import apigen  # noqa: E402
from sphinx.ext.napoleon import _process_docstring as _napoleon  # noqa: E402

import torchpatch  # noqa: E402

# The tutorials run inside the build; keep torch's threads from fighting the queue's workers.
os.environ.setdefault("OMP_NUM_THREADS", "1")

project = "torchpatch"
author = "the torchpatch developers"
copyright = "the torchpatch developers"  # noqa: A001 (Sphinx's name)
version = release = torchpatch.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.doctest",
    "matplotlib.sphinxext.plot_directive",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
html_theme = "furo"
html_title = f"torchpatch {release}"
html_static_path: list[str] = []
pygments_style = "sphinx"
default_role = "code"  # `x` in prose is code, never a silent reference

# -- API reference ---------------------------------------------------------------------------

apigen.write_pages(HERE / "api" / "generated")

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": True}
autosummary_generate = False  # the pages come from apigen; autosummary only draws the tables
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True

# The ``.. doctest::`` blocks of the pages run in pytest (tests/test_docs_examples.py), and the
# docstrings' examples too (``--doctest-modules``, with their modules' globals); ``-b doctest``
# would check only the directives.
doctest_test_doctest_blocks = ""

# -- References ------------------------------------------------------------------------------

nitpicky = True
# Offline build: no intersphinx, so references to other packages cannot resolve. Only
# their prefixes are ignored; every torchpatch reference must resolve.
_EXTERNAL = (
    "torch",
    "numpy",
    "np",
    "npt",
    "pathlib",
    "os",
    "typing",
    "collections",
    "types",
    "dataclasses",
    "SimpleITK",
    "sitk",
    "nibabel",
    "matplotlib",
    "scipy",
    "tqdm",
    "multiprocessing",
    "concurrent",
    "threading",
)
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(_EXTERNAL)})(\..*)?"),
    # Builtins and standard names with no page to point to offline.
    (r"py:.*", r"(int|float|str|bool|bytes|tuple|list|dict|set|object|None|type|slice|Ellipsis)"),
    # matplotlib classes that torchpatch.viz imports for type checkers only.
    (r"py:class", r"(Axes|Figure)"),
]


def _napoleon_prose_attributes(app, what, name, obj, options, lines):  # type: ignore[no-untyped-def]
    """Napoleon, reading attribute and property docstrings as prose.

    Napoleon takes the first line of an attribute's docstring as ``type: text``; ours
    are sentences ("Voxels per side: ..."), with the types in the annotations.
    """
    prose = "function" if what in ("attribute", "data", "property") else what
    _napoleon(app, prose, name, obj, options, lines)


def setup(app):  # type: ignore[no-untyped-def]
    for listener in list(app.events.listeners["autodoc-process-docstring"]):
        if listener.handler is _napoleon:
            app.disconnect(listener.id)
    app.connect("autodoc-process-docstring", _napoleon_prose_attributes)
    app.connect("missing-reference", apigen.resolve_reexport)


# -- Figures (concepts page) -----------------------------------------------------------------

plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"figure.autolayout": True}

# -- Tutorials gallery -----------------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../tutorials",
    "gallery_dirs": "tutorials",
    "filename_pattern": r"/\d\d_",
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "show_memory": False,
    "min_reported_time": 1,
}
