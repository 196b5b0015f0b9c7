"""TorchIO's ``PCA``: the principal components of a many-channel image (an embedding), for looking at it.

A network's feature map of ``C`` channels becomes ``num_components`` (3: an
RGB picture) channels: every voxel is a sample of ``C`` values, the samples
are centred and projected on the directions of largest variance, computed
exactly from the ``C x C`` covariance in float64 (scikit-learn is not
needed). Then, as TorchIO does:

* ``whiten``: each component divided by its standard deviation (N - 1);
* ``normalize``: all divided by the first component's (population) standard deviation;
* ``make_skewness_positive``: a component whose skewness is negative is negated
  (else the sign is scikit-learn's: the largest loading of each direction positive);
* ``values_range`` mapped linearly onto ``[0, 1]`` (the components' own range when ``None``)
  and, with ``clip``, clipped to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..geometry import is_number
from ..image import Image
from ..subject import Subject
from .base import Transform, rebuild_image

#: ``pca_kwargs`` of scikit-learn's ``PCA`` about how it computes, which the exact decomposition makes moot.
SOLVER_KEYWORDS = frozenset(
    {"copy", "svd_solver", "tol", "iterated_power", "n_oversamples", "power_iteration_normalizer", "random_state"}
)


def principal_components(
    samples: np.ndarray[Any, Any], count: int, whiten: bool
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``(projected, variances)``: ``samples (N, C)`` centred and projected on their ``count`` main directions.

    Directions are signed as scikit-learn signs them (each one's largest
    loading positive); ``whiten`` divides each projection by its standard
    deviation (the eigenvalue, over N - 1).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> samples = rng.normal(size=(500, 3)) * [5.0, 1.0, 0.1]
        >>> projected, variances = principal_components(samples, 2, whiten=False)
        >>> projected.shape, bool(variances[0] > variances[1])
        ((500, 2), True)
    """
    values = samples.astype(np.float64)
    centred = values - values.mean(axis=0)
    covariance = centred.T @ centred / max(len(values) - 1, 1)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1][:count]
    variances, directions = eigenvalues[order].clip(min=0), eigenvectors[:, order].T
    largest = np.argmax(np.abs(directions), axis=1)
    directions *= np.sign(directions[np.arange(len(directions)), largest])[:, None]
    projected = centred @ directions.T
    if whiten:
        projected /= np.sqrt(np.where(variances > 0, variances, 1.0))
    return projected, variances


class PCA(Transform):
    """Replace each scalar image of ``C`` channels by its ``num_components`` principal components (TorchIO's).

    Args:
        num_components: Components kept (at most the image's channels).
        whiten: Divide each component by its standard deviation.
        normalize: Divide all components by the first one's standard deviation.
        make_skewness_positive: Negate components of negative skewness.
        values_range: Values mapped onto ``[0, 1]``; ``None``: the components' range.
        clip: Clip the output to ``[0, 1]``.
        pca_kwargs: scikit-learn's solver keywords (:data:`SOLVER_KEYWORDS`),
            accepted and moot: the decomposition here is exact.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s keywords.

    Raises:
        TypeError: When an argument has the wrong type, or ``pca_kwargs``
            holds a keyword that would change the result (``n_components``,
            ``whiten``: give them as arguments).
        ValueError: When ``num_components`` is below 1 or above an image's
            channels, or ``values_range`` is empty.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> embedding = ScalarImage(tensor=torch.rand(16, 6, 6, 4))
        >>> out = PCA()(Subject(features=embedding)).features
        >>> out.shape, out.data.dtype, 0 <= float(out.data.min()) <= float(out.data.max()) <= 1
        ((3, 6, 6, 4), torch.float32, True)
    """

    intensity_only = True

    def __init__(
        self,
        num_components: int = 3,
        *,
        whiten: bool = True,
        normalize: bool = True,
        make_skewness_positive: bool = True,
        values_range: Sequence[float] | None = (-2.3, 2.3),
        clip: bool = True,
        pca_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(num_components, bool) or not isinstance(num_components, int) or num_components < 1:
            raise ValueError(f"num_components must be a positive int, got {num_components!r}")
        flags = {
            "whiten": whiten,
            "normalize": normalize,
            "make_skewness_positive": make_skewness_positive,
            "clip": clip,
        }
        for name, flag in flags.items():
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {type(flag).__name__} {flag!r}")
        if values_range is not None:
            if len(values_range) != 2 or not all(is_number(v) for v in values_range):
                raise TypeError(f"values_range must be two numbers or None, got {values_range!r}")
            if not values_range[0] < values_range[1]:
                raise ValueError(f"values_range must be (low, high) with low < high, got {values_range!r}")
        extra = set(pca_kwargs or {}) - SOLVER_KEYWORDS
        if extra:
            raise TypeError(
                f"pca_kwargs may hold scikit-learn's solver keywords {sorted(SOLVER_KEYWORDS)} (moot here), got "
                f"{sorted(extra)}; give num_components and whiten as PCA's own arguments"
            )
        self.num_components = num_components
        self.whiten, self.normalize, self.clip = whiten, normalize, clip
        self.make_skewness_positive = make_skewness_positive
        self.values_range = None if values_range is None else (float(values_range[0]), float(values_range[1]))
        self.pca_kwargs = dict(pca_kwargs) if pca_kwargs else None

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """The image's principal components as a new image of ``num_components`` channels."""
        data = image.data
        channels = int(data.shape[0])
        if self.num_components > channels:
            raise ValueError(
                f"PCA keeps {self.num_components} components but image {name!r} of subject {subject.name!r} has "
                f"{channels} channels"
            )
        samples = data.detach().cpu().reshape(channels, -1).T.numpy()
        projected, _ = principal_components(samples, self.num_components, self.whiten)
        components = projected.T
        if self.normalize:
            components = components / components[0].std()
        if self.make_skewness_positive:
            for component in components:
                second = np.mean(component**2)
                if second > 0 and np.mean(component**3) / second**1.5 < 0:
                    component *= -1
        low, high = self.values_range if self.values_range is not None else (components.min(), components.max())
        scaled = (components - low) / (high - low)
        if self.clip:
            scaled = np.clip(scaled, 0, 1)
        dtype = data.dtype if data.is_floating_point() else torch.float32
        voxels = torch.from_numpy(scaled.reshape(self.num_components, *data.shape[1:])).to(dtype)
        return rebuild_image(image, voxels.to(data.device))

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {
            "num_components": self.num_components,
            "whiten": self.whiten,
            "normalize": self.normalize,
            "make_skewness_positive": self.make_skewness_positive,
            "values_range": self.values_range,
            "clip": self.clip,
            **super().arguments(),
        }


__all__ = ["PCA", "SOLVER_KEYWORDS", "principal_components"]
