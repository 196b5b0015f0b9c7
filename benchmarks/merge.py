"""Merging 10 000 detections: torchpatch's NMS, greedy NMM and NMM vs plain loops, in one run.

Scenes of 10 000 boxes; the first two shaped like sliced-inference output: 2 500
objects in 10 classes, each seen by 4 patches (copies jittered by a few
voxels, one in four a fragment of its object), random scores, integer
coordinates (so float32 and Python's float64 agree on every comparison with
the threshold):

- ``2D``: an 8192 x 8192 image, objects 8 to 64 voxels a side;
- ``3D``: a 512^3 volume, objects 4 to 24 voxels a side;
- ``dense``: the worst case for memory, 10 objects (one per class) of 64^2
  voxels in 2D, each copied 1 000 times with starts jittered by up to 8
  voxels (every copy matches every other copy of its object).

Methods, all class-aware, IoU above 0.5:

- ``torchpatch``: :func:`torchpatch.inference.merge.merge_detections`, one
  warm-up call then the median of five.
- ``plain loop``: the textbook O(N^2) pure-Python loop (visit boxes best
  first; compare each kept box with every later one; NMM compares every
  pair). It is timed once on the first 2 000 boxes and extrapolated
  quadratically to 10 000 (its cost is proportional to N x kept boxes, and
  both grow with N); the table says ``(x25 from 2000)`` and its results are
  compared with torchpatch's on the same 2 000 boxes. When that estimate is
  under 5 s (the dense scene keeps 10 boxes), the loop runs on all 10 000
  boxes instead: ``(measured)``.
- ``row loop``: one tensor operation per kept box against the boxes still
  left (how numpy NMS is usually written, e.g. SAHI's numpy backend). Its
  cost is mostly a fixed overhead per kept box, so it is extrapolated
  linearly (``x5``: a lower bound), or measured on all boxes when that
  estimate is under 5 s. Not written for NMM (its transitive groups need a
  graph search).

``agree`` says whether kept indices (NMS) or merged boxes, scores and
classes (NMM) are identical. Each thread setting runs in its own process
(the script re-executes itself with ``OMP_NUM_THREADS=1``), and reports its
peak RSS.

Run from the repository root (about 2 minutes on 2 busy cores)::

    .venv/bin/python benchmarks/merge.py
    .venv/bin/python benchmarks/merge.py --count 4000 --loop-count 1000   # a quick look
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Scripts beside this one (benchmarks/queue.py) must not shadow the standard
# library modules of the same name, which torch imports.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from torchpatch.inference.merge import merge_detections  # noqa: E402

THRESHOLD = 0.5
#: Seconds below which a baseline's extrapolated time is replaced by a full run.
FULL_LOOP_SECONDS = 5.0
METHODS = ("nms", "greedy_nmm", "nmm")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

Boxes = list[list[float]]


def make_scene(dims: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` integer boxes: objects seen 4 times each, jittered, one copy in four a fragment.

    ``dims`` 0 is the dense 2D scene: 10 objects (one per class), each copied
    ``count / 10`` times with starts jittered by up to 8 voxels.
    """
    generator = torch.Generator().manual_seed(seed)
    if dims == 0:
        starts = torch.randint(0, 9, (count, 2), generator=generator) + torch.arange(count)[:, None] % 10 * 200
        boxes = torch.cat([starts, starts + 64], 1).float()
        return boxes, torch.rand(count, generator=generator), torch.arange(count) % 10
    extent, low, high = (8192, 8, 64) if dims == 2 else (512, 4, 24)
    objects = -(-count // 4)
    sides = torch.randint(low, high + 1, (objects, dims), generator=generator)
    starts = (torch.rand(objects, dims, generator=generator) * (extent - sides)).long()
    copies_start = starts.repeat_interleave(4, 0) + torch.randint(-2, 3, (4 * objects, dims), generator=generator)
    copies_end = (starts + sides).repeat_interleave(4, 0) + torch.randint(
        -2, 3, (4 * objects, dims), generator=generator
    )
    fragment = torch.arange(4 * objects) % 4 == 3  # cut by a patch edge: half of the object along i
    copies_end[fragment, 0] = (copies_start[fragment, 0] + copies_end[fragment, 0]) // 2
    boxes = torch.cat([copies_start, torch.maximum(copies_end, copies_start + 1)], 1).float()
    order = torch.randperm(4 * objects, generator=generator)[:count]
    classes = torch.randint(0, 10, (objects,), generator=generator).repeat_interleave(4)
    scores = torch.rand(4 * objects, generator=generator)
    return boxes[order], scores[order], classes[order]


# Plain O(N^2) loops ------------------------------------------------------------------


def overlap(a: list[float], b: list[float]) -> float:
    """IoU of two boxes given as lists."""
    half = len(a) // 2
    inter = 1.0
    size_a = size_b = 1.0
    for axis in range(half):
        inter *= max(0.0, min(a[axis + half], b[axis + half]) - max(a[axis], b[axis]))
        size_a *= a[axis + half] - a[axis]
        size_b *= b[axis + half] - b[axis]
    union = size_a + size_b - inter
    return inter / union if union > 0 else 0.0


def loop_groups(boxes: Boxes, scores: list[float], classes: list[int], transitive: bool) -> list[list[int]]:
    """Groups of box indices, first box first, in visit order; greedy (NMS, greedy NMM) or transitive (NMM)."""
    order = sorted(range(len(boxes)), key=lambda n: (-scores[n], n))
    if transitive:
        leader = list(range(len(boxes)))

        def find(n: int) -> int:
            while leader[n] != n:
                leader[n] = leader[leader[n]]
                n = leader[n]
            return n

        rank = {n: r for r, n in enumerate(order)}
        for position, p in enumerate(order):
            for q in order[position + 1 :]:
                if classes[p] == classes[q] and overlap(boxes[p], boxes[q]) > THRESHOLD:
                    a, b = find(p), find(q)
                    if a != b:
                        first, second = (a, b) if rank[a] < rank[b] else (b, a)
                        leader[second] = first
        groups: dict[int, list[int]] = {}
        for n in order:
            groups.setdefault(find(n), []).append(n)
        return list(groups.values())
    taken = [False] * len(boxes)
    result = []
    for position, p in enumerate(order):
        if taken[p]:
            continue
        taken[p] = True
        group = [p]
        for q in order[position + 1 :]:
            if not taken[q] and classes[p] == classes[q] and overlap(boxes[p], boxes[q]) > THRESHOLD:
                taken[q] = True
                group.append(q)
        result.append(group)
    return result


def row_loop_groups(
    boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, method: str
) -> list[torch.Tensor]:
    """Greedy groups (NMS, greedy NMM) with one vectorised row per kept box against the boxes left."""
    half = boxes.shape[1] // 2
    sizes = (boxes[:, half:] - boxes[:, :half]).prod(1)
    left = torch.sort(scores, descending=True, stable=True).indices
    groups = []
    while left.numel():
        best, rest = left[0], left[1:]
        start = torch.maximum(boxes[rest, :half], boxes[best, :half])
        end = torch.minimum(boxes[rest, half:], boxes[best, half:])
        inter = (end - start).clamp(min=0).prod(1)
        iou = inter / (sizes[rest] + sizes[best] - inter)
        match = (iou > THRESHOLD) & (classes[rest] == classes[best])
        groups.append(torch.cat([best.reshape(1), rest[match]]))
        left = rest[~match]
    return groups


def groups_to_detections(
    groups: list[Any], boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, method: str
) -> tuple[list[list[float]], list[float], list[int]]:
    half = boxes.shape[1] // 2
    if method == "nms":
        kept = [int(group[0]) for group in groups]
        return boxes[kept].tolist(), scores[kept].tolist(), classes[kept].tolist()
    index = [torch.as_tensor(group) for group in groups]
    merged = [[*boxes[g, :half].amin(0).tolist(), *boxes[g, half:].amax(0).tolist()] for g in index]
    return merged, [float(scores[g].max()) for g in index], [int(classes[g[0]]) for g in index]


def as_lists(found: Any) -> tuple[list[list[float]], list[float], list[int]]:
    return found.boxes.tolist(), found.scores.tolist(), found.classes.tolist()


# Timing ------------------------------------------------------------------------------


def timed(function: Callable[[], Any], repeats: int, warmup: bool = True) -> tuple[float, Any]:
    """Median seconds over ``repeats`` calls (after one warm-up call), and the last result."""
    result = function() if warmup else None
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def plain_loop(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, method: str) -> list[list[int]]:
    return loop_groups(boxes.tolist(), scores.tolist(), classes.tolist(), transitive=method == "nmm")


def baseline(
    loop: Callable[..., list[Any]], scene: tuple[torch.Tensor, ...], loop_count: int, method: str, power: int
) -> tuple[float, str, bool]:
    """Seconds of ``loop`` on the whole scene and whether it agrees with torchpatch.

    Measured when the estimate from the first ``loop_count`` boxes, times
    ``(N / loop_count) ** power``, is under ``FULL_LOOP_SECONDS``; that
    estimate otherwise.
    """
    count = scene[0].shape[0]
    scale = (count / loop_count) ** power
    small = tuple(tensor[:loop_count] for tensor in scene)
    seconds, groups = timed(functools.partial(loop, *small, method), 1, warmup=False)
    how, used = f"(x{scale:.0f} from {loop_count})", small
    if seconds * scale < FULL_LOOP_SECONDS:  # cheap enough: time it on every box
        seconds, groups = timed(functools.partial(loop, *scene, method), 1, warmup=False)
        how, used, scale = "(measured)", scene, 1.0
    ours = merge_detections(*used, method=method, metric="iou", threshold=THRESHOLD)
    return seconds * scale, how, as_lists(ours) == groups_to_detections(groups, *used, method)


def child(count: int, loop_count: int, repeats: int, threads: str) -> None:
    rows = []
    for dims in (2, 3, 0):
        scene = make_scene(dims, count, seed=dims)
        for method in METHODS:
            run = functools.partial(merge_detections, *scene, method=method, metric="iou", threshold=THRESHOLD)
            ours, found = timed(run, repeats)
            plain, plain_how, plain_agree = baseline(plain_loop, scene, loop_count, method, 2)
            row = None
            if method != "nmm":
                row, row_how, row_agree = baseline(row_loop_groups, scene, loop_count, method, 1)
            rows.append(
                [
                    f"{dims}D" if dims else "dense",
                    method,
                    str(len(found)),
                    f"{ours * 1e3:.1f}",
                    f"{plain:.2f} {plain_how}",
                    ratio(plain, ours),
                    "-" if row is None else f"{row:.2f} {row_how}",
                    "-" if row is None else ratio(row, ours),
                    "yes" if plain_agree and (row is None or row_agree) else "NO",
                ]
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nthreads: {threads} (torch uses {torch.get_num_threads()}); {count} boxes, 10 classes, IoU > {THRESHOLD}")
    headers = [
        "scene",
        "method",
        "out",
        "torchpatch ms",
        "plain loop s",
        "vs plain",
        "row loop s",
        "vs row",
        "agree",
    ]
    print(table(headers, rows))
    print(f"peak RSS of this process: {peak:.0f} MiB (torch's own import included)", flush=True)


def ratio(baseline: float, ours: float) -> str:
    value = baseline / ours
    return f"{value:.0f}x" if value >= 10 else f"{value:.2g}x"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(headers, widths))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="boxes per scene")
    parser.add_argument("--loop-count", type=int, default=2_000, help="boxes the plain loop is timed on")
    parser.add_argument("--repeats", type=int, default=5, help="timed torchpatch calls (median)")
    parser.add_argument("--threads", choices=("default", "1"), help=argparse.SUPPRESS)  # set in the children
    args = parser.parse_args()
    if args.threads is not None:
        child(args.count, args.loop_count, args.repeats, args.threads)
        return
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    for threads in ("default", "1"):
        env = {key: value for key, value in os.environ.items() if key not in THREAD_VARIABLES}
        if threads == "1":
            env.update(dict.fromkeys(THREAD_VARIABLES, "1"))
        command = [sys.executable, __file__, "--threads", threads, "--count", str(args.count)]
        command += ["--loop-count", str(args.loop_count), "--repeats", str(args.repeats)]
        subprocess.run(command, env=env, check=True)


if __name__ == "__main__":
    main()
