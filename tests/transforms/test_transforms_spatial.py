"""ToCanonical and Resample: hand-computed grids and values, world positions kept."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.transforms import Resample, ToCanonical

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: I points anterior, J left, K superior; spacings 2, 0.5, 0.75.
PERMUTED = np.array(
    [
        [0.0, -0.5, 0.0, 12.25],
        [2.0, 0.0, 0.0, -30.5],
        [0.0, 0.0, 0.75, 8.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def world_values(image) -> dict[tuple[float, ...], tuple[float, ...]]:
    """World position (rounded) of every voxel centre -> its values over channels."""
    shape = image.spatial_shape
    indices = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    homogeneous = np.concatenate([indices, np.ones((len(indices), 1))], axis=1)
    positions = (image.affine @ homogeneous.T).T[:, :3]
    data = image.data.reshape(image.num_channels, -1).T.tolist()
    return {tuple(np.round(p, 6)): tuple(v) for p, v in zip(positions, data)}


def ramp(shape, affine=None, dtype=torch.float32) -> ScalarImage:
    count = int(np.prod(shape))
    return ScalarImage(tensor=torch.arange(count).reshape(shape).to(dtype), affine=affine)


# ToCanonical -------------------------------------------------------------------------


def test_to_canonical_turns_lps_into_ras_with_the_same_world_positions():
    image = ramp((1, 2, 3, 4), LPS)
    out = ToCanonical()(Subject(t1=image)).t1
    assert out.orientation == ("R", "A", "S")
    assert out.spatial_shape == (2, 3, 4)
    assert np.allclose(out.affine, [[1, 0, 0, -1], [0, 1, 0, -2], [0, 0, 1, 0], [0, 0, 0, 1]])
    assert world_values(out) == world_values(image)
    # The first voxel of the output was the last along I and J of the input.
    assert torch.equal(out.data[0, 0, 0], image.data[0, 1, 2])


def test_to_canonical_permutes_axes_and_keeps_world_positions():
    image = ramp((2, 2, 3, 4), PERMUTED)
    out = ToCanonical()(Subject(t1=image)).t1
    assert image.orientation == ("A", "L", "S")
    assert out.orientation == ("R", "A", "S")
    assert out.spatial_shape == (3, 2, 4)
    assert out.spacing == (0.5, 2.0, 0.75)
    assert world_values(out) == world_values(image)
    assert out.data.is_contiguous()


def test_to_canonical_keeps_ras_images_unchanged():
    subject = Subject(t1=ramp((1, 2, 2, 2)))
    assert ToCanonical()(subject).t1 is subject.t1


def test_to_canonical_keeps_label_dtype_and_2d_depth():
    seg = LabelMap(tensor=torch.tensor([[1, 2], [3, 4]], dtype=torch.int16)[None, ..., None], affine=LPS)
    out = ToCanonical()(Subject(seg=seg)).seg
    assert out.dtype == torch.int16
    assert out.spatial_shape == (2, 2, 1)
    assert out.data.flatten().tolist() == [4, 3, 2, 1]
    assert world_values(out) == world_values(seg)


# Resample: grids ------------------------------------------------------------------------


def test_resample_halves_shape_when_spacing_doubles():
    out = Resample(2)(Subject(t1=ramp((1, 4, 4, 4)))).t1
    assert out.shape == (1, 2, 2, 2)
    assert out.spacing == (2.0, 2.0, 2.0)
    assert out.origin == (0.5, 0.5, 0.5)


def test_resample_keeps_the_centre_of_the_field_of_view_like_torchio():
    # TorchIO's grid (the old one kept the outer corner and rounded the size).
    affine = np.array(PERMUTED)
    image = ramp((1, 5, 6, 7), affine)
    out = Resample((1.0, 1.5, 0.5))(Subject(t1=image)).t1
    centre = np.array([(5 - 1) / 2, (6 - 1) / 2, (7 - 1) / 2, 1.0])
    new_centre = np.array([*((np.array(out.spatial_shape) - 1) / 2), 1.0])
    assert np.allclose(out.affine @ new_centre, image.affine @ centre)
    assert np.allclose(out.spacing, (1.0, 1.5, 0.5))
    assert out.orientation == image.orientation
    # 5 * 2 / 1 = 10, 6 * 0.5 / 1.5 = 2, 7 * 0.75 / 0.5 = 10.5 -> 10 (floor, never beyond the old extent).
    assert out.spatial_shape == (10, 2, 10)


def test_resample_never_makes_an_axis_empty():
    out = Resample(10)(Subject(t1=ramp((1, 3, 3, 3)))).t1
    assert out.spatial_shape == (1, 1, 1)


def test_resample_linear_values_along_a_ramp():
    # Centres of the new voxels sit at input indices 0.5 and 2.5.
    out = Resample((2, 1, 1))(Subject(t1=ramp((1, 4, 1, 1)))).t1
    assert out.data.flatten().tolist() == [0.5, 2.5]


def test_resample_of_an_odd_axis_trims_both_ends_evenly():
    # 5 voxels at 1 mm -> floor(2.5) = 2 at 2 mm, centred on input index 2:
    # new centres at input indices 1 and 3 (TorchIO's grid).
    out = Resample((2, 1, 1))(Subject(t1=ramp((1, 5, 1, 1)))).t1
    assert out.data.flatten().tolist() == [1.0, 3.0]
    assert out.origin == (1.0, 0.0, 0.0)


def test_resample_upsampling_keeps_border_voxels():
    # New centres at input indices -0.25, 0.25, 0.75, 1.25.
    image = ScalarImage(tensor=torch.tensor([0.0, 1.0]).reshape(1, 2, 1, 1))
    out = Resample((0.5, 1, 1))(Subject(t1=image)).t1
    assert out.data.flatten().tolist() == [0.0, 0.25, 0.75, 1.0]


def test_resample_leaves_the_depth_of_2d_images_alone():
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    image = ScalarImage(tensor=torch.ones(2, 4, 6, 1), affine=affine)
    for target in (2, (2, 2, 2), (2, 2, 0.5)):
        out = Resample(target)(Subject(t1=image)).t1
        assert out.shape == (2, 2, 3, 1)
        assert out.spacing == (2.0, 2.0, 3.0)
        assert out.origin[2] == 0.0
        assert torch.equal(out.data, torch.ones(2, 2, 3, 1))


def test_resample_keeps_labels_integer_and_nearest():
    seg = LabelMap(tensor=torch.tensor([1, 7, 7, 3, 3, 5], dtype=torch.int16).reshape(1, 6, 1, 1))
    out = Resample((1.5, 1, 1))(Subject(seg=seg)).seg
    assert out.dtype == torch.int16
    # 6 * 1 / 1.5 = 4 voxels, centres at input indices 0.25, 1.75, 3.25, 4.75:
    # nearest voxels 0, 2, 3, 5.
    assert out.data.flatten().tolist() == [1, 7, 3, 5]


def test_resample_interpolates_scalars_but_not_labels_of_one_subject():
    t1 = ScalarImage(tensor=torch.tensor([0.0, 10.0, 20.0, 30.0]).reshape(1, 4, 1, 1))
    seg = LabelMap(tensor=torch.tensor([1, 1, 2, 2], dtype=torch.uint8).reshape(1, 4, 1, 1))
    out = Resample((2, 1, 1))(Subject(t1=t1, seg=seg))
    assert out.t1.data.flatten().tolist() == [5.0, 25.0]
    assert out.seg.data.flatten().tolist() == [1, 2]
    assert out.seg.dtype == torch.uint8


def test_resample_nearest_image_interpolation():
    t1 = ScalarImage(tensor=torch.tensor([0.0, 10.0, 20.0, 30.0]).reshape(1, 4, 1, 1))
    out = Resample((2, 1, 1), image_interpolation="nearest")(Subject(t1=t1)).t1
    assert set(out.data.flatten().tolist()) <= {0.0, 10.0, 20.0, 30.0}


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (torch.int16, torch.int16),
        (torch.uint8, torch.uint8),
        (torch.bool, torch.uint8),
        (torch.float16, torch.float16),
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),
    ],
)
def test_resample_scalar_output_dtype_is_kept_like_torchio(dtype, expected):
    image = ScalarImage(tensor=torch.ones(1, 4, 4, 1, dtype=dtype))
    out = Resample(2)(Subject(t1=image)).t1
    assert out.dtype == expected
    assert torch.equal(out.data, torch.ones(1, 2, 2, 1, dtype=expected))


@pytest.mark.parametrize("dtype", [torch.int16, torch.uint8, torch.bool])
def test_resample_without_keep_dtype_gives_float32_integer_scalars(dtype):
    image = ScalarImage(tensor=torch.ones(1, 4, 4, 1, dtype=dtype))
    out = Resample(2, keep_dtype=False)(Subject(t1=image)).t1
    assert out.dtype == torch.float32
    assert torch.equal(out.data, torch.ones(1, 2, 2, 1))


def test_resample_integer_scalars_are_cut_toward_zero_like_simpleitk():
    image = ScalarImage(tensor=torch.tensor([-3, 0, 3, 6, 9], dtype=torch.int16).reshape(1, 5, 1, 1))
    # floor(5 / 1.5) = 3 voxels centred on index 2, at input indices 0.5, 2, 3.5: -1.5, 3, 7.5.
    out = Resample((1.5, 1, 1))(image)
    assert out.dtype == torch.int16 and out.data.flatten().tolist() == [-1, 3, 7]
    assert Resample((1.5, 1, 1), keep_dtype=False)(image).data.flatten().tolist() == [-1.5, 3.0, 7.5]


def test_resample_each_channel_separately():
    data = torch.stack([torch.arange(4.0), 10 * torch.arange(4.0)]).reshape(2, 4, 1, 1)
    out = Resample((2, 1, 1))(Subject(t1=ScalarImage(tensor=data))).t1
    assert out.data[:, :, 0, 0].tolist() == [[0.5, 2.5], [5.0, 25.0]]


def test_resample_to_the_current_spacing_returns_the_same_image():
    subject = Subject(t1=ramp((1, 3, 3, 3), np.diag([2.0, 2.0, 2.0, 1.0])))
    assert Resample(2.0)(subject).t1 is subject.t1


# Resample: onto another grid ----------------------------------------------------------------


def test_resample_onto_a_reference_image_by_name():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = 0.5
    reference = ScalarImage(tensor=torch.zeros(1, 2, 2, 2), affine=affine)
    subject = Subject(ref=reference, t1=ramp((1, 4, 4, 4)), seg=LabelMap(tensor=torch.ones(1, 4, 4, 4)))
    out = Resample("ref")(subject)
    assert out.ref is subject.ref
    for name in ("t1", "seg"):
        assert out[name].spatial_shape == (2, 2, 2)
        assert np.allclose(out[name].affine, reference.affine)
    out.check_consistent_space()
    assert torch.equal(out.seg.data, torch.ones(1, 2, 2, 2, dtype=torch.uint8))


def test_resample_onto_an_image_instance():
    reference = LabelMap(tensor=torch.zeros(1, 3, 1, 1), affine=_shift(1.0))
    out = Resample(reference)(Subject(t1=ramp((1, 4, 1, 1)))).t1
    assert np.allclose(out.affine, reference.affine)
    assert out.data.flatten().tolist() == [1.0, 2.0, 3.0]


def test_resample_zeroes_voxels_outside_the_input_field_of_view():
    # The reference grid starts 2 mm further: indices 2, 3 inside; 4, 5 outside.
    reference = ScalarImage(tensor=torch.zeros(1, 4, 1, 1), affine=_shift(2.0))
    image = ScalarImage(tensor=torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1, 1))
    out = Resample(reference)(Subject(t1=image)).t1
    assert out.data.flatten().tolist() == [3.0, 4.0, 0.0, 0.0]


def test_resample_onto_a_rotated_grid():
    # Reference voxel (i, j) sits at world (origin - j, i): input voxel (origin - j, i).
    image = ramp((1, 3, 3, 1))
    rotation = np.array([[0.0, -1.0, 0.0, 2.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    reference = ScalarImage(tensor=torch.zeros(1, 3, 3, 1), affine=rotation)
    out = Resample(reference)(Subject(t1=image)).t1
    expected = [[float(image.data[0, 2 - j, i, 0]) for j in range(3)] for i in range(3)]
    assert out.data[0, :, :, 0].tolist() == expected
    # Shifted by one more millimetre, the column j = 0 leaves the field of view.
    rotation[0, 3] = 3.0
    shifted = Resample(ScalarImage(tensor=torch.zeros(1, 3, 3, 1), affine=rotation))(Subject(t1=image)).t1
    assert shifted.data[0, :, 0, 0].tolist() == [0.0, 0.0, 0.0]
    assert shifted.data[0, :, 1:, 0].tolist() == [row[:2] for row in expected]


def test_resample_respects_include():
    subject = Subject(t1=ramp((1, 4, 4, 4)), t2=ramp((1, 4, 4, 4)))
    out = Resample(2, include=["t2"])(subject)
    assert out.t1 is subject.t1
    assert out.t2.spatial_shape == (2, 2, 2)


def _shift(x: float) -> np.ndarray:
    """Identity affine whose origin is ``x`` mm along R."""
    affine = np.eye(4)
    affine[0, 3] = x
    return affine


# Resample: errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", [0, -1.0, (1.0, 0.0, 1.0), float("nan"), float("inf")])
def test_resample_rejects_spacings_that_are_not_positive(target):
    with pytest.raises(ValueError, match="spacings must be positive and finite"):
        Resample(target)


def test_resample_rejects_a_wrong_number_of_spacings():
    with pytest.raises(ValueError, match=r"three spacings \(I, J, K\), got 2"):
        Resample((1.0, 2.0))


@pytest.mark.parametrize("target", [True, None, {"t1": 1}, (1, "2", 3)])
def test_resample_rejects_targets_of_the_wrong_type(target):
    with pytest.raises(TypeError, match="Resample target"):
        Resample(target)


def test_resample_rejects_unknown_interpolations():
    with pytest.raises(
        ValueError, match=r"image_interpolation must be one of \['nearest', 'linear', 'bspline'\], got 'cubic'"
    ):
        Resample(image_interpolation="cubic")
    with pytest.raises(ValueError, match=r"label_interpolation must be one of .*, got 'lanczos'"):
        Resample(label_interpolation="lanczos")
    with pytest.raises(TypeError, match="image_interpolation must be one of"):
        Resample(image_interpolation=1)


def test_resample_onto_a_missing_image_names_subject_and_images():
    subject = Subject(t1=ramp((1, 2, 2, 2)), subject_id="sub-07")
    with pytest.raises(KeyError, match=r"'flair' is not an image of subject 'sub-07'; images: \['t1'\]"):
        Resample("flair")(subject)


# Properties ----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    permutation=st.permutations([0, 1, 2]),
    signs=st.tuples(*[st.sampled_from([-1.0, 1.0])] * 3),
    spacing=st.tuples(*[st.sampled_from([0.5, 1.0, 2.5])] * 3),
    shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
)
def test_to_canonical_gives_ras_and_keeps_world_positions_for_any_axis_order(permutation, signs, spacing, shape):
    affine = np.eye(4)
    affine[:3, :3] = np.eye(3)[:, permutation] * np.array(signs) * np.array(spacing)
    affine[:3, 3] = (3.0, -1.0, 2.0)
    image = ramp((2, *shape), affine)
    out = ToCanonical()(Subject(t1=image)).t1
    assert out.orientation == ("R", "A", "S")
    assert np.allclose(np.diag(out.affine)[:3], np.array(spacing)[np.argsort(permutation)])
    assert world_values(out) == world_values(image)


def _to_sitk(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A SimpleITK image (LPS) of ``(I, J, K)`` voxels with a RAS+ affine."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    image.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    return image


@pytest.mark.parametrize("oblique_reference", [False, True])
def test_resample_matches_simpleitk_linear_resampling(oblique_reference):
    data = np.random.default_rng(0).random((6, 7, 5)).astype(np.float32)
    rotation = np.array([[0.8, -0.6, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.array([0.9, 1.1, 2.0])
    affine[:3, 3] = (5.0, -3.0, 2.0)
    image = ScalarImage(tensor=torch.from_numpy(data[None]), affine=affine)
    if oblique_reference:
        grid = np.eye(4)
        grid[:3, :3] = rotation.T * 1.2
        grid[:3, 3] = (4.0, -4.0, 1.0)
        out = Resample(ScalarImage(tensor=torch.zeros(1, 6, 8, 6), affine=grid))(Subject(t1=image)).t1
    else:
        out = Resample((1.3, 0.7, 2.1))(Subject(t1=image)).t1
    reference = _to_sitk(np.zeros(out.spatial_shape, np.float32), out.affine)
    expected = sitk.Resample(_to_sitk(data, affine), reference, sitk.Transform(), sitk.sitkLinear, 0.0)
    expected_array = sitk.GetArrayFromImage(expected).transpose(2, 1, 0)
    assert np.allclose(out.data[0].numpy(), expected_array, atol=1e-5)
    if oblique_reference:  # part of the rotated grid lies outside the input
        assert (expected_array == 0).any()
