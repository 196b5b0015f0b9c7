"""ToOrientation (permute/flip into any code) and Resize (the centred grid of a target shape).

The tests at the end compare with TorchIO 1.2.1 and are skipped without it
(run them in the benchmark venv: ``.bench-venv-aug/bin/python -m pytest ...``).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

import torchpatch as tp
from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.annotations import BoundingBoxes, Points
from torchpatch.transforms import Resample, Resize, ToCanonical, ToOrientation

AFFINE = np.array([[1.5, 0, 0, -10], [0, 0.8, 0, 5], [0, 0, 2.0, 1], [0, 0, 0, 1]])


def _affines():
    """Every axis permutation and sign of a diagonal affine with distinct spacings."""
    for permutation in itertools.permutations(range(3)):
        for signs in itertools.product([1.0, -1.0], repeat=3):
            affine = np.eye(4)
            affine[:3, :3] = np.eye(3)[:, permutation] * np.array(signs) * np.array([1.5, 0.7, 2.0])
            affine[:3, 3] = [3.0, -4.0, 5.0]
            yield affine


def _centres(image) -> np.ndarray:
    """World position of every voxel centre, (I*J*K, 3) in voxel order."""
    shape = image.spatial_shape
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), -1).reshape(-1, 3)
    return grid @ image.affine[:3, :3].T + image.affine[:3, 3]


# ToOrientation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["RAS", "LPS", "LAS", "PLS", "SLP", "IRA"])
def test_to_orientation_gives_the_code_and_keeps_each_value_at_its_world_position(code):
    data = torch.arange(2 * 5 * 6 * 7, dtype=torch.float32).reshape(2, 5, 6, 7)
    for affine in _affines():
        image = ScalarImage(tensor=data, affine=affine)
        out = ToOrientation(code)(Subject(t1=image)).t1
        assert "".join(out.orientation) == code
        before = {tuple(np.round(p, 6)): v for p, v in zip(_centres(image), data[1].reshape(-1).tolist())}
        after = {tuple(np.round(p, 6)): v for p, v in zip(_centres(out), out.data[1].reshape(-1).tolist())}
        assert before == after


def test_to_orientation_ras_equals_to_canonical():
    data = torch.rand(1, 4, 5, 3)
    for affine in _affines():
        subject = Subject(t1=ScalarImage(tensor=data, affine=affine))
        ours, canonical = ToOrientation()(subject).t1, ToCanonical()(subject).t1
        assert torch.equal(ours.data, canonical.data)
        np.testing.assert_allclose(ours.affine, canonical.affine)


def test_to_orientation_in_place_code_passes_the_image_through():
    image = ScalarImage(tensor=torch.rand(1, 3, 3, 3), affine=np.diag([-1.0, -1.0, 1.0, 1.0]))
    out = ToOrientation("lps")(Subject(t1=image))
    assert out.t1 is image


def test_to_orientation_keeps_labels_dtype_and_respects_exclude():
    seg = LabelMap(tensor=torch.randint(0, 3, (1, 3, 4, 2), dtype=torch.int16))
    t1 = ScalarImage(tensor=torch.rand(1, 3, 4, 2))
    out = ToOrientation("LPI", exclude="t1")(Subject(t1=t1, seg=seg))
    assert out.t1 is t1
    assert out.seg.dtype == torch.int16 and out.seg.orientation == ("L", "P", "I")
    assert torch.equal(out.seg.data, seg.data.flip(1, 2, 3))


@pytest.mark.parametrize("code", ["PLS", "LPS", "SRA"])
def test_to_orientation_keeps_boxes_and_points_on_their_voxels(code):
    shape = (5, 4, 3)
    data = torch.zeros(1, *shape)
    data[0, 1:3, 2:4, 0:1] = 1.0
    data[0, 4, 0, 2] = 2.0
    subject = Subject(
        img=ScalarImage(tensor=data, affine=AFFINE),
        boxes=BoundingBoxes([[1, 2, 0, 3, 4, 1]], "xyzxyz", shape),
        points=Points.from_indices([[4, 0, 2], [1, 2, 0]], shape),
    )
    out = ToOrientation(code)(subject)
    new_shape = out.img.spatial_shape
    assert out["boxes"].spatial_shape == new_shape and out["points"].spatial_shape == new_shape
    covered = torch.zeros(new_shape, dtype=torch.bool)
    for i0, j0, k0, i1, j1, k1 in out["boxes"].to_3d().data.round().to(torch.int64).tolist():
        covered[i0:i1, j0:j1, k0:k1] = True
    assert torch.equal(covered, out.img.data[0] == 1.0)
    values = [float(out.img.data[0, i, j, k]) for i, j, k in out["points"].voxel_indices().tolist()]
    assert values == [2.0, 1.0]


@pytest.mark.parametrize(
    ("orientation", "error", "match"),
    [
        ("RA", ValueError, "3-letter"),
        ("XYZ", ValueError, "three distinct characters"),
        ("RAA", ValueError, "must include one character for each axis"),
        ("RLS", ValueError, "must include one character for each axis"),
        (3, TypeError, "3-letter string"),
    ],
)
def test_to_orientation_rejects_bad_codes_naming_them(orientation, error, match):
    with pytest.raises(error, match=match):
        ToOrientation(orientation)


def test_to_orientation_repr_and_top_level_name():
    assert repr(tp.ToOrientation("las")) == "ToOrientation(orientation='LAS')"
    assert tp.transforms.ToOrientation is ToOrientation


# Resize -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "target", "expected"),
    [
        ((9, 8, 7), (5, 11, 7), (5, 11, 7)),
        ((9, 8, 7), 4, (4, 4, 4)),
        ((20, 30, 10), (10, -1, 3), (10, 30, 3)),
        ((8, 6, 1), 5, (5, 5, 1)),  # 2D: an int is a square
        ((8, 6, 1), (4, 12, 1), (4, 12, 1)),
    ],
)
def test_resize_gives_the_target_shape_and_keeps_the_field_of_view(shape, target, expected):
    image = ScalarImage(tensor=torch.rand(1, *shape), affine=AFFINE)
    out = Resize(target)(Subject(t1=image)).t1
    assert out.spatial_shape == expected

    def corners(im):
        low = im.affine[:3, :3] @ np.full(3, -0.5) + im.affine[:3, 3]
        high = im.affine[:3, :3] @ (np.asarray(im.spatial_shape) - 0.5) + im.affine[:3, 3]
        return low, high

    for mine, theirs in zip(corners(out), corners(image)):
        np.testing.assert_allclose(mine, theirs, atol=1e-9)


def test_resize_by_half_averages_pairs_of_voxels_by_hand():
    data = torch.tensor([0.0, 2.0, 4.0, 6.0]).reshape(1, 4, 1, 1)
    out = Resize((2, 1, 1))(Subject(t1=ScalarImage(tensor=data))).t1
    # New centres at old indices 0.5 and 2.5: the means of the pairs.
    assert out.data.flatten().tolist() == [1.0, 5.0]
    assert out.spacing == (2.0, 1.0, 1.0) and out.origin == (0.5, 0.0, 0.0)


def test_resize_keeps_label_maps_integer_with_nearest_neighbours():
    seg = LabelMap(tensor=torch.tensor([0, 0, 3, 3, 1, 1], dtype=torch.uint8).reshape(1, 6, 1, 1))
    out = Resize((3, 1, 1))(Subject(seg=seg)).seg
    assert out.dtype == torch.uint8 and out.data.flatten().tolist() == [0, 3, 1]


def test_resize_matches_resample_to_the_equivalent_spacing_when_that_grid_is_exact():
    image = ScalarImage(tensor=torch.rand(1, 8, 6, 4), affine=AFFINE)
    resized = Resize((4, 3, 2))(Subject(t1=image)).t1
    resampled = Resample((3.0, 1.6, 4.0))(Subject(t1=image)).t1
    assert resized.spatial_shape == resampled.spatial_shape
    np.testing.assert_allclose(resized.affine, resampled.affine)
    torch.testing.assert_close(resized.data, resampled.data)


def test_resize_moves_boxes_and_points_with_the_voxels():
    subject = Subject(
        img=ScalarImage(tensor=torch.rand(1, 8, 6, 1)),
        boxes=BoundingBoxes([[2, 2, 6, 4]], "xyxy", (8, 6)),
        points=Points([[4.0, 3.0]], (8, 6)),
    )
    out = Resize((4, 12, 1))(subject)
    assert out["boxes"].spatial_shape == (4, 12, 1)
    assert out["boxes"].data.tolist() == [[1.0, 4.0, 3.0, 8.0]]
    assert out["points"].data.tolist() == [[2.0, 6.0]]


def test_resize_arguments_are_checked():
    with pytest.raises(ValueError, match="positive"):
        Resize((4, 0, 4))
    with pytest.raises(ValueError, match="three sizes"):
        Resize((4, 4))
    with pytest.raises(TypeError, match="ints"):
        Resize((4.5, 4, 4))
    with pytest.raises(TypeError, match="target_shape"):
        Resize("big")
    with pytest.raises(ValueError, match="image_interpolation"):
        Resize(4, image_interpolation="cubic-ish")
    assert repr(Resize(4)) == (
        "Resize(target_shape=(4, 4, 4), image_interpolation='linear', label_interpolation='nearest')"
    )


def test_resize_include_leaves_other_images():
    a, b = ScalarImage(tensor=torch.rand(1, 4, 4, 4)), ScalarImage(tensor=torch.rand(1, 4, 4, 4))
    out = Resize(2, include="a")(Subject(a=a, b=b))
    assert out.a.spatial_shape == (2, 2, 2) and out.b is b


# Against TorchIO 1.2.1 (skipped without it) ----------------------------------------------------------


@pytest.mark.parametrize("code", ["RAS", "LPS", "PLS", "SLP", "IRA"])
def test_to_orientation_matches_torchio(code):
    tio = pytest.importorskip("torchio")
    data = torch.rand(2, 5, 6, 7)
    for affine in _affines():
        ours = ToOrientation(code)(Subject(t1=ScalarImage(tensor=data, affine=affine))).t1
        theirs = tio.ToOrientation(code)(tio.Subject(t1=tio.ScalarImage(tensor=data.clone(), affine=affine))).t1
        assert torch.equal(ours.data, theirs.data)
        np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "target"), [((9, 8, 7), (4, 4, 4)), ((20, 30, 10), (10, -1, 3)), ((9, 8, 7), 6), ((6, 9, 4), (12, 9, 2))]
)
def test_resize_matches_torchio(shape, target):
    tio = pytest.importorskip("torchio")
    scalar = torch.rand(1, *shape, generator=torch.Generator().manual_seed(0))
    label = torch.randint(0, 4, (1, *shape), generator=torch.Generator().manual_seed(1), dtype=torch.int16)
    ours = Resize(target)(
        Subject(t1=ScalarImage(tensor=scalar, affine=AFFINE), seg=LabelMap(tensor=label, affine=AFFINE))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # these targets do not hit TorchIO's one-voxel-short grid
        theirs = tio.Resize(target)(
            tio.Subject(
                t1=tio.ScalarImage(tensor=scalar.clone(), affine=AFFINE),
                seg=tio.LabelMap(tensor=label.clone(), affine=AFFINE),
            )
        )
    for name in ("t1", "seg"):
        assert ours[name].shape == tuple(theirs[name].shape)
        np.testing.assert_allclose(ours[name].affine, theirs[name].affine, atol=1e-9)
        torch.testing.assert_close(ours[name].data, theirs[name].data, rtol=0, atol=1e-6)


def test_resize_where_torchio_grid_is_one_voxel_short_we_keep_the_exact_grid():
    """Documented difference: 8 -> 11 voxels, TorchIO's floor gives 10 and it pads zeros at the start."""
    tio = pytest.importorskip("torchio")
    scalar = torch.rand(1, 9, 8, 7, generator=torch.Generator().manual_seed(0)) + 1
    ours = Resize((5, 11, 7))(Subject(t1=ScalarImage(tensor=scalar, affine=AFFINE))).t1
    with pytest.warns(RuntimeWarning, match="CropOrPad"):
        theirs = tio.Resize((5, 11, 7))(tio.Subject(t1=tio.ScalarImage(tensor=scalar.clone(), affine=AFFINE))).t1
    assert ours.shape == tuple(theirs.shape) == (1, 5, 11, 7)
    assert float(theirs.data[0, :, 0].abs().max()) == 0.0  # TorchIO's padded slab
    assert float(ours.data[0, :, 0].min()) >= 1.0  # ours samples the image there
    spacing = ours.spacing[1]
    np.testing.assert_allclose(theirs.affine[1, 3], ours.affine[1, 3] - spacing / 2)
