"""Resample gives TorchIO 1.x's grid, dtypes and voxels (skipped without TorchIO).

Run with TorchIO installed (``pip install torchio==1.2.1``), e.g. in the
benchmark venv: ``.bench-venv-aug/bin/python -m pytest tests/transforms/test_resample_torchio.py``.
Each case builds the same image in both libraries on an oblique, anisotropic
grid, resamples it with the same arguments and compares shapes, affines (to
1e-6), dtypes and voxels (to interpolation tolerance). Deliberate
differences are tested in test_transforms_spatial.py: a one-voxel axis keeps
its spacing, a spacing coarser than the image gives one voxel, not none.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchpatch as tp
from torchpatch.transforms import Compose, Resample

tio = pytest.importorskip("torchio")

#: Rotated about two axes, spacings 0.9, 1.3 and 2.2 mm.
_ROTATION = np.array(
    [
        [np.cos(0.4), -np.sin(0.4), 0.0],
        [np.sin(0.4), np.cos(0.4), 0.0],
        [0.0, 0.0, 1.0],
    ]
) @ np.array([[1.0, 0.0, 0.0], [0.0, np.cos(0.3), -np.sin(0.3)], [0.0, np.sin(0.3), np.cos(0.3)]])
AFFINE = np.eye(4)
AFFINE[:3, :3] = _ROTATION * np.array([0.9, 1.3, 2.2])
AFFINE[:3, 3] = (-20.5, 14.0, 3.25)
SHAPE = (2, 23, 17, 11)


def _scalar(dtype=torch.float32, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(SHAPE, generator=generator) * 400 - 100
    return values.to(dtype)


def _labels(seed=1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 5, (1, *SHAPE[1:]), generator=generator, dtype=torch.int16)


def _compare(ours, theirs, atol: float) -> None:
    assert ours.shape == tuple(theirs.shape)
    assert np.allclose(ours.affine, theirs.affine, atol=1e-6, rtol=0)
    assert ours.dtype == theirs.data.dtype
    difference = (ours.data.double() - theirs.data.double()).abs()
    assert float(difference.max()) <= atol


@pytest.mark.parametrize("target", [1.0, 2.0, 0.7, (1.5, 0.8, 3.0), (2.2, 2.2, 2.2), [0.9, 1.3, 1.1]])
def test_spacing_targets_give_torchio_grid_and_voxels(target):
    data = _scalar()
    ours = Resample(target)(tp.ScalarImage(tensor=data, affine=AFFINE))
    theirs = tio.Resample(target)(tio.ScalarImage(tensor=data.clone(), affine=AFFINE))
    _compare(ours, theirs, atol=1e-3)


@pytest.mark.parametrize("target", [2.0, (1.5, 0.8, 3.0)])
def test_integer_images_keep_their_dtype_like_torchio(target):
    data = _scalar(torch.int16)
    ours = Resample(target)(tp.ScalarImage(tensor=data, affine=AFFINE))
    theirs = tio.Resample(target)(tio.ScalarImage(tensor=data.clone(), affine=AFFINE))
    # Both cut toward zero; where the exact value is an integer, rounding
    # errors (1e-13) put it either side, differently in the two libraries.
    _compare(ours, theirs, atol=1)
    assert float((ours.data != theirs.data).double().mean()) < 0.005


@pytest.mark.parametrize("target", [2.0, (1.5, 0.8, 3.0), 0.6])
def test_label_maps_stay_integer_and_match_torchio(target):
    labels = _labels()
    ours = Resample(target)(tp.LabelMap(tensor=labels, affine=AFFINE))
    theirs = tio.Resample(target)(tio.LabelMap(tensor=labels.clone(), affine=AFFINE))
    assert ours.dtype == torch.int16
    # Nearest neighbours: a centre exactly between two voxels may pick either.
    assert ours.shape == tuple(theirs.shape)
    assert torch.equal(ours.data, theirs.data)


def _reference() -> tuple[tuple[int, int, int], np.ndarray]:
    affine = np.eye(4)
    affine[:3, :3] = _ROTATION.T @ np.diag([1.1, 1.4, 1.7])
    affine[:3, 3] = (-12.0, 6.0, -2.0)
    return (14, 13, 12), affine


def test_image_target_matches_torchio():
    shape, affine = _reference()
    data = _scalar()
    reference_ours = tp.ScalarImage(tensor=torch.zeros(1, *shape), affine=affine)
    reference_theirs = tio.ScalarImage(tensor=torch.zeros(1, *shape), affine=affine)
    ours = Resample(reference_ours)(tp.ScalarImage(tensor=data, affine=AFFINE))
    theirs = tio.Resample(reference_theirs)(tio.ScalarImage(tensor=data.clone(), affine=AFFINE))
    _compare(ours, theirs, atol=1e-3)


def test_path_target_matches_torchio(tmp_path):
    shape, affine = _reference()
    path = tmp_path / "reference.nii.gz"
    tio.ScalarImage(tensor=torch.zeros(1, *shape), affine=affine).save(path)
    data = _scalar()
    for target in (path, str(path)):
        ours = Resample(target)(tp.ScalarImage(tensor=data, affine=AFFINE))
        theirs = tio.Resample(target)(tio.ScalarImage(tensor=data.clone(), affine=AFFINE))
        _compare(ours, theirs, atol=1e-3)


def test_shape_affine_target_matches_torchio():
    shape, affine = _reference()
    data = _scalar()
    ours = Resample((shape, affine))(tp.ScalarImage(tensor=data, affine=AFFINE))
    theirs = tio.Resample((shape, affine))(tio.ScalarImage(tensor=data.clone(), affine=AFFINE))
    _compare(ours, theirs, atol=1e-3)


def test_subject_with_a_named_target_matches_torchio():
    shape, affine = _reference()
    data, labels = _scalar(), _labels()
    ours = Resample("ref")(
        tp.Subject(
            t1=tp.ScalarImage(tensor=data, affine=AFFINE),
            seg=tp.LabelMap(tensor=labels, affine=AFFINE),
            ref=tp.ScalarImage(tensor=torch.zeros(1, *shape), affine=affine),
        )
    )
    theirs = tio.Resample("ref")(
        tio.Subject(
            t1=tio.ScalarImage(tensor=data.clone(), affine=AFFINE),
            seg=tio.LabelMap(tensor=labels.clone(), affine=AFFINE),
            ref=tio.ScalarImage(tensor=torch.zeros(1, *shape), affine=affine),
        )
    )
    _compare(ours.t1, theirs.t1, atol=1e-3)
    assert ours.seg.dtype == theirs.seg.data.dtype == torch.int16
    assert torch.equal(ours.seg.data, theirs.seg.data)


def test_options_match_torchio():
    data, labels = _scalar(), _labels()
    matrix = np.eye(4)
    matrix[:3, 3] = (1.5, -2.0, 0.5)
    options = {"image_interpolation": "nearest", "label_interpolation": "linear", "scalars_only": True}
    ours = Resample(2.0, **options)(
        tp.Subject(t1=tp.ScalarImage(tensor=data, affine=AFFINE), seg=tp.LabelMap(tensor=labels, affine=AFFINE))
    )
    theirs = tio.Resample(2.0, **options)(
        tio.Subject(
            t1=tio.ScalarImage(tensor=data.clone(), affine=AFFINE),
            seg=tio.LabelMap(tensor=labels.clone(), affine=AFFINE),
        )
    )
    assert torch.equal(ours.t1.data, theirs.t1.data)
    assert torch.equal(ours.seg.data, theirs.seg.data)  # scalars_only: label maps untouched
    ours = Resample(1.5, pre_affine_name="to_mni")(tp.ScalarImage(tensor=data, affine=AFFINE, to_mni=matrix))
    theirs = tio.Resample(1.5, pre_affine_name="to_mni")(
        tio.ScalarImage(tensor=data.clone(), affine=AFFINE, to_mni=matrix)
    )
    _compare(ours, theirs, atol=1e-3)


def test_antialias_is_close_to_torchio():
    data = _scalar()
    ours = Resample(3.0, antialias=True)(tp.ScalarImage(tensor=data, affine=AFFINE))
    theirs = tio.Resample(3.0, antialias=True)(tio.ScalarImage(tensor=data.clone(), affine=AFFINE))
    assert ours.shape == tuple(theirs.shape)
    assert np.allclose(ours.affine, theirs.affine, atol=1e-6, rtol=0)
    # Different Gaussian filters (scipy's sampled kernel, SimpleITK's recursive one): close, not equal.
    plain = Resample(3.0)(tp.ScalarImage(tensor=data, affine=AFFINE))
    ours_error = float((ours.data - theirs.data).abs().mean())
    assert ours_error < 0.25 * float((plain.data - theirs.data).abs().mean())


def test_bare_image_in_image_out_like_torchio():
    data = _scalar()
    pipeline = [tio.ToCanonical(), tio.Resample(2.0)]
    ours = Compose([tp.transforms.ToCanonical(), Resample(2.0)])(tp.ScalarImage(tensor=data, affine=AFFINE))
    theirs = tio.Compose(pipeline)(tio.ScalarImage(tensor=data.clone(), affine=AFFINE))
    assert type(ours).__name__ == type(theirs).__name__ == "ScalarImage"
    _compare(ours, theirs, atol=1e-3)
