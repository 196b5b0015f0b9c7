"""Stitching patch predictions back into a whole volume.

:class:`GridAggregator` receives the model outputs of the patches of a
:class:`~torchpatch.sampler.grid.GridSampler`, batch by batch in any order,
and writes them into one ``(C, I, J, K)`` tensor on the image's grid::

    add_batch(outputs, locations)  ->  check the locations are grid patches,
                                       write or blend each patch in place
    get_output_tensor()            ->  check every patch arrived, return

Which output voxels each patch writes comes from the sampler's grid plan
(:meth:`GridPlan.splits <torchpatch.geometry.GridPlan.splits>`), once the
first batch shows the output's channels, dtype, device and downsampling
factor.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..geometry import AxisSplit, to_optional_triplet
from ..geometry.grid import CROP_CUTS
from ..io import load_npy, numpy_dtype
from ..sampler.grid import GridSampler
from ..typing import TypePath, TypeTriplet
from .batch_writer import BatchWriter, Job
from .windows import WINDOW_MODES, PartialWeights, check_hann_mode, shared_weights

OVERLAP_MODES = ("crop", "average", *WINDOW_MODES)

Array = np.ndarray[Any, np.dtype[Any]]


def _storage_dtype(dtype: torch.dtype, overlap_mode: str) -> torch.dtype:
    """float32, except float64 stays float64 and crop mode keeps integer and bool outputs."""
    if dtype.is_complex:
        raise TypeError(f"model outputs must be real, got {dtype}")
    if dtype == torch.float64:
        return dtype
    if overlap_mode == "crop" and not dtype.is_floating_point:
        return dtype
    return torch.float32


def _zeros(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A zero tensor; on the CPU allocated by numpy, which asks for transparent huge pages.

    Filling a fresh accumulator costs mostly page faults: numpy's allocator
    advises huge pages for large arrays, which made first touch about three
    times cheaper than ``torch.zeros`` in ``benchmarks/grid.py``.
    """
    if device.type != "cpu":
        return torch.zeros(shape, dtype=dtype, device=device)
    return torch.from_numpy(np.zeros(shape, dtype=numpy_dtype(dtype)))


class GridAggregator:
    """Rebuild a whole-image output from the outputs of a :class:`GridSampler`'s patches.

    Overlap modes:

    - ``'crop'``: each patch writes its centre; neighbours split their
      overlap in the middle (``overlap // 2`` from the later patch's start),
      so every output voxel is copied from one patch. No weights are kept.
      Next to the last patch of an axis, shifted back to end on the border,
      the two patches share more than ``overlap`` voxels: by default
      (``crop_mode='middle'``) each keeps half of them, so both keep as much
      context as possible; ``crop_mode='torchio'`` cuts ``overlap // 2``
      after the shifted patch's start instead, as TorchIO 1.x does, which
      gives TorchIO's output voxel for voxel
      (:meth:`GridPlan.splits <torchpatch.geometry.GridPlan.splits>`).
    - ``'average'``: the mean of every prediction of a voxel.
    - ``'hann'`` and ``'gaussian'``: the mean weighted by a separable window
      (:mod:`~torchpatch.inference.windows`), high in the middle of a patch.
      The default Hann window (``hann_mode='centred'``) is sampled at voxel
      centres, ``sin^2(pi (t + 1/2) / p)``; ``hann_mode='torchio'`` uses
      TorchIO 1.x's, ``sin^2(pi (t + 1) / (p + 1))``, which gives TorchIO's
      output up to float rounding.

    The weighted modes update a running weighted mean in place,
    ``out += (x - out) * w / W`` (``torch.lerp``), with ``w`` the patch's
    window and ``W`` the weight accumulated so far by the voxel, its own
    included. The first prediction of a voxel is copied exactly
    (``w / W = 1``) and an identical later one changes nothing, so an
    identity model gives back its input bit for bit in every mode, which
    ``sum / count`` in float32 does not (``x + x + x`` rounds, and ``/ 3``
    does not undo it). No final division pass is needed either.

    ``W`` is not stored as a full-size weight channel: a per-patch counter
    (also used to check that every patch arrived) and the separable windows
    give the accumulated weight over an arriving patch's box exactly, so
    the weighted modes keep nothing larger than one patch besides the
    output (:class:`~torchpatch.inference.windows.PartialWeights`). Patches
    added more than once (test-time augmentation) count once per addition.

    Dtype and device: accumulators live on the device of the first batch of
    outputs (or in ``.npy`` files with ``output_path``). Floating outputs
    are accumulated and returned as float32 (half and bfloat16 included;
    float64 stays float64); integer and bool outputs keep their dtype in
    crop mode and become float32 in the other modes.

    Threads: on the CPU, a batch's blending runs on one torch thread when it
    is small (one channel of a few patches) and, when it is large, on one
    thread or on torch's threads, whichever blended faster lately
    (:mod:`~torchpatch.inference.write_threads`): torch's parallel kernels
    stall whenever another process holds a core. The output is the same
    either way; :func:`torch.get_num_threads` is restored after each batch.

    Models whose output is smaller than their input (a strided encoder, an
    output of ``patch // 2``) are handled with a downsampling factor ``f``,
    found from the first batch or given. Every patch start and the patch
    size must then be multiples of ``f``; the output grid is ``I // f``
    (rounded down) along I, and so on.

    Args:
        sampler: The grid whose patches are aggregated.
        overlap_mode: ``'crop'`` (default, as in TorchIO), ``'average'``,
            ``'hann'`` or ``'gaussian'``.
        downsampling_factor: ``None`` to find it from the first batch, or an
            int or three ints: patch size divided by model output size.
        output_path: A ``.npy`` file to accumulate into, memory-mapped
            one batch at a time, so outputs larger than memory are rebuilt
            with a small resident set. ``None`` keeps the output in memory.
        crop_mode: Where crop mode cuts the overlap next to a shifted last
            patch: ``'middle'`` (default) or ``'torchio'`` (TorchIO 1.x's
            cut). Other overlap modes ignore it. With a downsampling factor
            both cut in output voxels (``overlap // f // 2`` after a start
            in ``'torchio'`` mode).
        hann_mode: Which Hann window hann mode weights with: ``'centred'``
            (default, :func:`~torchpatch.inference.hann_window`) or
            ``'torchio'`` (TorchIO 1.x's,
            :func:`~torchpatch.inference.torchio_hann_window`).
            Other overlap modes ignore it.

    Attributes:
        spatial_shape: ``(I, J, K)`` of the image (grid padding excluded).
        patch_size: The sampler's patch size.
        patch_overlap: The sampler's overlap (TorchIO's name).
        volume_padded: Whether the sampler padded the image's border
            (``padding_mode`` given; TorchIO's name). The output is on the
            image's grid either way.
        downsampling_factor: Patch size over model output size, per axis,
            once the first batch shows it (``None`` before).

    Example:
        >>> from torchpatch import ScalarImage, Subject, DATA, LOCATION, SubjectsLoader
        >>> from torchpatch.sampler.grid import GridSampler
        >>> image = ScalarImage(tensor=torch.rand(1, 5, 5, 1))
        >>> sampler = GridSampler(Subject(t1=image), patch_size=3, patch_overlap=1)
        >>> aggregator = GridAggregator(sampler, overlap_mode='hann')
        >>> for batch in SubjectsLoader(sampler, batch_size=3):
        ...     aggregator.add_batch(batch['t1'][DATA] * 2, batch[LOCATION])
        >>> output = aggregator.get_output_tensor()
        >>> output.shape, torch.allclose(output, image.data * 2)
        (torch.Size([1, 5, 5, 1]), True)
        >>> aggregator.patch_overlap, aggregator.volume_padded
        ((1, 1, 0), False)
    """

    def __init__(
        self,
        sampler: GridSampler,
        overlap_mode: str = "crop",
        downsampling_factor: int | Sequence[int] | None = None,
        output_path: TypePath | None = None,
        crop_mode: str = "middle",
        hann_mode: str = "centred",
    ) -> None:
        if not isinstance(sampler, GridSampler):
            raise TypeError(f"sampler must be a GridSampler, got {type(sampler).__name__}")
        if not isinstance(overlap_mode, str) or overlap_mode not in OVERLAP_MODES:
            raise ValueError(f"overlap_mode must be one of {OVERLAP_MODES}, got {overlap_mode!r}")
        if not isinstance(crop_mode, str):
            raise TypeError(f"crop_mode must be a str, one of {CROP_CUTS}, got {type(crop_mode).__name__}")
        if crop_mode not in CROP_CUTS:
            raise ValueError(f"crop_mode must be one of {CROP_CUTS}, got {crop_mode!r}")
        self.overlap_mode = overlap_mode
        self.crop_mode = crop_mode
        self.hann_mode = check_hann_mode(hann_mode)
        self.spatial_shape = sampler.spatial_shape
        self.patch_size = sampler.patch_size
        self.patch_overlap = sampler.patch_overlap
        self.volume_padded = sampler.padding_mode is not None
        self.subject_name = sampler.subject.name
        self._grid = sampler.grid
        self._grid_starts = sampler.grid.starts
        self._locations = sampler.locations
        self._counts = np.zeros(len(sampler), dtype=np.int64)
        self._requested_factor = to_optional_triplet(downsampling_factor, "downsampling_factor")
        self.downsampling_factor: TypeTriplet | None = None
        self.output_path = None if output_path is None else Path(output_path)
        if self.output_path is not None and self.output_path.suffix != ".npy":
            raise ValueError(f"output_path must be a .npy file, got {str(output_path)!r}")
        self._output: torch.Tensor | None = None
        self._weights: PartialWeights | None = None
        self._grid_shape = tuple(len(s) for s in self._grid_starts)
        self._plans: tuple[AxisSplit, AxisSplit, AxisSplit] | None = None
        self._channels = 0
        self._dtype = torch.float32
        self._output_patch: TypeTriplet = self.patch_size
        self._writer = BatchWriter(0)

    def __repr__(self) -> str:
        return (
            f"GridAggregator(subject={self.subject_name!r}, overlap_mode={self.overlap_mode!r}, "
            f"added={int((self._counts > 0).sum())}/{len(self._counts)})"
        )

    # Public API ----------------------------------------------------------------------

    def add_batch(self, batch_tensor: torch.Tensor, locations: torch.Tensor | Array | Sequence[Sequence[int]]) -> None:
        """Write the model outputs of a batch of patches.

        Args:
            batch_tensor: ``(B, C, I, J, K)`` outputs (TorchIO's name); ``(I, J, K)`` is the patch
                size, or the patch size divided by the downsampling factor.
                ``C`` may differ from the input's but must stay the same.
            locations: ``(B, 6)`` patch locations, as in ``batch[LOCATION]``.

        Raises:
            TypeError: If ``batch_tensor`` is not a real tensor.
            ValueError: If its shape does not match the patches, or a
                location is not one of the grid's.
        """
        tensor = batch_tensor
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"batch_tensor must be a torch.Tensor (B, C, I, J, K), got {type(tensor).__name__}")
        if tensor.ndim != 5:
            raise ValueError(f"batch_tensor must be 5D (B, C, I, J, K), got shape {tuple(tensor.shape)}")
        indices = self._grid_indices(locations, int(tensor.shape[0]))
        if self._plans is None:
            self._initialise(tensor)
        spatial = tuple(int(s) for s in tensor.shape[2:])
        if spatial != self._output_patch or int(tensor.shape[1]) != self._channels:
            raise ValueError(
                f"batch_tensor has shape {tuple(tensor.shape)} but this aggregator expects (B, {self._channels}, "
                f"*{self._output_patch}): patch_size {self.patch_size} divided by downsampling factor "
                f"{self.downsampling_factor}, with the channels of the first batch"
            )
        assert self._plans is not None
        plan_i, plan_j, plan_k = self._plans
        counts = self._counts.reshape(self._grid_shape)
        with torch.no_grad(), self._open_output() as output:
            values = tensor.detach().to(device=output.device, dtype=output.dtype)
            # Every patch's boxes and blending ratio first, counting patches in batch order.
            jobs: list[Job] = []
            for item, (a, b, c) in enumerate(indices.tolist()):
                counts[a, b, c] += 1
                (di, si), (dj, sj), (dk, sk) = plan_i[a], plan_j[b], plan_k[c]
                if di.start == di.stop or dj.start == dj.stop or dk.start == dk.stop:
                    continue  # a crop region lying wholly in the grid padding
                ratio = None if self._weights is None else self._weights.ratio(counts, (a, b, c))[0, si, sj, sk]
                jobs.append((item, (di, dj, dk), (si, sj, sk), ratio))
            self._writer.write(values, output, jobs)

    def get_output_tensor(self) -> torch.Tensor:
        """The aggregated ``(C, I, J, K)`` output on the image's grid (grid padding removed).

        The tensor is the aggregator's own buffer (no copy; with
        ``output_path``, backed by that file), so adding batches later
        changes it.

        Raises:
            ValueError: If no batch was added, or some patch never was.
        """
        missing = np.flatnonzero(self._counts == 0)
        if self._plans is None or missing.size:
            first = int(missing[0]) if missing.size else 0
            raise ValueError(
                f"the output of subject {self.subject_name!r} is incomplete: {missing.size} of "
                f"{len(self._counts)} patches were never added (first: patch {first} at location "
                f"{self._locations[first].tolist()}); add the outputs of every patch of the sampler"
            )
        if self.output_path is not None:
            return torch.from_numpy(load_npy(self.output_path, mmap_mode="r+"))
        assert self._output is not None
        return self._output

    # Locations ------------------------------------------------------------------------

    def _grid_indices(self, locations: Any, batch_size: int) -> Array:
        """``(B, 3)`` index of each location along each grid axis, after checking them."""
        if isinstance(locations, torch.Tensor):
            locations = locations.detach().cpu().numpy()
        array = np.asarray(locations)
        if array.dtype.kind not in "iu" or array.shape != (batch_size, 6):
            raise ValueError(
                f"locations must be {batch_size} rows of 6 ints (i0, j0, k0, i1, j1, k1), one per item of the "
                f"tensor, as in batch[LOCATION]; got {array.dtype} of shape {array.shape}"
            )
        array = array.astype(np.int64)
        indices = np.empty((batch_size, 3), dtype=np.int64)
        for axis, starts in enumerate(self._grid_starts):
            found = np.searchsorted(starts, array[:, axis]).clip(0, len(starts) - 1)
            indices[:, axis] = found
            wrong = (starts[found] != array[:, axis]) | (array[:, axis + 3] - array[:, axis] != self.patch_size[axis])
            if wrong.any():
                row = int(np.flatnonzero(wrong)[0])
                shown = starts.tolist() if len(starts) <= 12 else [*starts[:6].tolist(), "...", *starts[-3:].tolist()]
                raise ValueError(
                    f"locations[{row}] = {array[row].tolist()} is not a patch of the grid of subject "
                    f"{self.subject_name!r}: along axis {'IJK'[axis]} patches start at {shown} and span "
                    f"{self.patch_size[axis]} voxels (patch_size {self.patch_size}, image grid {self.spatial_shape})"
                )
        return indices

    def _flat_indices(self, indices: Array) -> Array:
        sizes = tuple(len(s) for s in self._grid_starts)
        return np.ravel_multi_index((indices[:, 0], indices[:, 1], indices[:, 2]), sizes)

    # Planning and storage -----------------------------------------------------------

    def _find_factor(self, spatial: Sequence[int]) -> TypeTriplet:
        if self._requested_factor is not None:
            factor = self._requested_factor
            if any(p % f for p, f in zip(self.patch_size, factor)):
                raise ValueError(f"downsampling_factor {factor} must divide patch_size {self.patch_size} on every axis")
            return factor
        if any(s < 1 or p % s for p, s in zip(self.patch_size, spatial)):
            raise ValueError(
                f"tensor spatial shape {tuple(spatial)} is neither patch_size {self.patch_size} nor the patch "
                f"size divided by an integer factor per axis (a model downsampling its input)"
            )
        return (self.patch_size[0] // spatial[0], self.patch_size[1] // spatial[1], self.patch_size[2] // spatial[2])

    def _initialise(self, tensor: torch.Tensor) -> None:
        factor = self._find_factor([int(s) for s in tensor.shape[2:]])
        for axis, (starts, f) in enumerate(zip(self._grid_starts, factor)):
            if np.any(starts % f):
                raise ValueError(
                    f"downsampling factor {factor}: along axis {'IJK'[axis]} the patch starts "
                    f"{starts.tolist()} (image grid, grid padding included) are not all multiples of {f}; "
                    f"choose patch_size, patch_overlap and padding so that every start is"
                )
        output_shape = tuple(s // f for s, f in zip(self.spatial_shape, factor))
        if min(output_shape) < 1:
            raise ValueError(
                f"the image grid {self.spatial_shape} divided by the downsampling factor {factor} leaves no voxel"
            )
        patch = tuple(p // f for p, f in zip(self.patch_size, factor))
        crop = self.overlap_mode == "crop"
        output_starts = [axis_starts // f for axis_starts, f in zip(self._grid_starts, factor)]
        self._plans = self._grid.splits(factor, crop=crop, cut=self.crop_mode)
        self.downsampling_factor = (factor[0], factor[1], factor[2])
        self._output_patch = (patch[0], patch[1], patch[2])
        self._channels = int(tensor.shape[1])
        self._writer = BatchWriter(self._channels)
        self._dtype = _storage_dtype(tensor.dtype, self.overlap_mode)
        device = tensor.device if self.output_path is None else torch.device("cpu")
        if self.overlap_mode != "crop":
            self._weights = shared_weights(
                output_starts, patch, self.overlap_mode, self._dtype, device, hann_mode=self.hann_mode
            )
        self._allocate((self._channels, *output_shape), device)

    def _allocate(self, shape: tuple[int, ...], device: torch.device) -> None:
        if self.output_path is None:
            # A plain tensor even when called under torch.inference_mode, so the
            # caller may modify the returned output in place afterwards.
            with torch.inference_mode(False):
                self._output = _zeros(shape, self._dtype, device)
            return
        np.lib.format.open_memmap(self.output_path, mode="w+", dtype=numpy_dtype(self._dtype), shape=shape).flush()

    @contextmanager
    def _open_output(self) -> Iterator[torch.Tensor]:
        """The output tensor; with ``output_path``, the file mapped for one batch.

        Mapping the file per batch and unmapping it after keeps only the
        pages a batch touches resident, so the process stays small however
        large the output is (the kernel writes the pages back).
        """
        if self.output_path is None:
            assert self._output is not None
            yield self._output
            return
        yield torch.from_numpy(load_npy(self.output_path, mmap_mode="r+"))


__all__ = ["OVERLAP_MODES", "GridAggregator"]
