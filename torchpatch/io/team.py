"""Splitting the compiled copies between the threads of torch's own OpenMP team.

With torch's default threads on Linux, torch runs its parallel kernels on a
GNU OpenMP (libgomp) team led by the calling thread, whose other threads
spin for a millisecond or two after each region, waiting for the next one.
A thread of torchpatch's own copying next to them fights them for the cores
(the step's regions then wait for it). The compiled copies of
:mod:`torchpatch.io` (``copy_boxes``, ``write_boxes``, ``blend_boxes``)
given ``threads`` > 1 instead run as one parallel region of that same team,
bound once through the libgomp torch loaded: its threads are already
awake, and nothing else competes with them.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from types import ModuleType

import torch

compiled: ModuleType | None
try:  # the compiled copies (setup.py); optional (torchpatch.io.base takes them from here)
    from . import transpose as compiled
except ImportError:  # pragma: no cover - a build without a C compiler
    compiled = None


def openmp_library() -> str | None:
    """The GNU OpenMP library (libgomp) torch runs its parallel regions on, as this process mapped it; ``None`` if none.

    ``None`` too where torch's parallel backend is not OpenMP, where no
    libgomp is mapped, or where several are and none is torch's own (a
    copy under torch's folder), so that nothing is attached to the wrong one.

    Example:
        >>> path = openmp_library()
        >>> path is None or 'libgomp' in path
        True
    """
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(maxsplit=5)[-1].strip() for line in maps if "libgomp" in line}
    except OSError:
        return None
    paths = {path for path in paths if path.startswith("/")}
    torch_folder = Path(torch.__file__).resolve().parent
    own = [path for path in paths if Path(path).resolve().is_relative_to(torch_folder)]
    if len(own) == 1:
        return own[0]
    return paths.pop() if len(paths) == 1 else None


#: Calls copying fewer bytes run on one thread (torch's own kernels split work of 32 768 elements or more).
TEAM_BYTES = 1 << 18

#: Set in a child forked from this process: it inherits libgomp's record of the parent's threads, not the
#: threads, and a parallel region there would wait for them for ever (torch's own regions too).
FORKED = threading.Event()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=FORKED.set)


@functools.cache
def _team_bound() -> bool:
    """Whether the compiled copies can run on torch's OpenMP team (bound once per process)."""
    path = openmp_library()
    return compiled is not None and path is not None and bool(compiled.team_init(path))


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity; all of the machine's where that is unknown).

    Example:
        >>> available_cores() >= 1
        True
    """
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def split_threads(threads: int, nbytes: int) -> int:
    """The threads a compiled call copying ``nbytes`` runs on: 1 for small calls and in forked children.

    Example:
        >>> split_threads(2, 1024), split_threads(1, 1 << 30)
        (1, 1)
    """
    return threads if threads > 1 and nbytes >= TEAM_BYTES and not FORKED.is_set() else 1


def team_threads() -> int:
    """How many threads the compiled copies split a call between: torch's threads, where they can join its team.

    With torch's threads on GNU OpenMP (the Linux wheels), a call of
    :func:`~torchpatch.io.copy_boxes`, :func:`~torchpatch.io.write_boxes` or
    :func:`~torchpatch.io.blend_boxes` given
    ``threads`` > 1 runs as one parallel region of the calling thread's
    OpenMP team, the team torch's own parallel kernels run on: its threads
    spin between torch's regions, so they start at once, and no thread of
    ours competes with them for the cores. Elsewhere (one torch thread,
    another OpenMP, no extension, a child forked from the process that
    bound the team) 1; calls copying under :data:`TEAM_BYTES` run on one
    thread whatever they are given.

    Example:
        >>> 1 <= team_threads() <= max(1, torch.get_num_threads())
        True
    """
    threads = torch.get_num_threads()
    return threads if threads > 1 and not FORKED.is_set() and _team_bound() else 1


__all__ = ["FORKED", "TEAM_BYTES", "available_cores", "compiled", "openmp_library", "split_threads", "team_threads"]
