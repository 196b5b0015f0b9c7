"""PCA of many-channel images (TorchIO's PCA), compared with TorchIO (which uses scikit-learn) where installed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.transforms import PCA
from torchpatch.transforms.pca import principal_components


def _embedding(channels: int = 12, seed: int = 0) -> torch.Tensor:
    """Features with a few strong, skewed directions (as a network's embedding has), (C, 10, 9, 8) float32."""
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.gamma(2.0, size=720), rng.normal(size=720), rng.exponential(size=720)])
    mixing = rng.normal(size=(channels, 3)) * [4.0, 2.0, 1.0]
    features = mixing @ factors + 0.1 * rng.normal(size=(channels, 720))
    return torch.from_numpy(features.reshape(channels, 10, 9, 8).astype(np.float32))


ARGUMENTS: list[dict[str, Any]] = [
    {},
    {"num_components": 2},
    {"whiten": False},
    {"normalize": False, "whiten": False, "values_range": None},
    {"make_skewness_positive": False},
    {"values_range": (-1.0, 3.0), "clip": False},
    {"num_components": 5, "pca_kwargs": {"svd_solver": "full"}},
]


@pytest.mark.parametrize("arguments", ARGUMENTS)
@pytest.mark.parametrize("seed", [0, 1])
def test_pca_gives_torchio_components(arguments: dict[str, Any], seed: int) -> None:
    tio = pytest.importorskip("torchio")
    pytest.importorskip("sklearn")
    data = _embedding(seed=seed)
    theirs = tio.PCA(**arguments)(tio.ScalarImage(tensor=data))
    ours = PCA(**arguments)(ScalarImage(tensor=data))
    assert ours.shape == theirs.shape and ours.data.dtype == theirs.data.dtype
    torch.testing.assert_close(ours.data, theirs.data, atol=2e-4, rtol=0)
    np.testing.assert_allclose(ours.affine, theirs.affine)


def test_only_scalar_images_change_and_the_input_stays() -> None:
    data = _embedding()
    subject = Subject(features=ScalarImage(tensor=data), seg=LabelMap(tensor=torch.zeros(1, 10, 9, 8)))
    out = PCA(num_components=3)(subject)
    assert out.features.shape == (3, 10, 9, 8) and torch.equal(out.seg.data, subject.seg.data)
    assert torch.equal(subject.features.data, data)
    assert "num_components=3" in repr(PCA())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), channels=st.integers(2, 6))
def test_components_are_uncorrelated_and_ordered_by_variance(seed: int, channels: int) -> None:
    samples = np.random.default_rng(seed).normal(size=(200, channels)) * np.arange(1, channels + 1)
    projected, variances = principal_components(samples, channels, whiten=False)
    covariance = np.cov(projected.T)
    np.testing.assert_allclose(covariance, np.diag(variances), atol=1e-8 * max(1.0, float(variances.max())))
    assert np.all(np.diff(variances) <= 1e-12)
    whitened, _ = principal_components(samples, channels, whiten=True)
    np.testing.assert_allclose(whitened.std(axis=0, ddof=1), 1.0, rtol=1e-8)


def test_bad_arguments_and_images_name_what_to_fix() -> None:
    with pytest.raises(ValueError, match="num_components must be a positive int"):
        PCA(0)
    with pytest.raises(TypeError, match="whiten must be True or False"):
        PCA(whiten="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="low < high"):
        PCA(values_range=(1.0, 1.0))
    with pytest.raises(TypeError, match=r"solver keywords.*\['n_components'\]"):
        PCA(pca_kwargs={"n_components": 4})
    subject = Subject(features=ScalarImage(tensor=_embedding(channels=2)), name="case9")
    with pytest.raises(ValueError, match=r"keeps 3 components but image 'features' of subject 'case9' has 2 channels"):
        PCA()(subject)
