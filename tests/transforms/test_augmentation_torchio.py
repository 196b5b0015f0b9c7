"""The same numbers as TorchIO 1.x: RandomAffine and RandomElasticDeformation against TorchIO (skipped without it).

Run with TorchIO installed (``pip install torchio==1.2.1``), e.g. in the
benchmark venv: ``.bench-venv-aug/bin/python -m pytest tests/transforms/test_augmentation_torchio.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchpatch as tp
from torchpatch.transforms.augmentation import RandomAffine, RandomElasticDeformation

tio = pytest.importorskip("torchio")

AFFINES = {
    "identity": np.eye(4),
    "anisotropic": np.diag([1.2, 0.9, 1.5, 1.0]),
    "oblique": np.array([[1.2, 0.1, 0, -20], [0, 0.9, 0.05, 10], [0.02, 0, 1.5, 3], [0, 0, 0, 1]]),
    "lps": np.diag([-1.0, -1.0, 1.0, 1.0]),
}


def _volume() -> torch.Tensor:
    i, j, k = torch.meshgrid(
        torch.linspace(-1, 1, 30), torch.linspace(-1, 1, 34), torch.linspace(-1, 1, 26), indexing="ij"
    )
    return (torch.exp(-(i**2 + j**2 + k**2) * 3) + 0.3 * torch.sin(3 * i + 2 * j) + 0.2 * k).unsqueeze(0).float()


@pytest.mark.parametrize("name", list(AFFINES))
def test_random_affine_gives_torchio_affine_numbers(name: str) -> None:
    volume, affine = _volume(), AFFINES[name]
    params = {"scales": [1.1, 0.9, 1.05], "degrees": [10.0, -7.0, 12.0], "translation": [3.0, -2.0, 1.0]}
    theirs = tio.Affine(**params, default_pad_value=0)(tio.ScalarImage(tensor=volume, affine=affine)).data
    subject = tp.Subject(t1=tp.ScalarImage(tensor=volume, affine=affine))
    ours = RandomAffine(default_pad_value=0).apply_params(subject, params).t1.data
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)


@pytest.mark.parametrize("name", list(AFFINES))
def test_elastic_deformation_gives_torchio_numbers_for_the_same_control_points(name: str) -> None:
    volume, affine = _volume(), AFFINES[name]
    field = ((torch.rand(7, 7, 7, 3, generator=torch.Generator().manual_seed(0)) - 0.5) * 4).double().numpy()
    transform = tio.ElasticDeformation(control_points=field, max_displacement=(2, 2, 2))
    theirs = transform(tio.ScalarImage(tensor=volume, affine=affine)).data
    subject = tp.Subject(t1=tp.ScalarImage(tensor=volume, affine=affine))
    ours = RandomElasticDeformation(max_displacement=2).apply_params(subject, {"displacements": field.tolist()})
    np.testing.assert_allclose(ours.t1.data.numpy(), theirs.numpy(), atol=1e-5)


def test_a_seed_draws_torchio_affine_parameters() -> None:
    volume = _volume()
    torch.manual_seed(5)
    theirs = tio.RandomAffine(scales=0.15, degrees=15, translation=3)(
        tio.Subject(t1=tio.ScalarImage(tensor=volume))
    ).t1.data
    torch.manual_seed(5)
    ours = tp.RandomAffine(scales=0.15, degrees=15, translation=3)(tp.Subject(t1=tp.ScalarImage(tensor=volume)))
    np.testing.assert_allclose(ours.t1.data.numpy(), theirs.numpy(), atol=1e-4)


@pytest.mark.parametrize("name", ["oblique", "lps"])
def test_bspline_interpolation_gives_torchio_numbers(name: str) -> None:
    volume, affine = _volume(), AFFINES[name]
    params = {"scales": [1.1, 0.9, 1.05], "degrees": [10.0, -7.0, 12.0], "translation": [3.0, -2.0, 1.0]}
    transform = tio.Affine(**params, default_pad_value=0, image_interpolation="bspline")
    theirs = transform(tio.ScalarImage(tensor=volume, affine=affine)).data
    subject = tp.Subject(t1=tp.ScalarImage(tensor=volume, affine=affine))
    ours = RandomAffine(default_pad_value=0, image_interpolation="bspline").apply_params(subject, params).t1.data
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)
    resampled = tio.Resample(1.7, image_interpolation="bspline")(tio.ScalarImage(tensor=volume, affine=affine)).data
    mine = tp.Resample(1.7, image_interpolation="bspline")(tp.ScalarImage(tensor=volume, affine=affine)).data
    np.testing.assert_allclose(mine.numpy(), resampled.numpy(), atol=1e-5)


def test_a_seed_draws_torchio_elastic_deformation_with_its_border_locking() -> None:
    """TorchIO 1.2.1 locks the border control points of its first two axes only: lock_all_axes=False does the same."""
    volume = _volume()
    subject = tio.Subject(t1=tio.ScalarImage(tensor=volume))
    torch.manual_seed(3)
    theirs = tio.RandomElasticDeformation(max_displacement=2)(subject).t1.data
    torch.manual_seed(3)
    transform = RandomElasticDeformation(max_displacement=2, lock_all_axes=False)
    ours = transform(tp.Subject(t1=tp.ScalarImage(tensor=volume))).t1.data
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-4)
