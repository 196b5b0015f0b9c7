"""Writing one batch of patch outputs into the aggregator's output tensor.

:class:`BatchWriter` copies (crop mode) or blends (the weighted modes) each
patch of a batch into the ``(C, I, J, K)`` output, channel by channel over
the batch; on the CPU, blends run on one torch thread or on torch's
threads as :mod:`~torchpatch.inference.write_threads` chooses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import io
from . import write_threads

#: One patch's job: (batch item, output boxes (di, dj, dk), patch boxes (si, sj, sk), blending ratio or None).
Job = tuple[int, tuple[slice, slice, slice], tuple[slice, slice, slice], "torch.Tensor | None"]


def _numpy_views(values: torch.Tensor, output: torch.Tensor) -> tuple[np.ndarray, np.ndarray] | None:
    """numpy views of CPU tensors numpy can hold (``None`` otherwise: other devices, bfloat16)."""
    if values.device.type != "cpu" or output.device.type != "cpu" or values.dtype == torch.bfloat16:
        return None
    return values.numpy(), output.numpy()


def _elements(jobs: list[Job], channels: int) -> int:
    """How many output elements the jobs write."""
    return channels * sum(
        (di.stop - di.start) * (dj.stop - dj.start) * (dk.stop - dk.start) for _, (di, dj, dk), _, _ in jobs
    )


class BatchWriter:
    """Copy or blend batches of patch outputs into an aggregator's output, in order.

    Going over a batch's patches channel by channel (rather than all
    channels of a patch, then the next patch) keeps the neighbouring boxes
    of one channel in the processor's caches: a box's rows are short (the
    patch's K extent) and far apart in the output, and the next patch along
    K reads the same rows. With 8 channels and one thread this blends about
    1.7 times faster in ``benchmarks/grid.py``. It also puts the patches of
    a batch that follow each other along K next to each other in the list
    of boxes, where the compiled writes take each output row through all of
    them at once (:func:`torchpatch.io.write_boxes`; a quarter less time
    again). Each voxel still sees its patches in batch order, so the result
    is the same.

    Args:
        channels: The output's channels.

    Example:
        >>> writer = BatchWriter(channels=1)
        >>> output = torch.zeros(1, 4)
        >>> box = (slice(0, 1), slice(0, 1), slice(0, 4))
        >>> jobs = [(0, box, box, torch.full((1, 1, 4), 0.5))]  # blend patch 0 with ratio 0.5
        >>> writer.write(torch.ones(1, 1, 1, 1, 4), output.view(1, 1, 1, 4), jobs)
        >>> output.tolist()
        [[0.5, 0.5, 0.5, 0.5]]
    """

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def write(self, values: torch.Tensor, output: torch.Tensor, jobs: list[Job]) -> None:
        """Write the ``(B, C, I, J, K)`` values of a batch: ratio ``None`` copies, a ratio blends."""
        if not jobs:
            return
        if jobs[0][3] is None:
            # numpy copies these strided boxes on the CPU about 1.3 times faster than copy_, and the compiled
            # copies (which prefetch each box's next plane) faster again: 75.6 against 93.5 ms for 125 patches
            # with 8 channels into a 256³ output, one thread; split between torch's OpenMP team where
            # write_threads chooses torch's threads.
            arrays = _numpy_views(values, output)
            if arrays is not None:
                with write_threads.COPY_THREADS.writing(_elements(jobs, self.channels)):
                    if io.write_boxes(arrays[1], arrays[0], self._boxes(jobs), io.team_threads()):
                        return
            if arrays is not None or output.device.type != "cpu":
                self._write_channels(values, output, jobs, arrays)
                return
        if output.device.type != "cpu":
            self._write_channels(values, output, jobs, None)
            return
        self._blend(values, output, jobs, _elements(jobs, self.channels))

    def _boxes(self, jobs: list[Job]) -> list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """The jobs as :func:`torchpatch.io.write_boxes` boxes, channel by channel (see the class docstring)."""
        boxes: list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = []
        for channel in range(self.channels):
            for item, (di, dj, dk), (si, sj, sk), _ in jobs:
                size = (di.stop - di.start, dj.stop - dj.start, dk.stop - dk.start)
                boxes.append(
                    ((channel, di.start, dj.start, dk.start), (item, channel, si.start, sj.start, sk.start), size)
                )
        return boxes

    def _blend(self, values: torch.Tensor, output: torch.Tensor, jobs: list[Job], elements: int) -> None:
        # On one torch thread or on all of them, whichever blended faster
        # lately (see write_threads): the compiled blend where it applies
        # (torch's bits, 131-148 against 176-177 ms for the grid benchmark's
        # 8-channel writes on one thread), on torch's OpenMP team when that is
        # chosen (io.team_threads); else one lerp_ per patch and channel.
        with torch.no_grad(), write_threads.WRITE_THREADS.writing(elements):
            threads = io.team_threads()
            arrays = _numpy_views(values, output) if threads > 1 or torch.get_num_threads() == 1 else None
            if arrays is not None and all(ratio is not None and ratio.device.type == "cpu" for *_, ratio in jobs):
                ratios = [ratio.numpy() for *_, ratio in jobs if ratio is not None] * self.channels  # boxes' order
                boxes = [(ratio, *box) for ratio, box in zip(ratios, self._boxes(jobs))]
                if io.blend_boxes(arrays[1], arrays[0], boxes, threads):
                    return
            self._write_channels(values, output, jobs, None)

    def _write_channels(self, values: torch.Tensor, output: torch.Tensor, jobs: list[Job], arrays: Any) -> None:
        for channel in range(self.channels):
            for item, (di, dj, dk), (si, sj, sk), ratio in jobs:
                if arrays is not None:
                    arrays[1][channel, di, dj, dk] = arrays[0][item, channel, si, sj, sk]
                    continue
                source = values[item, channel, si, sj, sk]
                target = output[channel, di, dj, dk]
                if ratio is None:
                    target.copy_(source)
                    continue
                # Running weighted mean out += (x - out) * w / W: exact for identical values.
                target.lerp_(source, ratio)


__all__ = ["BatchWriter", "Job"]
