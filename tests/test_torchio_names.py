"""Every public name of TorchIO 1.x's data, sampler, inference and transform API, checked against torchpatch.

For each module a TorchIO script reaches (``tio.X``, ``tio.data.X``,
``tio.inference.X``, ``tio.transforms.X``, ...), every public name of
TorchIO's is either reachable at the same path in ``torchpatch`` or listed in
``NOT_PROVIDED`` with the reason the migration guide (docs/migration.rst)
gives. For the classes and functions provided, TorchIO's parameter names,
their positional order and their defaults are the same in torchpatch, except
what ``SIGNATURE_DIFFERENCES`` lists (with the reason). Both tables are
checked both ways, so an entry that is no longer true fails too: the lists
cannot rot.

Skipped when TorchIO is not installed (never a runtime dependency). Run it
in the benchmark environment::

    cd /tmp && PYTHONPATH=/work/main /work/main/.bench-venv-aug/bin/python \\
        -m pytest -p no:cacheprovider -c /dev/null /work/main/tests/test_torchio_names.py
"""

from __future__ import annotations

import ast
import importlib
import inspect
from types import ModuleType
from typing import Any

import pytest

tio = pytest.importorskip("torchio")

import torchpatch  # noqa: E402

# Modules walked, as attribute paths from the package (``""`` is ``tio``).
# Each contributes its ``__all__`` (its public names otherwise) and its
# sub-packages; ``inference``, ``sampler`` and ``io`` are TorchIO's top-level
# aliases of ``data.inference``, ``data.sampler`` and ``data.io``.
PATHS = (
    "",
    "constants",
    "data",
    "data.inference",
    "data.io",
    "data.sampler",
    "inference",
    "io",
    "sampler",
    "transforms",
    "transforms.augmentation",
    "transforms.augmentation.spatial",
    "transforms.augmentation.intensity",
    "transforms.preprocessing",
    "transforms.preprocessing.intensity",
    "datasets",
    "utils",
    "visualization",
)


# name -> reason. A key is a bare name (not provided at any path) or a
# TorchIO path such as ``tio.transforms.preprocessing`` (a whole module) or
# ``tio.Transform`` (one name at one path).
NOT_PROVIDED: dict[str, str] = {
    # base classes
    # constants
    "DATA_REPO": "URL of TorchIO's data-set downloads; torchpatch downloads nothing",
    "REPO_URL": "URL of TorchIO's data-set downloads; torchpatch downloads nothing",
    "IMAGE": "internal key of TorchIO's (no public function takes or returns it)",
    "TENSOR": "internal key of TorchIO's (no public function takes or returns it)",
    "NUM_SAMPLES": "internal key of TorchIO's Queue (no public function takes or returns it)",
    # modules outside the data, sampler, inference and transform API
    "tio.datasets": (
        "TorchIO's downloadable data sets (IXI, Colin27, ...): torchpatch downloads nothing; "
        "torchpatch.datasets makes synthetic phantoms in code instead"
    ),
    "tio.download": "torchpatch downloads nothing",
    "tio.reference": "TorchIO's citation helpers",
    "tio.external": "TorchIO's optional-import helpers",
    "tio.types": "type aliases: torchpatch.typing",
    # tio.utils and tio.visualization
    "tio.utils.T": "a type variable of TorchIO's module, not API",
    "get_major_sitk_version": "TorchIO's support of SimpleITK 1; torchpatch needs SimpleITK 2",
    "get_torchio_cache_dir": "the cache of TorchIO's downloads; torchpatch downloads nothing",
    "guess_external_viewer": "TorchIO's search for ITK-SNAP/Slicer; Image.show takes viewer_path or SITK_SHOW_COMMAND",
    "make_video": "needs the ffmpeg-python package and the ffmpeg program (Image.to_video likewise)",
    # tio.io
    "formats": "the lower-case list TorchIO's io module builds IMAGE_2D_FORMATS from: torchpatch.io.IMAGE_2D_FORMATS",
}

# "Class.parameter" (or "Transform.parameter" for the keywords every TorchIO
# transform takes through **kwargs, or "Class()" for the positional order) ->
# reason. Checked both ways, like NOT_PROVIDED.
_KEYWORD_ONLY = "p, copy, keys, keep, parse_input, label_keys are keyword-only: include and exclude stay positional"

SIGNATURE_DIFFERENCES: dict[str, str] = {
    "Contour()": _KEYWORD_ONLY,
    "Transpose()": _KEYWORD_ONLY,
    "Transform()": _KEYWORD_ONLY,
    "IntensityTransform()": _KEYWORD_ONLY,
    "LabelTransform()": _KEYWORD_ONLY,
    "SpatialTransform()": _KEYWORD_ONLY,
    "Image.reader": "the default is torchpatch.io.read_image, TorchIO's function of its name: path -> (tensor, affine)",
    "KeepLargestComponent()": _KEYWORD_ONLY,
    "Crop()": _KEYWORD_ONLY,
    "SubjectsLoader()": "collate_fn is keyword-only (taken through **kwargs, default collate_subjects)",
    "GridSampler.patch_overlap": "same meaning: 0 is (0, 0, 0)",
    "GridAggregator.downsampling_factor": (
        "None finds the factor from the first batch's shape (TorchIO's 1 means no downsampling; passing 1 is the same)"
    ),
    "is_iterable()": "its argument is obj (object is Python's built-in): pass it by position",
    "is_iterable.object": "see is_iterable()",
    "Queue()": "subject_sampler comes after start_background: pass it by keyword, as TorchIO's docs do",
}


def _get(root: ModuleType, path: str) -> Any:
    """The object at a dotted attribute path, importing sub-modules as needed."""
    obj: Any = root
    for part in filter(None, path.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            if not isinstance(obj, ModuleType):
                raise
            try:
                obj = importlib.import_module(f"{obj.__name__}.{part}")
            except ModuleNotFoundError:
                raise AttributeError(f"{obj.__name__} has no {part}") from None
    return obj


def _imported_names(module: ModuleType) -> set[str]:
    """The names a module's own source binds by ``import`` statements (``np``, ``Path``, ``TypePath``...)."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):  # pragma: no cover - no source
        return set()
    return {
        (alias.asname or alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }


def _public_names(path: str) -> list[str]:
    """TorchIO's public names at ``path``: ``__all__`` (or the public names it defines) and sub-packages.

    A module without ``__all__`` counts the names its source defines, not
    those it imports (``np``, ``Path``, a type alias from ``torchio.types``).
    """
    module = _get(tio, path)
    names = set(getattr(module, "__all__", ()) if path else ())
    imported = _imported_names(module) if path and not hasattr(module, "__all__") else set()
    for name in dir(module):
        if name.startswith("_") or name in imported:
            continue
        obj = getattr(module, name)
        if isinstance(obj, ModuleType):
            is_torchio = obj.__name__.startswith("torchio.")
            if is_torchio and (not path or hasattr(obj, "__path__")):
                names.add(name)  # sub-packages (and the top's modules)
        elif not hasattr(module, "__all__") or not path:
            origin = getattr(obj, "__module__", "torchio") or "torchio"
            if origin.startswith("torchio") or not callable(obj):
                names.add(name)
    return sorted(names)


def _all_names() -> list[str]:
    return [f"tio.{path}.{name}" if path else f"tio.{name}" for path in PATHS for name in _public_names(path)]


def _reason_missing(qualified: str) -> str | None:
    """The NOT_PROVIDED reason that covers a TorchIO path, if any."""
    parts = qualified.split(".")
    for end in range(len(parts), 1, -1):
        key = ".".join(parts[:end])
        if key in NOT_PROVIDED:
            return NOT_PROVIDED[key]
    return NOT_PROVIDED.get(parts[-1])


def _provided(qualified: str) -> bool:
    try:
        _get(torchpatch, qualified.removeprefix("tio."))
    except AttributeError:
        return False
    return True


def test_every_torchio_name_is_provided_or_listed() -> None:
    missing = [q for q in _all_names() if not _provided(q) and _reason_missing(q) is None]
    assert not missing, f"TorchIO names torchpatch lacks, not in NOT_PROVIDED: {missing}"


def test_not_provided_entries_are_true() -> None:
    names = _all_names()
    stale = []
    for key in NOT_PROVIDED:
        covered = [q for q in names if q == key or q.startswith(key + ".") or q.split(".")[-1] == key]
        if not covered:
            stale.append(f"{key} (no such TorchIO name)")
        elif all(_provided(q) for q in covered):
            stale.append(f"{key} (provided now)")
    assert not stale, f"NOT_PROVIDED entries to remove (and the migration guide to update): {stale}"


def _parameters(obj: Any) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(obj).parameters)
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return {}


def _same_default(a: object, b: object) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and tensors
        return False


def _signature_differences() -> dict[str, str]:
    """``{"Class.parameter" or "Class()": what differs}`` for every provided TorchIO class and function."""
    found: dict[str, str] = {}
    seen: set[int] = set()
    base = _parameters(tio.Transform)
    for qualified in _all_names():
        theirs = _get(tio, qualified.removeprefix("tio."))
        if not (inspect.isclass(theirs) or inspect.isfunction(theirs)) or id(theirs) in seen:
            continue
        seen.add(id(theirs))
        if not _provided(qualified):
            continue
        ours = _get(torchpatch, qualified.removeprefix("tio."))
        name = qualified.split(".")[-1]
        their_params = _parameters(theirs)
        our_params = _parameters(ours)
        var = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        is_transform = inspect.isclass(theirs) and issubclass(theirs, tio.Transform)
        if is_transform and any(p.kind == p.VAR_KEYWORD for p in their_params.values()):
            for key, param in base.items():
                their_params.setdefault(key, param)  # TorchIO's **kwargs go to Transform
        our_var_keyword = any(p.kind == p.VAR_KEYWORD for p in our_params.values())
        for key, param in their_params.items():
            if param.kind in var:
                continue
            label = f"Transform.{key}" if is_transform and key in base and key not in _parameters(theirs) else None
            if key not in our_params:
                if not our_var_keyword:
                    found[label or f"{name}.{key}"] = f"missing (TorchIO's default {param.default!r})"
            elif not _same_default(param.default, our_params[key].default):
                found[f"{name}.{key}"] = f"default {our_params[key].default!r}, TorchIO's {param.default!r}"
        positional = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.POSITIONAL_ONLY)
        their_order = [k for k, p in _parameters(theirs).items() if p.kind in positional]
        our_order = [k for k, p in our_params.items() if p.kind in positional]
        if our_order and our_order[: len(their_order)] != their_order:
            found[f"{name}()"] = f"positional order {our_order}, TorchIO's {their_order}"
    return found


def test_signatures_match_or_are_listed() -> None:
    found = _signature_differences()
    unlisted = {key: what for key, what in found.items() if key not in SIGNATURE_DIFFERENCES}
    assert not unlisted, f"signature differences not in SIGNATURE_DIFFERENCES: {unlisted}"


def test_signature_differences_entries_are_true() -> None:
    found = _signature_differences()
    stale = sorted(set(SIGNATURE_DIFFERENCES) - set(found))
    assert not stale, f"SIGNATURE_DIFFERENCES entries that no longer differ (remove them): {stale}"
