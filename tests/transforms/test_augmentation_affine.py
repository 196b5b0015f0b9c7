"""RandomAffine: identity, 90-degree rotations as torch.rot90, fill values, dtypes, annotations, errors, pickle."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.annotations import BoundingBoxes, Points
from torchpatch.transforms import Compose
from torchpatch.transforms.augmentation import RandomAffine, RandomFlip
from torchpatch.transforms.augmentation.context import augment_patches
from torchpatch.transforms.augmentation.fill import otsu_threshold


def phantom(shape=(12, 12, 12), offset: float = 0.5) -> torch.Tensor:
    """A smooth positive volume (a product of sines), ``(1, *shape)`` float32, minimum above ``offset``."""
    axes = [torch.linspace(0, 1, n, dtype=torch.float64) for n in shape]
    i, j, k = torch.meshgrid(*axes, indexing="ij")
    data = torch.sin(5 * i + 0.3) * torch.cos(4 * j) * torch.sin(3 * k + 1) + 1.5 + offset + i
    return data.unsqueeze(0).float()


def make_subject(shape=(12, 12, 12), affine=None) -> Subject:
    data = phantom(shape)
    return Subject(
        t1=ScalarImage(tensor=data, affine=affine),
        seg=LabelMap(tensor=(data * 2).to(torch.uint8) % 3, affine=affine),
    )


def about(axis: int, angle: float) -> RandomAffine:
    """A deterministic rotation by ``angle`` degrees about world axis ``axis``, nearest interpolation."""
    degrees = [0.0] * 6
    degrees[2 * axis] = degrees[2 * axis + 1] = angle
    return RandomAffine(scales=0, degrees=tuple(degrees), image_interpolation="nearest")


# Identity -----------------------------------------------------------------------------------------------


def test_identity_parameters_give_the_input_bit_for_bit() -> None:
    affine = np.diag([1.2, 0.9, 2.0, 1.0])
    subject = make_subject(affine=affine)
    out = RandomAffine(scales=0, degrees=0, translation=0)(subject)
    assert torch.equal(out.t1.data, subject.t1.data) and torch.equal(out.seg.data, subject.seg.data)
    assert out.seg.data.dtype == torch.uint8
    np.testing.assert_array_equal(out.t1.affine, affine)
    assert out["history"] == [
        {"name": "RandomAffine", "scales": [1.0, 1.0, 1.0], "degrees": [0.0, 0.0, 0.0], "translation": [0.0] * 3}
    ]


def test_apply_params_with_an_identity_record_is_the_identity() -> None:
    subject = make_subject()
    record = {"scales": [1, 1, 1], "degrees": [0, 0, 0], "translation": [0, 0, 0]}
    out = RandomAffine(degrees=30).apply_params(subject, record)
    assert torch.equal(out.t1.data, subject.t1.data) and torch.equal(out.seg.data, subject.seg.data)


def test_identity_via_augment_patches_is_the_crop_bit_for_bit() -> None:
    subject = make_subject()
    patches = augment_patches(RandomAffine(scales=0, degrees=0), subject, [[0, 2, 3, 5, 12, 9], [7, 0, 6, 12, 10, 12]])
    for index, (i0, j0, k0, i1, j1, k1) in enumerate([[0, 2, 3, 5, 12, 9], [7, 0, 6, 12, 10, 12]]):
        assert torch.equal(patches[index].t1.data, subject.t1.data[:, i0:i1, j0:j1, k0:k1])
        assert torch.equal(patches[index].seg.data, subject.seg.data[:, i0:i1, j0:j1, k0:k1])


# 90-degree rotations ----------------------------------------------------------------------------------


# With the identity affine, world axes x, y, z are voxel axes i, j, k. The content moves by
# F(q) = c + R (q - c); R about z by +90 degrees sends x to y, so the content at (i, j) goes to
# (c + (c - j), c + (i - c)): output[i', j'] = input[j', n - 1 - i'], which is torch.rot90(data, 1, (i, j)).
# Likewise R about x sends y to z (torch.rot90 over (j, k)) and R about y sends z to x (over (k, i)).
ROT90_DIMS = {0: (2, 3), 1: (3, 1), 2: (1, 2)}


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("turns", [1, -1])
def test_90_degree_rotation_with_nearest_equals_rot90_in_3d(size: int, axis: int, turns: int) -> None:
    data = torch.randperm(size**3, generator=torch.Generator().manual_seed(size)).float().reshape(1, size, size, size)
    subject = Subject(t1=ScalarImage(tensor=data), seg=LabelMap(tensor=(data % 5).to(torch.int64)))
    out = about(axis, 90.0 * turns)(subject)
    expected = torch.rot90(data, turns, ROT90_DIMS[axis])
    assert torch.equal(out.t1.data, expected)
    assert torch.equal(out.seg.data, torch.rot90(subject.seg.data, turns, ROT90_DIMS[axis]))


@pytest.mark.parametrize("size", [6, 9])
def test_90_degree_rotation_of_a_2d_rgb_image_equals_rot90(size: int) -> None:
    data = torch.randperm(3 * size * size, generator=torch.Generator().manual_seed(1)).float().reshape(3, size, size, 1)
    subject = Subject(rgb=ScalarImage(tensor=data))
    out = about(2, 90.0)(subject)
    assert torch.equal(out.rgb.data, torch.rot90(data, 1, (1, 2)))
    # On a 2D image only the in-plane rotation is drawn, whatever the ranges of the other axes.
    torch.manual_seed(0)
    out = RandomAffine(scales=0.2, degrees=(20, 30), translation=4)(subject)
    record = out["history"][0]
    assert record["degrees"][:2] == [0.0, 0.0] and 20 <= record["degrees"][2] <= 30
    assert record["scales"][2] == 1.0 and record["translation"][2] == 0.0
    assert out.rgb.spatial_shape == (size, size, 1)


def test_90_degree_rotation_via_augment_patches_is_rot90_cropped() -> None:
    data = torch.randperm(8**3, generator=torch.Generator().manual_seed(2)).float().reshape(1, 8, 8, 8)
    subject = Subject(t1=ScalarImage(tensor=data))
    patch = augment_patches(about(2, 90.0), subject, [[0, 3, 1, 5, 8, 6]])[0]
    assert torch.equal(patch.t1.data, torch.rot90(data, 1, (1, 2))[:, 0:5, 3:8, 1:6])


# Labels, fill values, dtypes ---------------------------------------------------------------------------


def test_flip_of_a_label_map_in_a_fused_chain_keeps_labels_and_counts() -> None:
    subject = make_subject((10, 11, 9))
    pipeline = Compose([RandomFlip(axes=(0, 1, 2), flip_probability=1), RandomAffine(scales=0, degrees=0)])
    out = pipeline(subject)
    assert torch.equal(out.seg.data, torch.flip(subject.seg.data, (1, 2, 3)))
    before = torch.unique(subject.seg.data, return_counts=True)
    after = torch.unique(out.seg.data, return_counts=True)
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert [r["name"] for r in out["history"]] == ["RandomFlip", "RandomAffine"]


def shifted(pad_value, shape=(12, 10, 8)) -> tuple[Subject, Subject]:
    """The subject and its content moved by 4 mm along +x (identity affine): output i < 4 lies outside."""
    subject = make_subject(shape)
    transform = RandomAffine(scales=0, degrees=0, translation=(4, 4, 0, 0, 0, 0), default_pad_value=pad_value)
    return subject, transform(subject)


@pytest.mark.parametrize("pad_value", ["minimum", "mean", "otsu", -7.25, 3])
def test_default_pad_value_fills_outside_for_scalars_and_zero_for_labels(pad_value) -> None:
    subject, out = shifted(pad_value)
    data = subject.t1.data
    on_faces = torch.ones(data.shape[1:], dtype=torch.bool)
    on_faces[1:-1, 1:-1, 1:-1] = False
    faces = data[0][on_faces]
    if pad_value == "minimum":
        fill = float(data.min())
    elif pad_value == "mean":  # as in TorchIO: the mean of the voxels on the six faces
        fill = float(faces.double().mean())
    elif pad_value == "otsu":  # the mean of the face voxels below their Otsu threshold
        fill = float(faces[faces <= otsu_threshold(faces)].double().mean())
    else:
        fill = float(pad_value)
    assert fill != 0
    torch.testing.assert_close(out.t1.data[:, :4], torch.full_like(out.t1.data[:, :4], fill), atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(out.t1.data[:, 4:], data[:, :-4], atol=1e-5, rtol=0)
    assert bool((out.seg.data[:, :4] == 0).all()) and torch.equal(out.seg.data[:, 4:], subject.seg.data[:, :-4])


def test_integer_scalar_images_come_back_float32_and_labels_keep_their_dtype() -> None:
    data = phantom((8, 8, 8))
    subject = Subject(
        i16=ScalarImage(tensor=(data * 100).to(torch.int16)),
        seg=LabelMap(tensor=(data > 2).to(torch.int16)),
    )
    torch.manual_seed(0)
    out = RandomAffine(degrees=15)(subject)
    assert out.i16.data.dtype == torch.float32
    assert out.seg.data.dtype == torch.int16
    assert set(torch.unique(out.seg.data).tolist()) <= {0, 1}
    nearest = RandomAffine(degrees=15, image_interpolation="nearest")(subject)
    assert nearest.i16.data.dtype == torch.int16


# Annotations -----------------------------------------------------------------------------------------


def blob_subject(shape=(16, 16, 16), centre=(10, 5, 7)) -> Subject:
    data = torch.zeros(1, *shape)
    index = tuple(slice(c - 1, c + 2) for c in centre)
    data[(0, *index)] = 1.0
    corners = [c - 1 for c in centre] + [c + 2 for c in centre]
    return Subject(
        t1=ScalarImage(tensor=data),
        point=Points.from_indices([list(centre)], shape),
        box=BoundingBoxes([corners], "xyzxyz", shape),
    )


def check_follows(out: Subject) -> None:
    """The moved point sits on the moved blob, and the moved box holds every bright voxel."""
    point = out.point.voxel_indices()[0].tolist()
    assert out.t1.data[(0, *point)] >= 0.5
    bright = torch.nonzero(out.t1.data[0] >= 0.5).double() + 0.5
    low, high = out.box.data[0, :3].double(), out.box.data[0, 3:].double()
    assert bool((bright >= low - 1e-4).all() and (bright <= high + 1e-4).all())


@pytest.mark.parametrize("seed", range(4))
def test_points_and_boxes_follow_a_random_affine(seed: int) -> None:
    subject = blob_subject()
    torch.manual_seed(seed)
    out = RandomAffine(scales=0.1, degrees=20, translation=2, image_interpolation="nearest")(subject)
    check_follows(out)
    torch.manual_seed(seed)
    patch = augment_patches(
        RandomAffine(scales=0.1, degrees=20, translation=2, image_interpolation="nearest"),
        subject,
        [[2, 0, 1, 16, 12, 14]],
    )[0]
    check_follows(patch)
    torch.testing.assert_close(patch.point.data, out.point.data - torch.tensor([2.0, 0.0, 1.0]), atol=1e-5, rtol=0)


def test_a_box_moved_out_of_the_volume_or_patch_is_dropped() -> None:
    subject = blob_subject()
    out = RandomAffine(scales=0, degrees=0, translation=(-20, -20, 0, 0, 0, 0))(subject)
    assert len(out.box) == 0 and len(out.point) == 0
    # Shift by +3 along i: the box [9, 12) becomes [12, 15); a patch ending at i = 13 sees a third of it,
    # one starting at i = 3 all of it (shifted by 3).
    partial = Subject(t1=subject.t1, box=BoundingBoxes(subject.box.data, "xyzxyz", (16, 16, 16), min_visibility=0.5))
    transform = RandomAffine(scales=0, degrees=0, translation=(3, 3, 0, 0, 0, 0))
    patches = augment_patches(transform, partial, [[0, 0, 0, 13, 16, 16], [3, 0, 0, 16, 16, 16]])
    assert len(patches[0].box) == 0
    assert patches[1].box.data[0].tolist() == pytest.approx([9, 4, 6, 12, 7, 9], abs=1e-4)


# Arguments, repr, pickling -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"scales": -0.1}, ValueError, r"scales given as one number must be non-negative, got -0.1"),
        ({"scales": 1.5}, ValueError, r"scales must be positive, got ranges"),
        ({"scales": (0, 2)}, ValueError, r"scales must be positive"),
        (
            {"scales": (1.2, 0.8)},
            ValueError,
            r"scales must be a range \(low, high\) with low <= high, got \(1.2, 0.8\)",
        ),
        ({"degrees": (10, -10)}, ValueError, r"degrees must be a range \(low, high\) with low <= high"),
        (
            {"degrees": (1, 2, 3, 4)},
            ValueError,
            r"degrees must be one number, two \(low, high\), three .*got \(1, 2, 3, 4\)",
        ),
        ({"translation": (1, 2, 3, 4, 5)}, ValueError, r"translation must be one number, two.*got \(1, 2, 3, 4, 5\)"),
        ({"translation": (0, 1, 5, 4, 0, 1)}, ValueError, r"translation must be a range .*got \(5, 4\)"),
        ({"scales": (0.9, 1.1, 0.8, 1.2, 1, 1), "isotropic": True}, ValueError, r"isotropic draws one scale"),
        ({"isotropic": 1}, TypeError, r"isotropic must be a bool, got int 1"),
        ({"center": "middle"}, ValueError, r"center must be one of \['image', 'origin'\], got 'middle'"),
        ({"image_interpolation": "cubic"}, ValueError, r"image_interpolation must be one of .*got 'cubic'"),
        ({"label_interpolation": "lanczos"}, ValueError, r"label_interpolation must be one of .*got 'lanczos'"),
        ({"image_interpolation": 1}, TypeError, r"image_interpolation must be a string"),
        ({"default_pad_value": "median"}, ValueError, r"default_pad_value must be a number or one of .*'median'"),
        ({"default_pad_value": float("nan")}, ValueError, r"default_pad_value must be finite"),
        ({"degrees": "10"}, TypeError, r"degrees must be a number or two numbers"),
        ({"p": 2}, ValueError, r"p must be a probability"),
    ],
)
def test_bad_arguments_raise_errors_naming_them(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        RandomAffine(**kwargs)


def test_images_of_different_shapes_are_refused_naming_the_shapes() -> None:
    subject = Subject(a=ScalarImage(tensor=torch.zeros(1, 4, 4, 4)), b=ScalarImage(tensor=torch.zeros(1, 5, 4, 4)))
    with pytest.raises(ValueError, match=r"RandomAffine moves every image with the same map.*different spatial shapes"):
        RandomAffine()(subject)


def test_repr_shows_the_ranges_and_non_default_arguments() -> None:
    assert repr(RandomAffine()) == "RandomAffine(scales=(0.9, 1.1), degrees=(-10.0, 10.0), translation=(0.0, 0.0))"
    text = repr(RandomAffine(degrees=(0, 0, 0, 0, -5, 5), center="origin", default_pad_value=0, p=0.5))
    assert "degrees=(0.0, 0.0, 0.0, 0.0, -5.0, 5.0)" in text
    assert "center='origin'" in text and "default_pad_value=0.0" in text and "p=0.5" in text


def test_pickle_round_trip_keeps_the_transform_working() -> None:
    transform = RandomAffine(scales=(0.8, 1.2), degrees=25, translation=3, isotropic=True, default_pad_value="mean")
    copy = pickle.loads(pickle.dumps(transform))
    assert repr(copy) == repr(transform)
    subject = make_subject()
    torch.manual_seed(5)
    expected = transform(subject)
    torch.manual_seed(5)
    out = copy(subject)
    assert torch.equal(out.t1.data, expected.t1.data) and out["history"] == expected["history"]
    scales = out["history"][0]["scales"]
    assert scales[0] == scales[1] == scales[2]


def test_same_seed_same_result_and_replay_from_the_record() -> None:
    subject = make_subject()
    transform = RandomAffine(scales=0.2, degrees=30, translation=3)
    torch.manual_seed(11)
    first = transform(subject)
    torch.manual_seed(11)
    second = transform(subject)
    assert torch.equal(first.t1.data, second.t1.data) and first["history"] == second["history"]
    record = {k: v for k, v in first["history"][0].items() if k != "name"}
    replay = transform.apply_params(subject, record)
    assert torch.equal(replay.t1.data, first.t1.data) and torch.equal(replay.seg.data, first.seg.data)
