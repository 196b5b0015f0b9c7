"""What the benchmark jobs cannot go below on this machine, whatever the library.

The speed targets of ``queue.py`` and ``grid.py`` are ratios against peers;
this script measures the costs every library shares, so a missed target can
be told apart from a physical floor:

- memory bandwidth: copying a 256 MiB float32 array with numpy, on one
  thread and on two threads at once (GB/s copied);
- decoding: reading one benchmark subject (``.nii.gz`` image + label) with
  SimpleITK, as torchpatch and TorchIO do (CPU seconds);
- the grid job's 8-channel model alone: ``x.repeat(1, 8, 1, 1, 1)`` on the
  16 batches of 8 patches of 64³ (seconds, no aggregation at all);
- the least memory traffic of the jobs, turned into seconds at the measured
  bandwidth.

Run it from the repository root with the torchpatch venv, after
``benchmarks/queue.py`` has written its data::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/floors.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# Scripts beside this one (benchmarks/queue.py) must not shadow the standard
# library modules of the same name, which torch imports.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

MIB = 1 << 20
DEFAULT_DATA = Path(tempfile.gettempdir()) / "torchpatch-bench-data" / "queue-8x160x192x160"


def _median(function: Callable[[], object], repeats: int = 5) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_bandwidth(threads: int, size_mib: int = 256) -> float:
    """GB/s copied by ``threads`` threads, each copying its own ``size_mib`` array."""
    sources = [np.random.default_rng(index).random(size_mib * MIB // 4, dtype=np.float32) for index in range(threads)]
    targets = [np.zeros_like(source) for source in sources]

    def run() -> None:
        workers = [threading.Thread(target=np.copyto, args=(t, s)) for t, s in zip(targets, sources)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    return threads * size_mib * MIB / _median(run) / 1e9


def decode_seconds(data: Path) -> float | None:
    """CPU seconds to read one subject's image and label with SimpleITK."""
    import SimpleITK as sitk

    files = [data / "sub-00_t1.nii.gz", data / "sub-00_label.nii.gz"]
    if not all(file.exists() for file in files):
        return None

    def run() -> None:
        for file in files:
            image = sitk.ReadImage(str(file))  # kept alive while its voxels are viewed
            sitk.GetArrayViewFromImage(image).sum()

    start = time.process_time()
    for _ in range(3):
        run()
    return (time.process_time() - start) / 3


def model_seconds() -> float:
    """The grid job's 8-channel model alone over its 16 batches."""
    import torch

    batches = [torch.rand(8, 1, 64, 64, 64) for _ in range(2)]

    def run() -> None:
        for index in range(16):
            output = batches[index % 2].repeat(1, 8, 1, 1, 1)
            del output

    return _median(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="benchmarks/queue.py's subjects")
    args = parser.parse_args()
    one, two = copy_bandwidth(1), copy_bandwidth(2)
    print(f"numpy copy bandwidth: {one:.1f} GB/s on one thread, {two:.1f} GB/s on two")
    decode = decode_seconds(args.data)
    if decode is not None:
        print(f"SimpleITK read of one queue subject (image + label .nii.gz): {decode:.3f} CPU s")
        epoch = 8 * decode / 2
        print(f"  8 subjects on 2 cores: >= {epoch:.2f} s per cold epoch, <= {128 / epoch:.0f} patches/s")
    patch = 64**3 * 4 + 64**3  # float32 image + uint8 label
    # Warm queue: each patch copied out of the volume and into the batch, then read by the step.
    warm_bytes = 128 * patch * 5  # two copies (read + write each) and one read
    print(f"warm queue epoch, 128 patches: >= {warm_bytes / (two * 1e9):.3f} s at two-core bandwidth")
    print(f"  <= {128 / (warm_bytes / (two * 1e9)):.0f} patches/s")
    # Grid, one channel, crop: 125 patches cut (read + write), their centres written into the output.
    crop_bytes = 125 * 64**3 * 4 * 2 + 256**3 * 4 * 2
    print(f"grid crop, 1 channel: >= {crop_bytes / (two * 1e9):.3f} s at two-core bandwidth")
    print(f"grid 8-channel model alone (x.repeat(1, 8, 1, 1, 1), 16 batches): {model_seconds():.3f} s")


if __name__ == "__main__":
    main()
