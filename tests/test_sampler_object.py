"""ObjectSampler: the sampler contract, every patch holds an object, class balancing, errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from torchpatch import LOCATION, ScalarImage, Subject
from torchpatch.annotations import BoundingBoxes, Points
from torchpatch.sampler.object import ObjectSampler, corner_intervals
from torchpatch.testing import check_sampler


def make_subject(shape=(40, 30, 1), boxes=None, points=None, **metadata) -> Subject:
    generator = torch.Generator().manual_seed(0)
    entries = {"photo": ScalarImage(tensor=torch.rand(1, *shape, generator=generator)), **metadata}
    if boxes is not None:
        entries["boxes"] = boxes
    if points is not None:
        entries["points"] = points
    return Subject(entries, subject_id="objects")


def two_class_boxes(shape=(40, 30)) -> BoundingBoxes:
    # Class 1: nine boxes packed on the left; class 2: one box on the right.
    rows = [[2 + 3 * (n % 3), 2 + 3 * (n // 3), 4 + 3 * (n % 3), 4 + 3 * (n // 3)] for n in range(9)]
    rows.append([33, 22, 37, 27])
    return BoundingBoxes(rows, "xyxy", shape, class_ids=[1] * 9 + [2])


def holds_whole_box(location, box) -> bool:
    ini, fin = location[:3], location[3:]
    return all(ini[a] <= box[a] and box[a + 2] <= fin[a] for a in range(2))


# Corner rule ---------------------------------------------------------------------------------


def test_corners_of_a_box_that_fits_hold_the_whole_box():
    first, last = corner_intervals(np.array([[5.0, 0, 0]]), np.array([[7.0, 1, 1]]), (12, 1, 1), (4, 1, 1))
    assert first.tolist() == [[3, 0, 0]] and last.tolist() == [[5, 0, 0]]


def test_fractional_box_covering_more_voxels_than_the_patch_uses_its_centre():
    # [0.5, 4.5) covers voxels 0 to 4: five voxels, more than p = 4; centre voxel 2.
    first, last = corner_intervals(np.array([[0.5, 0, 0]]), np.array([[4.5, 1, 1]]), (12, 1, 1), (4, 1, 1))
    assert first.tolist() == [[0, 0, 0]] and last.tolist() == [[2, 0, 0]]


def test_corners_of_a_large_box_hold_its_centre_and_are_clipped_to_the_image():
    first, last = corner_intervals(np.array([[0.0, 0, 0]]), np.array([[12.0, 1, 1]]), (12, 1, 1), (4, 1, 1))
    assert first.tolist() == [[3, 0, 0]] and last.tolist() == [[6, 0, 0]]
    first, last = corner_intervals(np.array([[10.0, 0, 0]]), np.array([[12.0, 1, 1]]), (12, 1, 1), (4, 1, 1))
    assert first.tolist() == [[8, 0, 0]] and last.tolist() == [[8, 0, 0]]


# Contract and behaviour -------------------------------------------------------------------------


def test_contract_with_boxes_on_a_2d_image():
    patches = check_sampler(ObjectSampler(8), make_subject(boxes=two_class_boxes()), num_patches=16)
    assert patches[0]["photo"].shape == (1, 8, 8, 1)


def test_contract_with_3d_points_and_padding():
    points = Points([[1.5, 2.5, 3.5], [5.0, 1.0, 0.2]], (6, 5, 4), class_ids=[0, 1])
    sampler = ObjectSampler((8, 4, 4), "points", by="class", padding_mode=0)
    patches = check_sampler(sampler, make_subject((6, 5, 4), points=points), num_patches=12)
    assert all(len(p["points"]) >= 1 for p in patches)


def test_every_patch_holds_a_whole_box_when_boxes_fit():
    subject = make_subject(boxes=two_class_boxes())
    boxes = subject["boxes"].data.tolist()
    for patch in ObjectSampler(8)(subject, 200, generator=1):
        location = patch[LOCATION].tolist()
        assert any(holds_whole_box(location, box) for box in boxes)
        assert patch["boxes"].volumes().max() >= 4.0


def test_every_patch_holds_the_centre_of_a_box_larger_than_the_patch():
    subject = make_subject(boxes=BoundingBoxes([[4, 2, 36, 28]], "xyxy", (40, 30)))
    for patch in ObjectSampler(6)(subject, 100, generator=2):
        i0, j0, _, i1, j1, _ = patch[LOCATION].tolist()
        assert i0 <= 20 < i1 and j0 <= 15 < j1


def test_every_patch_holds_a_point():
    points = Points([[0.5, 0.5], [39.9, 29.9], [20.0, 15.0]], (40, 30))
    subject = make_subject(points=points)
    seen = Counter()
    for patch in ObjectSampler(5, "points")(subject, 300, generator=3):
        assert len(patch["points"]) >= 1
        seen[tuple(patch[LOCATION][:2].tolist())] += 1
    assert (0, 0) in seen and (35, 25) in seen  # corners clipped to the valid ones


def test_by_object_follows_object_counts_and_by_class_balances_classes():
    subject = make_subject(boxes=two_class_boxes())
    rare = [33, 22, 37, 27]

    def rare_fraction(sampler: ObjectSampler) -> float:
        locations = [p[LOCATION].tolist() for p in sampler(subject, 400, generator=4)]
        return sum(holds_whole_box(loc, rare) for loc in locations) / len(locations)

    assert rare_fraction(ObjectSampler(8)) == pytest.approx(0.1, abs=0.05)
    assert rare_fraction(ObjectSampler(8, by="class")) == pytest.approx(0.5, abs=0.08)
    assert rare_fraction(ObjectSampler(8, by="class", class_probabilities={1: 1, 2: 3})) == pytest.approx(
        0.75, abs=0.08
    )
    assert rare_fraction(ObjectSampler(8, by="class", class_probabilities={1: 0, 2: 1, 5: 10})) == 1.0


def test_first_box_or_points_metadata_is_used_by_default():
    subject = make_subject(points=Points([[3.5, 3.5]], (40, 30)), note="not an annotation")
    location = next(ObjectSampler(4)(subject, 1, generator=0))[LOCATION].tolist()
    assert location[0] <= 3 < location[3]


def test_boxes_partly_outside_the_image_are_clipped_and_wholly_outside_never_drawn():
    boxes = BoundingBoxes([[-10, -10, 2, 2], [50, 50, 60, 60]], "xyxy", (40, 30))
    for patch in ObjectSampler(4)(make_subject(boxes=boxes), 50, generator=0):
        assert patch[LOCATION][:2].tolist() == [0, 0]


def test_repr_names_the_patch_size():
    assert repr(ObjectSampler(8)) == "ObjectSampler(patch_size=8)"


# Errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"by": "image"}, ValueError, "by must be one of"),
        ({"annotations_name": 3}, TypeError, "annotations_name"),
        ({"class_probabilities": {1: 1.0}}, ValueError, "by='class'"),
        ({"by": "class", "class_probabilities": [1.0]}, TypeError, "dict"),
        ({"by": "class", "class_probabilities": {"tree": 1.0}}, TypeError, "int class ids"),
        ({"by": "class", "class_probabilities": {1: "a"}}, TypeError, "must be a number"),
        ({"by": "class", "class_probabilities": {1: -1.0}}, ValueError, ">= 0"),
        ({"by": "class", "class_probabilities": {1: 0.0}}, ValueError, "positive weight"),
        ({"patch_size": 0}, ValueError, "patch_size"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, error, match):
    arguments = {"patch_size": 4, **kwargs}
    with pytest.raises(error, match=match):
        ObjectSampler(**arguments)


def test_subject_without_annotations_is_a_clear_error():
    with pytest.raises(ValueError, match="subject 'objects' has no BoundingBoxes or Points"):
        next(ObjectSampler(4)(make_subject(), 1))
    with pytest.raises(KeyError, match="'boxes' is not in the metadata of subject 'objects'"):
        next(ObjectSampler(4, "boxes")(make_subject(), 1))
    with pytest.raises(TypeError, match="must be BoundingBoxes or Points"):
        next(ObjectSampler(4, "note")(make_subject(note="x"), 1))


def test_subject_without_objects_is_a_clear_error():
    empty = BoundingBoxes([], "xyxy", (40, 30))
    with pytest.raises(ValueError, match=r"no object inside the image.*0 objects"):
        next(ObjectSampler(4)(make_subject(boxes=empty), 1))
    outside = Points([[45.0, 1.0]], (40, 30))
    with pytest.raises(ValueError, match="no object inside the image"):
        next(ObjectSampler(4)(make_subject(points=outside), 1))


def test_by_class_needs_classes_present_with_weight():
    points = Points([[3.5, 3.5]], (40, 30))
    with pytest.raises(ValueError, match="needs class ids"):
        next(ObjectSampler(4, by="class")(make_subject(points=points), 1))
    with_class = Points([[3.5, 3.5]], (40, 30), class_ids=[1])
    with pytest.raises(ValueError, match=r"classes \[1\] only, none with a positive weight"):
        next(ObjectSampler(4, by="class", class_probabilities={2: 1.0})(make_subject(points=with_class), 1))


def test_annotations_on_another_canvas_are_a_clear_error():
    with pytest.raises(ValueError, match=r"canvas of spatial shape \(20, 30, 1\)"):
        next(ObjectSampler(4)(make_subject(points=Points([[1.0, 1.0]], (20, 30))), 1))
