"""Sliced detection: run a detector patch by patch and merge its boxes.

A detector trained on crops misses small objects in a large image, and a
large volume may not fit through the model at once. Sliced inference runs
the detector on the overlapping patches of a grid, shifts each patch's
boxes to image voxel coordinates, and merges the copies of the objects that
several patches saw (:mod:`torchpatch.inference.merge`).

Merging alone mishandles objects cut by a patch edge: the fragment's IoU
with the whole box is small (a duplicate survives), and over IoS a
better-scored fragment can suppress the whole box. So first, a box touching
an *internal* edge of its patch (an edge that is not the image border) is
dropped when another patch holds the same object whole (one character per
voxel along ``i``)::

    voxel       0         10        20        30
                |         |         |         |
    patch A     [=======================)             [0, 24): its end is inside the image
    patch B               [=======================)   [10, 34)
    object                      ##############        [16, 30)
    A's box                     ########|             [16, 24): touches A's internal edge: cut
    B's box                     ##############        [16, 30): whole in B, so A's box is dropped

"Holds it whole" means a box from another patch that touches none of its
patch's internal edges and has IoS above ``threshold`` with the cut box.
An object too large for any patch is cut everywhere and keeps its
fragments, which the merge then joins (greedy NMM or NMM over IoS) where
they overlap. An object at most ``patch_overlap - 2 * cut_margin - 1``
voxels long on every axis always lies whole, away from the edges, in some
patch, so with an exact detector it comes back exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..geometry import parse_patch_size
from ..image import Image
from ..loader import stack
from ..sampler.grid import grid_starts
from ..typing import TypeTriplet
from .merge import Detections, check_boxes, check_merge_options, matching_pairs, merge_detections

Array = np.ndarray[Any, np.dtype[Any]]


def parse_patch_overlap(patch_overlap: Any, patch_size: TypeTriplet, spatial_shape: Sequence[int]) -> TypeTriplet:
    """``patch_overlap`` in voxels: ints, or floats as a fraction of the patch.

    An int on a 2D image means ``(o, o, 0)``; a float ``f`` in ``[0, 1)``
    means ``floor(f * p)`` voxels on an axis of patch size ``p``.

    Example:
        >>> parse_patch_overlap(0.5, (64, 64, 1), (512, 512, 1))
        (32, 32, 0)
        >>> parse_patch_overlap(8, (32, 32, 32), (64, 64, 64))
        (8, 8, 8)
    """
    is_2d = int(spatial_shape[2]) == 1
    if isinstance(patch_overlap, (bool, str, bytes)):
        raise TypeError(f"patch_overlap must be an int, a float or three of either, got {patch_overlap!r}")
    if isinstance(patch_overlap, Real):
        values: list[Any] = [patch_overlap] * 3
        if isinstance(patch_overlap, Integral) and is_2d:
            values[2] = 0
    elif isinstance(patch_overlap, (Sequence, np.ndarray)) and len(patch_overlap) == 3:
        values = list(patch_overlap)
    else:
        raise TypeError(
            f"patch_overlap must be an int (voxels), a float (fraction of the patch) or three of either, "
            f"got {type(patch_overlap).__name__} {patch_overlap!r}"
        )
    if all(isinstance(v, Integral) and not isinstance(v, bool) for v in values):
        overlap = (int(values[0]), int(values[1]), int(values[2]))
    elif all(isinstance(v, Real) and not isinstance(v, (bool, Integral)) for v in values):
        if not all(0.0 <= float(v) < 1.0 for v in values):
            raise ValueError(f"a fractional patch_overlap must be in [0, 1), got {patch_overlap!r}")
        overlap = (
            int(float(values[0]) * patch_size[0]),
            int(float(values[1]) * patch_size[1]),
            int(float(values[2]) * patch_size[2]),
        )
    else:
        raise TypeError(f"patch_overlap must hold only ints (voxels) or only floats (fractions), got {patch_overlap!r}")
    if any(not 0 <= o < p for o, p in zip(overlap, patch_size)):
        raise ValueError(
            f"patch_overlap {overlap} must be >= 0 and smaller than patch_size {patch_size} on every axis "
            f"(spatial shape {tuple(spatial_shape)})"
        )
    return overlap


def patch_corners(spatial_shape: Sequence[int], patch_size: TypeTriplet, patch_overlap: TypeTriplet) -> Array:
    """First voxel of each patch of the grid, ``(P, 3)`` int64.

    Along each axis, patches start every ``patch - overlap`` voxels and the
    last one is shifted back to end on the border (TorchIO's rule, see
    :func:`~torchpatch.sampler.grid.grid_starts`). An axis shorter than the
    patch gets one patch at 0, padded past the image.

    Example:
        >>> patch_corners((10, 3, 1), (4, 4, 1), (1, 0, 0)).tolist()
        [[0, 0, 0], [3, 0, 0], [6, 0, 0]]
    """
    starts = [
        grid_starts(int(size), patch, overlap) if size >= patch else np.zeros(1, dtype=np.int64)
        for size, patch, overlap in zip(spatial_shape, patch_size, patch_overlap)
    ]
    return np.stack(np.meshgrid(*starts, indexing="ij"), axis=-1).reshape(-1, 3)


def _check_image(image: Any) -> tuple[TypeTriplet, Callable[[TypeTriplet, TypeTriplet], torch.Tensor]]:
    """The spatial shape, and a reader of the voxels of a region (from disk for lazy images)."""
    if isinstance(image, Image):
        return image.spatial_shape, image.read_region
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be an Image or a (C, I, J, K) tensor, got {type(image).__name__}")
    if image.ndim != 4:
        raise ValueError(
            f"image must be a (C, I, J, K) tensor, got shape {tuple(image.shape)}; a 2D image is (C, I, J, 1)"
        )

    def read(ini: TypeTriplet, fin: TypeTriplet) -> torch.Tensor:
        return image[:, ini[0] : fin[0], ini[1] : fin[1], ini[2] : fin[2]]

    return (int(image.shape[1]), int(image.shape[2]), int(image.shape[3])), read


def _model_device(model_fn: Callable[..., Any]) -> torch.device:
    if isinstance(model_fn, torch.nn.Module):
        for tensor in (*model_fn.parameters(), *model_fn.buffers()):
            return tensor.device
    return torch.device("cpu")


def _cut_patch(
    read: Callable[[TypeTriplet, TypeTriplet], torch.Tensor],
    shape: TypeTriplet,
    corner: Sequence[int],
    size: Sequence[int],
) -> torch.Tensor:
    """Voxels ``(C, *size)`` from ``corner``, zero-padded past the image."""
    ini = (int(corner[0]), int(corner[1]), int(corner[2]))
    fin = (min(ini[0] + size[0], shape[0]), min(ini[1] + size[1], shape[1]), min(ini[2] + size[2], shape[2]))
    voxels = read(ini, fin)
    if tuple(voxels.shape[1:]) == tuple(size):
        return voxels
    padded = voxels.new_zeros((voxels.shape[0], *size))
    padded[:, : voxels.shape[1], : voxels.shape[2], : voxels.shape[3]] = voxels
    return padded


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what} must be a tensor, got {type(value).__name__}")
    return value


def _parse_item(item: Any, width: int, where: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes, scores and classes of one patch's model output."""
    if isinstance(item, Mapping):
        missing = [key for key in ("boxes", "scores", "labels") if key not in item]
        if missing:
            raise ValueError(f"model output for {where} is a dict without keys {missing}; got keys {sorted(item)}")
        parts = (item["boxes"], item["scores"], item["labels"])
    elif isinstance(item, (tuple, list)) and len(item) == 3:
        parts = (item[0], item[1], item[2])
    else:
        raise TypeError(
            f"model output for {where} must be a (boxes, scores, classes) tuple or a dict with 'boxes', "
            f"'scores', 'labels'; got {type(item).__name__}"
        )
    boxes = _as_tensor(parts[0], f"boxes of {where}")
    scores = _as_tensor(parts[1], f"scores of {where}")
    classes = _as_tensor(parts[2], f"classes of {where}")
    kind = "2D image: (n, 4) boxes (i0, j0, i1, j1)" if width == 4 else "3D image: (n, 6) boxes"
    if boxes.ndim != 2 or boxes.shape[1] != width:
        raise ValueError(f"boxes of {where} have shape {tuple(boxes.shape)}; expected for a {kind}")
    boxes = check_boxes(boxes, f"boxes of {where}")
    count = boxes.shape[0]
    if scores.shape != (count,) or classes.shape != (count,):
        raise ValueError(
            f"scores and classes of {where} must have shape ({count},) like its boxes, got "
            f"{tuple(scores.shape)} and {tuple(classes.shape)}"
        )
    if classes.is_floating_point():
        if not torch.equal(classes, classes.round()):
            raise ValueError(f"classes of {where} must be integers, got {classes.tolist()[:5]}")
    elif classes.dtype == torch.bool or classes.is_complex():
        raise TypeError(f"classes of {where} must be integers, got {classes.dtype}")
    return boxes, scores.to(boxes.device, boxes.dtype), classes.to(boxes.device, torch.int64)


def _touches_internal_edge(
    boxes: torch.Tensor, corner: Sequence[int], size: Sequence[int], shape: Sequence[int], margin: float
) -> torch.Tensor:
    """Whether each box (patch coordinates) is within ``margin`` of an edge of its patch inside the image."""
    half = boxes.shape[1] // 2
    cut = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    for axis in range(half):
        if corner[axis] > 0:
            cut |= boxes[:, axis] <= margin
        if corner[axis] + size[axis] < shape[axis]:
            cut |= boxes[:, axis + half] >= size[axis] - margin
    return cut


def _keep_uncut(
    boxes: torch.Tensor,
    classes: torch.Tensor,
    patches: torch.Tensor,
    cut: torch.Tensor,
    threshold: float,
    class_agnostic: bool,
) -> torch.Tensor:
    """Keep mask: a cut box goes when another patch's uncut box of its class has IoS above ``threshold`` with it."""
    groups = torch.zeros_like(classes) if class_agnostic else classes
    first, second = matching_pairs(boxes, groups, threshold, "ios")
    elsewhere = patches[first] != patches[second]
    keep = torch.ones_like(cut)
    keep[first[elsewhere & cut[first] & ~cut[second]]] = False
    keep[second[elsewhere & cut[second] & ~cut[first]]] = False
    return keep


def _check_arguments(batch_size: Any, cut_margin: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral):
        raise TypeError(f"batch_size must be a positive int, got {type(batch_size).__name__} {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size}")
    if isinstance(cut_margin, bool) or not isinstance(cut_margin, Real):
        raise TypeError(f"cut_margin must be a number of voxels, got {type(cut_margin).__name__} {cut_margin!r}")
    if not 0 <= float(cut_margin) < float("inf"):
        raise ValueError(f"cut_margin must be a finite number of voxels >= 0, got {cut_margin!r}")


def sliced_detection(
    model_fn: Callable[[torch.Tensor], Sequence[Any]],
    image: Image | torch.Tensor,
    patch_size: int | Sequence[int],
    patch_overlap: int | float | Sequence[int] | Sequence[float] = 0,
    batch_size: int = 4,
    full_image_pass: bool = False,
    merge: str | None = "greedy_nmm",
    metric: str = "ios",
    threshold: float = 0.5,
    class_agnostic: bool = False,
    size_aware: bool = False,
    drop_cut_boxes: bool = True,
    cut_margin: float = 1,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> Detections:
    """Detect objects patch by patch and merge the boxes into image coordinates.

    Args:
        model_fn: Called on batches ``(B, C, *patch_size)`` (float; zero
            padded past the image); returns B items, each a ``(boxes,
            scores, classes)`` tuple or a dict with ``'boxes'``,
            ``'scores'``, ``'labels'``. Boxes are in patch voxel
            coordinates, half-open: ``(n, 4)`` ``(i0, j0, i1, j1)`` on a 2D
            image ``(C, I, J, 1)`` (the K axis is ignored), ``(n, 6)`` on 3D.
        image: An :class:`~torchpatch.image.Image` (a lazy one is read patch
            by patch) or a ``(C, I, J, K)`` tensor.
        patch_size: An int (cube, ``(p, p, 1)`` on 2D images) or three ints.
        patch_overlap: Voxels shared by neighbouring patches (an int or
            three), or a fraction of the patch in ``[0, 1)`` (a float or three).
        batch_size: Patches per model call.
        full_image_pass: Also run the model once on the whole image (padded
            to the patch size where smaller) and merge its boxes too, for
            objects larger than a patch.
        merge: ``'greedy_nmm'``, ``'nmm'``, ``'nms'``, or ``None`` to return
            every box (after dropping cut ones).
        metric: ``'ios'`` or ``'iou'``, for merging.
        threshold: Overlap above which two boxes are the same object.
        class_agnostic: Merge boxes of different classes.
        size_aware: Merge largest boxes first (see :func:`~torchpatch.inference.merge.nms`).
        drop_cut_boxes: Drop boxes cut by an internal patch edge when another
            patch holds the object whole (see the module docstring).
        cut_margin: A box within this many voxels of an internal patch edge is cut.
        progress: Show a tqdm progress bar over batches.
        device: Where the model runs; ``None`` for the device of its first
            parameter (CPU when it has none).

    Returns:
        :class:`~torchpatch.inference.merge.Detections` on the CPU, boxes in
        image voxel coordinates clipped to the image (boxes left empty by
        the clipping are dropped), with the image's ``spatial_shape``.

    Example:
        >>> image = torch.zeros(1, 10, 10, 1)
        >>> image[0, 4:7, 1:3] = 1.0  # one bright object, i 4..6, j 1..2
        >>> def model_fn(batch):  # a box around the bright voxels of each patch
        ...     results = []
        ...     for patch in batch:
        ...         i, j = patch[0, :, :, 0].nonzero(as_tuple=True)
        ...         if len(i) == 0:
        ...             results.append((torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long)))
        ...             continue
        ...         box = torch.stack([i.min(), j.min(), i.max() + 1, j.max() + 1]).float()
        ...         results.append((box[None], torch.ones(1), torch.zeros(1, dtype=torch.long)))
        ...     return results
        >>> found = sliced_detection(model_fn, image, patch_size=6, patch_overlap=4, progress=False)
        >>> found.boxes.tolist(), found.scores.tolist(), found.classes.tolist()
        ([[4.0, 1.0, 7.0, 3.0]], [1.0], [0])
    """
    if not callable(model_fn):
        raise TypeError(f"model_fn must be callable, got {type(model_fn).__name__}")
    shape, read = _check_image(image)
    size = parse_patch_size(patch_size, shape)
    overlap = parse_patch_overlap(patch_overlap, size, shape)
    _check_arguments(batch_size, cut_margin)
    check_merge_options(merge, metric, threshold)
    target = _model_device(model_fn) if device is None else torch.device(device)
    corners = patch_corners(shape, size, overlap).tolist()
    width = 4 if shape[2] == 1 else 6
    half = width // 2

    found: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def run(batch: list[torch.Tensor], first: int, batch_index: int, patch_sizes: list[Sequence[int]]) -> None:
        inputs = stack(batch).to(target)
        if not inputs.is_floating_point():
            inputs = inputs.float()
        outputs = model_fn(inputs)
        label = f"batch {batch_index}" if batch_index >= 0 else "the full-image pass"
        if not isinstance(outputs, (list, tuple)) or len(outputs) != len(batch):
            got = type(outputs).__name__
            if isinstance(outputs, (list, tuple)):
                got += f" of length {len(outputs)}"
            raise TypeError(f"model_fn must return a list of {len(batch)} items (one per patch) for {label}, got {got}")
        for offset, item in enumerate(outputs):
            patch_index = first + offset
            corner = corners[patch_index] if batch_index >= 0 else [0, 0, 0]
            where = f"{label}, item {offset} (patch starting at {tuple(corner)})"
            boxes, scores, classes = _parse_item(item, width, where)
            cut = _touches_internal_edge(boxes, corner, patch_sizes[offset], shape, float(cut_margin))
            boxes = boxes + boxes.new_tensor(corner[:half] * 2)
            patches = torch.full_like(classes, patch_index)
            found.append((boxes, scores, classes, torch.stack([patches, cut.long()], 1)))

    with torch.inference_mode():
        starts = range(0, len(corners), batch_size)
        for batch_index, first in enumerate(tqdm(starts, disable=not progress, desc="detection", unit="batch")):
            chosen = corners[first : first + batch_size]
            run([_cut_patch(read, shape, corner, size) for corner in chosen], first, batch_index, [size] * len(chosen))
        if full_image_pass:
            whole = tuple(max(s, p) for s, p in zip(shape, size))
            run([_cut_patch(read, shape, (0, 0, 0), whole)], len(corners), -1, [whole])
        result = _combine(found, shape, width, drop_cut_boxes, threshold, class_agnostic)
        if merge is not None and len(result):
            result = merge_detections(
                result.boxes, result.scores, result.classes, merge, metric, threshold, class_agnostic, size_aware
            )
    # Plain tensors (not inference tensors) on the CPU, so callers may edit them in place.
    boxes, scores, classes = (t.cpu().clone() for t in (result.boxes, result.scores, result.classes))
    return Detections(boxes, scores, classes, spatial_shape=shape)


def _combine(
    found: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
    shape: TypeTriplet,
    width: int,
    drop_cut_boxes: bool,
    threshold: float,
    class_agnostic: bool,
) -> Detections:
    """Concatenate the patches' boxes, clip them to the image and drop the cut ones held whole elsewhere."""
    if not found:
        return Detections(torch.zeros(0, width), torch.zeros(0), torch.zeros(0, dtype=torch.int64))
    device = found[0][0].device
    boxes = torch.cat([f[0].to(device) for f in found])
    scores = torch.cat([f[1].to(device, boxes.dtype) for f in found])
    classes = torch.cat([f[2].to(device) for f in found])
    patches, cut = torch.cat([f[3].to(device) for f in found]).unbind(1)
    half = width // 2
    boxes = torch.minimum(boxes.clamp(min=0), boxes.new_tensor(shape[:half] * 2))
    keep = (boxes[:, half:] > boxes[:, :half]).all(1)
    boxes, scores, classes, patches, cut = boxes[keep], scores[keep], classes[keep], patches[keep], cut[keep]
    if drop_cut_boxes:
        keep = _keep_uncut(boxes, classes, patches, cut.bool(), float(threshold), class_agnostic)
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    return Detections(boxes, scores, classes)


__all__ = ["Detections", "parse_patch_overlap", "patch_corners", "sliced_detection"]
