"""BoundingBoxes and Points: formats, coordinates, crops, grid maps, and samplers carrying them."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import LOCATION, LabelMap, ScalarImage, Subject, UniformSampler, WeightedSampler
from torchpatch.annotations import (
    BoundingBoxes,
    Points,
    from_corners,
    region_aware_metadata,
    to_corners,
)
from torchpatch.sampler import GridSampler, LabelSampler
from torchpatch.subject import RegionAware
from torchpatch.testing import check_sampler

# Construction and metadata -------------------------------------------------------------------


def test_boxes_carry_format_canvas_classes_and_scores():
    boxes = BoundingBoxes([[1, 2, 3, 5]], "xyxy", (8, 6), class_ids=[4], scores=[0.5], class_names=["a", "b"])
    assert boxes.format == "xyxy" and boxes.ndim == 2 and len(boxes) == 1
    assert boxes.spatial_shape == (8, 6, 1)
    assert boxes.data.dtype == torch.float32
    assert boxes.class_ids.dtype == torch.int64 and boxes.class_ids.tolist() == [4]
    assert boxes.scores.tolist() == [0.5]
    assert boxes.class_names == {0: "a", 1: "b"}
    assert boxes.min_visibility == 0.0
    assert "1 boxes" in repr(boxes) and "xyxy" in repr(boxes)


def test_float64_boxes_stay_float64_and_integers_become_float32():
    assert (
        BoundingBoxes(torch.tensor([[0.0, 0, 1, 1]], dtype=torch.float64), "xyxy", (2, 2)).data.dtype == torch.float64
    )
    assert BoundingBoxes(np.array([[0, 0, 1, 1]]), "xyxy", (2, 2)).data.dtype == torch.float32


def test_one_box_and_no_boxes_are_accepted():
    assert BoundingBoxes([0, 0, 1, 1], "xyxy", (2, 2)).data.shape == (1, 4)
    empty = BoundingBoxes([], "xyzxyz", (2, 2, 2))
    assert empty.data.shape == (0, 6) and len(empty) == 0


@pytest.mark.parametrize(
    ("box_format", "values"),
    [
        ("xyxy", [1.0, 2.0, 4.0, 6.0]),
        ("xywh", [1.0, 2.0, 3.0, 4.0]),
        ("cxcywh", [2.5, 4.0, 3.0, 4.0]),
    ],
)
def test_2d_formats_describe_the_same_box(box_format, values):
    boxes = BoundingBoxes([values], box_format, (8, 8))
    assert boxes.to_xyxy().data.tolist() == [[1.0, 2.0, 4.0, 6.0]]
    for other in ("xyxy", "xywh", "cxcywh"):
        assert torch.allclose(boxes.convert(other).convert(box_format).data, boxes.data)


@pytest.mark.parametrize(
    ("box_format", "values"),
    [
        ("xyzxyz", [1.0, 2.0, 3.0, 4.0, 6.0, 5.0]),
        ("xyzwhd", [1.0, 2.0, 3.0, 3.0, 4.0, 2.0]),
        ("cxcyczwhd", [2.5, 4.0, 4.0, 3.0, 4.0, 2.0]),
    ],
)
def test_3d_formats_describe_the_same_box(box_format, values):
    boxes = BoundingBoxes([values], box_format, (8, 8, 8))
    assert boxes.to_xyxy().format == "xyzxyz"
    assert boxes.to_xyxy().data.tolist() == [[1.0, 2.0, 3.0, 4.0, 6.0, 5.0]]
    assert boxes.centers().tolist() == [[2.5, 4.0, 4.0]]
    assert boxes.volumes().tolist() == [24.0]


def test_format_names_are_case_insensitive():
    assert BoundingBoxes([[0, 0, 1, 1]], "XYWH", (2, 2)).format == "xywh"


def test_corner_helpers_round_trip():
    corners = torch.tensor([[0.0, 1.0, 4.0, 3.0]])
    for box_format in ("xyxy", "xywh", "cxcywh"):
        assert torch.equal(to_corners(from_corners(corners, box_format), box_format), corners)


def test_2d_boxes_lift_to_3d_on_the_depth_one_slice():
    boxes = BoundingBoxes([[1, 2, 3, 4]], "xywh", (8, 8), class_ids=[1]).to_3d()
    assert boxes.format == "xyzxyz" and boxes.data.tolist() == [[1.0, 2.0, 0.0, 4.0, 6.0, 1.0]]
    assert boxes.class_ids.tolist() == [1]


def test_indexing_selects_boxes_with_their_classes_and_scores():
    boxes = BoundingBoxes([[0, 0, 1, 1], [1, 1, 2, 2], [2, 2, 3, 3]], "xyxy", (4, 4), [0, 1, 2], [0.1, 0.2, 0.3])
    assert boxes[1].class_ids.tolist() == [1]
    assert boxes[torch.tensor([True, False, True])].scores.tolist() == pytest.approx([0.1, 0.3])
    assert boxes[[2, 0]].class_ids.tolist() == [2, 0]
    assert len(boxes[1:]) == 2
    with pytest.raises(IndexError, match="out of range"):
        boxes[3]


def test_points_carry_canvas_and_classes():
    points = Points([[1.0, 2.0, 3.0]], (4, 4, 4), class_ids=[7], class_names={7: "cell"})
    assert points.ndim == 3 and points.spatial_shape == (4, 4, 4)
    assert points.class_ids.tolist() == [7] and points.class_names == {7: "cell"}
    assert "1 3D points" in repr(points)


def test_points_from_indices_sit_at_voxel_centres():
    points = Points.from_indices([[0, 3], [2, 1]], (4, 4))
    assert points.data.tolist() == [[0.5, 3.5], [2.5, 1.5]]
    assert points.voxel_indices().tolist() == [[0, 3, 0], [2, 1, 0]]


def test_pixel_convention_x_is_column_along_i():
    # A 2D image loaded by torchpatch holds column x along I and row y along J.
    image = torch.zeros(1, 6, 4, 1)  # 6 columns (width), 4 rows (height)
    image[0, 4, 1, 0] = 1.0  # pixel at column 4, row 1
    points = Points([[4.5, 1.5]], (6, 4))
    index = points.voxel_indices()[0].tolist()
    assert image[0, index[0], index[1], index[2]] == 1.0
    box = BoundingBoxes([[4, 1, 5, 2]], "xyxy", (6, 4))  # (xmin, ymin, xmax, ymax) in pixels
    i0, j0, i1, j1 = (int(v) for v in box.data[0])
    assert image[0, i0:i1, j0:j1, 0].sum() == 1.0


# Errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"format": "ltrb"}, ValueError, "unknown box format"),
        ({"format": 3}, TypeError, "must be a str"),
        ({"data": [[0, 0, 1]]}, ValueError, r"shape \(N, 4\)"),
        ({"data": [[[0, 0, 1, 1]]]}, ValueError, "3D"),
        ({"data": [[2, 0, 1, 1]]}, ValueError, "not positive"),
        ({"data": [[0, 0, 0, 1]]}, ValueError, "not positive"),
        ({"data": [[0, 0, float("nan"), 1]]}, ValueError, "NaN"),
        ({"data": [["a", 0, 1, 1]]}, TypeError, "numbers"),
        ({"spatial_shape": (4, 4, 2)}, ValueError, "depth-one"),
        ({"spatial_shape": (4, 0)}, ValueError, "positive"),
        ({"spatial_shape": (4,)}, ValueError, "two"),
        ({"spatial_shape": "44"}, TypeError, "ints"),
        ({"spatial_shape": (4.0, 4.0)}, TypeError, "ints"),
        ({"class_ids": [0, 1]}, ValueError, r"shape \(1,\)"),
        ({"class_ids": [0.5]}, TypeError, "integers"),
        ({"class_ids": ["tree"]}, TypeError, "integers"),
        ({"scores": [0.1, 0.2]}, ValueError, r"shape \(1,\)"),
        ({"class_names": "tree"}, TypeError, "class_names"),
        ({"class_names": {"tree": 0}}, TypeError, "int ids"),
        ({"min_visibility": 1.5}, ValueError, r"\[0, 1\]"),
        ({"min_visibility": "all"}, TypeError, "min_visibility"),
    ],
)
def test_bad_boxes_are_rejected(kwargs, error, match):
    arguments = {"data": [[0, 0, 1, 1]], "format": "xyxy", "spatial_shape": (4, 4), **kwargs}
    with pytest.raises(error, match=match):
        BoundingBoxes(**arguments)


def test_3d_format_needs_six_numbers_per_box():
    with pytest.raises(ValueError, match=r"shape \(N, 6\)"):
        BoundingBoxes([[0, 0, 1, 1]], "xyzxyz", (4, 4, 4))


def test_converting_across_dimensionality_is_an_error():
    with pytest.raises(ValueError, match="to_3d"):
        BoundingBoxes([[0, 0, 1, 1]], "xyxy", (4, 4)).convert("xyzwhd")


@pytest.mark.parametrize(
    ("data", "shape", "match"),
    [
        ([[1.0, 2.0, 3.0, 4.0]], (4, 4), r"\(N, 2\)"),
        ([[1.0, 2.0]], (4, 4, 3), "depth-one"),
        ([[1.0, float("inf")]], (4, 4), "NaN or infinite"),
    ],
)
def test_bad_points_are_rejected(data, shape, match):
    with pytest.raises(ValueError, match=match):
        Points(data, shape)


def test_empty_points_take_the_dimensionality_of_their_canvas():
    assert Points([], (4, 4)).data.shape == (0, 2)
    assert Points([], (4, 4, 4)).data.shape == (0, 3)


@pytest.mark.parametrize(
    ("ini", "fin", "error", "match"),
    [
        ((0, 0), (2, 2), ValueError, "three ints"),
        ((0, 0, 0), (0, 2, 1), ValueError, "empty"),
        ((0.5, 0, 0), (2, 2, 1), TypeError, "ints"),
        ((0, 0, 0), (2, 2, 2), ValueError, "depth-one"),
    ],
)
def test_bad_regions_are_rejected(ini, fin, error, match):
    for value in (BoundingBoxes([[0, 0, 1, 1]], "xyxy", (4, 4)), Points([[0.5, 0.5]], (4, 4))):
        with pytest.raises(error, match=match):
            value.crop_to_region(ini, fin)


# Crops ------------------------------------------------------------------------------------


def test_box_crossing_the_patch_border_is_clipped_and_shifted():
    boxes = BoundingBoxes([[1, 1, 5, 3]], "xyxy", (8, 8), class_ids=[3])
    patch = boxes.crop_to_region((2, 0, 0), (6, 6, 1))
    assert patch.data.tolist() == [[0.0, 1.0, 3.0, 3.0]]
    assert patch.spatial_shape == (4, 6, 1) and patch.class_ids.tolist() == [3]


def test_box_outside_the_patch_is_dropped_and_one_touching_its_border_too():
    boxes = BoundingBoxes([[0, 0, 2, 2], [6, 6, 8, 8]], "xyxy", (8, 8))
    assert len(boxes.crop_to_region((2, 0, 0), (6, 8, 1))) == 0  # [0, 2) ends where the patch starts


def test_min_visibility_keeps_boxes_visible_enough():
    boxes = BoundingBoxes([[0, 0, 4, 2], [3, 0, 7, 2]], "xyxy", (8, 8), class_ids=[0, 1])
    region = ((0, 0, 0), (4, 8, 1))  # box 0 fully visible, box 1 a quarter
    assert BoundingBoxes(boxes.data, "xyxy", (8, 8), [0, 1]).crop_to_region(*region).class_ids.tolist() == [0, 1]
    strict = BoundingBoxes(boxes.data, "xyxy", (8, 8), [0, 1], min_visibility=0.25)
    assert strict.crop_to_region(*region).class_ids.tolist() == [0, 1]
    stricter = BoundingBoxes(boxes.data, "xyxy", (8, 8), [0, 1], min_visibility=0.26)
    assert stricter.crop_to_region(*region).class_ids.tolist() == [0]
    whole = BoundingBoxes(boxes.data, "xyxy", (8, 8), [0, 1], min_visibility=1.0)
    assert whole.crop_to_region(*region).class_ids.tolist() == [0]
    assert whole.crop_to_region(*region).min_visibility == 1.0


def test_whole_box_stays_whole_however_far_the_region_is_shifted():
    boxes = BoundingBoxes(torch.tensor([[0.1, 0.1, 0.3, 0.3]]), "xyxy", (4, 4), min_visibility=1.0)
    assert len(boxes.crop_to_region((-1000, -1000, 0), (10, 10, 1))) == 1


def test_sliver_that_rounds_to_nothing_in_patch_coordinates_is_dropped():
    boxes = BoundingBoxes(torch.tensor([[-1e-30, 0.0, 1.0, 1.0]], dtype=torch.float64), "xyxy", (4, 4))
    assert len(boxes.crop_to_region((-1, 0, 0), (0, 1, 1))) == 0


def test_crop_keeps_the_format_of_the_boxes():
    boxes = BoundingBoxes([[3, 3, 4, 2]], "cxcywh", (8, 8))  # xyxy (1, 2, 5, 4)
    patch = boxes.crop_to_region((2, 0, 0), (8, 8, 1))
    assert patch.format == "cxcywh" and patch.data.tolist() == [[1.5, 3.0, 3.0, 2.0]]


def test_negative_region_start_shifts_into_padded_coordinates():
    boxes = BoundingBoxes([[0, 0, 2, 2]], "xyxy", (4, 4))
    points = Points([[0.5, 3.5]], (4, 4))
    assert boxes.crop_to_region((-2, -1, 0), (4, 5, 1)).data.tolist() == [[2.0, 1.0, 4.0, 3.0]]
    assert points.crop_to_region((-2, -1, 0), (4, 5, 1)).data.tolist() == [[2.5, 4.5]]


def test_3d_boxes_are_clipped_on_every_axis():
    boxes = BoundingBoxes([[0, 0, 0, 4, 4, 4]], "xyzxyz", (8, 8, 8))
    patch = boxes.crop_to_region((1, 2, 3), (3, 8, 8))
    assert patch.data.tolist() == [[0.0, 0.0, 0.0, 2.0, 2.0, 1.0]] and patch.spatial_shape == (2, 6, 5)


def test_point_on_a_tile_border_belongs_to_the_tile_that_starts_there():
    points = Points([[2.0, 0.5], [1.75, 0.5]], (4, 1))
    assert points.crop_to_region((0, 0, 0), (2, 1, 1)).data.tolist() == [[1.75, 0.5]]
    assert points.crop_to_region((2, 0, 0), (4, 1, 1)).data.tolist() == [[0.0, 0.5]]


def test_points_are_region_aware_and_subject_crop_uses_it():
    image = ScalarImage(tensor=torch.zeros(1, 8, 8, 1))
    subject = Subject(img=image, points=Points([[1.5, 1.5], [6.5, 6.5]], (8, 8), [0, 1]), note="x")
    assert isinstance(subject["points"], RegionAware)
    assert list(region_aware_metadata(subject)) == ["points"]
    patch = subject.crop((4, 4, 0), (8, 8, 1))
    assert patch["points"].data.tolist() == [[2.5, 2.5]] and patch["points"].class_ids.tolist() == [1]
    assert subject["points"].data.shape == (2, 2)  # the subject is unchanged


def test_annotations_survive_a_pickle_round_trip():
    boxes = BoundingBoxes([[0, 0, 1, 1]], "xyxy", (2, 2), [1], [0.5], class_names=["a", "b"], min_visibility=0.3)
    clone = pickle.loads(pickle.dumps(boxes))
    assert torch.equal(clone.data, boxes.data) and clone.min_visibility == 0.3 and clone.class_names == {0: "a", 1: "b"}
    points = pickle.loads(pickle.dumps(Points([[0.5, 0.5]], (2, 2))))
    assert points.data.tolist() == [[0.5, 0.5]]


# Properties -------------------------------------------------------------------------------


def _tiles(shape: tuple[int, int, int], tile: tuple[int, int, int]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    starts = [range(0, s, t) for s, t in zip(shape, tile)]
    tiles = []
    for i in starts[0]:
        for j in starts[1]:
            for k in starts[2]:
                ini = (i, j, k)
                fin = tuple(min(a + t, s) for a, t, s in zip(ini, tile, shape))
                tiles.append((ini, fin))
    return tiles


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 6)),
    tile=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 3)),
    seed=st.integers(0, 2**16),
    on_grid=st.booleans(),
)
def test_every_point_lands_in_exactly_one_tile_of_a_grid(shape, tile, seed, on_grid):
    generator = np.random.default_rng(seed)
    positions = generator.uniform(0, 1, size=(20, 3)) * np.array(shape)
    if on_grid:  # exactly on voxel borders, the hard case
        positions = np.floor(positions)
    subject = Subject(img=ScalarImage(tensor=torch.zeros(1, *shape)), points=Points(positions, shape))
    found = []
    for ini, fin in _tiles(shape, tile):
        patch = subject.crop(ini, fin)
        found.append(patch["points"].data.to(torch.float64) + torch.tensor(ini, dtype=torch.float64))
    everything = torch.cat(found)
    assert len(everything) == 20
    assert sorted(map(tuple, everything.tolist())) == sorted(map(tuple, positions.tolist()))


@settings(max_examples=60, deadline=None)
@given(
    corners=st.lists(
        st.tuples(st.floats(-4, 20), st.floats(-4, 20), st.floats(0.5, 10), st.floats(0.5, 10)), min_size=1, max_size=6
    ),
    ini=st.tuples(st.integers(-5, 10), st.integers(-5, 10)),
    size=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    min_visibility=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_cropped_boxes_shifted_back_stay_within_the_original_and_the_region(corners, ini, size, min_visibility):
    data = torch.tensor(corners, dtype=torch.float64)
    boxes = BoundingBoxes(data, "xywh", (16, 16), class_ids=list(range(len(corners))), min_visibility=min_visibility)
    fin = (ini[0] + size[0], ini[1] + size[1], 1)
    patch = boxes.crop_to_region((ini[0], ini[1], 0), fin)
    assert patch.spatial_shape == (size[0], size[1], 1)
    back = patch.to_xyxy().data + torch.tensor([ini[0], ini[1], ini[0], ini[1]], dtype=torch.float64)
    original = boxes.to_xyxy().data[patch.class_ids]
    slack = 1e-9  # shifting by an integer and back rounds coordinates like 1e-84 to 0
    assert bool((back[:, :2] >= original[:, :2] - slack).all() and (back[:, 2:] <= original[:, 2:] + slack).all())
    assert bool(
        (back[:, :2] >= torch.tensor(ini) - slack).all() and (back[:, 2:] <= torch.tensor(fin[:2]) + slack).all()
    )
    visible = (back[:, 2:] - back[:, :2]).prod(dim=1)
    assert bool((visible > 0).all() and (visible >= boxes.volumes()[patch.class_ids] * min_visibility - slack).all())


# Samplers carry annotations -------------------------------------------------------------------


def _annotated_subject() -> Subject:
    generator = torch.Generator().manual_seed(0)
    label = torch.zeros(1, 16, 12, 1, dtype=torch.uint8)
    label[0, 8:12, 4:8, 0] = 1
    return Subject(
        img=ScalarImage(tensor=torch.rand(3, 16, 12, 1, generator=generator)),
        seg=LabelMap(tensor=label),
        weights=ScalarImage(tensor=label.to(torch.float32) + 0.1),
        boxes=BoundingBoxes([[8, 4, 12, 8], [0, 0, 3, 2], [13, 9, 16, 12]], "xyxy", (16, 12), class_ids=[1, 2, 2]),
        points=Points([[9.5, 5.5], [1.0, 1.0], [15.0, 11.0]], (16, 12), class_ids=[1, 2, 2]),
        subject_id="annotated",
    )


def _check_patch_annotations(patch: Subject, subject: Subject) -> None:
    location = patch[LOCATION].tolist()
    ini, fin = location[:3], location[3:]
    expected_boxes = subject["boxes"].crop_to_region(ini, fin)
    expected_points = subject["points"].crop_to_region(ini, fin)
    assert torch.equal(patch["boxes"].data, expected_boxes.data)
    assert torch.equal(patch["points"].data, expected_points.data)
    assert patch["boxes"].spatial_shape == patch.spatial_shape == patch["points"].spatial_shape
    # Every point lies inside the patch.
    size = torch.tensor(fin[:2]) - torch.tensor(ini[:2])
    assert bool((patch["points"].data >= 0).all() and (patch["points"].data < size).all())


@pytest.mark.parametrize(
    "sampler",
    [
        UniformSampler(6),
        WeightedSampler(5, "weights"),
        LabelSampler(4, "seg", label_probabilities={0: 1, 1: 1}),
        UniformSampler((20, 8, 1), padding_mode=0),
    ],
    ids=["uniform", "weighted", "label", "uniform-padded"],
)
def test_samplers_hand_each_patch_its_annotations_in_patch_coordinates(sampler):
    subject = _annotated_subject()
    patches = check_sampler(sampler, subject, num_patches=12)
    for patch in patches:
        _check_patch_annotations(patch, subject)
    assert any(len(patch["boxes"]) for patch in patches)


def test_padded_sampler_shifts_annotations_by_the_padding():
    subject = _annotated_subject()
    patch = next(UniformSampler((20, 12, 1), padding_mode=0)(subject, 1, generator=0))
    assert patch[LOCATION].tolist() == [-2, 0, 0, 18, 12, 1]
    assert patch["boxes"].data[0].tolist() == [10.0, 4.0, 14.0, 8.0]
    assert patch["points"].data[0].tolist() == [11.5, 5.5]


@pytest.mark.parametrize("padding_mode", [None, 0])
def test_grid_sampler_hands_each_patch_its_annotations(padding_mode):
    subject = _annotated_subject()
    sampler = GridSampler(subject, patch_size=(6, 5, 1), patch_overlap=(2, 2, 0), padding_mode=padding_mode)
    for patch in sampler:
        _check_patch_annotations(patch, subject)
    tiles = GridSampler(subject, patch_size=(4, 4, 1))
    assert sum(len(patch["points"]) for patch in tiles) == 3
