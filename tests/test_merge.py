"""merge: IoU/IoS by hand, NMS, greedy NMM and NMM against plain reference loops."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch.inference.merge import (
    Detections,
    algorithms,
    box_ios,
    box_iou,
    greedy_nmm,
    matching_pairs,
    merge_detections,
    nmm,
    nms,
    pairs,
)


def tensor(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# Overlaps ------------------------------------------------------------------------


def test_iou_and_ios_of_2d_boxes_computed_by_hand() -> None:
    a = tensor([0, 0, 4, 4])
    b = tensor([2, 2, 6, 6], [0, 0, 4, 4], [4, 0, 8, 4], [1, 1, 2, 3], [10, 10, 11, 11])
    # intersections 4, 16, 0 (touching), 2, 0; areas 16, 16, 16, 2, 1
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[4 / 28, 1.0, 0.0, 2 / 16, 0.0]]))
    torch.testing.assert_close(box_ios(a, b), torch.tensor([[4 / 16, 1.0, 0.0, 1.0, 0.0]]))


def test_iou_and_ios_of_3d_boxes_computed_by_hand() -> None:
    a = tensor([0, 0, 0, 2, 2, 2])
    b = tensor([1, 1, 1, 3, 3, 3], [0, 0, 0, 1, 1, 1], [0, 0, 1, 2, 2, 4])
    # intersections 1, 1, 4; volumes 8, 1, 12
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[1 / 15, 1 / 8, 4 / 16]]))
    torch.testing.assert_close(box_ios(a, b), torch.tensor([[1 / 8, 1.0, 4 / 8]]))


def test_overlap_matrices_are_pairwise_and_symmetric() -> None:
    a = tensor([0, 0, 4, 4], [1, 1, 3, 5])
    b = tensor([2, 2, 6, 6], [0, 0, 1, 1], [0, 0, 4, 4])
    assert box_iou(a, b).shape == (2, 3)
    torch.testing.assert_close(box_iou(a, b), box_iou(b, a).T)
    torch.testing.assert_close(box_ios(a, b), box_ios(b, a).T)


def test_an_empty_box_overlaps_nothing() -> None:
    empty = tensor([1, 1, 1, 3])
    whole = tensor([0, 0, 4, 4])
    assert box_iou(empty, whole).item() == 0.0
    assert box_ios(empty, whole).item() == 0.0
    assert box_ios(empty, empty).item() == 0.0


def test_integer_boxes_are_accepted_and_float64_is_kept() -> None:
    assert box_iou(torch.tensor([[0, 0, 2, 2]]), torch.tensor([[0, 0, 2, 1]])).item() == 0.5
    assert box_iou(tensor([0, 0, 2, 2]).double(), tensor([0, 0, 2, 1]).double()).dtype == torch.float64


# NMS -------------------------------------------------------------------------------


def test_nms_keeps_the_highest_score_of_overlapping_boxes() -> None:
    boxes = tensor([0, 0, 4, 4], [0, 1, 4, 5], [0, 0, 4, 4], [20, 20, 24, 24])
    keep = nms(boxes, torch.tensor([0.5, 0.9, 0.7, 0.1]))
    assert keep.tolist() == [1, 3]  # 1 beats 0 (IoU 12/20) and 2, which equals 0
    assert keep.dtype == torch.int64


def test_nms_is_class_aware_unless_class_agnostic() -> None:
    boxes = tensor([0, 0, 4, 4], [0, 0, 4, 4])
    scores, classes = torch.tensor([0.9, 0.8]), torch.tensor([0, 1])
    assert nms(boxes, scores, classes).tolist() == [0, 1]
    assert nms(boxes, scores, classes, class_agnostic=True).tolist() == [0]
    assert nms(boxes, scores).tolist() == [0]  # no classes: one class


def test_nms_suppresses_only_above_the_threshold() -> None:
    boxes = tensor([0, 0, 4, 4], [0, 0, 4, 2])  # IoU exactly 0.5, IoS 1
    scores = torch.tensor([0.9, 0.8])
    assert nms(boxes, scores, threshold=0.5).tolist() == [0, 1]
    assert nms(boxes, scores, threshold=0.49).tolist() == [0]
    assert nms(boxes, scores, threshold=0.5, metric="ios").tolist() == [0]
    assert nms(boxes, scores, threshold=1.0, metric="ios").tolist() == [0, 1]


def test_nms_with_ios_suppresses_a_fragment_inside_a_box() -> None:
    boxes = tensor([0, 0, 10, 10], [0, 0, 2, 10])  # IoU 0.2, IoS 1
    scores = torch.tensor([0.9, 0.8])
    assert nms(boxes, scores, metric="iou").tolist() == [0, 1]
    assert nms(boxes, scores, metric="ios").tolist() == [0]


def test_nms_along_a_chain_keeps_every_other_box() -> None:
    # Box n covers [n, n + 2): IoU 1/3 with its neighbours, 0 with the rest; scores decrease.
    count = 301
    starts = torch.arange(count, dtype=torch.float32)
    boxes = torch.stack([starts, torch.zeros(count), starts + 2, torch.ones(count)], 1)
    scores = torch.linspace(1, 0, count)
    assert nms(boxes, scores, threshold=0.3).tolist() == list(range(0, count, 2))


def test_size_aware_visits_the_largest_box_first() -> None:
    boxes = tensor([0, 0, 2, 2], [0, 0, 8, 8], [0, 0, 4, 4])
    scores = torch.tensor([0.9, 0.5, 0.7])
    assert nms(boxes, scores, metric="ios").tolist() == [0]
    assert nms(boxes, scores, metric="ios", size_aware=True).tolist() == [1]
    # Equal sizes fall back to the score.
    twins = tensor([0, 0, 4, 4], [1, 0, 5, 4])
    assert nms(twins, torch.tensor([0.2, 0.6]), size_aware=True).tolist() == [1]


def test_nms_of_no_box_and_of_one_box() -> None:
    assert nms(torch.zeros(0, 6), torch.zeros(0)).tolist() == []
    assert nms(tensor([0, 0, 1, 1]), torch.tensor([0.3])).tolist() == [0]


# Merging ---------------------------------------------------------------------------


def test_greedy_nmm_merges_into_the_union_box_with_the_best_score() -> None:
    # B (best) matches A and C (IoU 0.6 each); the union of the three is (0, 0, 5, 5).
    boxes = tensor([0, 0, 4, 4], [1, 0, 5, 4], [1, 1, 5, 5], [20, 20, 22, 22])
    scores = torch.tensor([0.5, 0.75, 0.25, 0.125])
    classes = torch.tensor([3, 3, 3, 1])
    merged = greedy_nmm(boxes, scores, classes, threshold=0.5)
    assert merged.boxes.tolist() == [[0, 0, 5, 5], [20, 20, 22, 22]]
    assert merged.scores.tolist() == [0.75, 0.125]
    assert merged.classes.tolist() == [3, 1]


def test_greedy_nmm_class_agnostic_takes_the_class_of_the_kept_box() -> None:
    boxes = tensor([0, 0, 4, 4], [0, 0, 4, 3])
    merged = greedy_nmm(boxes, torch.tensor([0.25, 0.5]), torch.tensor([7, 2]), class_agnostic=True)
    assert merged.boxes.tolist() == [[0, 0, 4, 4]]
    assert merged.classes.tolist() == [2]


def test_nmm_merges_a_chain_transitively_and_greedy_nmm_does_not() -> None:
    # A ~ B and B ~ C (IoU 1/3), A and C do not touch.
    chain = tensor([0, 0, 4, 4], [2, 0, 6, 4], [4, 0, 8, 4])
    scores = torch.tensor([0.75, 0.5, 0.25])
    transitive = nmm(chain, scores, threshold=0.3)
    assert transitive.boxes.tolist() == [[0, 0, 8, 4]]
    assert transitive.scores.tolist() == [0.75]
    greedy = greedy_nmm(chain, scores, threshold=0.3)
    assert greedy.boxes.tolist() == [[0, 0, 6, 4], [4, 0, 8, 4]]
    assert greedy.scores.tolist() == [0.75, 0.25]


def test_greedy_nmm_joins_a_box_to_the_first_kept_box_it_matches() -> None:
    # C matches both kept boxes A and B; B is visited first, so C joins B.
    boxes = tensor([0, 0, 4, 4], [4, 0, 8, 4], [2, 0, 6, 4])
    merged = greedy_nmm(boxes, torch.tensor([0.5, 0.75, 0.25]), threshold=0.3)
    assert merged.boxes.tolist() == [[2, 0, 8, 4], [0, 0, 4, 4]]


def test_merge_detections_dispatches_to_each_method() -> None:
    chain = tensor([0, 0, 4, 4], [2, 0, 6, 4], [4, 0, 8, 4])
    scores = torch.tensor([0.75, 0.5, 0.25])
    kept = merge_detections(chain, scores, method="nms", metric="iou", threshold=0.3)
    assert isinstance(kept, Detections)
    assert kept.boxes.tolist() == [[0, 0, 4, 4], [4, 0, 8, 4]]
    assert len(merge_detections(chain, scores, method="greedy_nmm", metric="iou", threshold=0.3)) == 2
    assert len(merge_detections(chain, scores, method="nmm", metric="iou", threshold=0.3)) == 1


def test_merging_3d_boxes() -> None:
    boxes = tensor([0, 0, 0, 4, 4, 4], [0, 0, 1, 4, 4, 5], [9, 9, 9, 10, 10, 10])
    merged = merge_detections(boxes, torch.tensor([0.5, 0.25, 1.0]), method="greedy_nmm", metric="iou")
    assert merged.boxes.tolist() == [[9, 9, 9, 10, 10, 10], [0, 0, 0, 4, 4, 5]]


def test_thousands_of_copies_of_one_object_merge_into_one_box() -> None:
    generator = torch.Generator().manual_seed(0)
    starts = torch.randint(0, 5, (1500, 3), generator=generator).float()
    boxes = torch.cat([starts, starts + 40], 1)
    scores = torch.rand(1500, generator=generator)
    assert nms(boxes, scores).tolist() == [int(scores.argmax())]
    for merge_method in (greedy_nmm, nmm):
        merged = merge_method(boxes, scores)
        assert merged.boxes.tolist() == [[0, 0, 0, 44, 44, 44]]
        assert merged.scores.tolist() == [scores.max().item()]


def test_merging_no_box_gives_no_detection() -> None:
    merged = nmm(torch.zeros(0, 4), torch.zeros(0))
    assert len(merged) == 0
    assert merged.boxes.shape == (0, 4)


# Against plain loops on random boxes, with tiny blocks -----------------------------------


def reference_order(boxes: torch.Tensor, scores: torch.Tensor, size_aware: bool) -> list[int]:
    half = boxes.shape[1] // 2
    sizes = (boxes[:, half:] - boxes[:, :half]).prod(1).tolist()
    values = scores.tolist()
    if size_aware:
        return sorted(range(len(values)), key=lambda n: (-sizes[n], -values[n], n))
    return sorted(range(len(values)), key=lambda n: (-values[n], n))


def reference_matches(boxes, classes, threshold, metric, class_agnostic) -> list[list[bool]]:
    # Compared in the boxes' dtype, as the merges do (0.2 in float32 is not above 0.2).
    above = ((box_iou if metric == "iou" else box_ios)(boxes, boxes) > threshold).tolist()
    labels = classes.tolist()
    count = len(labels)
    return [
        [p != q and above[p][q] and (class_agnostic or labels[p] == labels[q]) for q in range(count)]
        for p in range(count)
    ]


def reference_groups(boxes, scores, classes, threshold, metric, class_agnostic, size_aware, method):
    """Lists of box indices, leader first, leaders in visit order: one Python step per pair."""
    order = reference_order(boxes, scores, size_aware)
    match = reference_matches(boxes, classes, threshold, metric, class_agnostic)
    if method == "nmm":
        leader = {n: n for n in order}

        def find(n: int) -> int:
            while leader[n] != n:
                n = leader[n]
            return n

        rank = {n: r for r, n in enumerate(order)}
        for p in order:
            for q in order:
                if match[p][q]:
                    a, b = find(p), find(q)
                    if a != b:
                        leader[max(a, b, key=rank.get)] = min(a, b, key=rank.get)
        groups: dict[int, list[int]] = {}
        for n in order:
            groups.setdefault(find(n), []).append(n)
        return list(groups.values())
    done: set[int] = set()
    result = []
    for position, p in enumerate(order):
        if p in done:
            continue
        done.add(p)
        group = [p]
        for q in order[position + 1 :]:
            if q not in done and match[p][q]:
                group.append(q)
                done.add(q)
        result.append(group)
    return result


@st.composite
def scenes(draw):
    dims = draw(st.sampled_from([2, 3]))
    count = draw(st.integers(0, 24))
    starts = draw(st.lists(st.lists(st.integers(0, 12), min_size=dims, max_size=dims), min_size=count, max_size=count))
    sizes = draw(st.lists(st.lists(st.integers(0, 6), min_size=dims, max_size=dims), min_size=count, max_size=count))
    scores = draw(st.lists(st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]), min_size=count, max_size=count))
    classes = draw(st.lists(st.integers(0, 2), min_size=count, max_size=count))
    boxes = torch.tensor([[*s, *(a + b for a, b in zip(s, z))] for s, z in zip(starts, sizes)], dtype=torch.float32)
    return (
        boxes.reshape(count, 2 * dims),
        torch.tensor(scores).reshape(count),
        torch.tensor(classes, dtype=torch.int64).reshape(count),
    )


@settings(max_examples=60, deadline=None)
@given(
    scene=scenes(),
    threshold=st.sampled_from([0.0, 0.2, 0.5]),
    metric=st.sampled_from(["iou", "ios"]),
    class_agnostic=st.booleans(),
    size_aware=st.booleans(),
    block=st.sampled_from([1, 7, 2**20]),
    rank_block=st.sampled_from([(1, 1), (1, 4), (256, 16384)]),
    edge_limit=st.sampled_from([0, 3, 2**20]),
)
def test_blocked_merges_equal_plain_loops_over_the_full_matrix(
    scene, threshold, metric, class_agnostic, size_aware, block, rank_block, edge_limit
) -> None:
    boxes, scores, classes = scene
    options = {"threshold": threshold, "metric": metric, "class_agnostic": class_agnostic, "size_aware": size_aware}
    saved = pairs._BLOCK_ELEMENTS, algorithms._RANK_BLOCK, algorithms._EDGE_LIMIT
    pairs._BLOCK_ELEMENTS, algorithms._RANK_BLOCK, algorithms._EDGE_LIMIT = block, rank_block, edge_limit
    try:
        kept = nms(boxes, scores, classes, **options).tolist()
        greedy = greedy_nmm(boxes, scores, classes, **options)
        transitive = nmm(boxes, scores, classes, **options)
    finally:
        pairs._BLOCK_ELEMENTS, algorithms._RANK_BLOCK, algorithms._EDGE_LIMIT = saved
    args = (boxes, scores, classes, threshold, metric, class_agnostic, size_aware)
    greedy_groups = reference_groups(*args, "greedy_nmm")
    assert kept == [group[0] for group in greedy_groups]
    for merged, method in ((greedy, "greedy_nmm"), (transitive, "nmm")):
        groups = reference_groups(*args, method)
        half = boxes.shape[1] // 2
        expected = [[*boxes[group, :half].amin(0).tolist(), *boxes[group, half:].amax(0).tolist()] for group in groups]
        assert merged.boxes.tolist() == expected
        assert merged.scores.tolist() == [scores[group].max().item() for group in groups]
        assert merged.classes.tolist() == [classes[group[0]].item() for group in groups]


@pytest.mark.parametrize("metric", ["iou", "ios"])
def test_matching_pairs_are_the_pairs_of_the_full_matrix_above_the_threshold(metric: str) -> None:
    generator = torch.Generator().manual_seed(3)
    starts = torch.randint(0, 40, (300, 3), generator=generator).float()
    boxes = torch.cat([starts, starts + torch.randint(1, 12, (300, 3), generator=generator)], 1)
    classes = torch.randint(0, 3, (300,), generator=generator)
    first, second = matching_pairs(boxes, classes, threshold=0.1, metric=metric)
    found = {(min(p, q), max(p, q)) for p, q in zip(first.tolist(), second.tolist())}
    assert len(found) == len(first)  # each pair once
    matrix = (box_iou if metric == "iou" else box_ios)(boxes, boxes) > 0.1
    matrix &= classes[:, None] == classes[None, :]
    expected = {(p, q) for p, q in matrix.nonzero().tolist() if p < q}
    assert found == expected and len(expected) > 30


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_merges_run_on_cuda_and_match_the_cpu() -> None:
    generator = torch.Generator().manual_seed(0)
    starts = torch.rand(3000, 3, generator=generator) * 200
    boxes = torch.cat([starts, starts + 4 + torch.rand(3000, 3, generator=generator) * 20], 1)
    scores, classes = torch.rand(3000, generator=generator), torch.randint(0, 4, (3000,), generator=generator)
    for method in ("nms", "greedy_nmm", "nmm"):
        cpu = merge_detections(boxes, scores, classes, method=method)
        gpu = merge_detections(boxes.cuda(), scores.cuda(), classes.cuda(), method=method)
        assert gpu.boxes.is_cuda
        torch.testing.assert_close(gpu.boxes.cpu(), cpu.boxes)
        torch.testing.assert_close(gpu.classes.cpu(), cpu.classes)


# Errors --------------------------------------------------------------------------


def test_bad_method_metric_and_threshold_are_named() -> None:
    boxes, scores = tensor([0, 0, 1, 1]), torch.tensor([0.5])
    with pytest.raises(ValueError, match=r"method must be one of .* got 'soft_nms'"):
        merge_detections(boxes, scores, method="soft_nms")
    with pytest.raises(ValueError, match=r"metric must be 'iou' .* got 'giou'"):
        nms(boxes, scores, metric="giou")
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\], got 1.5"):
        greedy_nmm(boxes, scores, threshold=1.5)
    with pytest.raises(ValueError, match=r"threshold must be in"):
        nmm(boxes, scores, threshold=-0.1)
    with pytest.raises(TypeError, match=r"threshold must be a number"):
        nms(boxes, scores, threshold=True)


def test_boxes_of_a_wrong_shape_or_inverted_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\(N, 4\) for 2D boxes .* got \(2, 5\)"):
        nms(torch.zeros(2, 5), torch.zeros(2))
    with pytest.raises(ValueError, match=r"boxes\[1\] = \[2.0, 0.0, 1.0, 1.0\] ends before it starts"):
        nms(tensor([0, 0, 1, 1], [2, 0, 1, 1]), torch.zeros(2))
    with pytest.raises(ValueError, match=r"NaN or infinite"):
        nms(tensor([0, 0, float("nan"), 1]), torch.zeros(1))
    with pytest.raises(TypeError, match=r"boxes must be a torch.Tensor, got list"):
        nms([[0, 0, 1, 1]], torch.zeros(1))
    with pytest.raises(ValueError, match=r"must both be 2D \(N, 4\) or both 3D \(N, 6\)"):
        box_iou(torch.zeros(1, 4), torch.zeros(1, 6))


def test_scores_and_classes_must_match_the_boxes() -> None:
    boxes = tensor([0, 0, 1, 1], [0, 0, 2, 2])
    with pytest.raises(ValueError, match=r"scores must have shape \(2,\)"):
        nms(boxes, torch.zeros(3))
    with pytest.raises(ValueError, match=r"classes must have shape \(2,\)"):
        nms(boxes, torch.zeros(2), torch.zeros(1, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"scores hold NaN"):
        nms(boxes, torch.tensor([0.5, float("nan")]))
    with pytest.raises(TypeError, match=r"classes must hold integers, got torch.float32"):
        nms(boxes, torch.zeros(2), torch.zeros(2))
