"""Whole-volume inference: torchpatch vs TorchIO 1.2.1 vs MONAI, in one run.

A 256^3 float32 volume (the MR-like head phantom of ``benchmarks/phantoms.py``,
air masked; ``--volume noise`` for the uniform noise of earlier runs), patches
of 64 with an overlap of 16, batches of 8, an identity model (or one repeating
its input to 8 channels). For each library and overlap mode, one subprocess
(so peak RSS is its own) loads the input, runs the job once (first-call time),
then ``--repeats`` more times (median), and reports its peak RSS, its minor
page faults per run and the largest difference from the input. Every case
runs with the default number of threads and with ``OMP_NUM_THREADS=1``.

The ``model`` row is the model alone: the same model called on the same
batches (cut once beforehand), one output alive at a time, as in a job. It is
a floor no library goes below (the 8-channel ``repeat`` allocates a fresh
64 MiB per batch, page faults included); the ratios below print it as a share
of torchpatch's time and as the lowest ratio any library could reach against
each peer. ``--torch-thp`` runs every case with torch's
``THP_MEM_ALLOC_ENABLE=1`` (a setting of the user's process, read once when
torch starts): the model's outputs then come on transparent huge pages and
the model alone takes about a quarter of its time.

Cases:

- ``torchpatch``: :func:`torchpatch.inference.infer`.
- ``torchpatch-loop``: ``GridSampler`` + ``SubjectsLoader`` +
  ``GridAggregator``, the loop a user would write.
- ``torchio``: TorchIO's ``GridSampler`` + ``SubjectsLoader`` +
  ``GridAggregator`` (no gaussian mode: compared with its hann).
- ``monai``: ``sliding_window_inference`` (``mode='constant'`` compared with
  crop and average, ``'gaussian'`` with hann and gaussian).
- ``model``: the model alone on the same batches (see above).
- ``least``: the least job around the model: each batch cut into one
  reused buffer, the model, each output box written once into a fresh
  output, by torchpatch's compiled copies (``io.copy_boxes``,
  ``io.write_boxes``) and no weights (``crop``: each patch's kept centre;
  ``blend``: whole patches, the last one winning, so not an answer and no
  error shown). The ratios print it beside the model's floor: every
  library reads each model output and writes and faults in the output at
  least once, so a row whose ``least`` ratio misses a target sits at the
  model's own time and the memory traffic of the copies.

Run it from the repository root in a venv holding the three libraries::

    .bench-venv-aug/bin/python benchmarks/grid.py        # about 10-12 minutes on 2 cores
    .bench-venv-aug/bin/python benchmarks/grid.py --threads 1      # one thread setting: half that
    .bench-venv-aug/bin/python benchmarks/grid.py --breakdown --threads 1 --repeats 2   # torchpatch's parts alone
    .bench-venv-aug/bin/python benchmarks/grid.py --breakdown --channels 8 --modes average  # one mode
    .bench-venv/bin/python benchmarks/grid.py --size 128 --rounds 1 --repeats 2   # a quick look
    .bench-venv-aug/bin/python benchmarks/grid.py --channels 8 --torch-thp   # torch's allocations on huge pages
    .bench-venv/bin/python benchmarks/grid.py --out-of-core 1024 1024 512 /tmp/ooc  # out-of-core peak RSS
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Scripts beside this one (benchmarks/queue.py) must not shadow the standard
# library modules of the same name, which torch imports.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
# ...but benchmarks.phantoms is imported from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PATCH, OVERLAP, BATCH = 64, 16, 8
MODES = ("crop", "average", "hann", "gaussian")
#: The peer mode each torchpatch mode is compared with.
TORCHIO_MODE = {"crop": "crop", "average": "average", "hann": "hann", "gaussian": "hann"}
MONAI_MODE = {"crop": "constant", "average": "constant", "hann": "gaussian", "gaussian": "gaussian"}
VOLUMES = ("mr-float32", "noise")
DATA_DIR = Path(tempfile.gettempdir()) / "torchpatch-bench-grid"


def _input_path(volume: str, size: int) -> Path:
    """The cached ``(1, size, size, size)`` float32 input ``.npy``, written on first use.

    Written by a child process: Linux carries a process's peak RSS over to
    the programs it starts, so a parent that made the phantom itself (about
    1 GiB at 256^3) would show in every case's RSS.
    """
    from benchmarks.phantoms import VERSION

    path = DATA_DIR / f"{volume}-{size}-v{VERSION}.npy"
    if not path.exists():
        command = [sys.executable, __file__, "--make-input", volume, str(size), str(path)]
        subprocess.run(command, check=True)
    return path


def _make_input(volume: str, size: int, path: Path) -> None:
    import numpy as np

    from benchmarks.phantoms import make_volume

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    if volume == "noise":
        # The volume of earlier runs: torch.rand with seed 0.
        import torch

        torch.manual_seed(0)
        array = torch.rand(1, size, size, size).numpy()
    else:
        array = make_volume(volume, (size, size, size), seed=0)[0][None].astype(np.float32)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, array)
    partial.replace(path)


def _job(library: str, mode: str, channels: int, path: Path) -> tuple[Any, Any]:
    """The input and a function running the whole job once, returning the output."""
    import numpy as np
    import torch

    volume = torch.from_numpy(np.load(path))

    def model(x: torch.Tensor) -> torch.Tensor:
        return x if channels == 1 else x.repeat(1, channels, 1, 1, 1)

    if library == "model":
        from torchpatch import DATA, ScalarImage, Subject, SubjectsLoader
        from torchpatch.sampler.grid import GridSampler

        sampler = GridSampler(Subject(t1=ScalarImage(tensor=volume)), PATCH, OVERLAP)
        batches = [batch["t1"][DATA] for batch in SubjectsLoader(sampler, batch_size=BATCH)]

        def run() -> torch.Tensor:
            with torch.inference_mode():
                for batch in batches:
                    outputs = model(batch)
                    del outputs
            # No output is built: the error column compares the input with itself.
            return volume

    elif library == "least":
        import numpy as np

        from torchpatch import io

        size = volume.shape[1]  # the input is a cube
        step = PATCH - OVERLAP
        starts = list(range(0, size - PATCH + 1, step))
        starts += [size - PATCH] if starts[-1] != size - PATCH else []
        corners = [(i, j, k) for i in starts for j in starts for k in starts]
        half = OVERLAP // 2 if mode == "crop" else 0

        def kept(start: int) -> tuple[int, int]:
            # crop: a patch keeps its centre, half the overlap trimmed where another patch borders it.
            return (half if start else 0), PATCH - (half if start + PATCH < size else 0)

        source = volume.numpy()

        def run() -> torch.Tensor:
            # Each batch cut into one reused buffer, the model, each output box written once into a
            # fresh output, all by torchpatch's compiled copies (crop: a patch's kept centre;
            # blending: the whole patch, no weights, so the last patch wins: not an answer).
            batch = torch.empty(BATCH, 1, PATCH, PATCH, PATCH)
            output = np.zeros((channels, size, size, size), np.float32)
            with torch.inference_mode():
                for first in range(0, len(corners), BATCH):
                    chunk = corners[first : first + BATCH]
                    assert io.copy_boxes(batch[: len(chunk)], [(source, corner) for corner in chunk])
                    outputs = model(batch[: len(chunk)])
                    boxes = []
                    for n, corner in enumerate(chunk):
                        ranges = [kept(start) for start in corner]
                        size_box = [stop - begin for begin, stop in ranges]
                        for c in range(channels):
                            at = (c, *(start + begin for start, (begin, _) in zip(corner, ranges)))
                            boxes.append((at, (n, c, *(begin for begin, _ in ranges)), size_box))
                    assert io.write_boxes(output, outputs.numpy(), boxes, io.team_threads())
                    del outputs
            return torch.from_numpy(output)

    elif library == "torchpatch":
        from torchpatch import ScalarImage
        from torchpatch.inference import infer

        image = ScalarImage(tensor=volume)

        def run() -> torch.Tensor:
            return infer(model, image, PATCH, OVERLAP, batch_size=BATCH, overlap_mode=mode, progress=False).data

    elif library == "torchpatch-loop":
        from torchpatch import DATA, LOCATION, ScalarImage, Subject, SubjectsLoader
        from torchpatch.inference import GridAggregator
        from torchpatch.sampler.grid import GridSampler

        subject = Subject(t1=ScalarImage(tensor=volume))

        def run() -> torch.Tensor:
            sampler = GridSampler(subject, PATCH, OVERLAP)
            aggregator = GridAggregator(sampler, overlap_mode=mode)
            for batch in SubjectsLoader(sampler, batch_size=BATCH):
                with torch.inference_mode():
                    outputs = model(batch["t1"][DATA])
                aggregator.add_batch(outputs, batch[LOCATION])
            return aggregator.get_output_tensor()

    elif library == "torchio":
        import torchio as tio

        subject = tio.Subject(t1=tio.ScalarImage(tensor=volume))

        def run() -> torch.Tensor:
            sampler = tio.GridSampler(subject, PATCH, OVERLAP)
            aggregator = tio.GridAggregator(sampler, overlap_mode=mode)
            for batch in tio.SubjectsLoader(sampler, batch_size=BATCH):
                with torch.inference_mode():
                    outputs = model(batch["t1"][tio.DATA])
                aggregator.add_batch(outputs, batch[tio.LOCATION])
            return aggregator.get_output_tensor()

    elif library == "monai":
        from monai.inferers import sliding_window_inference

        def run() -> torch.Tensor:
            with torch.inference_mode():
                output = sliding_window_inference(
                    volume[None], (PATCH,) * 3, BATCH, model, overlap=OVERLAP / PATCH, mode=mode
                )
            assert isinstance(output, torch.Tensor)
            return output[0]

    else:
        raise ValueError(f"unknown library {library!r}")
    return volume, run


def _breakdown(mode: str, channels: int, path: Path, repeats: int) -> dict[str, Any]:
    """Where one torchpatch job's time goes, each part timed alone in this process (medians, seconds).

    ``cut``: the batches of ``infer`` (``GridSampler.cut``); ``loop cut``:
    ``SubjectsLoader`` over the ``GridSampler`` (``GridSampler.__getitems__``
    cuts each batch at once, then collation); ``model``: the model on the cut batches; ``aggregate``:
    ``GridAggregator.add_batch`` on the model's outputs, kept from one run
    (blending, window ratios, output allocation); ``output``: allocating and
    first touching the ``(C, I, J, K)`` output alone; then the whole
    ``infer`` and the user loop. Minor page faults per run beside each.
    """
    import resource

    import numpy as np
    import torch

    from torchpatch import DATA, LOCATION, ScalarImage, Subject, SubjectsLoader
    from torchpatch.inference import GridAggregator, infer
    from torchpatch.sampler.grid import GridSampler

    volume = torch.from_numpy(np.load(path))
    image = ScalarImage(tensor=volume)
    sampler = GridSampler(Subject(t1=image), PATCH, OVERLAP)

    def model(x: torch.Tensor) -> torch.Tensor:
        return x if channels == 1 else x.repeat(1, channels, 1, 1, 1)

    def cut() -> None:
        for first in range(0, len(sampler), BATCH):
            sampler.cut(slice(first, first + BATCH), include=["t1"])

    def loop_cut() -> None:
        for _ in SubjectsLoader(sampler, batch_size=BATCH):
            pass

    batches = [(batch["t1"][DATA], batch[LOCATION]) for batch in SubjectsLoader(sampler, batch_size=BATCH)]

    def run_model() -> None:
        with torch.inference_mode():
            for inputs, _ in batches:
                outputs = model(inputs)
                del outputs

    with torch.inference_mode():
        kept = [(model(inputs), locations) for inputs, locations in batches]

    def aggregate() -> None:
        aggregator = GridAggregator(sampler, overlap_mode=mode)
        for outputs, locations in kept:
            aggregator.add_batch(outputs, locations)

    def output() -> None:
        # What the aggregator allocates (numpy zeros: huge pages where the kernel gives them), touched once.
        array = np.zeros((channels, *volume.shape[1:]), dtype=np.float32)
        array[:, :, :, ::1024] = 1

    def whole_infer() -> None:
        infer(model, image, PATCH, OVERLAP, batch_size=BATCH, overlap_mode=mode, progress=False)

    def user_loop() -> None:
        loop_sampler = GridSampler(Subject(t1=image), PATCH, OVERLAP)
        aggregator = GridAggregator(loop_sampler, overlap_mode=mode)
        for batch in SubjectsLoader(loop_sampler, batch_size=BATCH):
            with torch.inference_mode():
                outputs = model(batch["t1"][DATA])
            aggregator.add_batch(outputs, batch[LOCATION])

    parts = {
        "cut": cut,
        "loop cut": loop_cut,
        "model": run_model,
        "aggregate": aggregate,
        "output": output,
        "infer": whole_infer,
        "user loop": user_loop,
    }
    report: dict[str, Any] = {}
    for name, part in parts.items():
        part()
        times, faults = [], []
        for _ in range(repeats):
            faults_start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            part()
            times.append(time.perf_counter() - start)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_start)
        report[name] = [statistics.median(times), statistics.median(faults)]
    return report


def _child(library: str, mode: str, channels: int, path: Path, repeats: int) -> dict[str, Any]:
    """One case in this process: first call, then the median of ``repeats``."""
    import resource

    volume, run = _job(library, mode, channels, path)
    start = time.perf_counter()
    output = run()
    first = time.perf_counter() - start
    if library == "least" and mode != "crop":
        error = float("nan")  # the last patch wins: not an answer
    else:  # channel by channel: a whole (C, I, J, K) difference would dominate the peak RSS
        error = max(float((channel.float() - volume[0]).abs().max()) for channel in output)
    del output
    times, cpu_times, sys_times, faults = [], [], [], []
    for _ in range(repeats):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        start, cpu_start = time.perf_counter(), time.process_time()
        output = run()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        after = resource.getrusage(resource.RUSAGE_SELF)
        sys_times.append(after.ru_stime - usage.ru_stime)
        faults.append(after.ru_minflt - usage.ru_minflt)
        del output
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "times": times,
        "cpu_times": cpu_times,
        "sys_times": sys_times,
        "faults": faults,
        "first": first,
        "rss_mb": rss,
        "error": error,
    }


def _run_case(library: str, mode: str, channels: int, path: Path, repeats: int, threads: str) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if threads != "default":
        env["OMP_NUM_THREADS"] = threads
        env["MKL_NUM_THREADS"] = threads
    command = [sys.executable, __file__, "--child", library, mode, str(channels), str(path), str(repeats)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return {"failed": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no output"}
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def _merge(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over every timed run of every round; the largest RSS and error."""
    failed = [r for r in rounds if "failed" in r]
    if failed:
        return failed[0]
    times = [t for r in rounds for t in r["times"]]
    cpu_times = [t for r in rounds for t in r["cpu_times"]]
    faults = [t for r in rounds for t in r["faults"]]
    sys_times = [t for r in rounds for t in r["sys_times"]]
    return {
        "sys_median": statistics.median(sys_times),
        "median": statistics.median(times),
        "cpu_median": statistics.median(cpu_times),
        "faults": statistics.median(faults),
        "first": statistics.median(r["first"] for r in rounds),
        "rss_mb": max(r["rss_mb"] for r in rounds),
        "error": max(r["error"] for r in rounds),
        "runs": len(times),
    }


def _cases() -> list[tuple[str, str]]:
    cases = [("torchpatch", mode) for mode in MODES]
    cases += [("torchpatch-loop", mode) for mode in MODES]
    cases += [("torchio", mode) for mode in ("crop", "average", "hann")]
    cases += [("monai", mode) for mode in ("constant", "gaussian")]
    cases += [("model", "-"), ("least", "crop"), ("least", "blend")]
    return cases


def _table(results: dict[tuple[str, str, int, str], dict[str, Any]], threads: list[str], channels: list[int]) -> str:
    lines = []
    header = (
        f"{'threads':>7} {'ch':>2} {'library':<16} {'mode':<9} {'median s':>8} {'CPU s':>7} {'sys s':>6} "
        f"{'first s':>8} {'RSS MB':>7} {'faults':>7} {'- model':>7} {'max err':>8}"
    )
    for setting in threads:
        for count in channels:
            lines.append(header)
            model = results.get(("model", "-", count, setting), {})
            for library, mode in _cases():
                row = results.get((library, mode, count, setting))
                if row is None:
                    continue
                if "failed" in row:
                    lines.append(f"{setting:>7} {count:>2} {library:<16} {mode:<9} failed: {row['failed']}")
                    continue
                # What the library adds to the model's own time (wall).
                own = f"{row['median'] - model['median']:7.3f}" if "median" in model and library != "model" else ""
                lines.append(
                    f"{setting:>7} {count:>2} {library:<16} {mode:<9} {row['median']:8.3f} {row['cpu_median']:7.3f} "
                    f"{row['sys_median']:6.3f} {row['first']:8.3f} {row['rss_mb']:7.0f} {row['faults']:7.0f} "
                    f"{own:>7} {row['error']:8.1e}"
                )
            lines.append("")
            pad = " " * 11
            lines.append(f"{pad}ratios of torchpatch's wall time (infer / user loop); targets: <= 0.5x TorchIO 1.2.1,")
            lines.append(f"{pad}<= 0.8x MONAI; 'floor': the model alone over the peer's time, the lowest ratio any")
            lines.append(f"{pad}library can reach; 'least': the least job (the model, each patch's bytes copied once")
            lines.append(f"{pad}in and out, no weights) over the peer's; 'model share': the model over torchpatch's")
            for mode in MODES:
                ours = [results.get((lib, mode, count, setting), {}) for lib in ("torchpatch", "torchpatch-loop")]
                tio = results.get(("torchio", TORCHIO_MODE[mode], count, setting), {})
                monai = results.get(("monai", MONAI_MODE[mode], count, setting), {})
                least = results.get(("least", "crop" if mode == "crop" else "blend", count, setting), {})
                if not all("median" in r for r in (*ours, tio, monai, model, least)):
                    continue
                time_tio = " / ".join(f"{r['median'] / tio['median']:.2f}" for r in ours)
                time_monai = " / ".join(f"{r['median'] / monai['median']:.2f}" for r in ours)
                share = " / ".join(f"{model['median'] / r['median']:.2f}" for r in ours)
                lines.append(
                    f"{'':>7} {count:>2} {mode:<9} vs TorchIO {TORCHIO_MODE[mode]:<8} {time_tio} "
                    f"(floor {model['median'] / tio['median']:.2f}, least {least['median'] / tio['median']:.2f}); "
                    f"vs MONAI {MONAI_MODE[mode]:<8} {time_monai} (floor {model['median'] / monai['median']:.2f}, "
                    f"least {least['median'] / monai['median']:.2f}); model share {share}"
                )
            lines.append("")
    return "\n".join(lines)


def _print_breakdown(arguments: argparse.Namespace, path: Path) -> None:
    """Run :func:`_breakdown` for every thread setting, channel count and mode (one process each); print a table."""
    parts = ("cut", "loop cut", "model", "aggregate", "output", "infer", "user loop")
    print(
        f"where torchpatch's time goes, {arguments.size}^3 {arguments.volume}, patch {PATCH}, overlap {OVERLAP}, "
        f"batch {BATCH}; each part alone, median of {arguments.repeats} runs after one, ms (minor page faults / 1000)"
    )
    print(f"{'threads':>7} {'ch':>2} {'mode':<9} " + " ".join(f"{part:>16}" for part in parts))
    for setting in arguments.threads:
        env = dict(os.environ)
        env.pop("OMP_NUM_THREADS", None)
        if setting != "default":
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = setting
        for count in arguments.channels:
            for mode in arguments.modes:
                command = [sys.executable, __file__, "--breakdown-child", mode, str(count), str(path)]
                command.append(str(arguments.repeats))
                result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
                report = json.loads(result.stdout.strip().splitlines()[-1])
                cells = " ".join(f"{report[p][0] * 1000:8.1f} ({report[p][1] / 1000:5.1f})" for p in parts)
                print(f"{setting:>7} {count:>2} {mode:<9} {cells}", flush=True)


def _write_input(path: Path, shape: tuple[int, int, int]) -> None:
    """A float32 ``(1, I, J, K)`` .npy of random values, written slab by slab (never whole in memory)."""
    import numpy as np

    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(1, *shape))
    del array
    for first in range(0, shape[0], 16):
        array = np.load(path, mmap_mode="r+")
        last = min(first + 16, shape[0])
        array[0, first:last] = np.random.default_rng(first).random((last - first, *shape[1:]), dtype=np.float32)
        array.flush()
        del array


def _rebuild(input_path: Path, output_path: Path) -> dict[str, Any]:
    """Grid over the lazy input, identity model, aggregation into a memory-mapped .npy."""
    import resource

    import torch

    from torchpatch import DATA, LOCATION, ScalarImage, Subject, SubjectsLoader
    from torchpatch.inference import GridAggregator
    from torchpatch.sampler.grid import GridSampler

    start = time.perf_counter()
    sampler = GridSampler(Subject(t1=ScalarImage(input_path)), PATCH, OVERLAP)
    aggregator = GridAggregator(sampler, overlap_mode="average", output_path=output_path)
    for batch in SubjectsLoader(sampler, batch_size=BATCH):
        with torch.inference_mode():
            outputs = batch["t1"][DATA]
        aggregator.add_batch(outputs, batch[LOCATION])
    output = aggregator.get_output_tensor()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "patches": len(sampler),
        "seconds": time.perf_counter() - start,
        "peak_rss_mib": rss,
        "output_shape": list(output.shape),
        "memmap": output_path.stat().st_size >= output.numel() * 4,
    }


def _compare(input_path: Path, output_path: Path) -> float:
    """Largest difference between the two .npy files, a slab at a time."""
    import numpy as np

    shape = np.load(input_path, mmap_mode="r").shape
    error = 0.0
    for first in range(0, shape[1], 16):
        expected, actual = np.load(input_path, mmap_mode="r"), np.load(output_path, mmap_mode="r")
        slab = np.abs(expected[:, first : first + 16] - actual[:, first : first + 16])
        error = max(error, float(slab.max()))
        del expected, actual
    return error


def _out_of_core(shape: tuple[int, int, int], folder: Path) -> dict[str, Any]:
    """Write an input, rebuild it into a memory-mapped output in a fresh process, compare; all out of core."""
    folder.mkdir(parents=True, exist_ok=True)
    input_path, output_path = folder / "input.npy", folder / "output.npy"
    stages = {}
    for stage in ("write", "rebuild", "compare"):
        command = [sys.executable, __file__, "--out-of-core-stage", stage, *map(str, shape), str(folder)]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        stages[stage] = json.loads(result.stdout.strip().splitlines()[-1])
    report = dict(stages["rebuild"])
    report["max_error"] = stages["compare"]["max_error"]
    report["exact"] = report["max_error"] == 0.0
    report["shape"] = list(shape)
    for path in (input_path, output_path):
        path.unlink()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="volume side in voxels (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the first, per round (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over every case (default 2)")
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 8], help="output channels (default 1 8)")
    parser.add_argument("--threads", nargs="+", default=["default", "1"], help="thread settings (default: default 1)")
    parser.add_argument("--volume", choices=VOLUMES, default="mr-float32", help="input (default mr-float32)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument(
        "--torch-thp",
        action="store_true",
        help="run every case with THP_MEM_ALLOC_ENABLE=1 (torch's own setting: its CPU allocations of 2 MiB "
        "and more on transparent huge pages, read once when torch starts)",
    )
    parser.add_argument(
        "--child", nargs=5, metavar=("LIBRARY", "MODE", "CHANNELS", "PATH", "REPEATS"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--out-of-core",
        nargs=4,
        metavar=("I", "J", "K", "FOLDER"),
        help="rebuild an I x J x K float32 volume through memory-mapped files in FOLDER; print peak RSS",
    )
    parser.add_argument("--out-of-core-stage", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--make-input", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="instead: where torchpatch's time goes (cut, model, aggregate, output allocation), per mode and channels",
    )
    parser.add_argument("--breakdown-child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=list(MODES), help="--breakdown only: the modes (default all)"
    )
    arguments = parser.parse_args()
    if arguments.out_of_core:
        *sizes, folder = arguments.out_of_core
        shape = (int(sizes[0]), int(sizes[1]), int(sizes[2]))
        print(json.dumps(_out_of_core(shape, Path(folder))))
        return
    if arguments.out_of_core_stage:
        stage, *sizes, folder = arguments.out_of_core_stage
        shape = (int(sizes[0]), int(sizes[1]), int(sizes[2]))
        input_path, output_path = Path(folder) / "input.npy", Path(folder) / "output.npy"
        if stage == "write":
            _write_input(input_path, shape)
            print(json.dumps({}))
        elif stage == "rebuild":
            print(json.dumps(_rebuild(input_path, output_path)))
        else:
            print(json.dumps({"max_error": _compare(input_path, output_path)}))
        return
    if arguments.make_input:
        volume, size, target = arguments.make_input
        _make_input(volume, int(size), Path(target))
        return
    if arguments.breakdown_child:
        mode, channels, target, repeats = arguments.breakdown_child
        print(json.dumps(_breakdown(mode, int(channels), Path(target), int(repeats))))
        return
    if arguments.child:
        library, mode, channels, path, repeats = arguments.child
        print(json.dumps(_child(library, mode, int(channels), Path(path), int(repeats))))
        return
    path = _input_path(arguments.volume, arguments.size)
    if arguments.torch_thp:
        os.environ["THP_MEM_ALLOC_ENABLE"] = "1"  # inherited by every case's process
    if arguments.breakdown:
        _print_breakdown(arguments, path)
        return
    # Rounds go over every case in turn, so a burst of load from other
    # processes on a shared machine spreads over the libraries alike.
    rounds: dict[tuple[str, str, int, str], list[dict[str, Any]]] = {}
    for number in range(arguments.rounds):
        for setting in arguments.threads:
            for count in arguments.channels:
                for library, mode in _cases():
                    row = _run_case(library, mode, count, path, arguments.repeats, setting)
                    rounds.setdefault((library, mode, count, setting), []).append(row)
                    shown = f"{statistics.median(row['times']):.3f} s" if "times" in row else row["failed"]
                    where = f"round {number} threads={setting} channels={count} {library} {mode}"
                    print(f"{where}: {shown}", file=sys.stderr, flush=True)
    results = {key: _merge(value) for key, value in rounds.items()}
    print(
        f"grid inference, {arguments.size}^3 float32 {arguments.volume}, patch {PATCH}, overlap {OVERLAP}, batch "
        f"{BATCH}, identity model; {os.cpu_count()} CPUs; medians of {arguments.rounds} rounds x "
        f"{arguments.repeats} runs, each round in a fresh process after a first call; CPU s: process CPU time "
        f"(sys s: its kernel part); faults: minor page faults per run; '- model': median minus the model's own"
        + ("; THP_MEM_ALLOC_ENABLE=1" if arguments.torch_thp else "")
    )
    print(_table(results, arguments.threads, arguments.channels))
    if arguments.json:
        with open(arguments.json, "w") as handle:
            json.dump(
                [{"library": k[0], "mode": k[1], "channels": k[2], "threads": k[3], **v} for k, v in results.items()],
                handle,
                indent=1,
            )


if __name__ == "__main__":
    main()
