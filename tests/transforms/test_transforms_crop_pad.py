"""Pad, Crop and CropOrPad: bounds, modes, world positions, properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import LabelMap, ScalarImage, Subject, io
from torchpatch.transforms import Crop, CropOrPad, Pad


def line(values, dtype=torch.float32) -> ScalarImage:
    """A 1D image along I."""
    return ScalarImage(tensor=torch.tensor(values, dtype=dtype).reshape(1, -1, 1, 1))


def values_of(image) -> list:
    return image.data.flatten().tolist()


def world_of_first_voxel(image) -> np.ndarray:
    return image.affine[:3, 3]


# Pad -----------------------------------------------------------------------------------------


def test_pad_shifts_origin_by_padding():
    image = ScalarImage(tensor=torch.ones(1, 2, 2, 2), affine=np.diag([2.0, 3.0, 4.0, 1.0]))
    out = Pad((1, 0, 2, 1, 0, 3))(Subject(t1=image)).t1
    assert out.spatial_shape == (3, 5, 5)
    assert out.origin == (-2.0, -6.0, 0.0)
    assert out.spacing == image.spacing
    # The input voxels keep their world positions.
    assert torch.equal(out.data[:, 1:, 2:4, 0:2], image.data)


def test_pad_with_an_int_pads_all_six_sides_of_a_volume():
    out = Pad(2)(Subject(t1=ScalarImage(tensor=torch.ones(1, 1, 2, 3)))).t1
    assert out.spatial_shape == (5, 6, 7)
    assert out.origin == (-2.0, -2.0, -2.0)
    assert float(out.data.sum()) == 6.0


def test_pad_with_an_int_keeps_2d_images_one_voxel_deep():
    out = Pad(2)(Subject(t1=ScalarImage(tensor=torch.ones(3, 4, 4, 1)))).t1
    assert out.shape == (3, 8, 8, 1)
    assert out.origin == (-2.0, -2.0, 0.0)


def test_pad_with_three_ints_pads_both_sides_of_each_axis():
    out = Pad((1, 0, 2))(Subject(t1=ScalarImage(tensor=torch.ones(1, 2, 2, 2)))).t1
    assert out.spatial_shape == (4, 2, 6)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (0, [0, 0, 1, 2, 4, 0, 0]),
        (-5, [-5, -5, 1, 2, 4, -5, -5]),
        ("constant", [0, 0, 1, 2, 4, 0, 0]),
        ("edge", [1, 1, 1, 2, 4, 4, 4]),
        ("replicate", [1, 1, 1, 2, 4, 4, 4]),
        ("reflect", [4, 2, 1, 2, 4, 2, 1]),
        ("symmetric", [2, 1, 1, 2, 4, 4, 2]),
        ("wrap", [2, 4, 1, 2, 4, 1, 2]),
        ("circular", [2, 4, 1, 2, 4, 1, 2]),
        ("minimum", [1, 1, 1, 2, 4, 1, 1]),
        ("maximum", [4, 4, 1, 2, 4, 4, 4]),
        ("median", [2, 2, 1, 2, 4, 2, 2]),
    ],
)
def test_pad_modes_on_a_line(mode, expected):
    out = Pad((2, 2, 0, 0, 0, 0), padding_mode=mode)(Subject(t1=line([1.0, 2.0, 4.0]))).t1
    assert values_of(out) == expected
    assert out.dtype == torch.float32


def test_pad_mean_mode_on_a_line():
    out = Pad((1, 1, 0, 0, 0, 0), padding_mode="mean")(Subject(t1=line([1.0, 2.0, 6.0]))).t1
    assert values_of(out) == [3.0, 1.0, 2.0, 6.0, 3.0]


def test_pad_fills_label_maps_with_zero_unless_the_mode_copies_voxels():
    seg = LabelMap(tensor=torch.tensor([3, 3], dtype=torch.uint8).reshape(1, 2, 1, 1))
    subject = Subject(t1=line([1.0, 2.0]), seg=seg)
    out = Pad((1, 1, 0, 0, 0, 0), padding_mode=-1000)(subject)
    assert values_of(out.t1) == [-1000.0, 1.0, 2.0, -1000.0]
    assert values_of(out.seg) == [0, 3, 3, 0]
    assert out.seg.dtype == torch.uint8
    assert values_of(Pad((1, 1, 0, 0, 0, 0), padding_mode="mean")(subject).seg) == [0, 3, 3, 0]
    assert values_of(Pad((1, 1, 0, 0, 0, 0), padding_mode="edge")(subject).seg) == [3, 3, 3, 3]


def test_pad_keeps_integer_and_half_precision_dtypes():
    for dtype in (torch.int16, torch.float16, torch.bfloat16):
        for mode in (0, "reflect"):
            out = Pad(1, padding_mode=mode)(Subject(t1=line([1, 2], dtype=dtype))).t1
            assert out.dtype == dtype


def test_pad_by_zero_returns_the_same_image():
    subject = Subject(t1=line([1.0]))
    assert Pad(0)(subject).t1 is subject.t1


def test_pad_value_that_does_not_fit_an_integer_image_is_an_error():
    subject = Subject(ct=line([1, 2], dtype=torch.uint8), subject_id="sub-02")
    with pytest.raises(
        ValueError, match=r"padding value -1000 does not fit the torch.uint8 voxels of image 'ct'.*sub-02"
    ):
        Pad(1, padding_mode=-1000)(subject)
    with pytest.raises(ValueError, match=r"padding value 0\.5 does not fit"):
        Pad(1, padding_mode=0.5)(subject)


@pytest.mark.parametrize(
    ("padding", "error", "message"),
    [
        (-1, ValueError, "padding must be non-negative, got -1"),
        ((1, -1, 0), ValueError, r"padding must be non-negative, got \(1, -1, 0\)"),
        ((1, 2), ValueError, r"three ints \(per axis\) or six ints .* got 2 values"),
        ((1, 2, 3, 4), ValueError, "got 4 values"),
        (1.5, TypeError, "padding must be an int, three ints or six ints, got float 1.5"),
        (True, TypeError, "padding must be an int, three ints or six ints, got bool"),
        ((1, 2.0, 3), TypeError, r"padding must hold ints, got \(1, 2.0, 3\)"),
        ("2", TypeError, "padding must be an int"),
    ],
)
def test_pad_rejects_bad_padding(padding, error, message):
    with pytest.raises(error, match=message):
        Pad(padding)


@pytest.mark.parametrize(
    ("mode", "error", "message"),
    [
        ("nearest", ValueError, r"padding_mode must be a number or one of \['constant', 'edge'.*got 'nearest'"),
        ("empty", ValueError, "got 'empty'"),
        (float("nan"), ValueError, "padding_mode must be a finite number"),
        (None, TypeError, "padding_mode must be a number or one of .* got NoneType"),
    ],
)
def test_pad_rejects_bad_padding_modes(mode, error, message):
    with pytest.raises(error, match=message):
        Pad(1, padding_mode=mode)


def test_pad_accepts_numpy_integers():
    out = Pad(np.array([1, 0, 0], dtype=np.int64))(Subject(t1=line([1.0]))).t1
    assert out.spatial_shape == (3, 1, 1)


# Crop ----------------------------------------------------------------------------------------


def test_crop_shifts_origin_by_cropping():
    image = ScalarImage(tensor=torch.arange(48.0).reshape(1, 4, 4, 3), affine=np.diag([2.0, 3.0, 4.0, 1.0]))
    out = Crop((1, 0, 2, 1, 0, 1))(Subject(t1=image)).t1
    assert out.spatial_shape == (3, 1, 2)
    assert out.origin == (2.0, 6.0, 0.0)
    assert torch.equal(out.data, image.data[:, 1:, 2:3, 0:2])


def test_crop_with_an_int_keeps_2d_images_one_voxel_deep():
    out = Crop(1)(Subject(t1=ScalarImage(tensor=torch.ones(1, 4, 5, 1)))).t1
    assert out.spatial_shape == (2, 3, 1)


def test_crop_copies_so_the_output_does_not_alias_the_input():
    image = line([1.0, 2.0, 3.0])
    out = Crop((1, 0, 0, 0, 0, 0))(Subject(t1=image)).t1
    out.data.zero_()
    assert values_of(image) == [1.0, 2.0, 3.0]


def test_crop_reads_only_its_box_from_an_uncompressed_file(tmp_path):
    data = np.arange(60, dtype=np.int16).reshape(1, 3, 4, 5)
    io.write_image(data, np.eye(4), tmp_path / "x.nii")
    image = ScalarImage(tmp_path / "x.nii")
    out = Crop((1, 1, 1, 1, 1, 1))(Subject(t1=image)).t1
    assert not image.is_loaded
    assert out.data.numpy().tolist() == data[:, 1:2, 1:3, 1:4].tolist()


def test_crop_that_leaves_nothing_names_subject_image_shape_and_cropping():
    subject = Subject(t1=ScalarImage(tensor=torch.ones(1, 4, 4, 4)), subject_id="sub-03")
    with pytest.raises(ValueError, match=r"cropping \(2, 2, 0, 0, 0, 0\).*leaves nothing of image 't1'.*"):
        Crop((2, 2, 0, 0, 0, 0))(subject)
    with pytest.raises(ValueError, match=r"spatial shape \(4, 4, 4\) in subject 'sub-03'"):
        Crop(2)(subject)


def test_crop_rejects_negative_cropping():
    with pytest.raises(ValueError, match="cropping must be non-negative"):
        Crop((0, 0, -1))


# CropOrPad ------------------------------------------------------------------------------------


def test_crop_or_pad_crops_the_odd_voxel_from_the_start():
    out = CropOrPad((2, None, None))(Subject(t1=line([0.0, 1.0, 2.0, 3.0, 4.0]))).t1
    assert values_of(out) == [2.0, 3.0]
    assert out.origin == (2.0, 0.0, 0.0)


def test_crop_or_pad_pads_the_odd_voxel_at_the_start():
    out = CropOrPad((5, 1, 1))(Subject(t1=line([1.0, 2.0]))).t1
    assert values_of(out) == [0.0, 0.0, 1.0, 2.0, 0.0]
    assert out.origin == (-2.0, 0.0, 0.0)


def test_crop_or_pad_crops_and_pads_different_axes():
    image = ScalarImage(tensor=torch.ones(1, 6, 2, 3))
    out = CropOrPad((4, 4, 3), padding_mode=7)(Subject(t1=image)).t1
    assert out.spatial_shape == (4, 4, 3)
    assert out.origin == (1.0, -1.0, 0.0)
    assert out.data[0, :, 0].flatten().tolist() == [7.0] * 12


def test_crop_or_pad_with_an_int_on_a_2d_image():
    out = CropOrPad(4)(Subject(t1=ScalarImage(tensor=torch.ones(3, 2, 7, 1)))).t1
    assert out.shape == (3, 4, 4, 1)


def test_crop_or_pad_with_an_int_on_a_volume():
    out = CropOrPad(4)(Subject(t1=ScalarImage(tensor=torch.ones(1, 2, 7, 3)))).t1
    assert out.spatial_shape == (4, 4, 4)


def test_crop_or_pad_to_the_same_shape_returns_the_same_image():
    subject = Subject(t1=ScalarImage(tensor=torch.ones(1, 2, 3, 4)))
    assert CropOrPad((2, 3, 4))(subject).t1 is subject.t1


def test_crop_or_pad_centres_on_the_mask_bounding_box():
    # Foreground at I indices 6 and 7 of 10: the 4-voxel window is [5, 9).
    mask = torch.zeros(1, 10, 1, 1, dtype=torch.uint8)
    mask[0, 6:8] = 1
    subject = Subject(t1=line([float(v) for v in range(10)]), seg=LabelMap(tensor=mask))
    out = CropOrPad((4, 1, 1), mask_name="seg")(subject)
    assert values_of(out.t1) == [5.0, 6.0, 7.0, 8.0]
    assert values_of(out.seg) == [0, 1, 1, 0]
    assert out.t1.origin == (5.0, 0.0, 0.0)


def test_crop_or_pad_pads_where_the_mask_window_leaves_the_image():
    # Foreground at index 0: a 5-voxel window centred on it is [-2, 3).
    mask = torch.zeros(1, 4, 1, 1, dtype=torch.uint8)
    mask[0, 0] = 1
    subject = Subject(t1=line([1.0, 2.0, 3.0, 4.0]), seg=LabelMap(tensor=mask))
    out = CropOrPad((5, 1, 1), mask_name="seg")(subject)
    assert values_of(out.t1) == [0.0, 0.0, 1.0, 2.0, 3.0]
    assert values_of(out.seg) == [0, 0, 1, 0, 0]
    assert out.t1.origin == (-2.0, 0.0, 0.0)


def test_crop_or_pad_with_an_empty_mask_centres_on_the_image():
    subject = Subject(t1=line([0.0, 1.0, 2.0, 3.0, 4.0]), seg=LabelMap(tensor=torch.zeros(1, 5, 1, 1)))
    out = CropOrPad((2, 1, 1), mask_name="seg")(subject)
    assert values_of(out.t1) == [2.0, 3.0]


def test_crop_or_pad_with_a_full_mask_matches_centring():
    for size in (5, 6):
        for target in (2, 3, 8, 9):
            image = line([float(v) for v in range(size)])
            full = LabelMap(tensor=torch.ones(1, size, 1, 1))
            centred = CropOrPad((target, 1, 1))(Subject(t1=image)).t1
            masked = CropOrPad((target, 1, 1), mask_name="seg")(Subject(t1=image, seg=full)).t1
            assert torch.equal(centred.data, masked.data)
            assert np.array_equal(centred.affine, masked.affine)


def test_crop_or_pad_mask_of_another_shape_is_an_error():
    subject = Subject(t1=line([1.0, 2.0]), seg=LabelMap(tensor=torch.ones(1, 3, 1, 1)), subject_id="sub-04")
    with pytest.raises(ValueError, match=r"image 't1' of subject 'sub-04' has spatial shape \(2, 1, 1\) but the mask"):
        CropOrPad((2, 1, 1), mask_name="seg")(subject)


def test_crop_or_pad_missing_mask_names_subject_and_images():
    subject = Subject(t1=line([1.0, 2.0]), subject_id="sub-05")
    with pytest.raises(KeyError, match=r"mask_name 'brain' is not an image of subject 'sub-05'; images: \['t1'\]"):
        CropOrPad(2, mask_name="brain")(subject)


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        (0, ValueError, "target_shape must be at least 1 on every axis, got 0"),
        ((4, 0, None), ValueError, r"at least 1 on every axis, got \(4, 0, None\)"),
        ((4, 4), ValueError, r"three values \(I, J, K\), got 2"),
        (4.0, TypeError, "target_shape must be an int or three ints .* got float 4.0"),
        ((4, 4.5, 4), TypeError, "target_shape must be an int or three ints"),
        (None, TypeError, "got NoneType"),
    ],
)
def test_crop_or_pad_rejects_bad_target_shapes(target, error, message):
    with pytest.raises(error, match=message):
        CropOrPad(target)


def test_crop_or_pad_rejects_a_mask_name_that_is_not_a_string():
    with pytest.raises(TypeError, match="mask_name must be None or an image name, got int 3"):
        CropOrPad(4, mask_name=3)


# Properties ----------------------------------------------------------------------------------

shapes = st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6))
bounds = st.tuples(*[st.integers(0, 3)] * 6)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, padding=bounds, mode=st.sampled_from([0, "edge", "reflect", "wrap", "mean"]))
def test_pad_then_crop_by_the_same_amounts_is_identity(shape, padding, mode):
    affine = np.array([[0.0, -2.0, 0.0, 3.0], [1.5, 0.0, 0.0, -1.0], [0.0, 0.0, 0.5, 7.0], [0.0, 0.0, 0.0, 1.0]])
    image = ScalarImage(tensor=torch.rand(2, *shape), affine=affine)
    out = Crop(padding)(Pad(padding, padding_mode=mode)(Subject(t1=image))).t1
    assert torch.equal(out.data, image.data)
    assert np.allclose(out.affine, image.affine)


@settings(max_examples=60, deadline=None)
@given(
    shape=shapes,
    target=st.tuples(*[st.one_of(st.none(), st.integers(1, 8))] * 3),
    foreground=st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)),
    use_mask=st.booleans(),
)
def test_crop_or_pad_always_gives_the_target_shape_and_keeps_world_positions(shape, target, foreground, use_mask):
    data = torch.arange(float(np.prod(shape))).reshape(1, *shape) + 1
    mask = torch.zeros(1, *shape, dtype=torch.uint8)
    mask[0, foreground[0] % shape[0], foreground[1] % shape[1], foreground[2] % shape[2]] = 1
    subject = Subject(t1=ScalarImage(tensor=data), seg=LabelMap(tensor=mask))
    result = CropOrPad(target, mask_name="seg" if use_mask else None)(subject)
    out = result.t1
    expected = tuple(shape[a] if t is None else t for a, t in enumerate(target))
    assert out.spatial_shape == expected
    assert result.seg.spatial_shape == expected
    if use_mask:  # a window centred on the only foreground voxel always contains it
        assert int(result.seg.data.sum()) == 1
    # Every non-padded output voxel holds the input value at the same world position.
    offset = np.round(out.origin).astype(int)
    for index in np.ndindex(*expected):
        source = tuple(int(i + o) for i, o in zip(index, offset))
        inside = all(0 <= s < n for s, n in zip(source, shape))
        value = float(out.data[(0, *index)])
        assert value == (float(data[(0, *source)]) if inside else 0.0)


def test_crop_or_pad_only_crop_and_only_pad_keep_the_other_axes() -> None:
    subject = Subject(a=ScalarImage(tensor=torch.zeros(1, 5, 9, 3)))
    assert CropOrPad((8, 8, 3), only_crop=True)(subject).a.spatial_shape == (5, 8, 3)
    assert CropOrPad((8, 8, 3), only_pad=True)(subject).a.spatial_shape == (8, 9, 3)


def test_crop_or_pad_target_none_crops_to_the_mask_labels() -> None:
    mask = torch.zeros(1, 6, 6, 1, dtype=torch.int64)
    mask[0, 1:3, 2:5] = 2
    mask[0, 5, 5] = 1
    out = CropOrPad(mask_name="m")(Subject(m=LabelMap(tensor=mask)))
    assert out.m.spatial_shape == (5, 4, 1)
    assert CropOrPad(mask_name="m", labels=[2])(Subject(m=LabelMap(tensor=mask))).m.spatial_shape == (2, 3, 1)


def test_crop_or_pad_random_location_is_seeded_and_keeps_the_size() -> None:
    subject = Subject(a=ScalarImage(tensor=torch.arange(10.0).reshape(1, 10, 1, 1)))
    torch.manual_seed(1)
    first = CropOrPad((4, 1, 1), location="random")(subject).a.data
    torch.manual_seed(1)
    assert torch.equal(first, CropOrPad((4, 1, 1), location="random")(subject).a.data)
    assert first.shape == (1, 4, 1, 1)


def test_crop_or_pad_rejects_bad_extras() -> None:
    with pytest.raises(ValueError, match="only_crop and only_pad"):
        CropOrPad(2, only_crop=True, only_pad=True)
    with pytest.raises(ValueError, match="location must be"):
        CropOrPad(2, location="corner")
    with pytest.raises(ValueError, match="units must be"):
        CropOrPad(2, units="inch")
    with pytest.raises(ValueError, match="cannot be combined with mask_name"):
        CropOrPad(2, mask_name="m", location="random")
    with pytest.raises(ValueError, match="give mask_name too"):
        CropOrPad(2, labels=[1])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_shape": (6, 3, 5), "only_crop": True},
        {"target_shape": (6, 3, 5), "only_pad": True},
        {"target_shape": (6, 3, 5), "location": "random"},
        {"target_shape": (9.0, 4.0, 5.0), "units": "mm"},
        {"target_shape": None, "mask_name": "seg", "labels": [2]},
    ],
)
def test_crop_or_pad_extras_match_torchio(kwargs: dict) -> None:
    tio = pytest.importorskip("torchio")
    data = torch.arange(4 * 5 * 6, dtype=torch.float32).reshape(1, 4, 5, 6)
    seg = torch.zeros(1, 4, 5, 6, dtype=torch.int64)
    seg[0, 1:3, 1:4, 2:5] = 2
    seg[0, 0, 0, 0] = 1
    affine = torch.diag(torch.tensor([1.5, 1.0, 1.0, 1.0])).numpy()
    ours = Subject(t1=ScalarImage(tensor=data, affine=affine), seg=LabelMap(tensor=seg, affine=affine))
    theirs = tio.Subject(t1=tio.ScalarImage(tensor=data, affine=affine), seg=tio.LabelMap(tensor=seg, affine=affine))
    torch.manual_seed(3)
    expected = tio.CropOrPad(**kwargs)(theirs)
    torch.manual_seed(3)
    got = CropOrPad(**kwargs)(ours)
    assert torch.equal(got.t1.data, expected.t1.data)
    assert got.t1.affine == pytest.approx(expected.t1.affine)
