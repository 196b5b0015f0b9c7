"""The import layers stay one-way, and no module imports another module's private names.

Every module of the package belongs to a layer (``LAYERS``, from the bottom:
keys and argument parsing, pure geometry, files, images and subjects, ...).
A module may import its own layer's modules and those below, never above,
and the import graph has no cycle, even through imports hidden in functions.
A new module must be given a layer here, so the layering is decided, not
drifted into. Imports under ``if TYPE_CHECKING:`` (annotations only) do not
count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import torchpatch

PACKAGE = Path(torchpatch.__file__).parent

#: Layers from the bottom; each entry is a module or a package (all its modules).
LAYERS: list[list[str]] = [
    ["torchpatch._version", "torchpatch.constants", "torchpatch.typing", "torchpatch.copying", "torchpatch.recorded"],
    ["torchpatch.geometry"],
    ["torchpatch.io"],
    [
        "torchpatch.regions",
        "torchpatch.image_plot",
        "torchpatch.visualization",
        "torchpatch.conversions",
        "torchpatch.image_info",
        "torchpatch.image_reader",
        "torchpatch.image",
        "torchpatch.image_members",
        "torchpatch.patches",
        "torchpatch.stacked",
        "torchpatch.subject",
        "torchpatch.subject_checks",
        "torchpatch.subject_members",
    ],
    ["torchpatch.annotations", "torchpatch.annotations_io", "torchpatch.heatmap", "torchpatch.utils.batches"],
    ["torchpatch.transforms"],
    ["torchpatch.cache", "torchpatch.dataset", "torchpatch.datasets"],
    ["torchpatch.sampler"],
    ["torchpatch.loader"],
    ["torchpatch.queue"],
    ["torchpatch.inference"],
    ["torchpatch.data"],
    ["torchpatch.export"],
    ["torchpatch.viz", "torchpatch.testing", "torchpatch.utils"],
    ["torchpatch", "torchpatch.demo", "torchpatch.cli"],
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for index, layer in enumerate(LAYERS):
        for prefix in layer:
            inside = module == prefix or (prefix != "torchpatch" and module.startswith(prefix + "."))
            if inside and len(prefix) > best:
                best, rank = len(prefix), index
    if rank < 0:
        raise AssertionError(f"module {module} has no layer in tests/test_layering.py LAYERS: give it one")
    return rank


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """``(line, imported module, names)`` of every import of the package, relative ones resolved."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # Imports for type annotations only (under ``if TYPE_CHECKING:``) do not run.
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for statement in node.body
        for inner in ast.walk(statement)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] == "torchpatch":
                names = [alias.name for alias in node.names]
                found.append((node.lineno, target, names))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "torchpatch")
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def resolve(target: str, name: str) -> str:
    """``from target import name``: the submodule ``target.name`` when there is one."""
    candidate = f"{target}.{name}"
    relative = Path(*candidate.split(".")[1:])
    if (PACKAGE / relative).with_suffix(".py").exists() or (PACKAGE / relative / "__init__.py").exists():
        return candidate
    return target


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_go_down_the_layers_only(path: Path) -> None:
    module = module_name(path)
    rank = layer_of(module)
    for line, target, names in imports(path):
        for imported in {resolve(target, name) for name in names} or {target}:
            if imported == module or module.startswith(imported + "."):
                continue  # a package's own __init__ re-exports
            assert layer_of(imported) <= rank, (
                f"{module}:{line} imports {imported} (layer {layer_of(imported)}: {LAYERS[layer_of(imported)]}) "
                f"from layer {rank} ({LAYERS[rank]}): imports go down the layers only"
            )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_module_imports_another_modules_private_names(path: Path) -> None:
    module = module_name(path)
    for line, target, names in imports(path):
        for name in names:
            if name.startswith("_") and not name.startswith("__") and resolve(target, name) == target:
                raise AssertionError(f"{module}:{line} imports the private name {name} of {target}")


def test_the_import_graph_has_no_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        module = module_name(path)
        edges = graph.setdefault(module, set())
        for _, target, names in imports(path):
            for imported in {resolve(target, name) for name in names} or {target}:
                if imported != module and not module.startswith(imported + "."):
                    edges.add(imported)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for following in sorted(graph.get(node, ())):
            if state.get(following) == 1:
                cycle = [*trail[trail.index(following) :], following] if following in trail else [node, following]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if following not in state:
                visit(following, [*trail, following])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
