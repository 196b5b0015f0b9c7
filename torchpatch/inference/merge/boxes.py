"""Box maths for merging: checks, sizes and overlaps (IoU, IoS) of half-open voxel boxes.

Boxes are in voxel coordinates and half-open, like patch locations:
``(i0, j0, i1, j1)`` in 2D, ``(i0, j0, k0, i1, j1, k1)`` in 3D. The overlap
of two boxes is ``'iou'`` (intersection over union) or ``'ios'``
(intersection over the smaller box's area or volume): a fragment inside a
whole box has IoS 1 but a small IoU.

``check_overlap_options``, ``check_detections``, ``box_sizes``
and ``overlap`` are the building blocks the other merge modules share;
they are public so those modules can import them, but are not in
``__all__`` (the API reference lists only what users call).
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import torch

#: Overlap measures: intersection over union, intersection over the smaller box.
METRICS = ("iou", "ios")


# Validation --------------------------------------------------------------------


def check_boxes(boxes: Any, name: str = "boxes") -> torch.Tensor:
    """Return ``boxes`` as a floating ``(N, 4)`` or ``(N, 6)`` tensor after checking them.

    Integer boxes become float32. Raises ``TypeError`` for a non-tensor and
    ``ValueError`` for a wrong shape, non-finite values or a box whose end is
    before its start.

    Example:
        >>> check_boxes(torch.tensor([[0, 0, 2, 3]])).dtype
        torch.float32
    """
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes.ndim != 2 or boxes.shape[1] not in (4, 6):
        raise ValueError(
            f"{name} must have shape (N, 4) for 2D boxes (i0, j0, i1, j1) or (N, 6) for 3D boxes "
            f"(i0, j0, k0, i1, j1, k1), got {tuple(boxes.shape)}"
        )
    if boxes.dtype == torch.bool or boxes.is_complex():
        raise TypeError(f"{name} must hold real numbers, got {boxes.dtype}")
    if not boxes.is_floating_point():
        boxes = boxes.float()
    if not torch.isfinite(boxes).all():
        raise ValueError(f"{name} hold NaN or infinite coordinates")
    half = boxes.shape[1] // 2
    inverted = (boxes[:, half:] < boxes[:, :half]).any(1)
    if inverted.any():
        index = int(inverted.nonzero()[0, 0])
        raise ValueError(
            f"{name}[{index}] = {boxes[index].tolist()} ends before it starts; boxes are (starts..., ends...) "
            f"with every end >= its start"
        )
    return boxes


def check_overlap_options(metric: str, threshold: float) -> None:
    """Check an overlap ``metric`` (one of :data:`METRICS`) and a ``threshold`` in ``[0, 1]``.

    Example:
        >>> check_overlap_options('ios', 0.5)
        >>> check_overlap_options('giou', 0.5)
        Traceback (most recent call last):
        ...
        ValueError: metric must be 'iou' (intersection over union) or 'ios' (over smaller), got 'giou'
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be 'iou' (intersection over union) or 'ios' (over smaller), got {metric!r}")
    if not isinstance(threshold, Real) or isinstance(threshold, bool):
        raise TypeError(f"threshold must be a number in [0, 1], got {type(threshold).__name__} {threshold!r}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")


def check_detections(boxes: Any, scores: Any, classes: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checked ``(boxes, scores, classes)``: floating boxes and scores, int64 classes (zeros for ``None``).

    Example:
        >>> boxes, scores, classes = check_detections(torch.tensor([[0, 0, 2, 2]]), torch.tensor([1]), None)
        >>> boxes.dtype, scores.dtype, classes.tolist()
        (torch.float32, torch.float32, [0])
    """
    boxes = check_boxes(boxes)
    count = boxes.shape[0]
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a torch.Tensor, got {type(scores).__name__}")
    if scores.shape != (count,):
        raise ValueError(
            f"scores must have shape ({count},) to match boxes {tuple(boxes.shape)}, got {tuple(scores.shape)}"
        )
    if not scores.is_floating_point():
        scores = scores.to(boxes.dtype)
    if not torch.isfinite(scores).all():
        raise ValueError("scores hold NaN or infinite values")
    if classes is None:
        classes = torch.zeros(count, dtype=torch.int64, device=boxes.device)
    elif not isinstance(classes, torch.Tensor):
        raise TypeError(f"classes must be a torch.Tensor or None, got {type(classes).__name__}")
    elif classes.shape != (count,):
        raise ValueError(f"classes must have shape ({count},) to match boxes, got {tuple(classes.shape)}")
    elif classes.is_floating_point() or classes.is_complex() or classes.dtype == torch.bool:
        raise TypeError(f"classes must hold integers, got {classes.dtype}")
    devices = {boxes.device, scores.device, classes.device}
    if len(devices) > 1:
        raise ValueError(f"boxes, scores and classes must be on one device, got {[str(d) for d in devices]}")
    return boxes, scores, classes.long()


# Overlaps ------------------------------------------------------------------------


def box_sizes(boxes: torch.Tensor) -> torch.Tensor:
    """Area (2D) or volume (3D) of each of the checked ``(N, 4)`` or ``(N, 6)`` boxes.

    Example:
        >>> box_sizes(torch.tensor([[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 1.0, 5.0]])).tolist()
        [6.0, 0.0]
    """
    half = boxes.shape[1] // 2
    return (boxes[:, half:] - boxes[:, :half]).prod(1)


def overlap(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """IoU or IoS of checked boxes ``a`` and ``b`` broadcast against each other (last axis: coordinates).

    Pairs ``a[n]`` with ``b[n]`` for boxes of one shape; ``a[:, None]``
    against ``b[None]`` gives the matrix. Unlike :func:`box_iou` it checks
    nothing, and it overwrites no input.

    Example:
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]])
        >>> b = torch.tensor([[1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
        >>> overlap(a, b, 'ios').tolist()
        [0.5, 1.0]
    """
    half = a.shape[-1] // 2
    start = torch.maximum(a[..., :half], b[..., :half])
    intersection = torch.minimum(a[..., half:], b[..., half:]).sub_(start).clamp_(min=0).prod(-1)
    size_a = (a[..., half:] - a[..., :half]).prod(-1)
    size_b = (b[..., half:] - b[..., :half]).prod(-1)
    denominator = size_a + size_b - intersection if metric == "iou" else torch.minimum(size_a, size_b)
    # An empty box meets nothing: its intersection is 0, so 0 / tiny = 0.
    return intersection.div_(denominator.clamp_(min=torch.finfo(a.dtype).tiny))


def _check_pair(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = check_boxes(a, "a"), check_boxes(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must both be 2D (N, 4) or both 3D (N, 6), got {tuple(a.shape)} and {tuple(b.shape)}")
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(dtype)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every box of ``a`` with every box of ``b``.

    Args:
        a: ``(M, 4)`` or ``(M, 6)`` boxes.
        b: ``(N, 4)`` or ``(N, 6)`` boxes, of the same dimension as ``a``.

    Returns:
        ``(M, N)`` values in ``[0, 1]``; 0 for an empty box.

    Example:
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> b = torch.tensor([[1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
        >>> box_iou(a, b)
        tensor([[0.3333, 0.2500]])
    """
    a, b = _check_pair(a, b)
    return overlap(a[:, None], b[None], "iou")


def box_ios(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over the smaller box of every box of ``a`` with every box of ``b``.

    A box inside another has IoS 1 whatever their sizes, which is what
    tells a fragment of an object (cut by a patch edge) from another object.

    Args:
        a: ``(M, 4)`` or ``(M, 6)`` boxes.
        b: ``(N, 4)`` or ``(N, 6)`` boxes, of the same dimension as ``a``.

    Returns:
        ``(M, N)`` values in ``[0, 1]``; 0 for an empty box.

    Example:
        >>> a = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0, 2.0]])
        >>> b = torch.tensor([[1.0, 0.0, 0.0, 3.0, 2.0, 2.0], [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]])
        >>> box_ios(a, b)
        tensor([[0.5000, 1.0000]])
    """
    a, b = _check_pair(a, b)
    return overlap(a[:, None], b[None], "ios")


# check_overlap_options, check_detections, box_sizes and overlap: shared with the other merge modules, not API.
__all__ = ["METRICS", "box_ios", "box_iou", "check_boxes"]
