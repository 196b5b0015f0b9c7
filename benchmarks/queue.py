"""Training-queue benchmark: torchpatch vs TorchIO 1.2.1 vs TorchIO 2.0.0a2, in one run.

The job (issue 3, item 4; data of issue 15): 16 subjects of 160x192x160 (an
image ``.nii.gz`` and a uint8 label map ``.nii.gz``), patches of 64^3, 16
patches per volume, a pool of 64 patches, batches of 8, 2 queue workers and
an outer loader without workers; a training step is simulated by converting
the batch to float32, as a model's input is, and summing it (``--step sum``:
summing it as stored, the step of the runs before 2026-12-06 16:45 UTC, which
made torch copy an int16 or uint8 batch into int64 first). The subjects come
from ``benchmarks/phantoms.py``, one folder per kind of data (``--data``), their
file sizes and gzip ratios printed with the results::

    ct-int16     abdomen-like CT, int16 HU (about 2.6x smaller on disk)
    mr-float32   T1-like head, float32, air masked to 0 (about 3.4x)
    noise        the pre-issue-15 float32 noise volume (1.1x: inflate is a memcpy);
                 uniform sampler only unless --noise-samplers says otherwise

Each library runs the job in its own subprocess with its own venv::

    for each round (median over rounds; the cases are interleaved, so a burst
    of load from other users hits every library alike):
        for each data kind x sampler (uniform, label {0: 1, 1: 1}) x threads (default, OMP_NUM_THREADS=1):
            torchpatch          epoch 1 and 2, the .nii.gz decoded every epoch
            torchpatch+cache    SubjectsDataset(cache_dir=fresh folder): epoch 1 decodes and
                                writes .npy, epoch 2 reads memory-mapped patches (warm)
            torchio-1.2.1       epoch 2 is the same work again (no cache)
            torchio-2.0.0a2     its Queue loads the subjects in place, so they stay decoded
                                in memory after epoch 1 (its epoch 2 is warm in RAM)

Measured per case: patches/s of epoch 1 (cold, from building the Queue to the
last batch, worker start-up included) and of the warm epochs after it (the
median of epochs 2-4; epochs 3 and 4 run only while an epoch takes under 2 s,
so one warm epoch of a few milliseconds' noise does not decide a row), the
training process's minor page faults in those epochs, the latency of the
first batch, the CPU seconds of each epoch (the child and its workers: steady
on a shared machine, unlike the wall time) and the peak memory of the child's
process tree (see ``benchmarks.common.MEMORY_METHOD``). Then the
WeightedSampler micro-benchmark: a 256^3 float32 map, patch 64, 200 draws
including the set-up, one thread. Results and analysis:
``docs/benchmarks-queue.rst``.

Run (about 12 minutes at the defaults on 2 shared cores: 40 cases of 4-5 s, but
TorchIO 2.0.0a2's label sampler takes about 60 s a case and runs once (--slow);
two more rounds where the --budget allows, so one round of a process whose
allocator made the simulated step slow does not decide a median; the data is
written once, about 25 s per kind; ``--quick`` in about 90 seconds)::

    .bench-venv-tio1/bin/python benchmarks/queue.py            # the full table
    .bench-venv-tio1/bin/python benchmarks/queue.py --quick    # smoke test
    .bench-venv-tio1/bin/python benchmarks/queue.py --rst      # also print RST tables
    .bench-venv-tio1/bin/python benchmarks/queue.py --data ct-int16 --samplers uniform --runs 1
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as ``python benchmarks/queue.py``, this file's folder comes first on
# sys.path and this module would shadow the standard library's ``queue``
# (imported by multiprocessing and torch): drop that folder, reach
# ``benchmarks.common`` through the repository root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.append(str(_HERE.parent))

import argparse  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import asdict, dataclass, replace  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks.common import (  # noqa: E402
    MEMORY_METHOD,
    ROOT,
    ChildResult,
    apply_threads,
    available_cores,
    child_environment,
    emit_result,
    fmt,
    machine_description,
    median,
    package_versions,
    ratio,
    rst_table,
    run_child,
    spread,
    text_table,
    venv_python,
)
from benchmarks.phantoms import KINDS, VERSION, describe, subject_paths, write_subjects  # noqa: E402

THIS_FILE = Path(__file__).resolve()
DEFAULT_DATA_DIR = Path(tempfile.gettempdir()) / "torchpatch-bench-data"

#: Library variant -> (venv folder, label shown in the tables).
VARIANTS = {
    "torchpatch": (".bench-venv-tio1", "torchpatch"),
    "torchpatch+cache": (".bench-venv-tio1", "torchpatch+cache"),
    "torchio1": (".bench-venv-tio1", "TorchIO 1.2.1"),
    "torchio2": (".bench-venv-tio2", "TorchIO 2.0.0a2"),
}
SAMPLERS = ("uniform", "label")
#: Samplers run on the noise data by default: it is kept as one row for the history.
NOISE_SAMPLERS = ("uniform",)
THREADS = ("default", "1")
LABEL_PROBABILITIES = {0: 1.0, 1: 1.0}
#: Measured rounds by default (--runs; the quick job runs one).
RUNS = 3


@dataclass(frozen=True)
class Job:
    """The queue job every library runs."""

    subjects: int = 16
    shape: tuple[int, int, int] = (160, 192, 160)
    patch: int = 64
    samples_per_volume: int = 16
    max_length: int = 64
    batch_size: int = 8
    workers: int = 2
    epochs: int = 2
    #: Warm epochs measured at most (their median is the warm figure): the ones after the
    #: second run only while a warm epoch takes under ``extra_warm_below`` seconds.
    warm_epochs: int = 3
    extra_warm_below: float = 2.0
    #: How the simulated training step reads a batch (:data:`STEPS`).
    step: str = "float"

    @property
    def patches_per_epoch(self) -> int:
        return self.subjects * self.samples_per_volume


@dataclass(frozen=True)
class MicroJob:
    """The WeightedSampler micro-benchmark."""

    size: int = 256
    patch: int = 64
    draws: int = 200
    repeats: int = 5


QUICK_JOB = Job(subjects=3, shape=(64, 80, 72), patch=32, samples_per_volume=4, max_length=8, batch_size=4)
QUICK_MICRO = MicroJob(size=96, patch=32, draws=50, repeats=2)


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def data_folder(root: Path, job: Job, kind: str) -> Path:
    i, j, k = job.shape
    return root / f"queue-{kind}-v{VERSION}-{job.subjects}x{i}x{j}x{k}"


# ---------------------------------------------------------------------------
# Child side: one case
# ---------------------------------------------------------------------------


def tree_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process and its workers.

    Own time and the time of reaped children come from ``getrusage``; the
    live workers are read with psutil. Unlike throughput, this barely moves
    when other processes compete for the cores, so it tells the cost of a
    library apart from the noise of a shared machine.
    """
    import resource

    import psutil

    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


#: The torchpatch modules this job runs through; other modules (inference, export...) may be
#: imported by ``torchpatch/__init__`` but cannot change the measurements.
PATCH_PATH_MODULES = (
    "torchpatch.cache",
    "torchpatch.cache.store",
    "torchpatch.dataset",
    "torchpatch.geometry",
    "torchpatch.image",
    "torchpatch.io",
    "torchpatch.io.base",
    "torchpatch.io.inflate",
    "torchpatch.io.nifti",
    "torchpatch.io.transpose",
    "torchpatch.loader",
    "torchpatch.patches",
    "torchpatch.queue",
    "torchpatch.queue.diagnostics",
    "torchpatch.queue.plan",
    "torchpatch.queue.pool",
    "torchpatch.queue.producer",
    "torchpatch.queue.queue",
    "torchpatch.regions",
    "torchpatch.sampler.label",
    "torchpatch.sampler.sampler",
    "torchpatch.sampler.uniform",
    "torchpatch.sampler.weighted",
    "torchpatch.subject",
)


def torchpatch_fingerprint() -> str | None:
    """sha1 of the patch-path torchpatch modules this process imported (``None`` if none), and its reorder.

    The sources may be edited while the benchmark runs; comparing this hash
    across the cases tells whether they all ran the same patch code. The
    reorder into C order is the compiled extension or torch's fallback (a
    checkout on ``PYTHONPATH`` has the extension only once built there:
    ``python setup.py build_ext --inplace``).
    """
    files = [getattr(sys.modules[name], "__file__", None) for name in PATCH_PATH_MODULES if name in sys.modules]
    files = [file for file in files if file]
    if not files:
        return None
    digest = hashlib.sha1(usedforsecurity=False)
    for file in files:
        digest.update(Path(file).read_bytes())
    io = sys.modules.get("torchpatch.io")
    reorder = f" ({io.reorder_backend()} reorder)" if io is not None else ""
    return digest.hexdigest()[:12] + reorder


#: The simulated step, by name: ``float`` converts the batch to float32 (what a model takes; a
#: no-op for float32 batches) and sums it; ``sum`` sums it as stored (the step of the runs before
#: 2026-12-06 16:45 UTC): torch sums integers in int64, so an int16 or uint8 batch costs an int64
#: copy of 4x or 8x its size first, a step no training loop runs.
STEPS = ("float", "sum")
_step = "float"


def _touch(data: Any) -> float:
    """The simulated training step: read every voxel of the batch (see :data:`STEPS`)."""
    return float(data.float().sum()) if _step == "float" else float(data.sum())


def _step_alone(batch: tuple[Any, Any], count: int) -> float:
    """Seconds of the simulated step alone over one epoch's ``count`` batches (median of 5 after one).

    The same step, on the last batch of the run (its own dtypes and
    threads), with nothing else running: a floor under every warm epoch.
    """
    image, label = batch
    times = []
    for _ in range(6):
        start = time.perf_counter()
        for _ in range(count):
            _touch(image) + _touch(label)
        times.append(time.perf_counter() - start)
    return float(sorted(times[1:])[2])


def _cache_pairs(cache_dir: Path) -> list[tuple[Path, Path]] | None:
    """The cache's (image, label) ``.npy`` files per subject, or ``None`` unless every subject has both."""
    pairs = sorted((image, image.parent / "label.npy") for image in cache_dir.glob("*/t1.npy"))
    return pairs if pairs and all(label.is_file() for _, label in pairs) else None


def _queue_order(job: Job, count: int, subjects: int, rng: Any) -> list[tuple[int, tuple[int, ...]]]:
    """``count`` (subject, corner) pairs in the order a shuffling queue of ``job.max_length`` hands them out.

    Subjects come in order, ``job.samples_per_volume`` random corners each;
    the pool is filled to ``max_length`` and patches are popped from it at
    random, as TorchIO's Queue (``shuffle_patches=True``) and torchpatch's
    do: a batch mixes the patches of the few subjects in the pool.
    """
    pending = [
        (subject, tuple(int(rng.integers(0, size - job.patch + 1)) for size in job.shape))
        for subject in range(subjects)
        for _ in range(job.samples_per_volume)
    ][:count]
    pool: list[tuple[int, tuple[int, ...]]] = []
    order = []
    while pending or pool:
        while pending and len(pool) < job.max_length:
            pool.append(pending.pop(0))
        order.append(pool.pop(int(rng.integers(0, len(pool)))))
    return order


def _copy_floor(cache_dir: Path, job: Job, count: int) -> float | None:
    """Seconds of the least work a warm epoch needs: one copy of each patch into its batch, and the step.

    On the case's own decoded subjects (the cache's ``.npy`` files, in the
    page cache), ``count`` patches at fixed random corners, subject after
    subject (each subject's maps closed after its boxes, as the Queue does,
    so the page cache's pages do not stay in the RSS), each box copied by
    ``torch.Tensor.copy_`` (torch's threads, as set for the case) into one
    of three rotating batch buffers, and the simulated step on every batch:
    what any library has to do, with no sampling, queue or collation. The
    copies and the step are timed apart (median of 5 epochs after one each).
    With torch's threads on every core the floor is their sum; with fewer
    threads than cores a library can copy on a free core during the step
    (torchpatch's Queue does), so the floor is the longer of the two. That
    assumes the copies and the step do not slow each other down;
    :func:`_pipeline_floor` measures them running together.
    """

    import numpy as np
    import torch

    pairs = _cache_pairs(cache_dir)
    if pairs is None:
        return None
    rng = np.random.default_rng(0)
    per_subject = -(-count // len(pairs))
    buffers: list[tuple[Any, Any]] = []
    copies, steps = [], []
    for _ in range(6):
        copying = stepping = 0.0
        done = 0
        for image_path, label_path in pairs:
            image = torch.from_numpy(np.load(image_path, mmap_mode="r"))
            label = torch.from_numpy(np.load(label_path, mmap_mode="r"))
            shape = image.shape[-3:]
            for _ in range(min(per_subject, count - done) // job.batch_size):
                if len(buffers) < 3:
                    buffers.append(
                        (
                            torch.empty((job.batch_size, 1, *(job.patch,) * 3), dtype=image.dtype),
                            torch.empty((job.batch_size, 1, *(job.patch,) * 3), dtype=label.dtype),
                        )
                    )
                batch_image, batch_label = buffers[0]
                buffers.append(buffers.pop(0))
                start = time.perf_counter()
                for row in range(job.batch_size):
                    i, j, k = (int(rng.integers(0, size - job.patch + 1)) for size in shape)
                    box = (slice(None), slice(i, i + job.patch), slice(j, j + job.patch), slice(k, k + job.patch))
                    batch_image[row].copy_(image[box])
                    batch_label[row].copy_(label[box])
                middle = time.perf_counter()
                _touch(batch_image) + _touch(batch_label)
                copying += middle - start
                stepping += time.perf_counter() - middle
                done += job.batch_size
            del image, label
        copies.append(copying)
        steps.append(stepping)
    copy_s, step_s = sorted(copies[1:])[2], sorted(steps[1:])[2]
    spare_core = torch.get_num_threads() < available_cores()
    return float(max(copy_s, step_s) if spare_core else copy_s + step_s)


def _pipeline_floor(cache_dir: Path, job: Job, count: int) -> float | None:
    """Seconds of :func:`_copy_floor`'s work done as a library overlapping copies and step must do it.

    ``None`` unless torch leaves a core spare (one thread here): only then
    can the copies run beside the step.

    On the case's own decoded subjects (the cache's ``.npy`` files, in the
    page cache): ``count`` patches at random corners, handed out in the
    order of a shuffling queue of ``job.max_length`` (:func:`_queue_order`),
    each box copied by ``torch.Tensor.copy_`` (torch's threads, as set for
    the case) into one of three rotating batch buffers, and the simulated
    step on every batch; each subject's maps are closed after its last box,
    as the Queue does. One thread copies the next batch while the loop runs
    the step on this one, timed as a whole: the two share the memory bus and
    the queue's order mixes subjects, which :func:`_copy_floor` leaves out.
    Median of 5 epochs after one. No sampling, no queue object, no
    collation: the least the overlapping pipeline itself costs here.
    """
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import torch

    pairs = _cache_pairs(cache_dir)
    if pairs is None:
        return None
    rng = np.random.default_rng(0)
    if torch.get_num_threads() >= available_cores():
        return None

    def fill(
        rows: list[tuple[int, tuple[int, ...]]],
        start: int,
        out: tuple[Any, Any],
        maps: dict[int, tuple[Any, Any]],
        last: dict[int, int],
    ) -> tuple[Any, Any]:
        """Copy the boxes of ``rows`` into ``out``, mapping subjects when first needed, closing after their last."""
        for row, (subject, (i, j, k)) in enumerate(rows):
            if subject not in maps:
                image_path, label_path = pairs[subject]
                maps[subject] = (
                    torch.from_numpy(np.load(image_path, mmap_mode="r")),
                    torch.from_numpy(np.load(label_path, mmap_mode="r")),
                )
            image, label = maps[subject]
            box = (slice(None), slice(i, i + job.patch), slice(j, j + job.patch), slice(k, k + job.patch))
            out[0][row].copy_(image[box])
            out[1][row].copy_(label[box])
            if last[subject] == start + row:
                del maps[subject]
        return out

    shape = (job.batch_size, 1, *(job.patch,) * 3)
    dtypes = [torch.from_numpy(np.load(path, mmap_mode="r")[:0]).dtype for path in pairs[0]]
    buffers = [(torch.empty(shape, dtype=dtypes[0]), torch.empty(shape, dtype=dtypes[1])) for _ in range(3)]
    epochs = []
    with ThreadPoolExecutor(1) as copier:
        for _ in range(6):
            order = _queue_order(job, count, len(pairs), rng)
            last = {subject: index for index, (subject, _) in enumerate(order)}
            maps: dict[int, tuple[Any, Any]] = {}
            starts = range(0, len(order) - job.batch_size + 1, job.batch_size)
            start_time = time.perf_counter()
            ahead = copier.submit(fill, order[0 : job.batch_size], 0, buffers[0], maps, last)
            for number, start in enumerate(starts):
                batch = ahead.result()
                following = start + job.batch_size
                if following + job.batch_size <= len(order):
                    ahead = copier.submit(
                        fill,
                        order[following : following + job.batch_size],
                        following,
                        buffers[(number + 1) % 3],
                        maps,
                        last,
                    )
                _touch(batch[0]) + _touch(batch[1])
            epochs.append(time.perf_counter() - start_time)
            maps.clear()
    return float(sorted(epochs[1:])[2])


def _make_torchpatch(spec: dict[str, Any], job: Job, paths: list[tuple[str, Path, Path]]) -> Any:
    import torchpatch as tp

    subjects = [
        tp.Subject(t1=tp.ScalarImage(t1), label=tp.LabelMap(label), subject_id=name) for name, t1, label in paths
    ]
    options = {}
    if spec["variant"] == "torchpatch+cache":
        options["cache_dir"] = spec["cache_dir"]
    dataset = tp.SubjectsDataset(subjects, **options)
    if spec["sampler"] == "uniform":
        sampler = tp.UniformSampler(job.patch)
    else:
        sampler = tp.LabelSampler(job.patch, "label", label_probabilities=LABEL_PROBABILITIES)

    def build() -> tuple[Any, Any, Any]:
        queue = tp.Queue(
            dataset,
            max_length=job.max_length,
            samples_per_volume=job.samples_per_volume,
            sampler=sampler,
            num_workers=job.workers,
            seed=spec["seed"],
        )
        loader = tp.SubjectsLoader(queue, batch_size=job.batch_size, num_workers=0)
        return queue, loader, lambda batch: (batch["t1"][tp.DATA], batch["label"][tp.DATA])

    return build


def _make_torchio1(spec: dict[str, Any], job: Job, paths: list[tuple[str, Path, Path]]) -> Any:
    import torchio as tio

    subjects = [
        tio.Subject(t1=tio.ScalarImage(t1), label=tio.LabelMap(label), subject_id=name) for name, t1, label in paths
    ]
    dataset = tio.SubjectsDataset(subjects)
    if spec["sampler"] == "uniform":
        sampler = tio.UniformSampler(job.patch)
    else:
        sampler = tio.LabelSampler(job.patch, "label", label_probabilities=LABEL_PROBABILITIES)

    def build() -> tuple[Any, Any, Any]:
        queue = tio.Queue(
            dataset,
            max_length=job.max_length,
            samples_per_volume=job.samples_per_volume,
            sampler=sampler,
            num_workers=job.workers,
        )
        loader = tio.SubjectsLoader(queue, batch_size=job.batch_size, num_workers=0)
        return queue, loader, lambda batch: (batch["t1"][tio.DATA], batch["label"][tio.DATA])

    return build


def _make_torchio2(spec: dict[str, Any], job: Job, paths: list[tuple[str, Path, Path]]) -> Any:
    # TorchIO 2.0.0a2: no SubjectsDataset; Queue(subjects, patch_sampler, max_length,
    # patches_per_volume, num_workers) is an IterableDataset whose workers are threads;
    # samplers take a subject first (used only when iterated on their own).
    import torchio as tio

    subjects = [
        tio.Subject(t1=tio.ScalarImage(t1), label=tio.LabelMap(label), subject_id=name) for name, t1, label in paths
    ]
    if spec["sampler"] == "uniform":
        sampler = tio.UniformSampler(None, job.patch)
    else:
        sampler = tio.LabelSampler(None, job.patch, "label", label_probabilities=LABEL_PROBABILITIES)

    def build() -> tuple[Any, Any, Any]:
        queue = tio.Queue(
            subjects,
            patch_sampler=sampler,
            max_length=job.max_length,
            patches_per_volume=job.samples_per_volume,
            num_workers=job.workers,
        )
        loader = tio.SubjectsLoader(queue, batch_size=job.batch_size, num_workers=0)
        return queue, loader, lambda batch: (batch["t1"].data, batch["label"].data)

    return build


def run_case(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one case in this process and return its timings."""
    import resource

    import numpy as np
    import torch

    global _step
    job = Job(**{**spec["job"], "shape": tuple(spec["job"]["shape"])})
    _step = job.step
    threads = apply_threads(spec["threads"])
    seed = int(spec["seed"])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    paths = subject_paths(Path(spec["data"]))
    makers = {
        "torchpatch": _make_torchpatch,
        "torchpatch+cache": _make_torchpatch,
        "torchio1": _make_torchio1,
        "torchio2": _make_torchio2,
    }
    cache_dir = None
    if spec["variant"] == "torchpatch+cache":
        import torchpatch as tp

        if "cache_dir" not in inspect.signature(tp.SubjectsDataset).parameters:
            return {"unavailable": "SubjectsDataset has no cache_dir"}
        cache_dir = tempfile.mkdtemp(prefix="torchpatch-bench-cache-")
        spec["cache_dir"] = cache_dir
    try:
        build = makers[spec["variant"]](spec, job, paths)
        expected_shape = (job.batch_size, 1, job.patch, job.patch, job.patch)
        cpu = [tree_cpu_seconds()]
        faults = [resource.getrusage(resource.RUSAGE_SELF).ru_minflt]
        start = time.perf_counter()
        queue, loader, arrays = build()
        fingerprint = torchpatch_fingerprint()
        first_batch = None
        epochs = []
        counts = []
        steps = []
        checksum = 0.0
        epoch_start = start
        kept: tuple[Any, Any] | None = None
        planned = job.epochs + max(0, job.warm_epochs - 1)
        for number in range(planned):
            if number >= job.epochs and epochs[-1] >= job.extra_warm_below:
                break  # a slow warm epoch: one is steady enough
            count = 0
            step = 0.0
            for batch in loader:
                image, label = arrays(batch)
                kept = (image, label)
                step_start = time.perf_counter()
                checksum += _touch(image) + _touch(label)
                step += time.perf_counter() - step_start
                if first_batch is None:
                    first_batch = time.perf_counter() - start
                    if tuple(image.shape) != expected_shape:
                        raise RuntimeError(f"unexpected batch shape {tuple(image.shape)}, expected {expected_shape}")
                count += int(image.shape[0])
            now = time.perf_counter()
            epochs.append(now - epoch_start)
            counts.append(count)
            steps.append(step)
            cpu.append(tree_cpu_seconds())
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
            epoch_start = time.perf_counter()
        if hasattr(queue, "close"):
            queue.close()
        step_s = _step_alone(kept, job.patches_per_epoch // job.batch_size) if kept is not None else None
        floor_s = pipeline_s = None
        if cache_dir is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # torch: the maps are read-only (only read here)
                floor_s = _copy_floor(Path(cache_dir), job, job.patches_per_epoch)
                pipeline_s = _pipeline_floor(Path(cache_dir), job, job.patches_per_epoch)
    finally:
        if cache_dir is not None:
            shutil.rmtree(cache_dir, ignore_errors=True)
    return {
        "first_batch_s": first_batch,
        "epoch_s": epochs,
        "patches": counts,
        "step_epoch_s": steps,
        "cpu_s": [cpu[i + 1] - cpu[i] for i in range(len(cpu) - 1)],
        "loop_faults": [faults[i + 1] - faults[i] for i in range(len(faults) - 1)],
        "threads": threads,
        "torchpatch_sources": fingerprint,
        "checksum": checksum,
        "step_s": step_s,
        "floor_s": floor_s,
        "pipeline_s": pipeline_s,
        "main_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def run_micro(spec: dict[str, Any]) -> dict[str, Any]:
    """WeightedSampler: set-up plus ``draws`` patches, ``repeats`` times after one warm-up."""
    import torch

    micro = MicroJob(**spec["micro"])
    threads = apply_threads("1")
    generator = torch.Generator().manual_seed(0)
    weights = torch.rand(1, micro.size, micro.size, micro.size, generator=generator)
    if spec["variant"] == "torchpatch":
        import torchpatch as tp

        subject = tp.Subject(prob=tp.ScalarImage(tensor=weights))

        def draw() -> int:
            sampler = tp.WeightedSampler(micro.patch, "prob")
            return sum(1 for _ in sampler(subject, micro.draws, generator=0))

    else:
        import torchio as tio

        subject = tio.Subject(prob=tio.ScalarImage(tensor=weights))

        def draw() -> int:
            sampler = tio.WeightedSampler(micro.patch, "prob")
            return sum(1 for _ in sampler(subject, num_patches=micro.draws))

    torch.manual_seed(0)
    draw()  # warm-up
    times = []
    for _ in range(micro.repeats):
        start = time.perf_counter()
        count = draw()
        times.append(time.perf_counter() - start)
        if count != micro.draws:
            raise RuntimeError(f"{spec['variant']} yielded {count} patches, expected {micro.draws}")
    return {"times_s": times, "threads": threads, "torchpatch_sources": torchpatch_fingerprint()}


def child_main(argument: str) -> None:
    spec = json.loads(argument)
    if spec["kind"] == "generate":
        emit_result(write_subjects(Path(spec["folder"]), spec["data"], spec["subjects"], tuple(spec["shape"])))
    elif spec["kind"] == "case":
        emit_result(run_case(spec))
    elif spec["kind"] == "micro":
        emit_result(run_micro(spec))
    else:
        raise ValueError(f"unknown child kind {spec['kind']!r}")


# ---------------------------------------------------------------------------
# Orchestrator
# ---------------------------------------------------------------------------


@dataclass
class Case:
    data: str
    variant: str
    sampler: str
    threads: str
    runs: list[ChildResult]
    unavailable: str | None = None
    slow: bool = False

    def values(self, what: str) -> list[float | None]:
        out: list[float | None] = []
        for run in self.runs:
            result = run.result
            if what == "cold":
                out.append(result["patches"][0] / result["epoch_s"][0])
            elif what == "warm":
                warm = [n / s for n, s in zip(result["patches"][1:], result["epoch_s"][1:])]
                out.append(median(warm) if warm else None)
            elif what == "cpu cold":
                out.append(result["cpu_s"][0])
            elif what == "cpu warm":
                out.append(median(result["cpu_s"][1:]) if len(result["cpu_s"]) > 1 else None)
            elif what == "faults warm":
                loop = result.get("loop_faults", [])
                out.append(median(loop[1:]) if len(loop) > 1 else None)
            elif what == "first":
                out.append(result["first_batch_s"])
            elif what == "rss":
                out.append(run.peak_rss / 2**20)
            elif what == "pss":
                out.append(run.peak_pss / 2**20)
            elif what == "main":
                out.append(result["main_maxrss_kib"] / 1024)
            elif what == "load":
                out.append(run.load)
            elif what == "step":
                out.append(result.get("step_s"))
            elif what == "step cold":
                steps = result.get("step_epoch_s")
                out.append(steps[0] if steps else None)
            elif what == "cold less step":
                steps = result.get("step_epoch_s")
                out.append(result["patches"][0] / (result["epoch_s"][0] - steps[0]) if steps else None)
            elif what == "floor":
                out.append(result.get("floor_s"))
            elif what == "pipeline":
                out.append(result.get("pipeline_s"))
        return out

    def median(self, what: str) -> float | None:
        if self.unavailable:
            return None
        return median(self.values(what))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_data(root: Path, job: Job, kind: str) -> tuple[Path, dict[str, Any]]:
    """The folder of ``kind`` subjects for ``job`` (written on first use) and its manifest."""
    folder = data_folder(root, job, kind)
    if (folder / "manifest.json").exists():
        _log(f"data: reusing {folder}")
        return folder, json.loads((folder / "manifest.json").read_text())
    _log(f"data: writing {job.subjects} {kind} subjects of {job.shape} to {folder}")
    spec = {"kind": "generate", "folder": str(folder), "data": kind, "subjects": job.subjects, "shape": list(job.shape)}
    result = run_child(
        [venv_python(VARIANTS["torchio1"][0]), THIS_FILE, "--child", json.dumps(spec)],
        child_environment("default"),
        timeout=900,
    )
    return folder, result.result


def run_one(variant: str, sampler: str, threads: str, job: Job, data: Path, seed: int, timeout: float) -> ChildResult:
    spec = {
        "kind": "case",
        "variant": variant,
        "sampler": sampler,
        "threads": threads,
        "seed": seed,
        "data": str(data),
        "job": asdict(job),
    }
    python = venv_python(VARIANTS[variant][0])
    return run_child([python, THIS_FILE, "--child", json.dumps(spec)], child_environment(threads), timeout)


def run_queue_benchmark(args: argparse.Namespace, job: Job, folders: dict[str, Path], started: float) -> list[Case]:
    cases = [
        Case(kind, variant, sampler, threads, [])
        for kind in args.data
        for sampler in (args.noise_samplers if kind == "noise" else args.samplers)
        for threads in args.threads
        for variant in args.variants
    ]
    if not args.no_warmup:
        # One unmeasured run per environment: the data files enter the page cache and the
        # bytecode is compiled, so the first measured case is not penalised.
        _log("warm-up: one unmeasured run per environment")
        for variant in [v for v in ("torchpatch+cache", "torchio2") if v in args.variants]:
            try:
                result = run_one(variant, "uniform", "1", job, next(iter(folders.values())), 0, args.timeout)
            except RuntimeError as error:
                _log(f"  warm-up of {variant} failed: {error}")
                continue
            if "unavailable" in result.result:
                for case in cases:
                    if case.variant == variant:
                        case.unavailable = result.result["unavailable"]
    for round_index in range(args.runs):
        elapsed = time.perf_counter() - started
        # The next round repeats the cases that were not too slow: about as long as their last runs.
        estimate = sum(
            case.runs[-1].wall
            for case in cases
            if case.runs and not case.unavailable and case.runs[0].wall <= args.slow
        )
        if round_index and elapsed + estimate + args.reserve > args.budget:
            _log(
                f"budget: stopping after {round_index} rounds ({elapsed:.0f} s elapsed, next round about "
                f"{estimate:.0f} s, budget {args.budget:.0f} s)"
            )
            break
        round_start = time.perf_counter()
        # Rotate the order every round, so no library always runs right after another.
        shift = round_index * 3 % len(cases)
        for case in cases[shift:] + cases[:shift]:
            if case.unavailable:
                continue
            if case.runs and case.runs[0].wall > args.slow:
                case.slow = True  # measured once: repeating it would not fit the time budget
                continue
            try:
                result = run_one(
                    case.variant, case.sampler, case.threads, job, folders[case.data], round_index + 1, args.timeout
                )
            except RuntimeError as error:
                _log(f"  {case.data} {case.variant} {case.sampler} threads={case.threads} failed: {error}")
                case.unavailable = "failed"
                continue
            if "unavailable" in result.result:
                case.unavailable = result.result["unavailable"]
                continue
            case.runs.append(result)
            values = result.result
            _log(
                f"  round {round_index + 1}: {case.data:10s} {case.variant:17s} {case.sampler:7s} "
                f"threads={case.threads:7s} "
                f"cold {values['patches'][0] / values['epoch_s'][0]:7.1f}/s  "
                f"warm {values['patches'][1] / values['epoch_s'][1]:7.1f}/s  "
                f"first {values['first_batch_s']:5.2f} s  rss {result.peak_rss / 2**20:6.0f} MiB  "
                f"load {result.load:4.1f}  ({result.wall:.1f} s)"
            )
        _log(f"round {round_index + 1} took {time.perf_counter() - round_start:.0f} s")
    return cases


def run_micro_benchmark(args: argparse.Namespace, micro: MicroJob) -> tuple[dict[str, list[float]], set[str]]:
    times: dict[str, list[float]] = {}
    fingerprints: set[str] = set()
    for variant in ("torchpatch", "torchio1"):
        spec = {"kind": "micro", "variant": variant, "micro": asdict(micro)}
        python = venv_python(VARIANTS[variant][0])
        try:
            result = run_child([python, THIS_FILE, "--child", json.dumps(spec)], child_environment("1"), args.timeout)
        except RuntimeError as error:
            _log(f"  WeightedSampler {variant} failed: {error}")
            continue
        times[variant] = result.result["times_s"]
        if result.result.get("torchpatch_sources"):
            fingerprints.add(result.result["torchpatch_sources"])
        _log(f"  WeightedSampler {variant}: {[round(t, 3) for t in times[variant]]} s")
    return times, fingerprints


# Reporting -------------------------------------------------------------------


def _find(cases: list[Case], data: str, variant: str, sampler: str, threads: str) -> Case | None:
    for case in cases:
        if (case.data, case.variant, case.sampler, case.threads) == (data, variant, sampler, threads):
            return case
    return None


def _groups(cases: list[Case]) -> list[tuple[str, str, str]]:
    """The (data, sampler, threads) combinations that ran, in table order."""
    present = {(case.data, case.sampler, case.threads) for case in cases}
    return [(d, s, t) for d in KINDS for s in SAMPLERS for t in THREADS if (d, s, t) in present]


def _threads_label(threads: str) -> str:
    return "default threads" if threads == "default" else f"OMP_NUM_THREADS={threads}"


def results_tables(cases: list[Case]) -> list[tuple[str, list[str], list[list[str]]]]:
    headers = [
        "library",
        "cold patches/s",
        "warm patches/s",
        "first batch s",
        "CPU s cold",
        "CPU s warm",
        "faults warm",
        "step s cold",
        "step s",
        "floor s",
        "pipeline s",
        "peak RSS MiB",
        "peak PSS MiB",
        "noise cold",
        "load",
        "n",
    ]
    tables = []
    for data, sampler, threads in _groups(cases):
        rows = []
        for variant in VARIANTS:
            case = _find(cases, data, variant, sampler, threads)
            if case is None:
                continue
            noise = None if case.unavailable else spread(case.values("cold"))
            rows.append(
                [
                    VARIANTS[variant][1],
                    fmt(case.median("cold")),
                    fmt(case.median("warm")),
                    fmt(case.median("first"), 2),
                    fmt(case.median("cpu cold"), 2),
                    fmt(case.median("cpu warm"), 2),
                    fmt(case.median("faults warm"), 0),
                    fmt(case.median("step cold"), 3),
                    fmt(case.median("step"), 3),
                    fmt(case.median("floor"), 3),
                    fmt(case.median("pipeline"), 3),
                    fmt(case.median("rss"), 0),
                    fmt(case.median("pss"), 0),
                    "n/a" if noise is None else f"{noise:.0%}",
                    fmt(case.median("load"), 1),
                    (f"{len(case.runs)}{'*' if case.slow else ''}" if not case.unavailable else "n/a"),
                ]
            )
        tables.append((f"{data}, {sampler} sampler, {_threads_label(threads)}", headers, rows))
    return tables


def _status(value: float | None, target: float, higher: bool = True) -> str:
    if value is None:
        return "n/a"
    passed = value >= target if higher else value <= target
    return f"{value:.2f}x {'PASS' if passed else 'MISS'}"


def _fastest(cases: tuple[Case | None, ...], what: str) -> float | None:
    """The highest median of ``what`` among the cases that ran (``None`` if none did)."""
    return max([v for v in (None if c is None else c.median(what) for c in cases) if v is not None], default=None)


def targets_table(cases: list[Case]) -> tuple[str, list[str], list[list[str]]]:
    """Issue 15's targets: cold >= 2x the faster TorchIO, warm (cache) >= 1.5x TIO 2 and >= 10x TIO 1, RSS."""
    headers = [
        "data / sampler / threads",
        "cold vs TIO1",
        "cold vs TIO2",
        "cold vs faster, >= 2x",
        "cold less step vs faster",
        "cold (cache) vs faster",
        "warm (cache) vs TIO2, >= 1.5x",
        "warm (cache) vs TIO1, >= 10x",
        "floor ceiling vs TIO2 / TIO1",
        "pipeline ceiling vs TIO2 / TIO1",
        "RSS vs TIO1, <= 1x",
        "RSS (cache) vs TIO1, <= 1x",
    ]
    rows = []
    for data, sampler, threads in _groups(cases):
        plain = _find(cases, data, "torchpatch", sampler, threads)
        cached = _find(cases, data, "torchpatch+cache", sampler, threads)
        tio1 = _find(cases, data, "torchio1", sampler, threads)
        tio2 = _find(cases, data, "torchio2", sampler, threads)
        if plain is None and cached is None:
            continue

        def med(case: Case | None, what: str) -> float | None:
            return None if case is None else case.median(what)

        faster_cold = _fastest((tio1, tio2), "cold")
        # The same without the simulated step's seconds in epoch 1 (the user's compute, in the
        # training process beside the library's work): the library's own cold path against the peer's.
        faster_less_step = _fastest((tio1, tio2), "cold less step")
        # The highest warm ratio any library could reach: the peer's warm epoch over the copy floor
        # (each patch copied once into its batch, and the step).
        floor = med(cached, "floor")
        patches = cached.runs[0].result["patches"][1] if cached is not None and cached.runs else None
        ceiling, pipeline_ceiling = (
            [
                None
                if seconds is None or patches is None or med(peer, "warm") is None
                else patches / med(peer, "warm") / seconds
                for peer in (tio2, tio1)
            ]
            for seconds in (floor, med(cached, "pipeline"))
        )
        rows.append(
            [
                f"{data} / {sampler} / {_threads_label(threads)}",
                fmt(ratio(med(plain, "cold"), med(tio1, "cold")), 2, "x"),
                fmt(ratio(med(plain, "cold"), med(tio2, "cold")), 2, "x"),
                _status(ratio(med(plain, "cold"), faster_cold), 2.0),
                fmt(ratio(med(plain, "cold less step"), faster_less_step), 2, "x"),
                fmt(ratio(med(cached, "cold"), faster_cold), 2, "x"),
                _status(ratio(med(cached, "warm"), med(tio2, "warm")), 1.5),
                _status(ratio(med(cached, "warm"), med(tio1, "warm")), 10.0),
                f"{fmt(ceiling[0], 1, 'x')} / {fmt(ceiling[1], 1, 'x')}",
                f"{fmt(pipeline_ceiling[0], 1, 'x')} / {fmt(pipeline_ceiling[1], 1, 'x')}",
                _status(ratio(med(plain, "rss"), med(tio1, "rss")), 1.0, higher=False),
                _status(ratio(med(cached, "rss"), med(tio1, "rss")), 1.0, higher=False),
            ]
        )
    return "targets (torchpatch / peer, medians)", headers, rows


def micro_table(times: dict[str, list[float]], micro: MicroJob) -> tuple[str, list[str], list[list[str]]]:
    headers = ["library", "median s", "min s", "max s", "torchpatch speed-up", "target >= 10x"]
    rows = []
    ours = median(times.get("torchpatch", []))
    for variant in ("torchpatch", "torchio1"):
        values = times.get(variant, [])
        speedup = ratio(median(values), ours) if variant == "torchio1" else None
        rows.append(
            [
                VARIANTS[variant][1],
                fmt(median(values), 3),
                fmt(min(values) if values else None, 3),
                fmt(max(values) if values else None, 3),
                fmt(speedup, 1, "x") if variant == "torchio1" else "",
                _status(speedup, 10.0) if variant == "torchio1" else "",
            ]
        )
    title = (
        f"WeightedSampler: {micro.size}^3 float32 map, patch {micro.patch}, {micro.draws} draws incl. set-up, "
        f"OMP_NUM_THREADS=1, median of {micro.repeats} after one warm-up"
    )
    return title, headers, rows


def _git_state() -> str:
    """Commit of the checkout, and a hash of the torchpatch sources (uncommitted edits included)."""
    digest = hashlib.sha1(usedforsecurity=False)
    for path in sorted((ROOT / "torchpatch").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "torchpatch"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown commit", ""
    return f"{commit}{' + uncommitted changes' if dirty else ''}, sources sha1 {digest.hexdigest()[:12]}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs",
        type=int,
        default=RUNS,
        help=f"measured rounds, as the --budget allows; medians are reported (default {RUNS})",
    )
    parser.add_argument("--quick", action="store_true", help="3 small subjects, 1 round, no warm-up: a smoke test")
    parser.add_argument(
        "--data", nargs="+", choices=KINDS, default=list(KINDS), help="kinds of volumes (benchmarks/phantoms.py)"
    )
    parser.add_argument(
        "--noise-samplers", nargs="+", choices=SAMPLERS, default=list(NOISE_SAMPLERS), help="samplers on noise data"
    )
    parser.add_argument("--subjects", type=int, help="subjects per data kind (default 16; the quick job 3)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the unmeasured warm-up runs")
    parser.add_argument(
        "--step",
        choices=STEPS,
        default="float",
        help="the simulated step: float32 conversion and sum (default), or sum as stored (runs before 2026-12-06)",
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="cache of the synthetic subjects")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    parser.add_argument("--threads", nargs="+", choices=THREADS, default=list(THREADS))
    parser.add_argument("--no-micro", action="store_true", help="skip the WeightedSampler micro-benchmark")
    parser.add_argument(
        "--budget", type=float, default=900.0, help="seconds: no new round starts if it would end past this"
    )
    parser.add_argument("--reserve", type=float, default=40.0, help="seconds kept for the micro-benchmark")
    parser.add_argument(
        "--slow", type=float, default=40.0, help="a case whose first run takes longer is not repeated (n marked *)"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per child before it is killed")
    parser.add_argument("--rst", action="store_true", help="also print the tables as reStructuredText")
    parser.add_argument("--json", type=Path, help="write every raw measurement to this file")
    parser.add_argument(
        "--glibc-tunables",
        metavar="TUNABLES",
        help="GLIBC_TUNABLES for every library's processes, e.g. glibc.malloc.tcache_count=0 "
        "(default: as this shell has it, usually unset)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 1 if args.runs == RUNS else args.runs
        args.no_warmup = True
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    if args.subjects is not None and args.subjects < 1:
        parser.error("--subjects must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child is not None:
        child_main(args.child)
        return
    # A plain SIGTERM would end this process and orphan the running case: exit cleanly instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.glibc_tunables is not None:
        os.environ["GLIBC_TUNABLES"] = args.glibc_tunables  # inherited by every child (this process keeps its own)
    started = time.perf_counter()
    source_state = _git_state()
    job = QUICK_JOB if args.quick else Job()
    if args.subjects is not None:
        job = replace(job, subjects=args.subjects)
    job = replace(job, step=args.step)
    micro = QUICK_MICRO if args.quick else MicroJob()
    versions = {
        "torchio1 venv": package_versions(venv_python(VARIANTS["torchio1"][0]), ["torch", "torchio", "torchpatch"]),
        "torchio2 venv": package_versions(venv_python(VARIANTS["torchio2"][0]), ["torch", "torchio", "torchpatch"]),
    }
    folders, manifests = {}, {}
    for kind in args.data:
        folders[kind], manifests[kind] = ensure_data(args.data_dir, job, kind)
    cases = run_queue_benchmark(args, job, folders, started)
    times, fingerprints = ({}, set()) if args.no_micro else run_micro_benchmark(args, micro)
    total = time.perf_counter() - started
    fingerprints |= {run.result["torchpatch_sources"] for case in cases for run in case.runs} - {None}
    if len(fingerprints) > 1:
        _log("WARNING: torchpatch's patch-path modules changed during the run: the cases ran different code")
    imported = (
        f"sha1 of the patch-path modules the cases ran: {', '.join(sorted(fingerprints)) or 'n/a'}"
        f"{' (DIFFERENT CODE ACROSS CASES)' if len(fingerprints) > 1 else ' (the same in every case)'}"
    )

    tables = results_tables(cases)
    tables.append(targets_table(cases))
    if times:
        tables.append(micro_table(times, micro))
    header = [
        f"date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"machine: {machine_description()}",
        f"torchpatch: {source_state} at the start; {imported}",
        f"versions: {json.dumps(versions)}",
        (
            f"job: {job.subjects} subjects {job.shape} per data kind, image .nii.gz + uint8 label .nii.gz, "
            f"patch {job.patch}, "
            f"samples_per_volume {job.samples_per_volume}, max_length {job.max_length}, batch {job.batch_size}, "
            f"{job.workers} queue workers (processes; TorchIO 2.0.0a2: threads), outer loader num_workers=0, "
            f"{job.patches_per_epoch} patches per epoch, label probabilities {LABEL_PROBABILITIES}, "
            f"simulated step: {'batch.float().sum()' if job.step == 'float' else 'batch.sum() as stored'}"
        ),
        *(f"data {describe(manifests[kind])}" for kind in args.data),
        "cold = epoch 1 from building the Queue (workers start included); warm = median of epochs 2 to "
        f"{1 + job.warm_epochs} (those after epoch 2 only while an epoch takes under {job.extra_warm_below:g} s); "
        "CPU s warm and faults warm (minor page faults of the training process, not its workers) likewise; "
        "step s cold = the simulated step's seconds inside epoch 1; step s = the step alone over one epoch's "
        "batches after the run; cold less step = epoch 1 less its step seconds (the library's own cold path)",
        f"memory: {MEMORY_METHOD}",
        f"allocator: GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset: glibc defaults)')} in every process",
        f"medians of up to {args.runs} rounds (--budget {args.budget:.0f} s; "
        f"{'no ' if args.no_warmup else ''}warm-up run first); "
        f"noise = (max - min) / median of the cold throughput; load = median 1-minute load average at the end "
        f"of the runs (above the core count, other processes competed); n* = run once, too slow to repeat "
        f"within the time budget (--slow {args.slow:.0f} s)",
        f"total time: {total:.0f} s",
    ]
    print("\n".join(header))
    for title, headers, rows in tables:
        print(f"\n{title}\n{text_table(headers, rows)}")
    if args.rst:
        for title, headers, rows in tables:
            print(f"\n{title}\n{'~' * len(title)}\n\n{rst_table(headers, rows)}")
    if args.json:
        raw = {
            "header": header,
            "cases": [
                {
                    "data": c.data,
                    "variant": c.variant,
                    "sampler": c.sampler,
                    "threads": c.threads,
                    "unavailable": c.unavailable,
                    "runs": [
                        {
                            **r.result,
                            "peak_rss": r.peak_rss,
                            "peak_pss": r.peak_pss,
                            "wall": r.wall,
                            "samples": r.samples,
                        }
                        for r in c.runs
                    ],
                }
                for c in cases
            ],
            "micro": times,
            "data": manifests,
        }
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
