"""Every tutorial runs, so none can rot, and each keeps the sphinx-gallery format.

The docs build runs the same scripts with sphinx-gallery (``__name__ ==
"__main__"``, the working directory being ``tutorials/``), so a tutorial must
write files only into temporary folders: here it runs in an empty folder that
must still be empty afterwards.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("*.py"))
IDS = [p.name for p in TUTORIALS]


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 8, [p.name for p in TUTORIALS]


def rst_title_problem(docstring: str | None) -> str | None:
    """Why ``docstring`` cannot open a sphinx-gallery example, or None if it can."""
    if not docstring:
        return "no module docstring"
    lines = docstring.strip("\n").splitlines()
    if len(lines) < 2:
        return "the docstring must start with a title and its underline"
    title, underline = lines[0].rstrip(), lines[1].rstrip()
    if not title or title[0] in "=-~" or len(set(underline)) != 1 or underline[0] not in "=-~":
        return f"the docstring must start with an RST title underlined with '=', got {lines[:2]}"
    if len(underline) < len(title):
        return f"the underline of {title!r} is shorter ({len(underline)}) than the title ({len(title)})"
    return None


def test_rst_title_check_catches_bad_titles():
    assert rst_title_problem("A title\n=======\n\nText.\n") is None
    assert rst_title_problem("\nA title\n=======\n") is None
    assert rst_title_problem("A title\n====\n") is not None
    assert rst_title_problem("Tutorial 1: a sentence.\n\nText.\n") is not None
    assert rst_title_problem(None) is not None


@pytest.mark.parametrize("script", TUTORIALS, ids=IDS)
def test_tutorial_is_a_gallery_example(script):
    source = script.read_text(encoding="utf-8")
    tree = ast.parse(source)
    problem = rst_title_problem(ast.get_docstring(tree, clean=False))
    assert problem is None, f"{script.name}: {problem}"
    assert "\n# %%\n" in source, f"{script.name} has no '# %%' cells"
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert "__file__" not in names, f"{script.name}: sphinx-gallery runs scripts without __file__; use sys.argv[0]"
    assert "plt.show(" not in source, f"{script.name}: plt.show() fails on the Agg backend; leave figures open"
    assert 'if __name__ == "__main__":' in source or "Queue(" not in source, (
        f"{script.name} starts Queue workers without an `if __name__ == '__main__':` guard"
    )


@pytest.mark.parametrize("script", TUTORIALS, ids=IDS)
def test_tutorial_runs(script, tmp_path):
    environment = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip(), f"{script.name} printed nothing for the gallery to show"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert not left, f"{script.name} wrote {left} into the working directory; use a TemporaryDirectory"
