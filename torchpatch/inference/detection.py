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

from ..geometry import parse_patch_overlap, plan_grid
from ..image import Image, ScalarImage
from ..typing import TypeTriplet
from .merge import Detections, check_boxes, check_merge_options, matching_pairs, merge_detections

Array = np.ndarray[Any, np.dtype[Any]]


def patch_corners(spatial_shape: Sequence[int], patch_size: TypeTriplet, patch_overlap: TypeTriplet) -> Array:
    """First voxel of each patch of :func:`~torchpatch.geometry.plan_grid`'s grid, ``(P, 3)`` int64.

    An axis shorter than the patch gets one patch at 0, padded past the image.

    Example:
        >>> patch_corners((10, 3, 1), (4, 4, 1), (1, 0, 0)).tolist()
        [[0, 0, 0], [3, 0, 0], [6, 0, 0]]
    """
    return plan_grid(spatial_shape, patch_size, patch_overlap).locations[:, :3]


def _as_image(image: Any) -> Image:
    """The image to cut: an Image, or a ``(C, I, J, K)`` tensor wrapped as one (no copy)."""
    if isinstance(image, Image):
        return image
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be an Image or a (C, I, J, K) tensor, got {type(image).__name__}")
    if image.ndim != 4:
        raise ValueError(
            f"image must be a (C, I, J, K) tensor, got shape {tuple(image.shape)}; a 2D image is (C, I, J, 1)"
        )
    return ScalarImage(tensor=image)


def _model_device(model: Callable[..., Any]) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            return tensor.device
    return torch.device("cpu")


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
    first, second = matching_pairs(boxes, groups, threshold=threshold, metric="ios")
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
    model: Callable[[torch.Tensor], Sequence[Any]],
    image: Image | torch.Tensor,
    patch_size: int | Sequence[int],
    patch_overlap: int | float | Sequence[int] | Sequence[float] = 0,
    *,
    batch_size: int = 4,
    full_image_pass: bool = False,
    method: str | None = "greedy_nmm",
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
        model: Called on batches ``(B, C, *patch_size)`` (float; zero
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
        method: How boxes are merged (as in
            :func:`~torchpatch.inference.merge.merge_detections`):
            ``'greedy_nmm'``, ``'nmm'``, ``'nms'``, or ``None`` to return
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
        >>> def model(batch):  # a box around the bright voxels of each patch
        ...     results = []
        ...     for patch in batch:
        ...         i, j = patch[0, :, :, 0].nonzero(as_tuple=True)
        ...         if len(i) == 0:
        ...             results.append((torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long)))
        ...             continue
        ...         box = torch.stack([i.min(), j.min(), i.max() + 1, j.max() + 1]).float()
        ...         results.append((box[None], torch.ones(1), torch.zeros(1, dtype=torch.long)))
        ...     return results
        >>> found = sliced_detection(model, image, patch_size=6, patch_overlap=4, progress=False)
        >>> found.boxes.tolist(), found.scores.tolist(), found.classes.tolist()
        ([[4.0, 1.0, 7.0, 3.0]], [1.0], [0])
    """
    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    source = _as_image(image)
    shape = source.spatial_shape
    grid = plan_grid(shape, patch_size, patch_overlap)
    size = grid.patch_size
    _check_arguments(batch_size, cut_margin)
    check_merge_options(method, metric, threshold)
    target = _model_device(model) if device is None else torch.device(device)
    locations = grid.locations
    corners = locations[:, :3].tolist()
    width = 4 if shape[2] == 1 else 6
    half = width // 2

    found: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def run(batch: torch.Tensor, first: int, batch_index: int, patch_sizes: list[Sequence[int]]) -> None:
        inputs = batch.to(target)
        if not inputs.is_floating_point():
            inputs = inputs.float()
        outputs = model(inputs)
        label = f"batch {batch_index}" if batch_index >= 0 else "the full-image pass"
        if not isinstance(outputs, (list, tuple)) or len(outputs) != len(batch):
            got = type(outputs).__name__
            if isinstance(outputs, (list, tuple)):
                got += f" of length {len(outputs)}"
            raise TypeError(f"model must return a list of {len(batch)} items (one per patch) for {label}, got {got}")
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
            chosen = locations[first : first + batch_size]
            run(source.read_regions(chosen, padding_mode=0), first, batch_index, [size] * len(chosen))
        if full_image_pass:
            whole = tuple(max(s, p) for s, p in zip(shape, size))
            run(source.read_regions([[0, 0, 0, *whole]], padding_mode=0), len(corners), -1, [whole])
        result = _combine(found, shape, width, drop_cut_boxes, threshold, class_agnostic)
        if method is not None and len(result):
            result = merge_detections(
                result.boxes,
                result.scores,
                result.classes,
                method=method,
                metric=metric,
                threshold=threshold,
                class_agnostic=class_agnostic,
                size_aware=size_aware,
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
