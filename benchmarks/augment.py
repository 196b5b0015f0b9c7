"""Augmentation benchmark: torchpatch (per patch, per subject, batched) vs TorchIO 1.2.1 vs MONAI.

The job (issue 12, item 4) is the Queue job of ``benchmarks/queue.py`` with an
augmentation pipeline: 8 anatomy-like phantoms of 160x192x160 (a float32
MR-like ``.nii.gz`` image and a uint8 tissue label map), patches of 64^3, 16
patches per volume, a pool of 64, batches of 8, 2 queue workers, a label
sampler with ``label_probabilities={0: 1, 1: 1}``, and the pipeline::

    RandomFlip(axes=(0, 1, 2)) + RandomAffine(scales=0.15, degrees=15)
    + RandomElasticDeformation() + RandomGamma() + RandomNoise() + RandomBiasField()

Cases, each in its own subprocess of ``.bench-venv-aug``::

    torchpatch-patch    tp.Queue(..., patch_transform=pipeline): per patch, with context
    torchpatch-subject  tp.SubjectsDataset(..., transform=pipeline), the Queue without it
    torchpatch-batch    BatchTransform(pipeline, patch_size=64) on each loaded batch (the
                        sampler cuts aug.context_size); skipped while the API is missing
    torchio-1.2.1       the same pipeline as TorchIO's SubjectsDataset transform
    monai               LoadImaged + RandCropByLabelClassesd, then the equivalent
                        dictionary transforms on each 64^3 crop (PatchDataset, 2 workers)

Each case runs two epochs of 128 patches (epoch 1 warms up: workers start,
files enter the page cache); epoch 2 gives the patches/s, the CPU seconds per
patch and the minor page faults per patch of the process tree. Peak RSS/PSS
come from polling the tree. Every case runs with the default threads and with
``OMP_NUM_THREADS=1`` (and ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1``, since
SimpleITK, which TorchIO resamples with, ignores OMP); medians over interleaved
rounds. Method and results: ``docs/benchmarks-augment.rst``.

Run from the repository root (set-up in ``benchmarks/README.md``)::

    .bench-venv-aug/bin/python benchmarks/augment.py            # the full table
    .bench-venv-aug/bin/python benchmarks/augment.py --quick    # smoke test, about 2 minutes
    .bench-venv-aug/bin/python benchmarks/augment.py --rst      # also print RST tables

This script is longer than the house's 400 lines because, like queue.py, it
holds the data generator, five library cases and the report in one file that a
reader can run and audit alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as ``python benchmarks/augment.py``, this file's folder comes first on sys.path and
# benchmarks/queue.py would shadow the standard library's ``queue`` (imported by
# multiprocessing and torch): drop that folder, reach ``benchmarks.common`` through the root.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.append(str(_HERE.parent))

import argparse  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks.common import (  # noqa: E402
    MEMORY_METHOD,
    ROOT,
    ChildResult,
    apply_threads,
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
    tree_usage,
    venv_python,
)
from benchmarks.phantoms import make_phantom  # noqa: E402

THIS_FILE = Path(__file__).resolve()
VENV = ".bench-venv-aug"
DEFAULT_DATA_DIR = Path(tempfile.gettempdir()) / "torchpatch-bench-data"
#: Case -> label in the tables.
VARIANTS = {
    "torchpatch-patch": "torchpatch per patch",
    "torchpatch-subject": "torchpatch on the subject",
    "torchpatch-batch": "torchpatch batched (CPU)",
    "torchio1": "TorchIO 1.2.1",
    "monai": "MONAI",
}
THREADS = ("default", "1")
LABEL_PROBABILITIES = {0: 1.0, 1: 1.0}
#: The pipeline, by TorchIO / torchpatch name, with its arguments (TorchIO defaults otherwise).
PIPELINE: list[tuple[str, dict[str, Any]]] = [
    ("RandomFlip", {"axes": (0, 1, 2)}),
    ("RandomAffine", {"scales": 0.15, "degrees": 15}),
    ("RandomElasticDeformation", {}),
    ("RandomGamma", {}),
    ("RandomNoise", {}),
    ("RandomBiasField", {}),
]
#: MONAI's Rand3DElasticd: a dense U(-1, 1) offset field smoothed by a Gaussian of sigma voxels,
#: times the magnitude. sigma ~10 mm keeps the warp smooth at the scale of TorchIO's 40 mm
#: control grid while the kernel (6 sigma + 1) stays near the crop size; a magnitude of ~400
#: gives a displacement std of ~1.1 mm per component, the std measured for TorchIO's 7-point,
#: 7.5 mm B-spline on these volumes.
MONAI_ELASTIC = {"sigma_range": (9.0, 11.0), "magnitude_range": (300.0, 500.0)}


@dataclass(frozen=True)
class Job:
    """The queue job every library runs."""

    subjects: int = 8
    shape: tuple[int, int, int] = (160, 192, 160)
    patch: int = 64
    samples_per_volume: int = 16
    max_length: int = 64
    batch_size: int = 8
    workers: int = 2
    epochs: int = 2

    @property
    def patches_per_epoch(self) -> int:
        return self.subjects * self.samples_per_volume


QUICK_JOB = Job(subjects=2, shape=(96, 112, 96), patch=32, samples_per_volume=8, max_length=16, batch_size=4)


# ---------------------------------------------------------------------------
# Data: anatomy-like phantoms (child side: numpy, scipy, nibabel)
# ---------------------------------------------------------------------------

# The phantom (make_phantom, TISSUES, INTENSITY) lives in benchmarks/phantoms.py, shared by every benchmark.


def generate_data(folder: Path, subjects: int, shape: tuple[int, int, int]) -> dict[str, Any]:
    """Write the phantoms; ``manifest.json`` last, so a folder without it is regenerated."""
    import nibabel as nib
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    affine = np.eye(4)
    affine[:3, 3] = [-(n - 1) / 2 for n in shape]  # 1 mm isotropic, centred on the origin
    names, raw, stored = [], 0, 0
    for index in range(subjects):
        image, label = make_phantom(shape, seed=1000 + index)
        stem = f"sub-{index:02d}"
        for suffix, array in (("t1", image), ("label", label)):
            target = folder / f"{stem}_{suffix}.nii.gz"
            temporary = folder / f".{stem}_{suffix}.partial.nii.gz"
            nib.save(nib.Nifti1Image(array, affine), str(temporary))
            temporary.replace(target)
            raw += array.nbytes
            stored += target.stat().st_size
        names.append(stem)
    sizes = {kind: sum((folder / f"{name}_{kind}.nii.gz").stat().st_size for name in names) for kind in ("t1", "label")}
    manifest = {"subjects": names, "shape": list(shape), "raw_bytes": raw, "file_bytes": sizes}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def subject_paths(folder: Path) -> list[tuple[str, Path, Path]]:
    names = json.loads((folder / "manifest.json").read_text())["subjects"]
    return [(name, folder / f"{name}_t1.nii.gz", folder / f"{name}_label.nii.gz") for name in names]


# ---------------------------------------------------------------------------
# Child side: one case
# ---------------------------------------------------------------------------


def torchpatch_fingerprint() -> str | None:
    """sha1 of the torchpatch modules this process imported (the sources may change during a run)."""
    files = sorted(
        str(getattr(module, "__file__", "") or "")
        for name, module in list(sys.modules.items())
        if name == "torchpatch" or name.startswith("torchpatch.")
    )
    files = [file for file in files if file]
    if not files:
        return None
    digest = hashlib.sha1(usedforsecurity=False)
    for file in files:
        digest.update(Path(file).read_bytes())
    return digest.hexdigest()[:12]


def torchpatch_pipeline() -> tuple[Any, list[str]]:
    """The pipeline from torchpatch's transforms, and the names it lacks (left out)."""
    import torchpatch as tp

    steps, missing = [], []
    for name, kwargs in PIPELINE:
        cls = getattr(tp.transforms, name, None)
        if cls is None:
            missing.append(name)
        else:
            steps.append(cls(**kwargs))
    return tp.transforms.Compose(steps), missing


def _make_torchpatch(spec: dict[str, Any], job: Job, paths: list[tuple[str, Path, Path]]) -> dict[str, Any]:
    import torchpatch as tp

    variant = spec["variant"]
    pipeline, missing = torchpatch_pipeline()
    augment = None
    patch_size: Any = job.patch
    if variant == "torchpatch-batch":
        batch_class = getattr(tp.transforms, "BatchTransform", None)
        if batch_class is None:
            return {"unavailable": "not available: tp.transforms.BatchTransform is missing"}
        augment = batch_class(pipeline, patch_size=job.patch)
        patch_size = augment.context_size
    subjects = [
        tp.Subject(t1=tp.ScalarImage(t1), label=tp.LabelMap(label), subject_id=name) for name, t1, label in paths
    ]
    dataset_options = {"transform": pipeline} if variant == "torchpatch-subject" else {}
    dataset = tp.SubjectsDataset(subjects, **dataset_options)
    sampler_options: dict[str, Any] = {}
    if variant == "torchpatch-batch" and any(
        c > s for c, s in zip(tp.geometry.parse_patch_size(patch_size), job.shape)
    ):
        sampler_options["padding_mode"] = 0.0  # the context is larger than the volume: pad on the fly
    sampler = tp.LabelSampler(patch_size, "label", label_probabilities=LABEL_PROBABILITIES, **sampler_options)
    queue_options = {"patch_transform": pipeline} if variant == "torchpatch-patch" else {}

    def build() -> tuple[Any, Any]:
        queue = tp.Queue(
            dataset,
            max_length=job.max_length,
            samples_per_volume=job.samples_per_volume,
            sampler=sampler,
            num_workers=job.workers,
            seed=spec["seed"],
            **queue_options,
        )
        return queue, tp.SubjectsLoader(queue, batch_size=job.batch_size, num_workers=0)

    def step(batch: Any) -> tuple[Any, Any]:
        if augment is not None:
            batch = augment(batch)
        return batch["t1"][tp.DATA], batch["label"][tp.DATA]

    return {"build": build, "step": step, "missing": missing}


def _make_torchio1(spec: dict[str, Any], job: Job, paths: list[tuple[str, Path, Path]]) -> dict[str, Any]:
    import torchio as tio

    pipeline = tio.Compose([getattr(tio, name)(**kwargs) for name, kwargs in PIPELINE])
    subjects = [
        tio.Subject(t1=tio.ScalarImage(t1), label=tio.LabelMap(label), subject_id=name) for name, t1, label in paths
    ]
    dataset = tio.SubjectsDataset(subjects, transform=pipeline)
    sampler = tio.LabelSampler(job.patch, "label", label_probabilities=LABEL_PROBABILITIES)

    def build() -> tuple[Any, Any]:
        queue = tio.Queue(
            dataset,
            max_length=job.max_length,
            samples_per_volume=job.samples_per_volume,
            sampler=sampler,
            num_workers=job.workers,
        )
        return queue, tio.SubjectsLoader(queue, batch_size=job.batch_size, num_workers=0)

    return {"build": build, "step": lambda batch: (batch["t1"][tio.DATA], batch["label"][tio.DATA]), "missing": []}


def _make_monai(spec: dict[str, Any], job: Job, paths: list[tuple[str, Path, Path]]) -> dict[str, Any]:
    import monai
    import monai.transforms as mt
    import torch
    from monai.data import DataLoader, Dataset, PatchDataset, ShuffleBuffer

    monai.utils.set_determinism(seed=int(spec["seed"]))
    keys = ["t1", "label"]
    files = [{"t1": str(t1), "label": str(label)} for _, t1, label in paths]
    volumes = Dataset(files, transform=mt.Compose([mt.LoadImaged(keys), mt.EnsureChannelFirstd(keys)]))
    crops = mt.RandCropByLabelClassesd(
        keys,
        label_key="label",
        spatial_size=(job.patch,) * 3,
        ratios=[1, 1],
        num_classes=2,
        num_samples=job.samples_per_volume,
    )
    radians = math.radians(15)
    augment = mt.Compose(
        [
            *(mt.RandFlipd(keys, prob=0.5, spatial_axis=axis) for axis in range(3)),
            mt.RandAffined(
                keys,
                prob=1.0,
                rotate_range=(radians,) * 3,
                scale_range=(0.15,) * 3,
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            ),
            mt.Rand3DElasticd(keys, prob=1.0, mode=("bilinear", "nearest"), padding_mode="zeros", **MONAI_ELASTIC),
            mt.RandAdjustContrastd("t1", prob=1.0, gamma=(math.exp(-0.3), math.exp(0.3))),
            mt.RandGaussianNoised("t1", prob=1.0, mean=0.0, std=0.25),
            mt.RandBiasFieldd("t1", prob=1.0, degree=3, coeff_range=(-0.5, 0.5)),
        ]
    )
    patches = PatchDataset(volumes, patch_func=crops, samples_per_image=job.samples_per_volume, transform=augment)
    per_worker = max(1, job.max_length // max(1, job.workers))

    class WorkerShuffleBuffer(ShuffleBuffer):  # type: ignore[misc]
        """MONAI's ShuffleBuffer over a stream each worker already holds a share of.

        ShuffleBuffer.__iter__ splits its stream between the workers again (it is
        made for a stream every worker reads whole); PatchDataset has already
        split the volumes, so each worker shuffles its own patches here.
        """

        def __iter__(self) -> Any:
            info = torch.utils.data.get_worker_info()
            self.set_random_state(seed=self.seed + (info.id if info is not None else 0))
            self.seed += 1
            yield from self.generate_item()

    def build() -> tuple[Any, Any]:
        buffered = WorkerShuffleBuffer(patches, buffer_size=per_worker, seed=int(spec["seed"]))
        return None, DataLoader(buffered, batch_size=job.batch_size, num_workers=job.workers)

    return {"build": build, "step": lambda batch: (batch["t1"], batch["label"]), "missing": []}


def run_case(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one case in this process and return its timings."""
    import resource

    import numpy as np
    import torch

    job = Job(**{**spec["job"], "shape": tuple(spec["job"]["shape"])})
    threads = apply_threads(spec["threads"])
    seed = int(spec["seed"])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    paths = subject_paths(Path(spec["data"]))
    makers = {"torchio1": _make_torchio1, "monai": _make_monai}
    maker = makers.get(spec["variant"], _make_torchpatch)
    case = maker(spec, job, paths)
    if "unavailable" in case:
        return case
    expected = (job.batch_size, 1, job.patch, job.patch, job.patch)
    usage = [tree_usage()]
    start = time.perf_counter()
    queue, loader = case["build"]()
    first_batch = None
    epochs, counts, checksum = [], [], 0.0
    epoch_start = start
    for _ in range(job.epochs):
        count = 0
        for batch in loader:
            image, label = case["step"](batch)
            checksum += float(image.sum()) + float(label.sum())  # the training step reads every voxel
            if first_batch is None:
                first_batch = time.perf_counter() - start
                if tuple(image.shape) != expected:
                    raise RuntimeError(f"unexpected batch shape {tuple(image.shape)}, expected {expected}")
            count += int(image.shape[0])
        epochs.append(time.perf_counter() - epoch_start)
        counts.append(count)
        usage.append(tree_usage())
        epoch_start = time.perf_counter()
    if hasattr(queue, "close"):
        queue.close()
    return {
        "first_batch_s": first_batch,
        "epoch_s": epochs,
        "patches": counts,
        "cpu_s": [usage[i + 1][0] - usage[i][0] for i in range(len(usage) - 1)],
        "minor_faults": [usage[i + 1][1] - usage[i][1] for i in range(len(usage) - 1)],
        "threads": threads,
        "missing": case["missing"],
        "torchpatch_sources": torchpatch_fingerprint(),
        "checksum": checksum,
        "main_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def child_main(argument: str) -> None:
    spec = json.loads(argument)
    if spec["kind"] == "generate":
        emit_result(generate_data(Path(spec["folder"]), spec["subjects"], tuple(spec["shape"])))
    elif spec["kind"] == "case":
        emit_result(run_case(spec))
    else:
        raise ValueError(f"unknown child kind {spec['kind']!r}")


# ---------------------------------------------------------------------------
# Orchestrator
# ---------------------------------------------------------------------------


@dataclass
class Case:
    variant: str
    threads: str
    runs: list[ChildResult] = field(default_factory=list)
    unavailable: str | None = None
    slow: bool = False

    def values(self, what: str) -> list[float | None]:
        out: list[float | None] = []
        for run in self.runs:
            result = run.result
            last = len(result["epoch_s"]) - 1  # the measured epoch: the last one
            patches = result["patches"][last]
            if what == "patches/s":
                out.append(patches / result["epoch_s"][last])
            elif what == "cold patches/s":
                out.append(result["patches"][0] / result["epoch_s"][0])
            elif what == "cpu/patch":
                out.append(result["cpu_s"][last] / patches)
            elif what == "faults/patch":
                out.append(result["minor_faults"][last] / patches)
            elif what == "rss":
                out.append(run.peak_rss / 2**20)
            elif what == "pss":
                out.append(run.peak_pss / 2**20)
            elif what == "load":
                out.append(run.load)
        return out

    def median(self, what: str) -> float | None:
        return None if self.unavailable else median(self.values(what))

    @property
    def missing(self) -> list[str]:
        return self.runs[0].result.get("missing", []) if self.runs else []


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_data(root: Path, job: Job) -> tuple[Path, dict[str, Any]]:
    i, j, k = job.shape
    folder = root / f"augment-v1-{job.subjects}x{i}x{j}x{k}"
    if not (folder / "manifest.json").exists():
        _log(f"data: writing {job.subjects} phantoms of {job.shape} to {folder}")
        spec = {"kind": "generate", "folder": str(folder), "subjects": job.subjects, "shape": list(job.shape)}
        run_child([venv_python(VENV), THIS_FILE, "--child", json.dumps(spec)], child_environment("default"), 900)
    else:
        _log(f"data: reusing {folder}")
    manifest = json.loads((folder / "manifest.json").read_text())
    return folder, manifest


def data_line(job: Job, manifest: dict[str, Any]) -> str:
    sizes = manifest["file_bytes"]
    stored = sizes["t1"] + sizes["label"]
    voxels = math.prod(job.shape) * job.subjects
    return (
        f"data: {job.subjects} phantoms {job.shape}, 1 mm: float32 MR-like image .nii.gz "
        f"{sizes['t1'] / 2**20:.0f} MiB (x{voxels * 4 / sizes['t1']:.2f} compression), uint8 tissue labels .nii.gz "
        f"{sizes['label'] / 2**20:.1f} MiB (x{voxels / sizes['label']:.1f}); in all {stored / 2**20:.0f} MiB for "
        f"{manifest['raw_bytes'] / 2**20:.0f} MiB raw (x{manifest['raw_bytes'] / stored:.2f})"
    )


def run_one(variant: str, threads: str, job: Job, data: Path, seed: int, timeout: float) -> ChildResult:
    spec = {"kind": "case", "variant": variant, "threads": threads, "seed": seed, "data": str(data), "job": asdict(job)}
    extra = {} if threads == "default" else {"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": threads}
    return run_child(
        [venv_python(VENV), THIS_FILE, "--child", json.dumps(spec)], child_environment(threads, extra), timeout
    )


def run_benchmark(args: argparse.Namespace, job: Job, data: Path, started: float) -> list[Case]:
    cases = [Case(variant, threads) for threads in args.threads for variant in args.variants]
    for round_index in range(args.runs):
        estimate = sum(c.runs[-1].wall for c in cases if c.runs and not c.unavailable and not c.slow)
        if round_index and time.perf_counter() - started + estimate > args.budget:
            _log(f"budget: stopping after {round_index} rounds (next round about {estimate:.0f} s)")
            break
        round_start = time.perf_counter()
        shift = round_index * 2 % len(cases)  # rotate the order: no library always follows another
        for case in cases[shift:] + cases[:shift]:
            if case.unavailable:
                continue
            if case.runs and case.runs[0].wall > args.slow:
                case.slow = True  # measured once: repeating it would not fit the time budget
                continue
            try:
                run = run_one(case.variant, case.threads, job, data, round_index + 1, args.timeout)
            except RuntimeError as error:
                _log(f"  {case.variant} threads={case.threads} failed: {error}")
                case.unavailable = "failed"
                continue
            if "unavailable" in run.result:
                case.unavailable = run.result["unavailable"]
                _log(f"  {case.variant}: {case.unavailable}")
                continue
            case.runs.append(run)
            value = run.result
            _log(
                f"  round {round_index + 1}: {case.variant:18s} threads={case.threads:7s} "
                f"{value['patches'][-1] / value['epoch_s'][-1]:7.2f} patches/s  "
                f"CPU {value['cpu_s'][-1] / value['patches'][-1]:6.3f} s/patch  "
                f"rss {run.peak_rss / 2**20:6.0f} MiB  load {run.load:4.1f}  ({run.wall:.0f} s)"
                + (f"  INCOMPLETE PIPELINE: no {', '.join(value['missing'])}" if value.get("missing") else "")
            )
        _log(f"round {round_index + 1} took {time.perf_counter() - round_start:.0f} s")
    return cases


def _find(cases: list[Case], variant: str, threads: str) -> Case | None:
    return next((c for c in cases if (c.variant, c.threads) == (variant, threads)), None)


def _threads_label(threads: str) -> str:
    return "default threads" if threads == "default" else f"OMP_NUM_THREADS={threads}"


def _label(case: Case) -> str:
    label = VARIANTS[case.variant]
    if case.missing:
        label += f" (incomplete pipeline: no {', '.join(case.missing)})"
    return label


def results_tables(cases: list[Case]) -> list[tuple[str, list[str], list[list[str]]]]:
    headers = [
        "case",
        "patches/s",
        "cold patches/s",
        "CPU s/patch",
        "minor faults/patch",
        "peak RSS MiB",
        "peak PSS MiB",
        "noise",
        "load",
        "n",
    ]
    tables = []
    for threads in [t for t in THREADS if any(c.threads == t for c in cases)]:
        rows = []
        for variant in VARIANTS:
            case = _find(cases, variant, threads)
            if case is None:
                continue
            if case.unavailable:
                rows.append([f"{_label(case)}: {case.unavailable}", *["n/a"] * (len(headers) - 1)])
                continue
            noise = spread(case.values("patches/s"))
            rows.append(
                [
                    _label(case),
                    fmt(case.median("patches/s"), 2),
                    fmt(case.median("cold patches/s"), 2),
                    fmt(case.median("cpu/patch"), 3),
                    fmt(case.median("faults/patch"), 0),
                    fmt(case.median("rss"), 0),
                    fmt(case.median("pss"), 0),
                    "n/a" if noise is None else f"{noise:.0%}",
                    fmt(case.median("load"), 1),
                    f"{len(case.runs)}{'*' if case.slow else ''}",
                ]
            )
        tables.append((_threads_label(threads), headers, rows))
    return tables


def _status(value: float | None, target: float, higher: bool = True) -> str:
    if value is None:
        return "n/a"
    passed = value >= target if higher else value <= target
    return f"{value:.2f}x {'PASS' if passed else 'MISS'}"


def targets_table(cases: list[Case]) -> tuple[str, list[str], list[list[str]]]:
    headers = [
        "threads",
        "patch vs TorchIO patches/s (>= 10x)",
        "patch vs MONAI patches/s (>= 2x)",
        "TorchIO / patch CPU per patch",
        "MONAI / patch CPU per patch",
        "batch / patch CPU per patch (<= 1x)",
        "subject vs TorchIO patches/s",
    ]
    rows = []
    for threads in [t for t in THREADS if any(c.threads == t for c in cases)]:

        def med(variant: str, what: str, threads: str = threads) -> float | None:
            case = _find(cases, variant, threads)
            return None if case is None else case.median(what)

        patch = med("torchpatch-patch", "patches/s")
        incomplete = any(c.missing for c in cases if c.variant.startswith("torchpatch") and c.threads == threads)
        rows.append(
            [
                _threads_label(threads) + (" (incomplete torchpatch pipeline)" if incomplete else ""),
                _status(ratio(patch, med("torchio1", "patches/s")), 10.0),
                _status(ratio(patch, med("monai", "patches/s")), 2.0),
                fmt(ratio(med("torchio1", "cpu/patch"), med("torchpatch-patch", "cpu/patch")), 2, "x"),
                fmt(ratio(med("monai", "cpu/patch"), med("torchpatch-patch", "cpu/patch")), 2, "x"),
                _status(ratio(med("torchpatch-batch", "cpu/patch"), med("torchpatch-patch", "cpu/patch")), 1.0, False),
                fmt(ratio(med("torchpatch-subject", "patches/s"), med("torchio1", "patches/s")), 2, "x"),
            ]
        )
    return "targets (medians; the last epoch of each run)", headers, rows


def _git_state() -> str:
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
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="measured rounds; medians are reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="2 small subjects, 16 patches, 1 round: a smoke test")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="cache of the phantoms")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--threads", nargs="+", choices=THREADS, default=list(THREADS))
    parser.add_argument("--budget", type=float, default=1800.0, help="seconds: no new round past this estimate")
    parser.add_argument(
        "--slow", type=float, default=120.0, help="a case whose first run takes longer is not repeated (n marked *)"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per child before it is killed")
    parser.add_argument("--rst", action="store_true", help="also print the tables as reStructuredText")
    parser.add_argument("--json", type=Path, help="write every raw measurement to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick and args.runs == 3:
        args.runs = 1
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child is not None:
        child_main(args.child)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # end the running case cleanly
    started = time.perf_counter()
    source_state = _git_state()
    job = QUICK_JOB if args.quick else Job()
    versions = package_versions(venv_python(VENV), ["torch", "torchio", "monai", "SimpleITK", "torchpatch"])
    data, manifest = ensure_data(args.data_dir, job)
    cases = run_benchmark(args, job, data, started)
    total = time.perf_counter() - started
    fingerprints = {run.result["torchpatch_sources"] for case in cases for run in case.runs} - {None}
    pipeline = " + ".join(f"{name}({', '.join(f'{k}={v}' for k, v in kw.items())})" for name, kw in PIPELINE)
    header = [
        f"date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"machine: {machine_description()}",
        f"torchpatch: {source_state} at the start; sha1 of the imported torchpatch modules: "
        f"{', '.join(sorted(fingerprints)) or 'n/a'}"
        f"{' (DIFFERENT CODE ACROSS CASES)' if len(fingerprints) > 1 else ''}",
        f"versions: {json.dumps(versions)}",
        data_line(job, manifest),
        (
            f"job: patch {job.patch}, samples_per_volume {job.samples_per_volume}, max_length {job.max_length}, "
            f"batch {job.batch_size}, {job.workers} workers, label sampler {LABEL_PROBABILITIES}, "
            f"{job.patches_per_epoch} patches per epoch, {job.epochs} epochs (the last is measured; cold = epoch 1)"
        ),
        f"pipeline: {pipeline} (TorchIO defaults otherwise); MONAI: 3 x RandFlipd(prob=0.5), RandAffined(prob=1, "
        f"rotate_range=15 deg, scale_range=0.15, zeros), Rand3DElasticd({MONAI_ELASTIC}), RandAdjustContrastd"
        f"(gamma=exp(+-0.3)), RandGaussianNoised(std=0.25), RandBiasFieldd(degree=3, coeff_range=(-0.5, 0.5))",
        f"memory: {MEMORY_METHOD}",
        f"medians of up to {args.runs} rounds; noise = (max - min) / median of patches/s; load = 1-minute load "
        f"average at the end of a run; n* = run once (first run over --slow {args.slow:.0f} s)",
        f"total time: {total:.0f} s",
    ]
    tables = [*results_tables(cases), targets_table(cases)]
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
                    "variant": c.variant,
                    "threads": c.threads,
                    "unavailable": c.unavailable,
                    "runs": [
                        {**r.result, "peak_rss": r.peak_rss, "peak_pss": r.peak_pss, "wall": r.wall} for r in c.runs
                    ],
                }
                for c in cases
            ],
        }
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
