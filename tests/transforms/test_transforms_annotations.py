"""Boxes and points through Pad, Crop, CropOrPad, ToCanonical and Resample: they follow the voxels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.annotations import BoundingBoxes, Points
from torchpatch.transforms import Compose, Crop, CropOrPad, Pad, Resample, ToCanonical

#: I points anterior, J left, K superior; spacings 2, 0.5, 0.75.
PERMUTED = np.array(
    [
        [0.0, -0.5, 0.0, 12.25],
        [2.0, 0.0, 0.0, -30.5],
        [0.0, 0.0, 0.75, 8.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def subject_2d(**annotations) -> Subject:
    return Subject(img=ScalarImage(tensor=torch.rand(1, 8, 6, 1)), **annotations)


def marked_subject(shape=(5, 4, 3), affine=None) -> Subject:
    """A volume with a block of ones at [1, 3) x [2, 4) x [0, 1) (labelled in 'seg'), a 2 at (4, 0, 2),
    a box on the block and a point on each."""
    data = torch.zeros(1, *shape)
    data[0, 1:3, 2:4, 0:1] = 1.0
    data[0, 4, 0, 2] = 2.0
    return Subject(
        img=ScalarImage(tensor=data, affine=affine),
        seg=LabelMap(tensor=(data == 1).to(torch.uint8), affine=affine),
        boxes=BoundingBoxes([[1, 2, 0, 3, 4, 1]], "xyzxyz", shape, class_ids=[5]),
        points=Points.from_indices([[4, 0, 2], [1, 2, 0]], shape, class_ids=[2, 1]),
    )


def covered_voxels(boxes: BoundingBoxes, shape) -> torch.Tensor:
    mask = torch.zeros(shape, dtype=torch.bool)
    for i0, j0, k0, i1, j1, k1 in boxes.to_3d().data.round().to(torch.int64).tolist():
        mask[i0:i1, j0:j1, k0:k1] = True
    return mask


def values_at(points: Points, image: ScalarImage) -> list[float]:
    return [float(image.data[0, i, j, k]) for i, j, k in points.voxel_indices().tolist()]


def world(points: Points, affine) -> np.ndarray:
    """World position of each point: the affine applies to voxel indices, centres at integers."""
    positions = points.to_3d().data.to(torch.float64).numpy() - 0.5
    return positions @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


# Pad, Crop, CropOrPad -------------------------------------------------------------------------


def test_pad_shifts_annotations_and_grows_their_canvas():
    subject = subject_2d(
        boxes=BoundingBoxes([[1, 1, 3, 4]], "xywh", (8, 6)), points=Points([[0.5, 5.5]], (8, 6), class_ids=[3])
    )
    padded = Pad((2, 1, 0, 3, 0, 0))(subject)
    assert padded["boxes"].data.tolist() == [[3.0, 1.0, 3.0, 4.0]] and padded["boxes"].format == "xywh"
    assert padded["points"].data.tolist() == [[2.5, 5.5]] and padded["points"].class_ids.tolist() == [3]
    assert padded["boxes"].spatial_shape == padded["points"].spatial_shape == padded.spatial_shape == (11, 9, 1)
    assert subject["boxes"].spatial_shape == (8, 6, 1)  # the input is unchanged


def test_int_padding_of_a_2d_subject_keeps_2d_annotations_on_their_slice():
    padded = Pad(2)(subject_2d(points=Points([[0.5, 0.5]], (8, 6))))
    assert padded["points"].data.tolist() == [[2.5, 2.5]] and padded["points"].spatial_shape == (12, 10, 1)


def test_crop_clips_boxes_and_drops_what_falls_outside():
    boxes = BoundingBoxes([[0, 0, 4, 2], [6, 4, 8, 6]], "xyxy", (8, 6), class_ids=[0, 1], min_visibility=0.5)
    points = Points([[1.5, 0.5], [7.5, 5.5]], (8, 6))
    cropped = Crop((2, 1, 0, 0, 0, 0))(subject_2d(boxes=boxes, points=points))
    # Box 0 keeps half its width, box 1 half: both kept at min_visibility 0.5, clipped to [2, 7) x [0, 6).
    assert cropped["boxes"].data.tolist() == [[0.0, 0.0, 2.0, 2.0], [4.0, 4.0, 5.0, 6.0]]
    assert cropped["boxes"].class_ids.tolist() == [0, 1]
    assert cropped["points"].data.tolist() == [] and cropped["boxes"].spatial_shape == (5, 6, 1)


def test_crop_or_pad_follows_the_window_of_the_images():
    points = Points([[0.5, 0.5], [7.5, 2.5]], (8, 6))
    out = CropOrPad((4, 10, 1))(subject_2d(points=points))  # I: crop [2, 6); J: pad 2 before
    assert out["points"].data.tolist() == [] and out["points"].spatial_shape == (4, 10, 1)
    wide = CropOrPad((10, 6, 1))(subject_2d(points=points))  # I: pad 1 before
    assert wide["points"].data.tolist() == [[1.5, 0.5], [8.5, 2.5]]


def test_crop_or_pad_around_a_mask_moves_annotations_with_the_mask():
    subject = marked_subject()
    out = CropOrPad((2, 2, 1), mask_name="seg")(subject)
    assert float(out.img.data.sum()) == 4.0  # the whole block is kept
    assert out["boxes"].data.tolist() == [[0.0, 0.0, 0.0, 2.0, 2.0, 1.0]]
    assert out["points"].data.tolist() == [[0.5, 0.5, 0.5]] and out["points"].class_ids.tolist() == [1]
    assert values_at(out["points"], out.img) == [1.0]


# ToCanonical -------------------------------------------------------------------------------------


@pytest.mark.parametrize("affine", [PERMUTED, np.diag([-1.0, -1.0, 1.0, 1.0]), np.diag([1.0, -2.0, -3.0, 1.0])])
def test_to_canonical_keeps_annotations_on_the_same_voxels(affine):
    subject = marked_subject(affine=affine)
    out = ToCanonical()(subject)
    assert out.img.orientation == ("R", "A", "S")
    shape = out.img.spatial_shape
    assert out["boxes"].spatial_shape == shape and out["points"].spatial_shape == shape
    # The box covers exactly the block of ones, wherever the block went.
    assert torch.equal(covered_voxels(out["boxes"], shape), out.img.data[0] == 1.0)
    assert values_at(out["points"], out.img) == [2.0, 1.0]
    # Points keep their world positions.
    assert np.allclose(world(out["points"], out.img.affine), world(subject["points"], affine))


def test_to_canonical_on_a_2d_photo_flips_2d_annotations():
    data = torch.zeros(1, 8, 6, 1)
    data[0, 1, 4, 0] = 1.0
    subject = Subject(
        img=ScalarImage(tensor=data, affine=np.diag([-1.0, -1.0, 1.0, 1.0])),
        boxes=BoundingBoxes([[1, 4, 2, 5]], "xyxy", (8, 6)),
        points=Points([[1.5, 4.5]], (8, 6)),
    )
    out = ToCanonical()(subject)
    assert out["boxes"].data.tolist() == [[6.0, 1.0, 7.0, 2.0]] and out["boxes"].ndim == 2
    assert out["points"].data.tolist() == [[6.5, 1.5]] and values_at(out["points"], out.img) == [1.0]


def test_to_canonical_that_moves_the_depth_one_axis_refuses_2d_annotations():
    coronal = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])  # K points anterior
    subject = Subject(img=ScalarImage(tensor=torch.rand(1, 4, 3, 1), affine=coronal), pts=Points([[1, 1]], (4, 3)))
    with pytest.raises(ValueError, match="to_3d"):
        ToCanonical()(subject)
    lifted = Subject(img=subject.img, pts=subject["pts"].to_3d())
    assert ToCanonical()(lifted)["pts"].data.tolist() == [[1.0, 0.5, 1.0]]


def test_already_canonical_subject_keeps_its_annotations():
    subject = marked_subject()
    out = ToCanonical()(subject)
    assert torch.equal(out["boxes"].data, subject["boxes"].data)
    assert torch.equal(out["points"].data, subject["points"].data)


# Resample -----------------------------------------------------------------------------------------


def test_resample_to_a_coarser_spacing_scales_annotations():
    subject = subject_2d(
        boxes=BoundingBoxes([[2, 2, 6, 4]], "xyxy", (8, 6)), points=Points.from_indices([[5, 1]], (8, 6))
    )
    out = Resample(2)(subject)
    assert out.img.spatial_shape == (4, 3, 1) and out["boxes"].spatial_shape == (4, 3, 1)
    assert out["boxes"].data.tolist() == [[1.0, 1.0, 3.0, 2.0]]
    assert out["points"].data.tolist() == [[2.75, 0.75]] and out["points"].voxel_indices().tolist() == [[2, 0, 0]]
    assert np.allclose(world(out["points"], out.img.affine), world(subject["points"], subject.img.affine))


def test_resample_of_a_3d_volume_keeps_world_positions_of_points():
    subject = marked_subject(shape=(6, 4, 4), affine=PERMUTED)
    out = Resample((1.0, 1.0, 1.5))(subject)
    assert out["points"].spatial_shape == out.img.spatial_shape
    assert np.allclose(world(out["points"], out.img.affine), world(subject["points"], PERMUTED))
    # Nearest-neighbour labels: the box still covers the labelled block.
    covered = covered_voxels(out["boxes"], out.img.spatial_shape)
    assert bool(covered[out.seg.data[0] == 1].all())


def test_resample_onto_a_smaller_grid_clips_annotations_like_the_voxels():
    reference = ScalarImage(tensor=torch.zeros(1, 4, 6, 1), affine=np.diag([1.0, 1.0, 1.0, 1.0]))
    subject = subject_2d(
        boxes=BoundingBoxes([[2, 1, 6, 3], [5, 1, 7, 2]], "xyxy", (8, 6)),
        points=Points([[1.5, 1.5], [6.5, 1.5]], (8, 6)),
    )
    out = Resample(reference)(subject)
    assert out["boxes"].data.tolist() == [[2.0, 1.0, 4.0, 3.0]] and out["points"].data.tolist() == [[1.5, 1.5]]


def test_resample_to_an_image_of_the_subject_on_the_same_grid_keeps_annotations():
    subject = marked_subject()
    out = Resample("img")(subject)
    assert torch.equal(out["boxes"].data, subject["boxes"].data)


# Refusals: never a silent wrong result ----------------------------------------------------------------


@pytest.mark.parametrize(
    "transform",
    [
        Pad(1, exclude="seg"),
        Crop(1, include="img"),
        CropOrPad(4, exclude="seg"),
        ToCanonical(include="img"),
        Resample(2, exclude="seg"),
    ],
    ids=["pad", "crop", "crop_or_pad", "to_canonical", "resample"],
)
def test_transforming_only_some_images_of_an_annotated_subject_is_an_error(transform):
    with pytest.raises(ValueError, match=r"leaves the images \['seg'\].*annotations \['boxes', 'points'\]"):
        transform(marked_subject())


def test_transforms_without_annotations_still_accept_include_and_exclude():
    subject = marked_subject()
    plain = Subject(img=subject.img, seg=subject.seg)
    assert Pad(1, exclude="seg")(plain).img.spatial_shape == (7, 6, 5)


def test_annotations_of_a_subject_whose_images_do_not_share_a_grid_are_an_error():
    subject = Subject(
        a=ScalarImage(tensor=torch.zeros(1, 4, 4, 1)),
        b=ScalarImage(tensor=torch.zeros(1, 6, 4, 1)),
        pts=Points([[1.0, 1.0]], (4, 4)),
    )
    with pytest.raises(ValueError, match="cannot tell which grid the annotations"):
        Resample("a")(subject)


def test_annotations_on_another_canvas_are_an_error():
    with pytest.raises(ValueError, match=r"canvas of spatial shape \(4, 4, 1\)"):
        Pad(1)(subject_2d(pts=Points([[1.0, 1.0]], (4, 4))))


class CropOnly:
    """Region-aware metadata that cannot follow a change of grid."""

    def crop_to_region(self, index_ini, index_fin):
        return self


def test_region_aware_metadata_without_map_voxels_is_refused_by_grid_changes():
    subject = Subject(img=ScalarImage(tensor=torch.zeros(1, 4, 4, 1), affine=np.diag([-1.0, 1, 1, 1])), mask=CropOnly())
    assert isinstance(Pad(1)(subject)["mask"], CropOnly)
    with pytest.raises(TypeError, match=r"'mask' .*map_voxels"):
        ToCanonical()(subject)
    with pytest.raises(TypeError, match=r"'mask' .*map_voxels"):
        Resample(2)(subject)


def test_pipeline_then_patches_keep_annotations_in_place():
    from torchpatch import LOCATION, UniformSampler

    subject = marked_subject(shape=(6, 5, 4), affine=PERMUTED)
    pipeline = Compose([ToCanonical(), Pad(1), Crop((0, 1, 0, 0, 0, 0))])
    out = pipeline(subject)
    for patch in UniformSampler(3)(out, 10, generator=0):
        if len(patch["points"]):
            assert all(v > 0 for v in values_at(patch["points"], patch.img)), patch[LOCATION]
