"""The merges: NMS, greedy NMM and NMM, and :func:`merge_detections` to pick one.

Boxes are visited best first (highest score; with ``size_aware``, largest
first). Two boxes *match* when their overlap is above ``threshold`` (and
they share a class, unless ``class_agnostic``)::

    nms         a visited box is kept unless it matches a kept box
    greedy_nmm  the boxes nms keeps absorb the boxes they suppress, in one
                pass: each suppressed box joins the first kept box it
                matches; a group becomes its union box and its best score
    nmm         groups are the connected parts of the match graph, so
                A ~ B ~ C merge into one box even if A and C do not match

Every merge takes ``(boxes, scores, classes=None)`` and then the same
keyword-only options, in the same order: ``metric``, ``threshold``,
``class_agnostic``, ``size_aware`` (:func:`merge_detections` puts ``method``
first).

The greedy decisions run a block of ranks at a time as a few tensor passes
(see ``_suppress``), not as one Python step per box; pairs involving a box
already suppressed (NMS) or already joined (NMM) are dropped, so memory
stays bounded even when thousands of boxes cover one object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...annotations import BoundingBoxes
from .boxes import box_sizes, check_detections, check_overlap_options, overlap
from .pairs import Sweep, cross_pairs, find_pairs, pairs_up_to

#: Merging methods accepted by :func:`merge_detections`.
METHODS = ("nms", "greedy_nmm", "nmm")

# Matching pairs NMS holds at once (16 bytes each); past this it decides the
# boxes a block of ranks at a time: the first block, and the largest (blocks double).
_EDGE_LIMIT = 2**20
_RANK_BLOCK = (256, 16384)


@dataclass(frozen=True, eq=False)
class Detections:
    """Boxes with their scores and classes, as returned by the merges.

    Args:
        boxes: ``(N, 4)`` 2D or ``(N, 6)`` 3D boxes, half-open, in voxels.
        scores: ``(N,)`` confidences.
        classes: ``(N,)`` int64 class indices.
        spatial_shape: ``(I, J, K)`` of the image the boxes live on, when
            known (:func:`~torchpatch.inference.detection.sliced_detection`
            sets it; the merges do not).

    Example:
        >>> found = Detections(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([0.9]), torch.tensor([1]))
        >>> len(found), found.classes.tolist()
        (1, [1])
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    classes: torch.Tensor
    spatial_shape: tuple[int, int, int] | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to_boxes(self, spatial_shape: tuple[int, int, int] | None = None) -> BoundingBoxes:
        """These detections as :class:`~torchpatch.annotations.BoundingBoxes` (for export or plots).

        Example:
            >>> found = Detections(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([0.9]), torch.tensor([1]))
            >>> found.to_boxes((4, 4, 1)).format
            'xyxy'
        """
        shape = spatial_shape if spatial_shape is not None else self.spatial_shape
        if shape is None:
            raise ValueError("to_boxes needs the spatial shape of the image the detections live on")
        box_format = "xyxy" if self.boxes.shape[1] == 4 else "xyzxyz"
        return BoundingBoxes(self.boxes, box_format, shape, class_ids=self.classes, scores=self.scores)


def check_merge_options(method: str | None, metric: str, threshold: float) -> None:
    """Check a merging method (``None`` allowed: no merging), metric and threshold.

    Example:
        >>> check_merge_options('nmm', 'ios', 0.5)
    """
    if method is not None and method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_overlap_options(metric, threshold)


# Greedy decisions, in visit order ------------------------------------------------------
#
# From here on boxes are sorted in visit order, so a box's index is its rank.

_UNDECIDED, _KEPT, _SUPPRESSED = 0, 1, 2


def _suppress(state: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """NMS among ``state``'s boxes (some already suppressed); edge ``src < dst``: they match. Returns kept.

    Sequential NMS keeps a box iff no kept box ranked before it matches it.
    Instead of one Python step per box, each pass keeps every undecided box
    with no undecided match ranked before it, then suppresses the matches
    of the boxes just kept. A pass keeps at least the best undecided box,
    and the number of passes is the length of the longest chain of
    decisions, a handful in practice.
    """
    live = (state[src] == _UNDECIDED) & (state[dst] == _UNDECIDED)
    src, dst = src[live], dst[live]
    while src.numel():
        blocked = torch.zeros_like(state, dtype=torch.bool)
        blocked[dst] = True
        state[(state == _UNDECIDED) & ~blocked] = _KEPT
        state[dst[state[src] == _KEPT]] = _SUPPRESSED
        live = (state[src] == _UNDECIDED) & (state[dst] == _UNDECIDED)
        src, dst = src[live], dst[live]
    return state != _SUPPRESSED


def _greedy(
    boxes: torch.Tensor, groups: torch.Tensor, metric: str, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """NMS on boxes in visit order: which are kept, and the first kept box matching each box (itself if kept).

    Boxes are decided a block of ranks at a time. Each step first
    suppresses every undecided box that a box kept so far matches, then
    decides all the rest at once if they hold at most ``_EDGE_LIMIT``
    matching pairs, else only the next block (blocks double from
    ``_RANK_BLOCK[0]`` to ``_RANK_BLOCK[1]``). In a sparse scene that is two
    steps; in a dense one (thousands of copies of one object) the first
    block keeps the object, which suppresses every copy, so few pairs are
    ever measured or held.
    """
    count = boxes.shape[0]
    kept = torch.zeros(count, dtype=torch.bool, device=boxes.device)
    leader = torch.arange(count, device=boxes.device)
    state = torch.zeros(count, dtype=torch.int8, device=boxes.device)
    survivors = leader[:0]  # kept by the last step
    first, block = 0, _RANK_BLOCK[0]
    while first < count:
        rest = torch.arange(first, count, device=boxes.device)
        if survivors.numel():
            src, dst = cross_pairs(boxes, groups, survivors, rest, metric, threshold)
            state[dst] = _SUPPRESSED
            leader.scatter_reduce_(0, dst, src, reduce="amin")
        undecided = rest[state[first:] == _UNDECIDED]
        pairs = None
        if first:  # not on the first block: in a dense scene "all the rest" is far too many pairs
            pairs = pairs_up_to(boxes[undecided], groups[undecided], metric, threshold, limit=_EDGE_LIMIT)
        stop = count if pairs is not None else min(count, first + block)
        if pairs is None:
            undecided = undecided[undecided < stop]
            pairs = find_pairs(boxes[undecided], groups[undecided], metric, threshold)
        src, dst = undecided[torch.minimum(*pairs)], undecided[torch.maximum(*pairs)]
        kept[first:stop] = _suppress(state[first:stop], src - first, dst - first)
        joins = kept[src] & ~kept[dst]
        leader.scatter_reduce_(0, dst[joins], src[joins], reduce="amin")
        survivors = rest[: stop - first][kept[first:stop]]
        first, block = stop, min(2 * block, _RANK_BLOCK[1])
    return kept, leader


def _union(label: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Join the components of the edges' ends; ``label`` maps each box to its component's smallest box."""
    while src.numel():
        first, second = label[src], label[dst]
        differ = first != second
        src, dst, first, second = src[differ], dst[differ], first[differ], second[differ]
        if not src.numel():
            break
        # Hook each root on the smallest root it meets, then jump pointers to the roots.
        smaller = torch.minimum(first, second)
        label.scatter_reduce_(0, first, smaller, reduce="amin")
        label.scatter_reduce_(0, second, smaller, reduce="amin")
        while True:
            jumped = label[label]
            if torch.equal(jumped, label):
                break
            label = jumped
    return label


def _connected(boxes: torch.Tensor, groups: torch.Tensor, metric: str, threshold: float) -> torch.Tensor:
    """For boxes in visit order, the first box of each box's connected group of matches.

    Pairs are joined block by block and not kept; a pair already in one
    group is not measured, so a dense scene costs little more than a sparse one.
    """
    sweep = Sweep(boxes, groups)
    label = torch.arange(boxes.shape[0], device=boxes.device)
    for p, q in sweep.chunks():
        p, q = sweep.order[p], sweep.order[q]
        apart = label[p] != label[q]
        p, q = p[apart], q[apart]
        hit = overlap(boxes[p], boxes[q], metric) > threshold
        label = _union(label, p[hit], q[hit])
    return label


def _merge_groups(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, label: torch.Tensor) -> Detections:
    """One union box per label, with the best score and the class of the label's own box (visit order)."""
    leaders, slot = torch.unique(label, return_inverse=True)
    half = boxes.shape[1] // 2
    index = slot[:, None].expand(-1, half)
    starts = boxes.new_full((leaders.numel(), half), float("inf"))
    starts.scatter_reduce_(0, index, boxes[:, :half], reduce="amin")
    ends = boxes.new_full((leaders.numel(), half), float("-inf"))
    ends.scatter_reduce_(0, index, boxes[:, half:], reduce="amax")
    best = scores.new_full((leaders.numel(),), float("-inf")).scatter_reduce_(0, slot, scores, reduce="amax")
    return Detections(torch.cat([starts, ends], 1), best, classes[leaders])


def _in_visit_order(
    boxes: Any, scores: Any, classes: Any, metric: str, threshold: float, class_agnostic: bool, size_aware: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checked inputs sorted best first: order, boxes, scores, classes and matching groups."""
    check_overlap_options(metric, threshold)
    boxes, scores, classes = check_detections(boxes, scores, classes)
    order = torch.sort(scores, descending=True, stable=True).indices
    if size_aware:
        order = order[torch.sort(box_sizes(boxes)[order], descending=True, stable=True).indices]
    groups = torch.zeros_like(classes) if class_agnostic else classes
    return order, boxes[order], scores[order], classes[order], groups[order]


# The merges ----------------------------------------------------------------------------


def nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    classes: torch.Tensor | None = None,
    *,
    metric: str = "iou",
    threshold: float = 0.5,
    class_agnostic: bool = False,
    size_aware: bool = False,
) -> torch.Tensor:
    """Non-maximum suppression: drop every box that matches a better kept box.

    Args:
        boxes: ``(N, 4)`` or ``(N, 6)`` boxes.
        scores: ``(N,)`` confidences.
        classes: ``(N,)`` integer classes; ``None`` for one class.
        metric: ``'iou'`` or ``'ios'`` (intersection over the smaller box).
        threshold: Boxes match when their overlap is above this, in ``[0, 1]``.
        class_agnostic: Let boxes of different classes match.
        size_aware: Visit the largest boxes (area or volume) first, score
            breaking ties, so a whole object is kept over a better-scored
            fragment of it that it contains (with ``'ios'``).

    Returns:
        Indices of the kept boxes, int64, in visit order.

    Example:
        >>> boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 0.0, 5.0, 4.0], [10.0, 10.0, 12.0, 12.0]])
        >>> nms(boxes, torch.tensor([0.8, 0.9, 0.7])).tolist()
        [1, 2]
    """
    order, boxes, _, _, groups = _in_visit_order(boxes, scores, classes, metric, threshold, class_agnostic, size_aware)
    kept, _ = _greedy(boxes, groups, metric, float(threshold))
    return order[kept]


def greedy_nmm(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    classes: torch.Tensor | None = None,
    *,
    metric: str = "iou",
    threshold: float = 0.5,
    class_agnostic: bool = False,
    size_aware: bool = False,
) -> Detections:
    """Greedy non-maximum merging: the boxes NMS keeps absorb the boxes they suppress.

    A suppressed box joins the first kept box (in visit order) that it
    matches; each group becomes its union box with its best score and the
    class of its kept box. Matches are measured on the original boxes, not
    on the growing unions. Arguments are those of :func:`nms`.

    Returns:
        The merged detections, in visit order of their kept boxes.

    Example:
        >>> boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 0.0, 5.0, 4.0], [10.0, 10.0, 12.0, 12.0]])
        >>> merged = greedy_nmm(boxes, torch.tensor([0.5, 0.75, 0.25]))
        >>> merged.boxes.tolist(), merged.scores.tolist()
        ([[0.0, 0.0, 5.0, 4.0], [10.0, 10.0, 12.0, 12.0]], [0.75, 0.25])
    """
    _, boxes, scores, classes, groups = _in_visit_order(
        boxes, scores, classes, metric, threshold, class_agnostic, size_aware
    )
    _, leader = _greedy(boxes, groups, metric, float(threshold))
    return _merge_groups(boxes, scores, classes, leader)


def nmm(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    classes: torch.Tensor | None = None,
    *,
    metric: str = "iou",
    threshold: float = 0.5,
    class_agnostic: bool = False,
    size_aware: bool = False,
) -> Detections:
    """Non-maximum merging: boxes linked by a chain of matches become one box.

    Each connected group of the match graph becomes its union box with its
    best score and the class of its first box in visit order (the order
    only picks that class and the output order). Arguments are those of
    :func:`nms`.

    Returns:
        The merged detections, in visit order of each group's first box.

    Example:
        >>> chain = torch.tensor([[0.0, 0.0, 4.0, 4.0], [2.0, 0.0, 6.0, 4.0], [4.0, 0.0, 8.0, 4.0]])
        >>> nmm(chain, torch.tensor([0.9, 0.8, 0.7]), threshold=0.3).boxes.tolist()
        [[0.0, 0.0, 8.0, 4.0]]
    """
    _, boxes, scores, classes, groups = _in_visit_order(
        boxes, scores, classes, metric, threshold, class_agnostic, size_aware
    )
    return _merge_groups(boxes, scores, classes, _connected(boxes, groups, metric, float(threshold)))


def merge_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    classes: torch.Tensor | None = None,
    *,
    method: str = "greedy_nmm",
    metric: str = "ios",
    threshold: float = 0.5,
    class_agnostic: bool = False,
    size_aware: bool = False,
) -> Detections:
    """Reduce overlapping detections to one per object, with :func:`nms`, :func:`greedy_nmm` or :func:`nmm`.

    The defaults (greedy NMM over IoS) are SAHI's for sliced inference.

    Args:
        boxes: ``(N, 4)`` or ``(N, 6)`` boxes.
        scores: ``(N,)`` confidences.
        classes: ``(N,)`` integer classes; ``None`` for one class.
        method: ``'nms'``, ``'greedy_nmm'`` or ``'nmm'``.
        metric: ``'iou'`` or ``'ios'``.
        threshold: Boxes match when their overlap is above this, in ``[0, 1]``.
        class_agnostic: Let boxes of different classes match.
        size_aware: Visit the largest boxes first (see :func:`nms`).

    Example:
        >>> boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 2.0, 4.0]])
        >>> merge_detections(boxes, torch.tensor([0.6, 0.9]), method='nms').boxes.tolist()
        [[0.0, 0.0, 2.0, 4.0]]
        >>> merge_detections(boxes, torch.tensor([0.6, 0.9]), method='nms', size_aware=True).boxes.tolist()
        [[0.0, 0.0, 4.0, 4.0]]
    """
    check_merge_options(method, metric, threshold)
    if method == "nms":
        boxes, scores, classes = check_detections(boxes, scores, classes)
        keep = nms(
            boxes,
            scores,
            classes,
            metric=metric,
            threshold=threshold,
            class_agnostic=class_agnostic,
            size_aware=size_aware,
        )
        return Detections(boxes[keep], scores[keep], classes[keep])
    merge = greedy_nmm if method == "greedy_nmm" else nmm
    return merge(
        boxes, scores, classes, metric=metric, threshold=threshold, class_agnostic=class_agnostic, size_aware=size_aware
    )


__all__ = ["METHODS", "Detections", "check_merge_options", "greedy_nmm", "merge_detections", "nmm", "nms"]
