"""Helpers shared by the benchmark scripts: venvs, child processes, memory, tables.

Every benchmark compares torchpatch with its peers *in the same run*, each
case in its own subprocess (so imports, threads and peak memory of one case
never leak into another) and each library in its own virtual environment::

    orchestrator (any python with psutil)
      |- child: .bench-venv-tio1/bin/python  -> torchpatch / TorchIO 1.x case
      |- child: .bench-venv-tio2/bin/python  -> TorchIO 2.x case
      '- ...    (RSS of the child and its workers polled every 50 ms)

A child prints one line ``RESULT_MARKER + json`` on stdout; :func:`run_child`
returns it with the peak memory of the child's process tree. This module
uses only the standard library and psutil, so it runs in any environment.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The repository root.
ROOT = Path(__file__).resolve().parent.parent
#: Prefix of the one line of stdout a child uses for its result.
RESULT_MARKER = "@@BENCH-RESULT@@ "
#: Seconds between two samples of the RSS of the child's process tree.
POLL_SECONDS = 0.05
#: Seconds between two listings of the tree (a scan of /proc, about 4 ms).
LIST_SECONDS = 0.1
#: Seconds between two samples of the tree's PSS (a page-table walk, about 7 ms per process).
PSS_SECONDS = 0.5
#: How peak memory is measured, for the reports.
MEMORY_METHOD = (
    "psutil polling of the child's process tree (the child and its worker processes, listed "
    "every 0.1 s): peak of the RSS summed over the processes, sampled every 50 ms (pages "
    "shared by forked workers, such as torch's libraries, count once per process), and "
    "peak of the summed PSS (shared pages split between the processes that map them), "
    "sampled every 0.5 s"
)

THREAD_SETTINGS = ("default", "1")


def venv_python(name: str) -> Path:
    """The python of the virtual environment ``ROOT / name`` (raises if missing)."""
    python = ROOT / name / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(
            f"benchmark environment {str(ROOT / name)!r} is missing; create it as described in "
            f"docs/benchmarks-queue.rst (python -m venv {name}; pip install torch==2.13.0 first)"
        )
    return python


def child_environment(threads: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of a child: ``threads`` is ``'default'`` or a number for ``OMP_NUM_THREADS``.

    With ``'default'`` the thread variables are removed, so torch picks its
    own default whatever the caller's shell sets.
    """
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.pop(variable, None)
    if threads != "default":
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[variable] = str(int(threads))
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONPATH", None)
    if extra:
        env.update(extra)
    return env


def apply_threads(threads: str) -> int:
    """In a child: make torch use ``threads`` intra-op threads; returns the count in use."""
    import torch

    if threads != "default":
        torch.set_num_threads(int(threads))
    return int(torch.get_num_threads())


def emit_result(result: Mapping[str, Any]) -> None:
    """In a child: hand ``result`` to the orchestrator."""
    sys.stdout.write(RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()


@dataclass
class ChildResult:
    """What one child returned, with the peak memory of its process tree.

    ``load`` is the 1-minute load average when the child ended: above the
    machine's core count, other processes competed with the benchmark.
    """

    result: dict[str, Any]
    peak_rss: int
    peak_pss: int
    wall: float
    samples: int
    max_processes: int
    load: float = 0.0
    stderr: str = field(repr=False, default="")


class _TreeMemory:
    """Polls the memory of a process and its descendants in a thread.

    Reading RSS is cheap (``/proc/PID/statm``) and is done every
    ``interval``; listing the descendants (a scan of ``/proc``) and reading
    PSS (a walk of the page tables) are costly, so they are done less often:
    on a 2-core machine a tight PSS loop would itself slow the benchmark.
    """

    def __init__(self, pid: int, interval: float = POLL_SECONDS) -> None:
        import psutil

        self._psutil = psutil
        self._root = psutil.Process(pid)
        self._interval = interval
        self._list_every = max(1, round(LIST_SECONDS / interval))
        self._pss_every = max(1, round(PSS_SECONDS / interval))
        self._processes = [self._root]
        self._stop = threading.Event()
        self.peak_rss = 0
        self.peak_pss = 0
        self.samples = 0
        self.max_processes = 0
        self._thread = threading.Thread(target=self._run, name="memory-poll", daemon=True)
        self._thread.start()

    def _sample(self, listing: bool, slow: bool) -> None:
        psutil = self._psutil
        if listing or slow:
            try:
                self._processes = [self._root, *self._root.children(recursive=True)]
            except psutil.Error:
                return
        rss = pss = alive = 0
        for process in self._processes:
            try:
                if slow:
                    info = process.memory_full_info()
                    pss += int(getattr(info, "pss", info.rss))
                else:
                    info = process.memory_info()
            except psutil.Error:
                continue
            alive += 1
            rss += int(info.rss)
        if alive:
            self.samples += 1
            self.peak_rss = max(self.peak_rss, rss)
            if slow:
                self.peak_pss = max(self.peak_pss, pss)
            self.max_processes = max(self.max_processes, alive)

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            self._sample(listing=tick % self._list_every == 0, slow=tick % self._pss_every == 0)
            tick += 1
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_child(
    command: Sequence[str | os.PathLike[str]], env: Mapping[str, str], timeout: float, cwd: Path = ROOT
) -> ChildResult:
    """Run ``command`` and return its result line with its tree's peak memory.

    Raises:
        RuntimeError: The child failed, timed out or printed no result;
            the message holds the end of its stderr.
    """
    start = time.perf_counter()
    process = subprocess.Popen(
        [str(part) for part in command],
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    monitor = _TreeMemory(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        monitor.stop()
        raise RuntimeError(
            f"benchmark child timed out after {timeout:.0f} s: {' '.join(map(str, command))}\n{stderr[-3000:]}"
        ) from None
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM turned into SystemExit): take the child down too;
        # its loader workers exit with it.
        process.kill()
        process.wait()
        monitor.stop()
        raise
    monitor.stop()
    wall = time.perf_counter() - start
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if process.returncode != 0 or not lines:
        raise RuntimeError(
            f"benchmark child failed (exit code {process.returncode}): {' '.join(map(str, command))}\n{stderr[-3000:]}"
        )
    result = json.loads(lines[-1][len(RESULT_MARKER) :])
    return ChildResult(
        result, monitor.peak_rss, monitor.peak_pss, wall, monitor.samples, monitor.max_processes, load, stderr
    )


def median(values: Sequence[float | None]) -> float | None:
    """Median of the values that are not ``None`` (``None`` when there are none)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def spread(values: Sequence[float | None]) -> float | None:
    """(max - min) / median of the values, a rough noise figure."""
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return None
    middle = statistics.median(present)
    return (max(present) - min(present)) / middle if middle else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    """A number for a table; ``n/a`` for ``None``."""
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{suffix}"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain monospaced table."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(headers, widths))]
    lines.append("  ".join("-" * width for width in widths))
    lines.extend("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) for row in rows)
    return "\n".join(lines)


def rst_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A reStructuredText simple table."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    rule = "  ".join("=" * width for width in widths)
    lines = [rule, "  ".join(str(cell).ljust(width) for cell, width in zip(headers, widths)).rstrip(), rule]
    lines.extend("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)
    lines.append(rule)
    return "\n".join(lines)


def available_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine_description() -> str:
    """CPU model, cores, memory, OS and Python, in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        import psutil

        memory = f", {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:
        pass
    return (
        f"{cpu}, {available_cores()} cores available{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def package_versions(python: Path, packages: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``packages`` in the environment of ``python``."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        out[name] = 'missing'\n"
        "print(json.dumps(out))\n"
    )
    completed = subprocess.run(
        [str(python), "-c", code, *packages], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(completed.stdout)


def _live_descendants_usage() -> tuple[float, int]:
    """CPU seconds and minor page faults of this process's live descendants (Linux ``/proc``)."""
    import psutil

    cpu, faults = 0.0, 0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (psutil.Error, OSError):
            continue
        cpu += times.user + times.system
        faults += int(fields[7])  # minflt: field 10 of stat, the 8th after the command name
    return cpu, faults


def tree_usage() -> tuple[float, int]:
    """In a child: CPU seconds (user + system) and minor page faults used so far by its process tree.

    This process and its reaped children come from ``getrusage`` (``ru_minflt``
    of ``RUSAGE_SELF`` + ``RUSAGE_CHILDREN``); live workers from ``/proc``. Take
    it before and after a stretch of work and subtract.
    """
    import resource

    cpu, faults = _live_descendants_usage()
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        cpu += usage.ru_utime + usage.ru_stime
        faults += usage.ru_minflt
    return cpu, faults


__all__ = [
    "MEMORY_METHOD",
    "RESULT_MARKER",
    "ROOT",
    "THREAD_SETTINGS",
    "ChildResult",
    "apply_threads",
    "available_cores",
    "child_environment",
    "emit_result",
    "fmt",
    "machine_description",
    "median",
    "package_versions",
    "ratio",
    "rst_table",
    "run_child",
    "spread",
    "text_table",
    "tree_usage",
    "venv_python",
]
