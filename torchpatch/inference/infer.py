"""One-call sliding-window inference on a whole image."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..constants import INTENSITY
from ..image import Image, ScalarImage
from ..loader import cut_ahead, empty_batch
from ..sampler.grid import GridSampler
from ..subject import Subject
from .aggregator import GridAggregator


def _select_image(subject_or_image: Subject | Image, image_name: str | None) -> tuple[str, Image]:
    if isinstance(subject_or_image, Image):
        if image_name is not None:
            raise ValueError(f"image_name is for subjects; got an Image and image_name {image_name!r}")
        return "image", subject_or_image
    if not isinstance(subject_or_image, Subject):
        raise TypeError(f"subject_or_image must be a Subject or an Image, got {type(subject_or_image).__name__}")
    if image_name is not None:
        return image_name, subject_or_image.get_image(image_name)
    images = subject_or_image.images
    for name, image in images.items():
        if image.type == INTENSITY:
            return name, image
    raise ValueError(
        f"subject {subject_or_image.name!r} has no intensity image to feed the model (images: {sorted(images)}); "
        f"pass image_name"
    )


def _model_device(model: Callable[..., Any]) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            return tensor.device
    return torch.device("cpu")


class _PatchBatches(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Batches ``(B, C, *patch)`` of one image's grid patches, with their ``(B, 6)`` locations.

    :meth:`GridSampler.cut <torchpatch.sampler.GridSampler.cut>` copies each
    box straight into the batch, skipping a patch subject per patch (which
    cost about as much as the whole aggregation in ``benchmarks/grid.py``);
    :class:`~torchpatch.loader.SubjectsLoader` over the sampler gives the
    same tensors.
    """

    def __init__(self, sampler: GridSampler, image_name: str, batch_size: int) -> None:
        self.sampler = sampler
        self.image_name = image_name
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        first = index * self.batch_size
        last = min(first + self.batch_size, len(self.sampler))
        patches = self.sampler.cut(slice(first, last), include=[self.image_name], allocator=empty_batch)
        return patches.data[self.image_name], torch.from_numpy(patches.locations)


def _prefetched(batches: _PatchBatches, pin: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches in order, each cut (and pinned) by a thread while the previous one is used.

    Cutting is numpy copies, which release the GIL: with more than one
    thread allowed, the next batch is copied on another core while the
    model and the aggregator work on this one (memory bandwidth grows with
    the cores copying).
    """

    def cut(index: int) -> tuple[torch.Tensor, torch.Tensor]:
        patches, locations = batches[index]
        return (patches.pin_memory(), locations) if pin else (patches, locations)

    return cut_ahead((cut(index) for index in range(len(batches))), name="torchpatch-infer")


def _mirror_flips(mirror_axes: Any) -> list[tuple[int, ...]]:
    """The tensor dimensions to flip for each prediction: every combination of the axes (``[()]`` without)."""
    if mirror_axes is None:
        return [()]
    axes = [mirror_axes] if isinstance(mirror_axes, int) and not isinstance(mirror_axes, bool) else mirror_axes
    if isinstance(axes, (str, bytes, bool)) or not isinstance(axes, Sequence):
        raise TypeError(f"mirror_axes must be None, an int or ints among 0, 1, 2, got {mirror_axes!r}")
    if not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
        raise TypeError(f"mirror_axes must hold ints (0, 1, 2 for I, J, K), got {mirror_axes!r}")
    if not all(0 <= a <= 2 for a in axes) or len(set(axes)) != len(axes):
        raise ValueError(f"mirror_axes must be distinct spatial axes among 0, 1, 2 (I, J, K), got {mirror_axes!r}")
    dims = [a + 2 for a in sorted(axes)]  # (B, C, I, J, K)
    return [tuple(d for bit, d in enumerate(dims) if mask >> bit & 1) for mask in range(2 ** len(dims))]


def _predict(model: Callable[[torch.Tensor], Any], inputs: torch.Tensor, flips: list[tuple[int, ...]]) -> torch.Tensor:
    """The model's outputs, averaged over the mirrored inputs (each prediction flipped back)."""
    total: torch.Tensor | None = None
    dtype = torch.float32
    for dims in flips:
        outputs = model(inputs.flip(dims) if dims else inputs)
        if not isinstance(outputs, torch.Tensor):
            raise TypeError(f"model must return a tensor (B, C, I, J, K), got {type(outputs).__name__}")
        if outputs.ndim >= 1 and outputs.shape[0] != inputs.shape[0]:
            raise ValueError(
                f"the model returned {outputs.shape[0]} outputs for a batch of {inputs.shape[0]} patches "
                f"(input shape {tuple(inputs.shape)}, output shape {tuple(outputs.shape)}): it must return one "
                f"output per patch, (B, C, I, J, K)"
            )
        if len(flips) == 1:
            return outputs
        if not outputs.is_floating_point():
            raise TypeError(
                f"mirror_axes averages the predictions of mirrored inputs: the model must return floating-point "
                f"outputs, got {outputs.dtype}"
            )
        # float64 sums of 2^n predictions, divided by 2^n: exact when they agree.
        dtype = outputs.dtype
        outputs = (outputs.flip(dims) if dims else outputs).to(torch.float64)
        total = outputs if total is None else total.add_(outputs)
    assert total is not None
    return total.div_(len(flips)).to(dtype)


def infer(
    model: Callable[[torch.Tensor], torch.Tensor],
    subject_or_image: Subject | Image,
    patch_size: int | Sequence[int],
    patch_overlap: int | float | Sequence[int] | Sequence[float] = 0,
    *,
    batch_size: int = 4,
    overlap_mode: str = "gaussian",
    device: torch.device | str | None = None,
    progress: bool = True,
    image_name: str | None = None,
    padding_mode: str | float | None = None,
    num_workers: int = 0,
    mirror_axes: int | Sequence[int] | None = None,
    crop_mode: str = "middle",
    hann_mode: str = "centred",
) -> ScalarImage:
    """Run ``model`` on the whole image, patch by patch, and stitch the outputs.

    The image is split by a :class:`~torchpatch.sampler.grid.GridSampler`,
    batches are moved to ``device`` (pinned and copied asynchronously to
    CUDA), the model runs under :func:`torch.inference_mode`, and a
    :class:`~torchpatch.inference.GridAggregator` blends the outputs on the
    model's device. Integer images are given to the model as float32.

    Args:
        model: Any callable ``(B, C, I, J, K) -> (B, C', I', J', K')``; the
            output may have other channels, and a smaller size when the
            model downsamples (see :class:`GridAggregator`).
        subject_or_image: An image, or a subject whose image ``image_name``
            (default: its first intensity image) is fed to the model.
        patch_size: An int (cube, ``(p, p, 1)`` on 2D images) or three ints.
        patch_overlap: Voxels shared by neighbouring patches (ints), or a
            fraction of the patch in ``[0, 1)`` (floats), as everywhere.
        batch_size: Patches per model call.
        overlap_mode: ``'gaussian'`` (default), ``'hann'``, ``'average'`` or
            ``'crop'``.
        device: Where the model runs; ``None`` for the device of its first
            parameter (CPU when it has none).
        progress: Show a tqdm progress bar.
        image_name: The image of a subject to feed the model.
        padding_mode: Grid border padding (see :class:`GridSampler`).
        num_workers: Processes cutting patches (``DataLoader`` workers). With
            ``0`` and more than one torch thread
            (:func:`torch.get_num_threads`), a thread cuts the next batch
            while the model runs on this one; with one, everything runs in
            the caller's thread.
        mirror_axes: Test-time augmentation by mirroring (nnU-Net's): the
            model also sees each batch flipped along every combination of
            these spatial axes (0, 1, 2 for I, J, K), each prediction is
            flipped back, and their mean is blended. ``(0, 1, 2)`` costs 8
            model calls per batch. The model must return floating-point
            outputs.
        crop_mode: Where crop mode cuts next to a last patch shifted back
            to the border: ``'middle'`` (default) or ``'torchio'`` (TorchIO
            1.x's cut; see :class:`GridAggregator`).
        hann_mode: Which Hann window hann mode uses: ``'centred'``
            (default) or ``'torchio'`` (TorchIO 1.x's; see
            :class:`GridAggregator`).

    Returns:
        A :class:`~torchpatch.image.ScalarImage` on the CPU with the input's
        affine (scaled by the downsampling factor, if any: output voxel ``n``
        covers input voxels ``n f`` to ``n f + f - 1``).

    Example:
        >>> from torchpatch import ScalarImage
        >>> image = ScalarImage(tensor=torch.rand(1, 9, 9, 1), affine=np.diag([2.0, 2.0, 1.0, 1.0]))
        >>> model = torch.nn.Conv3d(1, 2, kernel_size=(3, 3, 1), padding=(1, 1, 0))
        >>> output = infer(model, image, patch_size=4, patch_overlap=2, progress=False)
        >>> output.shape, output.spacing
        ((2, 9, 9, 1), (2.0, 2.0, 1.0))
    """
    name, image = _select_image(subject_or_image, image_name)
    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    flips = _mirror_flips(mirror_axes)
    target = _model_device(model) if device is None else torch.device(device)
    cuda = target.type == "cuda"
    sampler = GridSampler(Subject({name: image}), patch_size, patch_overlap, padding_mode)
    aggregator = GridAggregator(sampler, overlap_mode, crop_mode=crop_mode, hann_mode=hann_mode)
    batches = _PatchBatches(sampler, name, batch_size)
    # With more than one torch thread, a thread cuts the next batch (compiled
    # copies, GIL released) while this one is used: on CUDA this thread waits
    # for the device, and small batches are written on one torch thread
    # (inference.write_threads), so the other core would be idle otherwise.
    # Large batches are written on torch's OpenMP team, beside which the
    # cutting thread shares the cores (cutting inline on the team instead was
    # 3 % faster for 8 channels on the CPU, and loses the overlap on CUDA).
    if num_workers == 0 and torch.get_num_threads() > 1:
        loader: Iterable[tuple[torch.Tensor, torch.Tensor]] = _prefetched(batches, pin=cuda)
    else:
        loader = DataLoader(batches, batch_size=None, num_workers=num_workers, pin_memory=cuda)
    bar = tqdm(loader, total=len(batches), disable=not progress, desc="inference", unit="batch")
    try:
        for patches, locations in bar:
            inputs = patches.to(target, non_blocking=cuda)
            if not inputs.is_floating_point():
                inputs = inputs.float()
            with torch.inference_mode():
                outputs = _predict(model, inputs, flips)
            aggregator.add_batch(outputs, locations)
    finally:
        bar.close()
        if isinstance(loader, Generator):
            loader.close()  # stops the cutting thread now, even when the model raised
    output = aggregator.get_output_tensor().cpu()
    assert aggregator.downsampling_factor is not None
    scale = np.diag([*aggregator.downsampling_factor, 1]).astype(np.float64)
    scale[:3, 3] = [(f - 1) / 2 for f in aggregator.downsampling_factor]
    return ScalarImage(tensor=output, affine=image.affine @ scale)


__all__ = ["infer"]
