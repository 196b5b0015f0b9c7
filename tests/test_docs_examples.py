"""The ``>>>`` examples of the documentation pages run, so the guides cannot drift from the API."""

from __future__ import annotations

import doctest
from pathlib import Path

import matplotlib
import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
GENERATED = {"_build", "tutorials", "api"}  # sphinx-gallery and API pages, made by the build
PAGES = sorted(
    page
    for page in DOCS.rglob("*.rst")
    if not GENERATED & set(page.relative_to(DOCS).parts) and ">>>" in page.read_text()
)


def test_pages_with_examples_are_found() -> None:
    assert DOCS / "concepts.rst" in PAGES


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_examples(page: Path) -> None:
    matplotlib.use("Agg")
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testfile(str(page), module_relative=False, optionflags=flags, verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {page.name} failed (see above)"
