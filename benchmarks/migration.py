"""The speed a TorchIO 1.x training script gains from the migration (issue 13, deliverable 3).

One training script, written as TorchIO's documentation writes it: subjects
of a ``.nii.gz`` image and label map (the anatomy-like phantoms of
``benchmarks/phantoms.py``, MR-like float32 by default, ``--kind``), a
``SubjectsDataset`` with a ``Compose`` of preprocessing and augmentation, a
``Queue`` with 2 workers drawing ``LabelSampler`` patches, a
``SubjectsLoader`` over the queue. It is timed in three forms, each in its
own process:

* ``torchio``: TorchIO 1.2.1 (``import torchio as tio``);
* ``torchpatch``: the same script with ``import torchpatch as tio``;
* ``torchpatch-cache``: the migrated script with one more change for speed:
  the preprocessing goes in ``SubjectsDataset(..., cache_dir=...)`` and the
  augmentation in ``Queue(patch_transform=...)`` (a cached transform must be
  deterministic).

Each case runs two epochs and reports the wall time of each: the first is
the warm-up (imports are done before it; with ``cache_dir`` it fills the
cache), the second is the number to compare. An epoch only reads the batches
(no model), so the times are those of the data pipeline. Needs TorchIO 1.2.1
and torchpatch in one environment::

    .bench-venv-aug/bin/python benchmarks/migration.py            # about 2 minutes on 2 cores
    .bench-venv-aug/bin/python benchmarks/migration.py --size 48 --patch 24   # a smoke test
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as ``python benchmarks/migration.py``, this folder would come first on
# sys.path and benchmarks/queue.py would shadow the standard library's queue.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

CASES = ("torchio", "torchpatch", "torchpatch-cache")
MARKER = "@@MIGRATION-RESULT@@ "


def make_data(folder: Path, num_subjects: int, size: int, kind: str) -> tuple[list[tuple[str, str]], str]:
    """Write ``num_subjects`` phantoms of ``kind`` (``benchmarks/phantoms.py``) of ``size**3`` as ``.nii.gz``.

    Returns the (image, label) paths and a line on the files' sizes and compression ratios.
    """
    from benchmarks.phantoms import describe, subject_paths, write_subjects

    manifest = write_subjects(folder, kind, num_subjects, (size, size, size))
    pairs = [(str(image), str(label)) for _, image, label in subject_paths(folder)]
    return pairs, describe(manifest)


def run_case(case: str, pairs: list[tuple[str, str]], patch: int, cache_dir: str) -> dict[str, Any]:
    """Two epochs of the training script in the form ``case``; the wall time of each."""
    tio: Any = importlib.import_module("torchio" if case == "torchio" else "torchpatch")
    import torch

    torch.manual_seed(0)
    subjects = [tio.Subject(t1=tio.ScalarImage(image), seg=tio.LabelMap(label)) for image, label in pairs]
    preprocess = [
        tio.ToCanonical(),
        tio.RescaleIntensity(out_min_max=(0, 1), percentiles=(0.5, 99.5)),
        tio.ZNormalization(),
    ]
    augment = [
        tio.RandomFlip(axes=(0,)),
        tio.RandomAffine(scales=0.1, degrees=10),
        tio.RandomGamma(log_gamma=0.2),
        tio.RandomNoise(std=0.05),
    ]
    sampler = tio.LabelSampler(patch_size=patch, label_name="seg", label_probabilities={0: 1, 1: 1})
    if case == "torchpatch-cache":
        dataset = tio.SubjectsDataset(subjects, transform=tio.Compose(preprocess), cache_dir=cache_dir)
        extra: dict[str, Any] = {"patch_transform": tio.Compose(augment)}
    else:
        dataset = tio.SubjectsDataset(subjects, transform=tio.Compose(preprocess + augment))
        extra = {}
    queue = tio.Queue(
        dataset,
        max_length=32,
        samples_per_volume=8,
        sampler=sampler,
        num_workers=2,
        **extra,
    )
    loader = tio.SubjectsLoader(queue, batch_size=4, num_workers=0)
    times = []
    for _epoch in range(2):
        start = time.perf_counter()
        batches = 0
        for batch in loader:
            assert batch["t1"][tio.DATA].shape[-3:] == (patch, patch, patch)
            batches += 1
        times.append(time.perf_counter() - start)
    if hasattr(queue, "close"):
        queue.close()
    return {"case": case, "epoch_s": times, "batches": batches}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="side of the volumes (voxels)")
    parser.add_argument("--patch", type=int, default=48, help="side of the patches (voxels)")
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument(
        "--kind", choices=("ct-int16", "mr-float32", "noise"), default="mr-float32", help="phantom of the volumes"
    )
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case:  # a child: one case, one result line
        pairs = json.loads(Path(args.data, "pairs.json").read_text())
        result = run_case(args.case, pairs, args.patch, str(Path(args.data, "cache")))
        print(MARKER + json.dumps(result), flush=True)
        return

    import torch
    import torchio

    with tempfile.TemporaryDirectory(prefix="torchpatch-migration-") as folder:
        pairs, files = make_data(Path(folder), args.subjects, args.size, args.kind)
        Path(folder, "pairs.json").write_text(json.dumps(pairs))
        print(
            f"{args.subjects} subjects of {args.size}^3 {args.kind} + uint8 label .nii.gz, patch {args.patch}, "
            f"Queue(max_length=32, samples_per_volume=8, num_workers=2), batch 4"
        )
        print(f"data {files}")
        print(
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__}, torchio {torchio.__version__}, {time.strftime('%Y-%m-%d')}"
        )
        print(f"{'case':18s} {'epoch 1 (s)':>12s} {'epoch 2 (s)':>12s}")
        for case in CASES:
            command = [sys.executable, __file__, "--case", case, "--data", folder]
            command += ["--size", str(args.size), "--patch", str(args.patch)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
            if done.returncode or not lines:
                print(f"{case:18s} failed:\n{done.stderr[-3000:]}")
                continue
            result = json.loads(lines[-1][len(MARKER) :])
            first, second = result["epoch_s"]
            print(f"{case:18s} {first:12.2f} {second:12.2f}", flush=True)


if __name__ == "__main__":
    main()
