"""Finding the pairs of boxes that match, without the N x N matrix.

Finding matching pairs is the hot path of every merge: 10 000 boxes make
5e7 pairs, most of them far apart. Boxes are sorted by class, then by
``i0``; a box can only meet the boxes after it that start before it ends
along ``i``, so only those candidate pairs are measured, a block of them at
a time (``Sweep``), and a sparse scene costs about ``O(N log N)``.

``Sweep``, ``find_pairs``, ``pairs_up_to`` and
``cross_pairs`` work on checked inputs for
:mod:`~torchpatch.inference.merge.algorithms`; they are public so it can
import them, but are not in ``__all__``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .boxes import check_boxes, check_detections, check_overlap_options, overlap

# Candidate pairs measured at once when finding matches: the temporaries of
# 2**20 pairs take about 100 MB.
_BLOCK_ELEMENTS = 2**20


def matching_pairs(
    boxes: torch.Tensor,
    classes: torch.Tensor | None = None,
    *,
    metric: str = "iou",
    threshold: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pair of boxes of one class whose overlap is above ``threshold``, without the N x N matrix.

    Boxes are sorted by class, then by ``i0``; a box can only meet the boxes
    after it that start before it ends along ``i``, so only those candidate
    pairs are measured, a bounded number at a time.

    Args:
        boxes: ``(N, 4)`` or ``(N, 6)`` boxes.
        classes: ``(N,)`` integer classes; ``None`` for one class.
        metric: ``'iou'`` or ``'ios'``.
        threshold: Pairs overlap above this, in ``[0, 1]``.

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
    check_overlap_options(metric, threshold)
    boxes, _, classes = check_detections(boxes, boxes.new_zeros(boxes.shape[0]), classes)
    return find_pairs(boxes, classes, metric, float(threshold))


class Sweep:
    """Candidate pairs: boxes of one group that overlap along ``i`` and ``j``, a block at a time.

    Boxes are sorted by group, then by ``i0`` (one key: group ``g`` occupies
    ``[g * span, (g + 1) * span)``). Sorted box ``p`` can only meet sorted
    boxes ``p + 1 .. reach[p] - 1``, those that start before it ends.

    Args:
        boxes: Checked ``(N, 4)`` or ``(N, 6)`` boxes.
        groups: ``(N,)`` int64 groups; boxes of different groups never pair.

    Example:
        >>> boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [20.0, 0.0, 24.0, 4.0], [1.0, 0.0, 4.0, 4.0]])
        >>> sweep = Sweep(boxes, torch.zeros(3, dtype=torch.int64))
        >>> [(sweep.order[p].tolist(), sweep.order[q].tolist()) for p, q in sweep.chunks()]
        [([0], [2])]
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

        Example:
            >>> boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 0.0, 4.0, 4.0], [2.0, 0.0, 4.0, 4.0]])
            >>> sweep = Sweep(boxes, torch.zeros(3, dtype=torch.int64))
            >>> [(p.tolist(), q.tolist()) for p, q in sweep.chunks(torch.tensor([False, True, True]))]
            [([0, 0], [1, 2])]
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


def find_pairs(
    boxes: torch.Tensor, groups: torch.Tensor, metric: str, threshold: float, side: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`matching_pairs` on checked inputs (only pairs across ``side``, if given).

    Example:
        >>> boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [20.0, 0.0, 24.0, 4.0], [1.0, 0.0, 4.0, 4.0]])
        >>> find_pairs(boxes, torch.zeros(3, dtype=torch.int64), 'iou', 0.5)
        (tensor([0]), tensor([2]))
    """
    pairs = pairs_up_to(boxes, groups, metric, threshold, side)
    assert pairs is not None
    return pairs


def pairs_up_to(
    boxes: torch.Tensor,
    groups: torch.Tensor,
    metric: str,
    threshold: float,
    side: torch.Tensor | None = None,
    limit: float = float("inf"),
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``find_pairs``, or ``None`` as soon as there are more than ``limit`` pairs.

    Example:
        >>> boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 0.0, 4.0, 4.0], [2.0, 0.0, 4.0, 4.0]])
        >>> groups = torch.zeros(3, dtype=torch.int64)
        >>> pairs_up_to(boxes, groups, 'ios', 0.5, limit=2) is None  # all three pairs match
        True
    """
    sweep = Sweep(boxes, groups)
    firsts = [torch.zeros(0, dtype=torch.int64, device=boxes.device)]
    seconds = [firsts[0]]
    found = 0
    for p, q in sweep.chunks(side):
        hit = overlap(sweep.ordered[p], sweep.ordered[q], metric) > threshold
        firsts.append(sweep.order[p[hit]])
        seconds.append(sweep.order[q[hit]])
        found += firsts[-1].numel()
        if found > limit:
            return None
    return torch.cat(firsts), torch.cat(seconds)


def cross_pairs(
    boxes: torch.Tensor, groups: torch.Tensor, kept: torch.Tensor, ranks: torch.Tensor, metric: str, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Matching pairs ``(k, r)`` with ``k`` in ``kept`` and ``r`` in ``ranks`` (indices into ``boxes``).

    Example:
        >>> boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 3.0], [1.0, 0.0, 4.0, 4.0]])
        >>> groups = torch.zeros(3, dtype=torch.int64)
        >>> cross_pairs(boxes, groups, torch.tensor([0]), torch.tensor([1, 2]), 'iou', 0.5)
        (tensor([0, 0]), tensor([1, 2]))
    """
    if kept.numel() * ranks.numel() <= _BLOCK_ELEMENTS:  # few boxes kept (a dense scene): the plain matrix
        hit = overlap(boxes[kept][:, None], boxes[ranks][None], metric) > threshold
        hit &= groups[kept][:, None] == groups[ranks][None]
        k, r = hit.nonzero(as_tuple=True)
        return kept[k], ranks[r]
    members = torch.cat([kept, ranks])
    side = torch.cat([torch.zeros_like(kept, dtype=torch.bool), torch.ones_like(ranks, dtype=torch.bool)])
    p, q = find_pairs(boxes[members], groups[members], metric, threshold, side)
    return members[torch.minimum(p, q)], members[torch.maximum(p, q)]


# Sweep, find_pairs, pairs_up_to and cross_pairs: shared with merge.algorithms, not API.
__all__ = ["matching_pairs"]
