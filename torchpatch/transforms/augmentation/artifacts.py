"""Random artefacts of scalar images: patch swaps and MRI bias fields.

Unlike noise or gamma, these draw one set of parameters for the whole
subject (as TorchIO does), so every selected scalar image gets the same swaps
and the same bias field; label maps pass through untouched. Integer images
become ``float32``, floating images keep their dtype.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ...geometry import is_number, to_triplet
from ...image import Image
from ...subject import Subject
from ...typing import TypeTriplet
from ..base import rebuild_image
from .random import RandomTransform, parse_range, uniform
from .resample import Frame, crop_region
from .voxelwise import as_float


class RandomSwap(RandomTransform):
    """Swap random pairs of patches, ``num_iterations`` times, to corrupt local structure.

    Each iteration draws two patch positions (inner corners, voxel indices)
    uniformly in the field of view, both redrawn until the two patches do
    not overlap, and exchanges their voxels in every channel of every
    selected scalar image (the same positions for all). This is the
    context-restoration pretext task of Chen et al. (2019).

    Args:
        patch_size: Size of the patches, one int or three (``(15, 15, 1)``
            for 2D images).
        num_iterations: Number of swaps.
        p: Probability of applying the transform.
        include: Names of the only scalar images to change.
        exclude: Names of scalar images to leave as they are.

    Raises:
        TypeError: When an argument has the wrong type.
        ValueError: When ``patch_size`` is not positive or ``num_iterations``
            negative; when called, if two disjoint patches do not fit in the
            images or the images have different spatial shapes.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> subject = Subject(t1=ScalarImage(tensor=torch.arange(4.0).reshape(1, 4, 1, 1)))
        >>> _ = torch.manual_seed(0)
        >>> out = RandomSwap(patch_size=(2, 1, 1), num_iterations=1)(subject)
        >>> out.t1.data.flatten().tolist(), out['history'][0]['locations']
        ([2.0, 3.0, 0.0, 1.0], [[[2, 0, 0], [0, 0, 0]]])
    """

    intensity_only = True

    def __init__(
        self,
        patch_size: int | Sequence[int] = 15,
        num_iterations: int = 100,
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(p, include, exclude, **kwargs)
        self.patch_size = to_triplet(patch_size, "patch_size")
        if isinstance(num_iterations, bool) or not isinstance(num_iterations, int):
            raise TypeError(f"num_iterations must be an int, got {type(num_iterations).__name__} {num_iterations!r}")
        if num_iterations < 0:
            raise ValueError(f"num_iterations must be non-negative, got {num_iterations}")
        self.num_iterations = num_iterations

    def _spatial_shape(self, subject: Subject) -> TypeTriplet | None:
        images = self.get_images_dict(subject)
        shapes = {image.spatial_shape for image in images.values()}
        if len(shapes) > 1:
            raise ValueError(
                f"{type(self).__name__} swaps the same patches in every image, but the images of subject "
                f"{subject.name!r} have different spatial shapes: "
                f"{ {name: image.spatial_shape for name, image in images.items()} }"
            )
        return shapes.pop() if shapes else None

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """Draw the pairs of patch positions, ``[[first, second], ...]``."""
        shape = self._spatial_shape(subject)
        if shape is None or self.num_iterations == 0:
            return {"locations": []}
        size = self.patch_size
        if any(p > s for p, s in zip(size, shape)) or not any(2 * p <= s for p, s in zip(size, shape)):
            raise ValueError(
                f"patch_size {size} does not fit two disjoint patches in the spatial shape {shape} of subject "
                f"{subject.name!r}; use a smaller patch_size (e.g. (15, 15, 1) for 2D images)"
            )
        highs = torch.tensor([s - p + 1 for p, s in zip(size, shape)])
        locations = []
        for _ in range(self.num_iterations):
            # Redraw the pair until the patches are disjoint; a disjoint pair
            # exists (an axis holds two patches), so this ends.
            while True:
                first, second = (torch.rand(2, 3) * highs).long().tolist()
                if any(abs(a - b) >= p for a, b, p in zip(first, second, size)):
                    break
            locations.append([first, second])
        return {"locations": locations}

    def apply_params(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Swap the patches at ``params['locations']`` in every selected scalar image."""
        if not params["locations"]:
            return subject.with_images({})
        return subject.with_images(
            {name: self._swap(image, params["locations"]) for name, image in self.get_images_dict(subject).items()}
        )

    def _swap(self, image: Image, locations: Sequence[Sequence[Sequence[int]]]) -> Image:
        data = as_float(image.data).clone()
        si, sj, sk = self.patch_size
        for (i1, j1, k1), (i2, j2, k2) in locations:
            first = data[:, i1 : i1 + si, j1 : j1 + sj, k1 : k1 + sk].clone()
            data[:, i1 : i1 + si, j1 : j1 + sj, k1 : k1 + sk] = data[:, i2 : i2 + si, j2 : j2 + sj, k2 : k2 + sk]
            data[:, i2 : i2 + si, j2 : j2 + sj, k2 : k2 + sk] = first
        return rebuild_image(image, data)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"patch_size": self.patch_size, "num_iterations": self.num_iterations, **super().arguments()}


def bias_field(
    coefficients: Sequence[float],
    order: int,
    spatial_shape: Sequence[int],
    index_ini: Sequence[int] | None = None,
    index_fin: Sequence[int] | None = None,
) -> torch.Tensor:
    """The multiplicative field ``exp(sum c * x**a * y**b * z**c)``, ``a + b + c <= order``.

    Coordinates run linearly over ``[-1, 1]`` along each axis of the whole
    image of shape ``spatial_shape`` (voxel centres, 0 at the middle; always
    0 along an axis of size one), and the coefficients are taken in the
    order of the loops ``a``, then ``b``, then ``c``, each from 0. With
    ``index_ini``/``index_fin`` only that box of the field is computed (a
    patch), equal to the same box of the whole field.

    Example:
        >>> field = bias_field([0.0, 1.0, 0.0, 0.0], 1, (1, 1, 3))  # terms 1, z, y, x
        >>> [round(v, 4) for v in field.flatten().tolist()]
        [0.3679, 1.0, 2.7183]
        >>> patch = bias_field([0.0, 1.0, 0.0, 0.0], 1, (1, 1, 3), (0, 0, 2), (1, 1, 3))
        >>> patch.flatten().tolist() == [field[0, 0, 2].item()]
        True
    """
    ini = [0, 0, 0] if index_ini is None else [int(v) for v in index_ini]
    fin = list(spatial_shape) if index_fin is None else [int(v) for v in index_fin]
    powers = []
    for size, a, b in zip(spatial_shape, ini, fin):
        coordinates = torch.arange(a, b, dtype=torch.float64) - (size - 1) / 2
        if size > 1:
            coordinates = coordinates / ((size - 1) / 2)
        powers.append(coordinates[:, None] ** torch.arange(order + 1, dtype=torch.float64))
    # The polynomial as a tensor of coefficients (a, b, c), contracted one axis at a time.
    table = torch.zeros(order + 1, order + 1, order + 1, dtype=torch.float64)
    index = 0
    for a in range(order + 1):
        for b in range(order + 1 - a):
            for c in range(order + 1 - a - b):
                table[a, b, c] = float(coefficients[index])
                index += 1
    exponent = torch.einsum("ia,abc->ibc", powers[0], table)
    exponent = torch.einsum("jb,ibc->ijc", powers[1], exponent)
    exponent = torch.einsum("kc,ijc->ijk", powers[2], exponent)
    return torch.exp(exponent)


def number_of_coefficients(order: int) -> int:
    """How many polynomial terms of degree at most ``order`` in three variables.

    Example:
        >>> [number_of_coefficients(order) for order in range(4)]
        [1, 4, 10, 20]
    """
    return (order + 1) * (order + 2) * (order + 3) // 6


class RandomBiasField(RandomTransform):
    """Multiply by a smooth random field, like the intensity inhomogeneity of MRI.

    The field is the exponential of a polynomial of degree ``order`` in the
    normalised voxel coordinates (see :func:`bias_field`), each coefficient
    drawn uniformly in ``coefficients``; the same field (on each image's own
    grid) applies to every selected scalar image.

    Args:
        coefficients: Range of the coefficients; one number ``x`` means
            ``(-x, x)``.
        order: Degree of the polynomial (3: cubic, 20 coefficients).
        p: Probability of applying the transform.
        include: Names of the only scalar images to change.
        exclude: Names of scalar images to leave as they are.

    Raises:
        TypeError: When an argument has the wrong type.
        ValueError: When ``order`` is negative or the range reversed.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> _ = torch.manual_seed(0)
        >>> out = RandomBiasField()(Subject(t1=ScalarImage(tensor=torch.ones(1, 8, 8, 8))))
        >>> len(out['history'][0]['coefficients']), bool(out.t1.data.std() > 0)
        (20, True)
    """

    intensity_only = True

    @property
    def coefficients_range(self) -> tuple[float, float]:
        """``coefficients``: TorchIO's name."""
        return self.coefficients

    def __init__(
        self,
        coefficients: float | tuple[float, float] = 0.5,
        order: int = 3,
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(p, include, exclude, **kwargs)
        self.coefficients = parse_range(coefficients, "coefficients")
        if isinstance(order, bool) or not isinstance(order, int):
            raise TypeError(f"order must be an int, got {type(order).__name__} {order!r}")
        if order < 0:
            raise ValueError(f"order must be non-negative, got {order}")
        self.order = order

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """Draw the polynomial coefficients."""
        return {"coefficients": [uniform(*self.coefficients) for _ in range(number_of_coefficients(self.order))]}

    def apply_params(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Multiply every selected scalar image by the field of ``params['coefficients']``."""
        return self._apply(subject, params, None, None, None)

    def _apply(
        self,
        subject: Subject,
        params: Mapping[str, Any],
        shape: Sequence[int] | None,
        ini: Sequence[int] | None,
        fin: Sequence[int] | None,
    ) -> Subject:
        coefficients = [float(value) for value in params["coefficients"]]
        if len(coefficients) != number_of_coefficients(self.order) or not all(is_number(c) for c in coefficients):
            raise ValueError(
                f"order {self.order} needs {number_of_coefficients(self.order)} coefficients, got {len(coefficients)}"
            )
        if not any(coefficients):
            return subject.with_images({})
        images = {}
        for name, image in self.get_images_dict(subject).items():
            data = as_float(image.data)
            field = bias_field(coefficients, self.order, shape or image.spatial_shape, ini, fin)
            images[name] = rebuild_image(image, data * field.to(data.dtype).to(data.device))
        return subject.with_images(images)

    invertible = True

    def apply_inverse(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Divide by the same field."""
        return self.apply_params(subject, {"coefficients": [-float(c) for c in params["coefficients"]]})

    def source_box(
        self, params: Mapping[str, Any], index_ini: Sequence[int], index_fin: Sequence[int], frame: Frame
    ) -> tuple[Sequence[int], Sequence[int]]:
        """The field is pointwise: a patch needs its own box only."""
        return index_ini, index_fin

    def apply_region(
        self,
        region: Subject,
        params: Mapping[str, Any],
        origin: Sequence[int],
        index_ini: Sequence[int],
        index_fin: Sequence[int],
        frame: Frame,
    ) -> Subject:
        """The field of the whole image, evaluated on the box ``[index_ini, index_fin)`` of ``region``."""
        patch = crop_region(region, origin, index_ini, index_fin, frame)
        return self._apply(patch, params, frame.shape, index_ini, index_fin)

    def apply_batch(
        self,
        name: str,
        data: torch.Tensor,
        params: Sequence[Mapping[str, Any]],
        shape: Sequence[int],
        index_ini: Sequence[int],
        index_fin: Sequence[int],
    ) -> torch.Tensor:
        """Image ``name`` of a batch ``(B, C, ...)`` (boxes ``[index_ini, index_fin)`` of patches of ``shape``)
        times each sample's field."""
        fields = [
            bias_field([float(c) for c in p["coefficients"]], self.order, shape, index_ini, index_fin) for p in params
        ]
        return data * torch.stack(fields).unsqueeze(1).to(device=data.device, dtype=data.dtype)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"coefficients": self.coefficients, "order": self.order, **super().arguments()}


__all__ = ["RandomBiasField", "RandomSwap", "bias_field", "number_of_coefficients"]
