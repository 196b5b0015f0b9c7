"""sliced_detection: grid, shifts, cut boxes, merging, and oracle scenes found exactly once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from torchpatch import ScalarImage
from torchpatch.inference.detection import parse_patch_overlap, patch_corners, sliced_detection
from torchpatch.inference.merge import Detections, box_iou

Oracle = Callable[[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]


# Scenes and their oracle -----------------------------------------------------------


def make_scene(shape: tuple[int, int, int], count: int, sizes: tuple[int, int], seed: int):
    """``count`` boxes with sides in ``sizes`` that do not overlap (they may touch), and their classes."""
    rng = np.random.default_rng(seed)
    dims = 2 if shape[2] == 1 else 3
    extent = np.asarray(shape[:dims])
    boxes: list[np.ndarray] = []
    while len(boxes) < count:
        side = rng.integers(sizes[0], sizes[1] + 1, size=dims)
        start = rng.integers(0, extent - side + 1)
        box = np.concatenate([start, start + side])
        if all(np.any((box[dims:] <= other[:dims]) | (other[dims:] <= box[:dims])) for other in boxes):
            boxes.append(box)
    classes = torch.from_numpy(rng.integers(0, 3, size=count))
    return torch.from_numpy(np.stack(boxes)).float(), classes


def coordinate_image(shape: tuple[int, int, int]) -> torch.Tensor:
    """Channels 0, 1, 2 hold each voxel's i, j, k, so a patch tells the oracle where it comes from."""
    return torch.stack(torch.meshgrid(*(torch.arange(s, dtype=torch.float32) for s in shape), indexing="ij"))


def make_oracle(boxes: torch.Tensor, classes: torch.Tensor, shape: tuple[int, int, int]) -> Oracle:
    """A perfect detector: the visible part of every ground-truth box, in patch coordinates.

    Scores are pseudo-random per patch, so no merge can rely on the whole
    copies scoring higher than the fragments.
    """
    dims = boxes.shape[1] // 2
    image_end = torch.tensor(shape[:dims], dtype=torch.float32)

    def oracle(batch: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        results = []
        for patch in batch:
            origin = patch[:dims, 0, 0, 0].round()
            end = torch.minimum(origin + torch.tensor(patch.shape[1 : 1 + dims]), image_end)
            start_visible = torch.maximum(boxes[:, :dims], origin)
            end_visible = torch.minimum(boxes[:, dims:], end)
            visible = (end_visible > start_visible).all(1)
            found = torch.cat([start_visible, end_visible], 1)[visible] - origin.repeat(2)
            seed = int(origin @ torch.tensor([1e6, 1e3, 1.0][:dims]))
            scores = torch.rand(found.shape[0], generator=torch.Generator().manual_seed(seed))
            results.append((found, scores, classes[visible]))
        return results

    return oracle


def assert_found_once(found: Detections, boxes: torch.Tensor, classes: torch.Tensor) -> None:
    matches = box_iou(boxes, found.boxes) > 0.9
    missed = (matches.sum(1) == 0).nonzero().flatten().tolist()
    assert not missed, f"objects {missed} not found: {boxes[missed].tolist()}"
    assert (matches.sum(1) == 1).all(), "an object was found more than once"
    assert len(found) == len(boxes), f"{len(found)} detections for {len(boxes)} objects"
    assert found.classes[matches.long().argmax(1)].tolist() == classes.tolist()


SHAPE_2D = (200, 200, 1)
SCENE_2D = make_scene(SHAPE_2D, count=30, sizes=(8, 24), seed=0)
SHAPE_3D = (64, 64, 64)
SCENE_3D = make_scene(SHAPE_3D, count=10, sizes=(6, 12), seed=1)


# Oracle scenes: every object exactly once ------------------------------------------------
#
# Objects are at most overlap - 3 voxels long, so each lies whole, away from
# every internal edge (cut_margin 1), in some patch: the cut copies are
# dropped and the whole copies merge into one box, whatever the scores.


@pytest.mark.parametrize("method", ["nms", "greedy_nmm", "nmm"])
@pytest.mark.parametrize("metric", ["iou", "ios"])
@pytest.mark.parametrize("overlap", [32, 40, 0.75])
def test_oracle_2d_scene_every_object_found_exactly_once(method: str, metric: str, overlap: Any) -> None:
    boxes, classes = SCENE_2D
    found = sliced_detection(
        make_oracle(boxes, classes, SHAPE_2D),
        coordinate_image(SHAPE_2D),
        patch_size=64,
        patch_overlap=overlap,
        batch_size=7,
        method=method,
        metric=metric,
        progress=False,
    )
    assert found.boxes.shape[1] == 4
    assert_found_once(found, boxes, classes)


@pytest.mark.parametrize("method", ["nms", "greedy_nmm", "nmm"])
@pytest.mark.parametrize("metric", ["iou", "ios"])
@pytest.mark.parametrize("overlap", [16, 0.625])
def test_oracle_3d_scene_every_object_found_exactly_once(method: str, metric: str, overlap: Any) -> None:
    boxes, classes = SCENE_3D
    found = sliced_detection(
        make_oracle(boxes, classes, SHAPE_3D),
        ScalarImage(tensor=coordinate_image(SHAPE_3D)),
        patch_size=32,
        patch_overlap=overlap,
        batch_size=8,
        method=method,
        metric=metric,
        progress=False,
    )
    assert found.boxes.shape[1] == 6
    assert_found_once(found, boxes, classes)


def test_without_dropping_cut_boxes_nms_over_iou_leaves_the_fragments_as_duplicates() -> None:
    boxes, classes = SCENE_2D
    oracle, image = make_oracle(boxes, classes, SHAPE_2D), coordinate_image(SHAPE_2D)
    options: dict[str, Any] = {"patch_size": 64, "patch_overlap": 32, "method": "nms", "metric": "iou"}
    naive = sliced_detection(oracle, image, drop_cut_boxes=False, progress=False, **options)
    # Fragments overlap their whole box too little to be suppressed (or, better scored, suppress it).
    fragments = box_iou(naive.boxes, boxes).max(1).values < 0.9
    assert len(naive) > len(boxes)
    assert fragments.sum() >= len(naive) - len(boxes) > 0
    assert_found_once(sliced_detection(oracle, image, progress=False, **options), boxes, classes)


def test_with_zero_overlap_a_cut_object_stays_in_pieces_unless_the_full_image_pass_sees_it_whole() -> None:
    shape = (64, 64, 1)
    boxes, classes = torch.tensor([[28.0, 10.0, 36.0, 20.0], [40.0, 40.0, 50.0, 50.0]]), torch.tensor([0, 0])
    oracle, image = make_oracle(boxes, classes, shape), coordinate_image(shape)
    pieces = sliced_detection(oracle, image, patch_size=32, method="nmm", progress=False)
    # The two halves touch but do not overlap, so no merge joins them.
    assert sorted(pieces.boxes.tolist()) == [[28, 10, 32, 20], [32, 10, 36, 20], [40, 40, 50, 50]]
    whole = sliced_detection(oracle, image, patch_size=32, full_image_pass=True, method="nmm", progress=False)
    assert_found_once(whole, boxes, classes)


def test_an_object_larger_than_the_overlap_is_merged_from_its_fragments() -> None:
    shape = (96, 32, 1)
    boxes, classes = torch.tensor([[10.0, 5.0, 90.0, 20.0]]), torch.tensor([1])
    oracle = make_oracle(boxes, classes, shape)
    options: dict[str, Any] = {"patch_size": (64, 32, 1), "patch_overlap": (32, 0, 0), "progress": False}
    raw = sliced_detection(oracle, coordinate_image(shape), method=None, **options)
    assert sorted(raw.boxes.tolist()) == [[10, 5, 64, 20], [32, 5, 90, 20]]  # cut in both patches: both kept
    merged = sliced_detection(oracle, coordinate_image(shape), method="greedy_nmm", metric="ios", **options)
    assert merged.boxes.tolist() == [[10, 5, 90, 20]]  # IoS 32 / 54 > 0.5


# Cut boxes ---------------------------------------------------------------------------


def fixed_model(by_origin: dict[int, list[list[float]]], classes: dict[int, list[int]] | None = None) -> Oracle:
    """Returns the boxes listed for the patch starting at i (read from the coordinate image)."""

    def model(batch: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        results = []
        for patch in batch:
            origin = int(patch[0, 0, 0, 0])
            boxes = torch.tensor(by_origin.get(origin, []), dtype=torch.float32).reshape(-1, 4)
            labels = torch.tensor((classes or {}).get(origin, [0] * len(boxes)), dtype=torch.int64)
            results.append((boxes, torch.full((len(boxes),), 0.5), labels))
        return results

    return model


def test_cut_margin_sets_how_close_to_an_internal_edge_a_box_is_cut() -> None:
    # Patches along i start at 0 and 16 (size 24). The object covers i 10..22:
    # whole in patch 0 (2 voxels before its internal edge at 24), cut in patch 16.
    model = fixed_model({0: [[10, 0, 22, 8]], 16: [[0, 0, 6, 8]]})
    image = coordinate_image((40, 8, 1))
    options: dict[str, Any] = {"patch_size": (24, 8, 1), "patch_overlap": (8, 0, 0), "method": None, "progress": False}
    assert sliced_detection(model, image, cut_margin=1, **options).boxes.tolist() == [[10, 0, 22, 8]]
    # With a margin of 2 the box of patch 0 is cut too: nothing is whole, both stay.
    assert len(sliced_detection(model, image, cut_margin=2, **options)) == 2
    assert len(sliced_detection(model, image, drop_cut_boxes=False, **options)) == 2


def test_the_image_border_is_not_an_internal_edge() -> None:
    # Patches at 0, 8, 16 (size 24). The object covers i 0..12: it touches the
    # image border in patch 0, which still counts as whole; patch 8 cuts it.
    model = fixed_model({0: [[0, 0, 12, 8]], 8: [[0, 0, 4, 8]]})
    options: dict[str, Any] = {"patch_size": (24, 8, 1), "patch_overlap": (16, 0, 0), "method": None, "progress": False}
    assert sliced_detection(model, coordinate_image((40, 8, 1)), **options).boxes.tolist() == [[0, 0, 12, 8]]


def test_a_cut_box_is_dropped_only_for_a_whole_box_of_its_class_unless_class_agnostic() -> None:
    model = fixed_model({0: [[10, 0, 22, 8]], 16: [[0, 0, 6, 8]]}, classes={0: [0], 16: [1]})
    image = coordinate_image((40, 8, 1))
    options: dict[str, Any] = {"patch_size": (24, 8, 1), "patch_overlap": (8, 0, 0), "method": None, "progress": False}
    assert len(sliced_detection(model, image, **options)) == 2
    assert len(sliced_detection(model, image, class_agnostic=True, **options)) == 1


# Grid, shifts, padding, inputs and outputs ---------------------------------------------------


def test_patch_corners_follow_the_torchio_grid_rule() -> None:
    assert patch_corners((11, 1, 1), (4, 1, 1), (1, 0, 0))[:, 0].tolist() == [0, 3, 6, 7]
    assert patch_corners((10, 4, 1), (4, 4, 1), (1, 0, 0)).tolist() == [[0, 0, 0], [3, 0, 0], [6, 0, 0]]
    assert patch_corners((3, 9, 9), (4, 4, 4), (0, 0, 0)).shape == (9, 3)  # short axis: one patch at 0


def test_fractional_overlap_is_a_floored_fraction_of_the_patch() -> None:
    assert parse_patch_overlap(0.5, (64, 64, 1), (512, 512, 1)) == (32, 32, 0)
    assert parse_patch_overlap((0.5, 0.25, 0.0), (10, 10, 10), (20, 20, 20)) == (5, 2, 0)
    assert parse_patch_overlap(4, (16, 16, 1), (64, 64, 1)) == (4, 4, 0)


def test_boxes_are_shifted_by_each_patch_start() -> None:
    def model(batch: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        box = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
        return [(box, torch.ones(1), torch.zeros(1, dtype=torch.int64))] * len(batch)

    found = sliced_detection(
        model, torch.zeros(1, 10, 8, 1), 4, (1, 0, 0), method=None, drop_cut_boxes=False, progress=False
    )
    starts = [(i, j) for i in (0, 3, 6) for j in (0, 4)]
    assert found.boxes.tolist() == [[i + 1, j + 1, i + 3, j + 3] for i, j in starts]


def test_an_image_smaller_than_the_patch_is_zero_padded_and_boxes_are_clipped() -> None:
    seen = []

    def model(batch: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        seen.append(batch.clone())
        boxes = torch.tensor([[10.0, 10.0, 30.0, 30.0], [25.0, 25.0, 30.0, 30.0]])  # the second is all padding
        return [{"boxes": boxes, "scores": torch.ones(2), "labels": torch.zeros(2, dtype=torch.int64)}]

    image = torch.ones(2, 20, 20, 1, dtype=torch.uint8)
    found = sliced_detection(model, image, patch_size=32, progress=False)
    assert found.boxes.tolist() == [[10, 10, 20, 20]]
    assert seen[0].shape == (1, 2, 32, 32, 1)
    assert seen[0].dtype == torch.float32
    assert seen[0].sum() == 2 * 20 * 20


def test_a_lazy_image_is_read_patch_by_patch(tmp_path) -> None:
    shape = (40, 8, 1)
    path = tmp_path / "coordinates.nii"
    ScalarImage(tensor=coordinate_image(shape)).save(path)
    image = ScalarImage(path)
    model = fixed_model({0: [[10, 0, 22, 8]], 16: [[0, 0, 6, 8]]})
    found = sliced_detection(model, image, patch_size=(24, 8, 1), patch_overlap=(8, 0, 0), progress=False)
    assert found.boxes.tolist() == [[10, 0, 22, 8]]
    assert not image.is_loaded


def test_the_full_image_pass_sees_the_whole_image_once() -> None:
    shapes = []

    def model(batch: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        shapes.append(tuple(batch.shape))
        empty = (np.zeros((0, 6), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
        return [empty] * len(batch)

    found = sliced_detection(
        model, torch.rand(1, 12, 10, 8), patch_size=8, batch_size=3, full_image_pass=True, progress=False
    )
    assert len(found) == 0 and found.boxes.shape == (0, 6)
    assert shapes == [(3, 1, 8, 8, 8), (1, 1, 8, 8, 8), (1, 1, 12, 10, 8)]


def test_results_are_plain_cpu_tensors_that_can_be_edited(capsys: pytest.CaptureFixture[str]) -> None:
    model = fixed_model({0: [[1, 1, 3, 3]]})
    found = sliced_detection(model, coordinate_image((8, 8, 1)), patch_size=8, progress=True)
    assert "detection" in capsys.readouterr().err  # the tqdm bar
    found.boxes.add_(1)  # an inference tensor would refuse this
    assert found.boxes.tolist() == [[2, 2, 4, 4]]
    assert found.scores.device.type == "cpu" and found.classes.dtype == torch.int64
    assert found.spatial_shape == (8, 8, 1)


# Errors -------------------------------------------------------------------------------


def empty_model(batch: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    return [(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64))] * len(batch)


def test_bad_merge_options_are_refused_before_the_model_runs() -> None:
    image = torch.zeros(1, 8, 8, 1)
    with pytest.raises(ValueError, match=r"method must be one of .* got 'wbf'"):
        sliced_detection(empty_model, image, 4, method="wbf", progress=False)
    with pytest.raises(ValueError, match=r"metric must be .* got 'IOS'"):
        sliced_detection(empty_model, image, 4, metric="IOS", progress=False)
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\], got 2"):
        sliced_detection(empty_model, image, 4, threshold=2, progress=False)
    with pytest.raises(ValueError, match=r"batch_size must be a positive int, got 0"):
        sliced_detection(empty_model, image, 4, batch_size=0, progress=False)
    with pytest.raises(ValueError, match=r"cut_margin"):
        sliced_detection(empty_model, image, 4, cut_margin=-1, progress=False)


def test_overlaps_as_large_as_the_patch_are_refused() -> None:
    image = torch.zeros(1, 8, 8, 1)
    with pytest.raises(ValueError, match=r"patch_overlap \(4, 4, 0\) must be >= 0 and smaller than patch_size"):
        sliced_detection(empty_model, image, 4, patch_overlap=4, progress=False)
    with pytest.raises(ValueError, match=r"fractional patch_overlap must be in \[0, 1\), got 1.0"):
        sliced_detection(empty_model, image, 4, patch_overlap=1.0, progress=False)
    with pytest.raises(ValueError, match=r"fractional patch_overlap must be in \[0, 1\)"):
        sliced_detection(empty_model, image, 4, patch_overlap=-0.25, progress=False)
    with pytest.raises(TypeError, match=r"only ints .* or only floats"):
        sliced_detection(empty_model, image, 4, patch_overlap=(0.5, 1, 0), progress=False)


def test_images_that_are_not_4d_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\(C, I, J, K\) tensor, got shape \(8, 8\)"):
        sliced_detection(empty_model, torch.zeros(8, 8), 4, progress=False)
    with pytest.raises(TypeError, match=r"image must be an Image or a"):
        sliced_detection(empty_model, np.zeros((1, 8, 8, 1)), 4, progress=False)


def test_a_model_output_of_the_wrong_structure_names_the_batch() -> None:
    calls = []

    def bad_on_second_batch(output: Any) -> Oracle:
        def model(batch: torch.Tensor) -> Any:
            calls.append(1)
            return empty_model(batch) if len(calls) % 2 == 1 else output(batch)

        return model

    image = torch.zeros(1, 8, 8, 1)
    cases: list[tuple[Any, type[Exception], str]] = [
        (lambda b: torch.zeros(len(b), 4), TypeError, "list of 2 items .* for batch 1, got Tensor"),
        (lambda b: [], TypeError, "list of 2 items .* for batch 1, got list of length 0"),
        (lambda b: [torch.zeros(0, 4)] * len(b), TypeError, r"batch 1, item 0 \(patch starting at \(4, 0, 0\)\)"),
        (lambda b: [{"boxes": torch.zeros(0, 4)}] * len(b), ValueError, r"batch 1, item 0 .* without keys \['scores'"),
        (
            lambda b: [(torch.zeros(1, 6), torch.ones(1), torch.zeros(1, dtype=torch.int64))] * len(b),
            ValueError,
            r"boxes of batch 1, item 0 .* have shape \(1, 6\); expected for a 2D image: \(n, 4\)",
        ),
        (
            lambda b: [(torch.zeros(2, 4), torch.ones(1), torch.zeros(2, dtype=torch.int64))] * len(b),
            ValueError,
            r"scores and classes of batch 1, item 0 .* must have shape \(2,\)",
        ),
        (
            lambda b: [(torch.zeros(1, 4), torch.ones(1), torch.tensor([0.5]))] * len(b),
            ValueError,
            "classes of batch 1, item 0 .* must be integers",
        ),
    ]
    for output, error, message in cases:
        calls.clear()
        with pytest.raises(error, match=message):
            sliced_detection(bad_on_second_batch(output), image, 4, batch_size=2, progress=False)
