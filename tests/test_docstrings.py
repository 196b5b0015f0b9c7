"""Every public class and function carries a runnable ``>>>`` example.

pytest runs the examples themselves (``--doctest-modules`` on ``torchpatch/``);
this test makes sure none is missing, so an object added without one fails here.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import torchpatch

#: Modules that are programs rather than library API.
NOT_API = {"torchpatch.demo"}


def public_modules() -> list[ModuleType]:
    names = [torchpatch.__name__]
    names += [info.name for info in pkgutil.walk_packages(torchpatch.__path__, prefix="torchpatch.")]
    public = [name for name in names if name not in NOT_API and not any(p.startswith("_") for p in name.split("."))]
    return [importlib.import_module(name) for name in public]


def objects_without_example(module: ModuleType) -> list[str]:
    missing = []
    for name, value in vars(module).items():
        if name.startswith("_") or not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if value.__module__ != module.__name__:
            continue  # imported: checked where it is defined
        if ">>>" not in (value.__doc__ or ""):  # not inspect.getdoc: it would borrow a base class docstring
            missing.append(f"{module.__name__}.{name}")
    return missing


def test_walk_finds_the_subpackages() -> None:
    names = {module.__name__ for module in public_modules()}
    assert {"torchpatch.sampler.weighted", "torchpatch.inference.merge", "torchpatch.transforms.base"} <= names
    assert "torchpatch._version" not in names


def test_every_public_class_and_function_has_an_example() -> None:
    missing = [name for module in public_modules() for name in objects_without_example(module)]
    assert not missing, "public objects whose docstring has no '>>>' example: " + ", ".join(missing)
