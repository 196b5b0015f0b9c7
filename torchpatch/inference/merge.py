"""Merging overlapping detections: NMS, greedy NMM and NMM, over IoU or IoS.

Sliced inference sees an object once in every patch that holds it, so its
box comes back several times. These functions reduce such copies to one box
per object. Boxes are in voxel coordinates and half-open, like patch
locations: ``(i0, j0, i1, j1)`` in 2D, ``(i0, j0, k0, i1, j1, k1)`` in 3D.

Boxes are visited best first (highest score; with ``size_aware``, largest
first). Two boxes *match* when their overlap is above ``threshold`` (and
they share a class, unless ``class_agnostic``)::

    nms         a visited box is kept unless it matches a kept box
    greedy_nmm  the boxes nms keeps absorb the boxes they suppress, in one
                pass: each suppressed box joins the first kept box it
                matches; a group becomes its union box and its best score
    nmm         groups are the connected parts of the match graph, so
                A ~ B ~ C merge into one box even if A and C do not match

The overlap is ``'iou'`` (intersection over union) or ``'ios'``
(intersection over the smaller box's area or volume): a fragment inside a
whole box has IoS 1 but a small IoU.

Finding matching pairs is the hot path: 10 000 boxes make 5e7 pairs, most
of them far apart. Boxes are sorted by class, then by ``i0``; a box can only
meet the boxes after it that start before it ends along ``i``, so only those
candidate pairs are measured, a block of them at a time (see
:func:`matching_pairs`), and a sparse scene costs about ``O(N log N)``.
The greedy decisions run a block of ranks at a time as a few tensor passes
(see ``_suppress``), not as one Python step per box; pairs involving a box
already suppressed (NMS) or already joined (NMM) are dropped, so memory
stays bounded even when thousands of boxes cover one object.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Real
from typing import Any

import torch

from ..annotations import BoundingBoxes

#: Merging methods accepted by :func:`merge_detections`.
METHODS = ("nms", "greedy_nmm", "nmm")
#: Overlap measures: intersection over union, intersection over the smaller box.
METRICS = ("iou", "ios")

# Candidate pairs measured at once when finding matches: the temporaries of
# 2**20 pairs take about 100 MB.
_BLOCK_ELEMENTS = 2**20
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


def check_merge_options(method: str | None, metric: str, threshold: float) -> None:
    """Check a merging method (``None`` allowed: no merging), metric and threshold.

    Example:
        >>> check_merge_options('nmm', 'ios', 0.5)
    """
    if method is not None and method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be 'iou' (intersection over union) or 'ios' (over smaller), got {metric!r}")
    if not isinstance(threshold, Real) or isinstance(threshold, bool):
        raise TypeError(f"threshold must be a number in [0, 1], got {type(threshold).__name__} {threshold!r}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")


def _check_inputs(
    boxes: Any, scores: Any, classes: Any, metric: str, threshold: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    check_merge_options(None, metric, threshold)
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


def _sizes(boxes: torch.Tensor) -> torch.Tensor:
    half = boxes.shape[1] // 2
    return (boxes[:, half:] - boxes[:, :half]).prod(1)


def _overlap(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """IoU or IoS of boxes ``a`` and ``b`` broadcast against each other (last axis: coordinates)."""
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
    return _overlap(a[:, None], b[None], "iou")


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
    return _overlap(a[:, None], b[None], "ios")


def matching_pairs(
    boxes: torch.Tensor,
    classes: torch.Tensor | None = None,
    threshold: float = 0.5,
    metric: str = "iou",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pair of boxes of one class whose overlap is above ``threshold``, without the N x N matrix.

    Boxes are sorted by class, then by ``i0``; a box can only meet the boxes
    after it that start before it ends along ``i``, so only those candidate
    pairs are measured, a bounded number at a time.

    Args:
        boxes: ``(N, 4)`` or ``(N, 6)`` boxes.
        classes: ``(N,)`` integer classes; ``None`` for one class.
        threshold: Pairs overlap above this, in ``[0, 1]``.
        metric: ``'iou'`` or ``'ios'``.

    Returns:
        Two int64 tensors ``(first, second)``: box ``first[n]`` matches box
        ``second[n]``; each unordered pair appears once, in no set order.

    Example:
        >>> boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [20.0, 0.0, 24.0, 4.0], [1.0, 0.0, 4.0, 4.0]])
        >>> first, second = matching_pairs(boxes, threshold=0.5)
        >>> sorted(zip(first.tolist(), second.tolist()))
        [(0, 2)]
    """
    boxes = check_boxes(boxes)
    boxes, _, classes = _check_inputs(boxes, boxes.new_zeros(boxes.shape[0]), classes, metric, threshold)
    return _pairs(boxes, classes, float(threshold), metric)


class _Sweep:
    """Candidate pairs: boxes of one group that overlap along ``i`` and ``j``, a block at a time.

    Boxes are sorted by group, then by ``i0`` (one key: group ``g`` occupies
    ``[g * span, (g + 1) * span)``). Sorted box ``p`` can only meet sorted
    boxes ``p + 1 .. reach[p] - 1``, those that start before it ends.
    """

    def __init__(self, boxes: torch.Tensor, groups: torch.Tensor) -> None:
        self.count = count = boxes.shape[0]
        self.order = torch.arange(count, device=boxes.device)
        self.ordered = boxes
        if count < 2:
            return
        half = boxes.shape[1] // 2
        _, group = torch.unique(groups, return_inverse=True)
        start, end = boxes[:, 0].double(), boxes[:, half].double()
        origin = start.min()
        span = float(end.max() - origin) + 1.0
        key_start, self.order = torch.sort(group.double() * span + start - origin, stable=True)
        key_end = (group.double() * span + end - origin)[self.order]
        self.ordered, self.group = boxes[self.order], group[self.order]
        self.starts_j, self.ends_j = self.ordered[:, 1].contiguous(), self.ordered[:, half + 1].contiguous()
        self.rows = torch.arange(count, device=boxes.device)
        self.candidates = (torch.searchsorted(key_start, key_end) - self.rows - 1).clamp_(min=0)
        self.ends = self.candidates.cumsum(0)

    def chunks(self, side: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Sorted positions ``(p, q)``, ``p < q``, at most about ``_BLOCK_ELEMENTS`` pairs at a time.

        With ``side`` (a bool per box, in input order), only pairs across the two sides.
        """
        if side is not None and self.count > 1:
            side = side[self.order]
        row = 0
        while row < self.count - 1:
            # Rows whose candidates fit in one block (at least one row).
            done = int(self.ends[row - 1]) if row else 0
            limit = self.ends.new_tensor([done + _BLOCK_ELEMENTS])
            stop = max(row + 1, int(torch.searchsorted(self.ends, limit, right=True)))
            total = int(self.ends[stop - 1]) - done
            if total:
                counts = self.candidates[row:stop]
                p = torch.repeat_interleave(self.rows[row:stop], counts, output_size=total)
                q = p + 1 + torch.arange(total, device=p.device)
                q -= torch.repeat_interleave(self.ends[row:stop] - counts - done, counts, output_size=total)
                # Cheap tests first (one more axis, the group) before gathering whole boxes.
                near = (self.group[p] == self.group[q]) & (self.starts_j[q] < self.ends_j[p])
                near &= self.starts_j[p] < self.ends_j[q]
                if side is not None:
                    near &= side[p] != side[q]
                yield p[near], q[near]
            row = stop


def _pairs(
    boxes: torch.Tensor, groups: torch.Tensor, threshold: float, metric: str, side: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`matching_pairs` on checked inputs (only pairs across ``side``, if given)."""
    pairs = _pairs_up_to(boxes, groups, threshold, metric, side)
    assert pairs is not None
    return pairs


def _pairs_up_to(
    boxes: torch.Tensor,
    groups: torch.Tensor,
    threshold: float,
    metric: str,
    side: torch.Tensor | None = None,
    limit: float = float("inf"),
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """:func:`_pairs`, or ``None`` as soon as there are more than ``limit`` pairs."""
    sweep = _Sweep(boxes, groups)
    firsts = [torch.zeros(0, dtype=torch.int64, device=boxes.device)]
    seconds = [firsts[0]]
    found = 0
    for p, q in sweep.chunks(side):
        hit = _overlap(sweep.ordered[p], sweep.ordered[q], metric) > threshold
        firsts.append(sweep.order[p[hit]])
        seconds.append(sweep.order[q[hit]])
        found += firsts[-1].numel()
        if found > limit:
            return None
    return torch.cat(firsts), torch.cat(seconds)


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


def _cross_pairs(
    boxes: torch.Tensor, groups: torch.Tensor, kept: torch.Tensor, ranks: torch.Tensor, threshold: float, metric: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Matching pairs ``(k, r)`` with ``k`` in ``kept`` and ``r`` in ``ranks``."""
    if kept.numel() * ranks.numel() <= _BLOCK_ELEMENTS:  # few boxes kept (a dense scene): the plain matrix
        hit = _overlap(boxes[kept][:, None], boxes[ranks][None], metric) > threshold
        hit &= groups[kept][:, None] == groups[ranks][None]
        k, r = hit.nonzero(as_tuple=True)
        return kept[k], ranks[r]
    members = torch.cat([kept, ranks])
    side = torch.cat([torch.zeros_like(kept, dtype=torch.bool), torch.ones_like(ranks, dtype=torch.bool)])
    p, q = _pairs(boxes[members], groups[members], threshold, metric, side)
    return members[torch.minimum(p, q)], members[torch.maximum(p, q)]


def _greedy(
    boxes: torch.Tensor, groups: torch.Tensor, threshold: float, metric: str
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
            src, dst = _cross_pairs(boxes, groups, survivors, rest, threshold, metric)
            state[dst] = _SUPPRESSED
            leader.scatter_reduce_(0, dst, src, reduce="amin")
        undecided = rest[state[first:] == _UNDECIDED]
        pairs = None
        if first:  # not on the first block: in a dense scene "all the rest" is far too many pairs
            pairs = _pairs_up_to(boxes[undecided], groups[undecided], threshold, metric, limit=_EDGE_LIMIT)
        stop = count if pairs is not None else min(count, first + block)
        if pairs is None:
            undecided = undecided[undecided < stop]
            pairs = _pairs(boxes[undecided], groups[undecided], threshold, metric)
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


def _connected(boxes: torch.Tensor, groups: torch.Tensor, threshold: float, metric: str) -> torch.Tensor:
    """For boxes in visit order, the first box of each box's connected group of matches.

    Pairs are joined block by block and not kept; a pair already in one
    group is not measured, so a dense scene costs little more than a sparse one.
    """
    sweep = _Sweep(boxes, groups)
    label = torch.arange(boxes.shape[0], device=boxes.device)
    for p, q in sweep.chunks():
        p, q = sweep.order[p], sweep.order[q]
        apart = label[p] != label[q]
        p, q = p[apart], q[apart]
        hit = _overlap(boxes[p], boxes[q], metric) > threshold
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
    boxes: Any, scores: Any, classes: Any, threshold: float, metric: str, class_agnostic: bool, size_aware: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checked inputs sorted best first: order, boxes, scores, classes and matching groups."""
    boxes, scores, classes = _check_inputs(boxes, scores, classes, metric, threshold)
    order = torch.sort(scores, descending=True, stable=True).indices
    if size_aware:
        order = order[torch.sort(_sizes(boxes)[order], descending=True, stable=True).indices]
    groups = torch.zeros_like(classes) if class_agnostic else classes
    return order, boxes[order], scores[order], classes[order], groups[order]


def nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    classes: torch.Tensor | None = None,
    threshold: float = 0.5,
    metric: str = "iou",
    class_agnostic: bool = False,
    size_aware: bool = False,
) -> torch.Tensor:
    """Non-maximum suppression: drop every box that matches a better kept box.

    Args:
        boxes: ``(N, 4)`` or ``(N, 6)`` boxes.
        scores: ``(N,)`` confidences.
        classes: ``(N,)`` integer classes; ``None`` for one class.
        threshold: Boxes match when their overlap is above this, in ``[0, 1]``.
        metric: ``'iou'`` or ``'ios'`` (intersection over the smaller box).
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
    order, boxes, _, _, groups = _in_visit_order(boxes, scores, classes, threshold, metric, class_agnostic, size_aware)
    kept, _ = _greedy(boxes, groups, float(threshold), metric)
    return order[kept]


def greedy_nmm(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    classes: torch.Tensor | None = None,
    threshold: float = 0.5,
    metric: str = "iou",
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
        boxes, scores, classes, threshold, metric, class_agnostic, size_aware
    )
    _, leader = _greedy(boxes, groups, float(threshold), metric)
    return _merge_groups(boxes, scores, classes, leader)


def nmm(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    classes: torch.Tensor | None = None,
    threshold: float = 0.5,
    metric: str = "iou",
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
        boxes, scores, classes, threshold, metric, class_agnostic, size_aware
    )
    return _merge_groups(boxes, scores, classes, _connected(boxes, groups, float(threshold), metric))


def merge_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    classes: torch.Tensor | None = None,
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
        boxes, scores, classes = _check_inputs(boxes, scores, classes, metric, threshold)
        keep = nms(boxes, scores, classes, threshold, metric, class_agnostic, size_aware)
        return Detections(boxes[keep], scores[keep], classes[keep])
    merge = greedy_nmm if method == "greedy_nmm" else nmm
    return merge(boxes, scores, classes, threshold, metric, class_agnostic, size_aware)


__all__ = [
    "METHODS",
    "METRICS",
    "Detections",
    "box_ios",
    "box_iou",
    "check_boxes",
    "check_merge_options",
    "greedy_nmm",
    "matching_pairs",
    "merge_detections",
    "nmm",
    "nms",
]
