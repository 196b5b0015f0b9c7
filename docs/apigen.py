"""Writes the API reference pages from the public names of every torchpatch module.

Each object is documented once, under its shortest public name:
``torchpatch.Image`` rather than ``torchpatch.image.Image``,
``torchpatch.transforms.Pad`` rather than ``torchpatch.transforms.crop_pad.Pad``,
and the module that defines it otherwise. Each page covers one module (a
package with its submodules), so the reference follows the package layout.

Docstrings and type annotations name objects by the module that defines them
(``torchpatch.subject.Subject``); :func:`resolve_reexport` points those names
at the one place the object is documented.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Any

import torchpatch

#: The pages, in reading order: (module, title). Submodules go on their package's page.
PAGES = [
    ("torchpatch", "The torchpatch namespace"),
    ("torchpatch.image", "Images"),
    ("torchpatch.regions", "Box reads"),
    ("torchpatch.conversions", "Images as SimpleITK, Pillow and matplotlib see them"),
    ("torchpatch.image_info", "TorchIO's image properties"),
    ("torchpatch.image_members", "TorchIO's image methods: axes, reading, dict methods"),
    ("torchpatch.image_plot", "TorchIO's image and subject plots"),
    ("torchpatch.visualization", "TorchIO's visualization helpers: histograms, GIFs, label colours"),
    ("torchpatch.image_reader", "Custom readers and paths of images"),
    ("torchpatch.subject", "Subjects"),
    ("torchpatch.subject_checks", "TorchIO's consistency checks of subjects"),
    ("torchpatch.subject_members", "TorchIO's subject members: history, typed lookups"),
    ("torchpatch.recorded", "Functions held by history records"),
    ("torchpatch.patches", "Stacked patches"),
    ("torchpatch.stacked", "Batches cut in place"),
    ("torchpatch.copying", "Shallow copies of images"),
    ("torchpatch.dataset", "Datasets of subjects"),
    ("torchpatch.cache", "Decode-once cache"),
    ("torchpatch.sampler", "Patch samplers"),
    ("torchpatch.queue", "Training queue"),
    ("torchpatch.loader", "Loader and collation"),
    ("torchpatch.utils", "Batches back into subjects"),
    ("torchpatch.inference", "Inference: aggregation, sliding window, detection"),
    ("torchpatch.data", "TorchIO's tio.data module paths"),
    ("torchpatch.transforms", "Preprocessing transforms"),
    ("torchpatch.transforms.augmentation", "Random augmentation"),
    ("torchpatch.annotations", "Boxes and points, annotation files, count heatmaps"),
    ("torchpatch.export", "Dataset export"),
    ("torchpatch.datasets", "Synthetic data"),
    ("torchpatch.viz", "Plots"),
    ("torchpatch.testing", "Testing helpers"),
    ("torchpatch.io", "Reading and writing files"),
    ("torchpatch.geometry", "Index and affine maths"),
    ("torchpatch.constants", "Keys"),
    ("torchpatch.typing", "Type aliases"),
]

#: Modules that are programs, not API, modules kept only for an older import path
#: (``torchpatch.annotations_io``, ``torchpatch.heatmap``: their names are documented where they live),
#: and the compiled helpers behind ``torchpatch.io.c_order`` (``reorder_backend`` documents it) and the
#: two-thread gzip decoding (``torchpatch.io.libdeflate`` documents it): no source to read.
NOT_API = {
    "torchpatch.demo",
    "torchpatch.cli",
    "torchpatch.annotations_io",
    "torchpatch.heatmap",
    "torchpatch.io.transpose",
    "torchpatch.io.gzsplit",
}

#: Documented name of each object, by ``id`` (classes and functions) or by
#: ``(defining module, name)`` (data), filled by :func:`write_pages`.
_BY_ID: dict[int, str] = {}
_BY_DATA: dict[tuple[str, str], str] = {}


def public_modules() -> list[str]:
    names = [info.name for info in pkgutil.walk_packages(torchpatch.__path__, prefix="torchpatch.")]
    return [n for n in names if n not in NOT_API and not any(p.startswith("_") for p in n.split("."))]


def page_of(module: str) -> str:
    """The page a module belongs to: the longest page module that contains it."""
    matches = [page for page, _ in PAGES if module == page or module.startswith(page + ".")]
    best = max(matches, key=len)
    if best == "torchpatch" and module != "torchpatch":
        raise RuntimeError(f"docs/apigen.py: public module {module} has no API page; add it to PAGES")
    return best


def assigned_names(module: ModuleType) -> list[str]:
    """Names the module's own source assigns at top level (not imports), in order."""
    source = inspect.getsource(module)
    names: list[str] = []
    for node in ast.parse(source).body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def public_names(module: ModuleType) -> list[str]:
    if hasattr(module, "__all__"):
        return list(module.__all__)
    own = [
        name
        for name, value in vars(module).items()
        if (inspect.isclass(value) or inspect.isfunction(value)) and value.__module__ == module.__name__
    ]
    return [n for n in own + assigned_names(module) if not n.startswith("_")]


def owner(module: ModuleType, name: str) -> str | None:
    """The module that defines ``module.name``; ``None`` for submodules."""
    value = getattr(module, name)
    if inspect.ismodule(value):
        return None
    if inspect.isclass(value) or inspect.isfunction(value):
        return str(value.__module__)
    for candidate in [module.__name__, *public_modules(), "torchpatch"]:
        mod = importlib.import_module(candidate)
        if getattr(mod, name, None) is value and name in assigned_names(mod):
            return candidate
    raise RuntimeError(f"docs/apigen.py: cannot tell which module defines {module.__name__}.{name}")


def documented_name(name: str, defining: str, value: Any) -> str:
    """``torchpatch.name`` if exported at the top, ``package.name`` if its package exports it, else its home."""
    if name in torchpatch.__all__ and getattr(torchpatch, name) is value:
        return f"torchpatch.{name}"
    parts = defining.split(".")
    for depth in range(2, len(parts)):
        package = importlib.import_module(".".join(parts[:depth]))
        if name in getattr(package, "__all__", ()) and getattr(package, name) is value:
            return f"{package.__name__}.{name}"
    return f"{defining}.{name}"


def doc_comment(defining: str, name: str) -> list[str]:
    """The ``#:`` comment of a constant in the module that defines it."""
    from sphinx.pycode import ModuleAnalyzer

    docs = ModuleAnalyzer.for_module(defining).find_attr_docs()
    return [line for line in docs.get(("", name), []) if line.strip()]


def directive(full: str, value: Any, defining: str, name: str) -> list[str]:
    if inspect.isclass(value):
        lines = [f".. autoclass:: {full}", "   :members:"]
        if "__call__" in vars(value):
            lines.append("   :special-members: __call__")
        return [*lines, ""]
    if inspect.isfunction(value):
        return [f".. autofunction:: {full}", ""]
    # Data is described by its ``#:`` comment only: autodoc would show the
    # docstring of its type (numpy's, dict's, a dataclass's) for a value
    # re-exported by a package, whose own source holds no comment for it.
    module, _, short = full.rpartition(".")
    lines = [f".. py:data:: {short}", f"   :module: {module}"]
    shown = repr(value)
    if len(shown) <= 80 and "\n" not in shown:
        lines.append(f"   :value: {shown}")
    comment = doc_comment(defining, name)
    if comment:
        lines += ["", *(f"   {line}" for line in comment)]
    return [*lines, ""]


def heading(text: str, char: str) -> list[str]:
    return [text, char * len(text), ""]


def page_lines(page: str, title: str, modules: list[str], entries: dict[str, list[tuple[str, Any, str]]]) -> list[str]:
    lines = [f".. _api-{page}:", "", *heading(f"``{page}``: {title}", "=")]
    lines += [f".. automodule:: {page}", "   :no-members:", ""]
    # Data (whose summary autosummary would take from its type) is listed below the table only.
    everything = [
        full
        for module in modules
        for full, value, _ in entries.get(module, [])
        if inspect.isclass(value) or inspect.isfunction(value)
    ]
    # The tables read summaries in the page's module, as their docstrings were written.
    lines += [f".. currentmodule:: {page}", ""]
    if page == "torchpatch":
        lines += [
            "Every name below is importable as ``torchpatch.NAME`` (``import torchpatch as tp``);",
            "the links lead to the page that documents it.",
            "",
            ".. autosummary::",
            "",
        ]
        lines += [f"   {name}" for name in torchpatch.__all__]
        lines += ["", ".. py:data:: torchpatch.__version__", "", "   The version string.", ""]
        return lines
    if everything:
        relative = [full.removeprefix(page + ".") for full in everything]
        lines += [".. autosummary::", "", *(f"   {name}" for name in relative), ""]
    for module in modules:
        if module != page:
            lines += [*heading(f"``{module}``", "-"), f".. automodule:: {module}", "   :no-members:", ""]
        for full, value, name in entries.get(module, []):
            lines += directive(full, value, module, name)
    return lines


def write_pages(folder: Path) -> None:
    """(Re)write ``folder/<page>.rst`` for every page; files whose text is unchanged are left alone."""
    entries: dict[str, list[tuple[str, Any, str]]] = {}
    seen: set[tuple[str, str]] = set()
    for module_name in ["torchpatch", *public_modules()]:
        module = importlib.import_module(module_name)
        for name in public_names(module):
            defining = owner(module, name)
            if defining is None or (defining, name) in seen:
                continue
            seen.add((defining, name))
            value = getattr(importlib.import_module(defining), name)
            full = documented_name(name, defining, value)
            entries.setdefault(defining, []).append((full, value, name))
            if inspect.isclass(value) or inspect.isfunction(value):
                _BY_ID[id(value)] = full
            else:
                _BY_DATA[(defining, name)] = full
    modules_of: dict[str, list[str]] = {page: [] for page, _ in PAGES}
    for module_name in ["torchpatch", *public_modules()]:
        modules_of[page_of(module_name)].append(module_name)
    for module_name in entries:
        if module_name not in modules_of[page_of(module_name)]:
            raise RuntimeError(f"docs/apigen.py: {module_name} defines public objects but is not public itself")
    folder.mkdir(parents=True, exist_ok=True)
    for page, title in PAGES:
        text = "\n".join(page_lines(page, title, modules_of[page], entries)).rstrip() + "\n"
        path = folder / f"{page}.rst"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def _lookup(path: str) -> tuple[Any, str, str] | None:
    """``(object, defining module, attribute path)`` for a dotted torchpatch path, or None."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        module = value.__name__
        try:
            for attr in parts[cut:]:
                value = getattr(value, attr)
        except AttributeError:
            return None
        return value, module, ".".join(parts[cut:])
    return None


def canonical(path: str) -> str | None:
    """The documented name of the object that ``path`` names, or None when it is not documented."""
    if not path.startswith("torchpatch."):
        return None
    parts = path.split(".")
    for cut in range(len(parts), 1, -1):  # the longest prefix that is a documented class or function
        found = _lookup(".".join(parts[:cut]))
        if found is None:
            continue
        value, module, attr = found
        rest = ".".join(parts[cut:])
        name = _BY_ID.get(id(value)) if inspect.isclass(value) or inspect.isfunction(value) else None
        if name is None and "." not in attr:
            defining = owner(importlib.import_module(module), attr) if not inspect.ismodule(value) else None
            name = _BY_DATA.get((defining, attr)) if defining else None
        if name is not None:
            return f"{name}.{rest}" if rest else name
    return None


def _is_external(value: Any) -> bool:
    """Whether ``value`` is another package's object (``Array = np.ndarray[...]`` aliases and the like)."""
    module = getattr(value, "__module__", None)
    return isinstance(module, str) and not inspect.ismodule(value) and module.split(".")[0] != "torchpatch"


def resolve_reexport(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """``missing-reference`` hook: resolve a torchpatch name through the place it is documented.

    A name is tried as written, then relative to the class and module it appears
    in, then relative to the class's defining module (how the docstring author
    wrote it), then in the submodules of the current package. A private alias of
    another package's type (``Array``) is shown as plain text, like that type.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    module, cls = node.get("py:module"), node.get("py:class")
    candidates = [target]
    if module:
        if cls:
            candidates.append(f"{module}.{cls}.{target}")
            found = _lookup(f"{module}.{cls}")
            if found is not None and inspect.isclass(found[0]):
                candidates.append(f"{found[0].__module__}.{target}")
        candidates.append(f"{module}.{target}")
        candidates += [f"{m}.{target}" for m in public_modules() if m.startswith(module + ".")]
    domain = env.get_domain("py")
    for candidate in candidates:
        name = canonical(candidate)
        if name is not None and name in domain.objects and name != target:
            return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], name, node, contnode)
    if "." not in target:
        for candidate in candidates[1:]:
            found = _lookup(candidate) if candidate.startswith("torchpatch.") else None
            if found is not None and _is_external(found[0]):
                return contnode
    return None
