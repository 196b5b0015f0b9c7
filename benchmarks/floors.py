"""What the benchmark jobs cannot go below on this machine, whatever the library.

The speed targets of ``queue.py`` and ``grid.py`` are ratios against peers;
this script measures the costs every library shares, so a missed target can
be told apart from a physical floor:

- memory bandwidth: copying a 256 MiB float32 array with numpy on one
  thread and on two threads at once, and with ``torch.Tensor.copy_`` on
  torch's default threads and on one (GB/s copied);
- decoding: inflating the queue job's ``.nii.gz`` files (the phantoms of
  ``benchmarks/phantoms.py``: CT-like int16, MR-like float32, the old noise)
  with every inflater that imports (zlib, ISA-L ``isal``, libdeflate
  ``deflate``, ``zlib-ng``) from bytes already in memory, and reading the
  same files whole with SimpleITK and nibabel (one thread, milliseconds and
  MB/s of voxels);
- the least time of a cold and of a warm queue epoch that follows: the
  fastest inflater on every file of the job spread over the cores, and the
  memory traffic of cutting, batching and reading the patches at the
  measured bandwidth;
- the grid job's 8-channel model alone: ``x.repeat(1, 8, 1, 1, 1)`` on the
  16 batches of 8 patches of 64³ (seconds, no aggregation at all);
- the WeightedSampler micro-benchmark of ``queue.py`` (a 256³ float32 map,
  200 patches of 64³, one thread): its 200 box copies into a reused buffer
  (every library copies its patches: TorchIO clones each crop) and one
  read of the map (``torch.aminmax``, the least a sampler that checks its
  weights reads), in milliseconds.

Run it from the repository root with the torchpatch venv (it writes one
subject per kind if ``benchmarks/queue.py`` has not written its data)::

    .venv/bin/python benchmarks/floors.py
    .venv/bin/python benchmarks/floors.py --data ct-int16 --repeats 3   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

# Scripts beside this one (benchmarks/queue.py) must not shadow the standard
# library modules of the same name, which torch imports; reach benchmarks.* from the root.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.append(str(_HERE.parent))

from benchmarks.phantoms import KINDS, VERSION, describe, write_subjects  # noqa: E402

MIB = 1 << 20
DATA_ROOT = Path(tempfile.gettempdir()) / "torchpatch-bench-data"
SHAPE = (160, 192, 160)
#: The queue job of benchmarks/queue.py: subjects per kind, patch side, patches per subject.
SUBJECTS, PATCH, SAMPLES_PER_VOLUME = 16, 64, 16


def _median(function: Callable[[], object], repeats: int = 5) -> float:
    """Median wall seconds of ``repeats`` calls after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def numpy_bandwidth(threads: int, size_mib: int = 256) -> float:
    """GB/s copied by ``threads`` Python threads, each copying its own ``size_mib`` array with numpy."""
    sources = [np.random.default_rng(index).random(size_mib * MIB // 4, dtype=np.float32) for index in range(threads)]
    targets = [np.zeros_like(source) for source in sources]

    def run() -> None:
        workers = [threading.Thread(target=np.copyto, args=(t, s)) for t, s in zip(targets, sources)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    return threads * size_mib * MIB / _median(run) / 1e9


def torch_bandwidth(threads: int | None, size_mib: int = 256) -> tuple[float, int]:
    """GB/s of ``Tensor.copy_`` on ``threads`` intra-op threads (``None``: torch's default) and the count."""
    import torch

    default = torch.get_num_threads()
    torch.set_num_threads(threads or default)
    try:
        source = torch.rand(size_mib * MIB // 4)
        target = torch.empty_like(source)
        return size_mib * MIB / _median(lambda: target.copy_(source)) / 1e9, torch.get_num_threads()
    finally:
        torch.set_num_threads(default)


def inflaters() -> dict[str, Callable[[bytes, int], object]]:
    """Whole-buffer gzip inflaters that import here: name -> ``inflate(data, size)``."""
    found: dict[str, Callable[[bytes, int], object]] = {"zlib": lambda data, size: zlib.decompress(data, 31)}
    try:
        from isal import isal_zlib

        found["isal"] = lambda data, size: isal_zlib.decompress(data, wbits=31)
    except ImportError:
        pass
    try:
        import deflate

        found["libdeflate"] = lambda data, size: deflate.gzip_decompress(data, size)
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng

        found["zlib-ng"] = lambda data, size: zlib_ng.decompress(data, wbits=31)
    except ImportError:
        pass
    return found


def readers() -> dict[str, Callable[[Path], object]]:
    """Whole-file readers (header, inflate, array) that import here: name -> ``read(path)``."""
    found: dict[str, Callable[[Path], object]] = {}
    try:
        import SimpleITK as sitk

        found["SimpleITK read"] = lambda path: sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except ImportError:
        pass
    try:
        import nibabel as nib

        found["nibabel read"] = lambda path: np.asanyarray(nib.load(str(path)).dataobj)
    except ImportError:
        pass
    return found


def subject_files(kind: str) -> tuple[list[Path], dict[str, object]]:
    """The queue data's first subject of ``kind`` (image, label), written here if missing."""
    folder = DATA_ROOT / f"queue-{kind}-v{VERSION}-{SUBJECTS}x{'x'.join(map(str, SHAPE))}"
    if not (folder / "manifest.json").exists():
        folder = DATA_ROOT / f"floors-{kind}-v{VERSION}-1x{'x'.join(map(str, SHAPE))}"
        if not (folder / "manifest.json").exists():
            write_subjects(folder, kind, 1, SHAPE)
    manifest = json.loads((folder / "manifest.json").read_text())
    return [folder / "sub-00_image.nii.gz", folder / "sub-00_label.nii.gz"], manifest


def decode_table(kind: str, repeats: int) -> dict[str, float]:
    """Print each decoder's time on one subject of ``kind``; returns decoder -> seconds (image + label)."""
    files, manifest = subject_files(kind)
    print(f"\n{describe(manifest)}")
    contents = [file.read_bytes() for file in files]
    sizes = [int.from_bytes(data[-4:], "little") for data in contents]  # ISIZE: fine below 4 GiB
    totals: dict[str, float] = {}
    rows = []
    for name, inflate in inflaters().items():
        seconds = [_median(lambda d=data, s=size, f=inflate: f(d, s), repeats) for data, size in zip(contents, sizes)]
        totals[name] = sum(seconds)
        rows.append((name, seconds))
    for name, read in readers().items():
        seconds = [_median(lambda f=file, r=read: r(f), repeats) for file in files]
        totals[name] = sum(seconds)
        rows.append((name, seconds))
    zlib_seconds = totals["zlib"]
    print(f"  {'decoder':16s} {'image ms':>9s} {'MB/s':>6s} {'label ms':>9s} {'both ms':>8s} {'vs zlib':>8s}")
    for name, (image, label) in rows:
        print(
            f"  {name:16s} {image * 1e3:9.1f} {sizes[0] / image / 1e6:6.0f} {label * 1e3:9.1f} "
            f"{(image + label) * 1e3:8.1f} {zlib_seconds / (image + label):7.2f}x"
        )
    return totals


def model_seconds() -> float:
    """The grid job's 8-channel model alone over its 16 batches."""
    import torch

    batches = [torch.rand(8, 1, 64, 64, 64) for _ in range(2)]

    def run() -> None:
        for index in range(16):
            output = batches[index % 2].repeat(1, 8, 1, 1, 1)
            del output

    return _median(run)


def weighted_sampler_floor(size: int = 256, patch: int = 64, draws: int = 200) -> tuple[float, float]:
    """Seconds of the WeightedSampler micro-benchmark's box copies and of one pass over its map (one thread)."""
    import torch

    default = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        weights = torch.rand(1, size, size, size, generator=torch.Generator().manual_seed(0))
        corners = np.random.default_rng(0).integers(0, size - patch + 1, size=(draws, 3)).tolist()
        out = torch.empty(1, patch, patch, patch)

        def copies() -> None:
            for i, j, k in corners:
                out.copy_(weights[:, i : i + patch, j : j + patch, k : k + patch])

        return _median(copies), _median(lambda: torch.aminmax(weights))
    finally:
        torch.set_num_threads(default)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", choices=KINDS, default=list(KINDS), help="kinds of volumes to decode")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement, after one warm-up")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    one, two = numpy_bandwidth(1), numpy_bandwidth(2)
    (torch_default, default_threads), (torch_one, _) = torch_bandwidth(None), torch_bandwidth(1)
    print(f"numpy copy bandwidth: {one:.1f} GB/s on one thread, {two:.1f} GB/s on two threads at once")
    print(
        f"torch copy_ bandwidth: {torch_default:.1f} GB/s on torch's default {default_threads} threads, "
        f"{torch_one:.1f} GB/s on one"
    )
    patches = SUBJECTS * SAMPLES_PER_VOLUME
    print(f"\nDecoding one subject, one thread, median of {args.repeats} after a warm-up (files in the page cache)")
    floors = {}
    for kind in args.data:
        totals = decode_table(kind, args.repeats)
        fastest = min((name for name in totals if not name.endswith(" read")), key=totals.__getitem__)
        floors[kind] = (fastest, SUBJECTS * totals[fastest] / cores)
    print(f"\nQueue job floors ({SUBJECTS} subjects, {patches} patches of {PATCH}^3 per epoch, {cores} cores)")
    for kind, (fastest, seconds) in floors.items():
        print(
            f"  {kind}: cold epoch >= {seconds:.2f} s ({fastest} on every file), <= {patches / seconds:.0f} patches/s"
        )
    itemsize = {"ct-int16": 2, "mr-float32": 4, "noise": 4}
    for kind in args.data:
        for label, size in (("int16", 2), ("float32", 4)) if itemsize[kind] == 2 else (("float32", 4),):
            # Each patch copied out of the volume and into the batch (read + write each), then read by the step.
            traffic = patches * PATCH**3 * (size + 1) * 5
            print(
                f"  {kind}: warm epoch, image patches in {label}: >= {traffic / (two * 1e9):.3f} s at two-thread "
                f"bandwidth, <= {patches / (traffic / (two * 1e9)):.0f} patches/s"
            )
    crop_bytes = 125 * 64**3 * 4 * 2 + 256**3 * 4 * 2
    print(f"\ngrid crop, 1 channel: >= {crop_bytes / (two * 1e9):.3f} s at two-thread bandwidth")
    print(f"grid 8-channel model alone (x.repeat(1, 8, 1, 1, 1), 16 batches): {model_seconds():.3f} s")
    copies, one_pass = weighted_sampler_floor()
    print(
        f"\nWeightedSampler micro (256^3 float32 map, 200 patches of 64^3, one thread): box copies "
        f"{copies * 1e3:.1f} ms + one pass over the map {one_pass * 1e3:.1f} ms = {(copies + one_pass) * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
