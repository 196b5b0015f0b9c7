"""TorchIO's own docstring examples give the same results with ``import torchpatch as tio``.

The snippets users copy from TorchIO's documentation are its docstrings'
``>>>`` examples. Each docstring of TorchIO 1.2.1 (outside ``tio.datasets``)
runs twice in the same way: with TorchIO, then with every
``import torchio as tio`` replaced by ``import torchpatch as tio``. The data
sets it downloads (``tio.datasets.Colin27()``...) are replaced in both runs by
the same synthetic subjects written to NIfTI files, and the files it names
(``'t1.nii.gz'``) are written first. Each example's printed output, or the
type of the exception it raises, must be the same in both runs, except where
``DIFFERENCES`` says why (checked both ways, so an entry that no longer holds
fails too).

Skipped when TorchIO is not installed (never a runtime dependency).
"""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil
import re
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

tio = pytest.importorskip("torchio")
nib = pytest.importorskip("nibabel")

SHAPE = (100, 112, 100)  # large enough for the examples' patches of 96
IMAGE_FILE = re.compile(r"""['"]([^'"\s]+\.(?:nii\.gz|nii))['"]""")

#: "docstring[example]" -> why the outcome differs.
DIFFERENCES: dict[str, str] = {}

#: Examples not run (in either library), with the reason.
NOT_RUN = {
    "torchio.data.sampler.label.LabelSampler[6]": "iterates an endless patch generator (in both libraries)",
}


def _docstrings() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found, seen = [], set()
    for info in pkgutil.walk_packages(tio.__path__, prefix="torchio."):
        if info.name.startswith("torchio.datasets"):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = importlib.import_module(info.name)
        for test in finder.find(module):
            key = (test.filename, test.lineno)
            if test.examples and test.name.startswith(info.name) and key not in seen:
                seen.add(key)
                found.append(test)
    return sorted(found, key=lambda test: test.name)


DOCSTRINGS = {test.name: test for test in _docstrings()}


def _phantom(seed: int, label: bool) -> np.ndarray:
    grids = np.meshgrid(*[np.linspace(-1, 1, size) for size in SHAPE], indexing="ij")
    radius = np.sqrt(sum(grid**2 for grid in grids))
    if label:
        return ((4 - np.digitize(radius, [0.3, 0.6, 0.85])) % 4).astype(np.uint8)
    noise = np.random.default_rng(seed).standard_normal(SHAPE)
    return (1000 * np.exp(-2 * radius) + 20 * noise).astype(np.float32)


def _write(path: Path, seed: int, label: bool, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> str:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-50.0, -56.0, -50.0]
    nib.Nifti1Image(_phantom(seed, label), affine).to_filename(str(path))
    return str(path)


#: Stand-ins for TorchIO's downloadable data sets: image name -> (is a label map, spacing).
DATASETS: dict[str, dict[str, tuple[bool, tuple[float, float, float]]]] = {
    "Colin27": {"t1": (False, (1, 1, 1)), "head": (True, (1, 1, 1)), "brain": (True, (1, 1, 1))},
    "FPG": {"t1": (False, (1, 1, 1)), "seg": (True, (1, 1, 1))},
    "Sheep": {"t1": (False, (1, 1, 1))},
    "ICBM2009CNonlinearSymmetric": {
        **dict.fromkeys(("t1", "t2", "pd"), (False, (1, 1, 1))),
        **dict.fromkeys(("eyes", "face", "brain", "gm", "wm", "csf"), (True, (1, 1, 1))),
    },
    "T1T2": {"mprage": (False, (1, 1, 1)), "tse": (False, (1, 1, 1))},
    "BrainTumor": {
        **dict.fromkeys(("t1", "t1c", "t2", "flair"), (False, (1, 1, 1))),
        "seg": (True, (1, 1, 1)),
    },
    "AorticValve": {
        "b14": (False, (1, 1, 1)),
        "b14_seg": (True, (1, 1, 1)),
        "b25": (False, (1, 1, 1)),
        "b25_seg": (True, (1, 1, 1)),
    },
    "MRHead": {"MRHead": (False, (0.9, 0.9, 1.3))},
    "CTChest": {"CT_chest": (False, (0.9, 0.9, 1.3))},
}


def _datasets(library: Any, root: Path) -> types.SimpleNamespace:
    """``tio.datasets`` for ``library``: each class gives a subject of synthetic files (the same in both runs)."""

    def subject_of(kind: str) -> Any:
        images = {}
        for seed, (name, (label, spacing)) in enumerate(DATASETS[kind].items()):
            path = _write(root / f"{kind}_{name}.nii.gz", seed, label, spacing)
            images[name] = (library.LabelMap if label else library.ScalarImage)(path)
        return library.Subject(images)

    def slicer(name: str = "MRHead", *args: Any, **kwargs: Any) -> Any:
        return subject_of(name)

    classes = {kind: (lambda *a, kind=kind, **k: subject_of(kind)) for kind in DATASETS}
    return types.SimpleNamespace(**classes, Slicer=slicer)


class _Recorder(doctest.DocTestRunner):
    """Records each example's outcome: its output, or the type of the exception it raised."""

    def __init__(self) -> None:
        super().__init__(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
        self.outcomes: list[tuple[str, str]] = []

    def report_start(self, out: Any, test: Any, example: Any) -> None:
        pass

    def report_success(self, out: Any, test: Any, example: Any, got: str) -> None:
        self.outcomes.append(_outcome(got))

    def report_failure(self, out: Any, test: Any, example: Any, got: str) -> None:
        self.outcomes.append(_outcome(got))

    def report_unexpected_exception(self, out: Any, test: Any, example: Any, exc_info: Any) -> None:
        names = [kind.__name__ for kind in exc_info[0].__mro__]
        self.outcomes.append(("raises", " ".join(names)))


def _outcome(got: str) -> tuple[str, str]:
    return ("prints", got)


def _same(theirs: tuple[str, str], ours: tuple[str, str]) -> bool:
    """Equal output, or an exception of TorchIO's class (or a subclass: ``except`` clauses still catch it)."""
    if theirs[0] == ours[0] == "raises":
        return theirs[1].split()[0] in ours[1].split()
    return theirs == ours


def _run(name: str, library_name: str, root: Path) -> list[tuple[str, str]]:
    """The outcomes of docstring ``name``'s examples with ``tio`` = ``library_name``, run in ``root``."""
    library = importlib.import_module(library_name)
    test = DOCSTRINGS[name]
    examples = []
    for index, example in enumerate(test.examples):
        if f"{name}[{index}]" in NOT_RUN:
            source = "None\n"
        else:
            source = re.sub(
                r"^(\s*)import torchio as tio\b", rf"\1import {library_name} as tio", example.source, flags=re.M
            )
            source = re.sub(r"^(\s*)from torchio\b", rf"\1from {library_name}", source, flags=re.M)
            source = source.replace("tio.datasets.", "_datasets.")
        for path in IMAGE_FILE.findall(source):
            file = root / path.lstrip("/")
            if not file.exists():
                file.parent.mkdir(parents=True, exist_ok=True)
                _write(file, len(path), label=any(word in path for word in ("seg", "matter", "csf")))
        # An absolute path ('/home/user/my_image.nii.gz') goes under root too; relative ones are read from root.
        source = IMAGE_FILE.sub(
            lambda match: (
                repr(str(root / match.group(1).lstrip("/"))) if match.group(1).startswith("/") else match.group(0)
            ),
            source,
        )
        # No expected output or exception: every exception reaches report_unexpected_exception with its class.
        examples.append(doctest.Example(source, "", None, example.lineno, example.indent))
    globs = {"_datasets": _datasets(library, root), "__name__": "__doctest__"}
    copy = doctest.DocTest(examples, globs, name, test.filename, test.lineno, test.docstring)
    torch.manual_seed(0)
    np.random.seed(0)
    recorder = _Recorder()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            recorder.run(copy, clear_globs=True, out=lambda text: None)
    finally:
        os.chdir(cwd)
    text = str(root)
    return [(kind, value.replace(text, "<tmp>").replace("torchpatch", "torchio")) for kind, value in recorder.outcomes]


@pytest.mark.parametrize("name", list(DOCSTRINGS))
def test_torchio_docstring_examples_give_the_same_results(name: str, tmp_path: Path) -> None:
    (tmp_path / "torchio").mkdir()
    (tmp_path / "torchpatch").mkdir()
    theirs = _run(name, "torchio", tmp_path / "torchio")
    ours = _run(name, "torchpatch", tmp_path / "torchpatch")
    assert len(ours) == len(theirs)
    differing = {f"{name}[{index}]": (t, o) for index, (t, o) in enumerate(zip(theirs, ours)) if not _same(t, o)}
    listed = {key for key in DIFFERENCES if key.startswith(f"{name}[")}
    unexplained = {key: value for key, value in differing.items() if key not in listed}
    assert not unexplained, "outcomes differ (TorchIO, torchpatch): " + repr(unexplained)
    assert not listed - set(differing), f"listed in DIFFERENCES but the same now: {sorted(listed - set(differing))}"


def test_every_listed_docstring_exists() -> None:
    for key in [*DIFFERENCES, *NOT_RUN]:
        assert key.split("[")[0] in DOCSTRINGS, key
