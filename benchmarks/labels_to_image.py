"""RandomLabelsToImage: torchpatch against TorchIO 1.2.1 on the same label maps, in one run.

SynthSeg-style training makes every input image from its segmentation, so
this transform runs once per subject per epoch. Two label maps of the head
phantom (:func:`phantoms.make_phantom`, 160x192x160 uint8): its tissue
classes as they are, and each class cut into the eight octants of the volume
(a parcellation of many labels, as SynthSeg's). Each library draws a new
image ``--repeats`` times after one warm-up, in its own subprocess, with the
default number of threads and with ``OMP_NUM_THREADS=1``; ``--rounds``
passes alternate the libraries. The table gives the median time of a call,
its minor page faults and the ratio TorchIO / torchpatch.

torchpatch's noise is one normal field per call from a recorded seed;
TorchIO draws one whole-volume field per label (the same distribution).

Run it from the repository root in a venv holding TorchIO 1.2.1::

    .bench-venv-tio1/bin/python benchmarks/labels_to_image.py            # about a minute
    .bench-venv-tio1/bin/python benchmarks/labels_to_image.py --rst      # the docs' table
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any

# benchmarks/ is a package (its queue.py must not shadow the standard library's queue).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (  # noqa: E402
    apply_threads,
    child_environment,
    emit_result,
    fmt,
    machine_description,
    median,
    ratio,
    rst_table,
    run_child,
    text_table,
)

SHAPE = (160, 192, 160)
LIBRARIES = ("torchpatch", "torchio")
MAPS = ("tissues", "parcels")
THREADS = ("default", "1")


def label_map(kind: str) -> Any:
    """The phantom's tissue classes (``tissues``) or those cut into octants (``parcels``), (1, I, J, K) uint8."""
    import numpy as np

    from benchmarks.phantoms import make_phantom

    _, labels = make_phantom(SHAPE, seed=0)
    if kind == "parcels":
        i, j, k = (np.arange(size) >= size // 2 for size in SHAPE)
        octant = (i[:, None, None] * 4 + j[None, :, None] * 2 + k[None, None, :]).astype(np.uint8)
        labels = np.where(labels > 0, labels * 8 + octant, 0).astype(np.uint8)
    return labels[None]


def child_main(library: str, kind: str, threads: str, repeats: int) -> None:
    """Time ``repeats`` calls after one warm-up and hand the result to the orchestrator."""
    import numpy as np
    import torch

    count = apply_threads(threads)
    data = torch.from_numpy(label_map(kind))
    if library == "torchpatch":
        import torchpatch as tp

        subject = tp.Subject(seg=tp.LabelMap(tensor=data))
        transform = tp.RandomLabelsToImage("seg")
    else:
        import torchio as tio

        subject = tio.Subject(seg=tio.LabelMap(tensor=data))
        transform = tio.RandomLabelsToImage("seg")
    torch.manual_seed(0)
    out = transform(subject)
    times, faults = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        out = transform(subject)
        times.append(time.perf_counter() - start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    image = out["image_from_labels"].data
    emit_result(
        {
            "seconds": float(np.median(times)),
            "faults": int(np.median(faults)),
            "labels": int(data.unique().numel()),
            "threads": count,
            "shape": list(image.shape),
        }
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rst", action="store_true", help="print the table as reStructuredText")
    parser.add_argument("--child", nargs=4, metavar=("LIBRARY", "MAP", "THREADS", "REPEATS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        library, kind, threads, repeats = args.child
        child_main(library, kind, threads, int(repeats))
        return
    results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for kind in MAPS:
            for threads in THREADS:
                for library in LIBRARIES:
                    command = [sys.executable, __file__, "--child", library, kind, threads, str(args.repeats)]
                    child = run_child(command, child_environment(threads), timeout=600)
                    results.setdefault((kind, threads, library), []).append(child.result)
    headers = ["map (labels)", "threads", "torchpatch ms", "faults", "TorchIO 1.2.1 ms", "faults", "TorchIO / ours"]
    rows = []
    for kind in MAPS:
        for threads in THREADS:
            ours, theirs = (results[(kind, threads, library)] for library in LIBRARIES)
            mine = median([r["seconds"] for r in ours])
            peer = median([r["seconds"] for r in theirs])
            rows.append(
                [
                    f"{kind} ({ours[0]['labels']})",
                    threads,
                    fmt(mine and mine * 1e3, 0),
                    str(int(median([r["faults"] for r in ours]) or 0)),
                    fmt(peer and peer * 1e3, 0),
                    str(int(median([r["faults"] for r in theirs]) or 0)),
                    fmt(ratio(peer, mine), 1, "x"),
                ]
            )
    print(f"RandomLabelsToImage on {'x'.join(map(str, SHAPE))} uint8 label maps; {machine_description()}")
    print(f"median of {args.repeats} calls after one warm-up per process, median of {args.rounds} rounds")
    print((rst_table if args.rst else text_table)(headers, rows))


if __name__ == "__main__":
    main()
