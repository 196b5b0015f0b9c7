"""What TorchIO's images tell about themselves, with its names (mixed into :class:`~torchpatch.image.Image`).

TorchIO's ``Image`` is a ``dict``: ``image['data']``, ``keys()``, ``get()``,
``'path' in image`` and ``items()`` work here too (iterating over an image
does not: see :class:`~torchpatch.image.Image`). Geometry
(``orientation_str``, ``direction``, ``bounds``, ``get_bounds``,
``height`` and ``width`` of a 2D image, ``get_spacing_string``), the
element size, ``to_ras``, and a label map's ``count_nonzero`` and
``count_labels``: the same values as TorchIO 1.x for the same image. All
but ``to_ras`` and the counts read the header only: no voxel is decoded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .constants import AFFINE, DATA, PATH, STEM, TYPE
from .conversions import ImageConversions
from .geometry import orientation_axes, reorientation_index_map
from .typing import TypeSpacing


def natural_size(size: float) -> str:
    """A number of bytes for people, as TorchIO prints memory: ``'1 Byte'``, ``'512 Bytes'``, ``'1.5 KiB'``.

    Example:
        >>> natural_size(1), natural_size(1536), natural_size(27 * 2**20 + 2**19)
        ('1 Byte', '1.5 KiB', '27.5 MiB')
    """
    size = float(size)
    if abs(size) < 1024:
        return f"{int(size)} Byte{'' if abs(size) == 1 else 's'}"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        size /= 1024
        if abs(round(size, 1)) < 1024 or unit == "PiB":  # 1023.99 KiB prints as 1.0 MiB
            break
    return f"{size:.1f} {unit}"


class ImageInfo(ImageConversions):
    """TorchIO's descriptive properties of an image.

    Example:
        >>> from torchpatch import ScalarImage
        >>> image = ScalarImage(tensor=torch.zeros(1, 4, 3, 2, dtype=torch.int16), affine=np.diag([-2.0, 1, 1, 1]))
        >>> image.orientation_str, image.itemsize, image.get_bounds()[0], image.get_spacing_string()
        ('LAS', 2, (1.0, -7.0), '(2.00, 1.00, 1.00)')
    """

    # Provided by Image.
    @property
    def orientation(self) -> tuple[str, str, str]:
        raise NotImplementedError

    @property
    def spacing(self) -> TypeSpacing:
        raise NotImplementedError

    @property
    def dtype(self) -> torch.dtype:
        raise NotImplementedError

    def derive(self, data: torch.Tensor | None, affine: Any, *, checked: bool = False) -> Any:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        raise NotImplementedError

    metadata: dict[str, Any]

    def keys(self) -> list[str]:
        """TorchIO's keys in its order: ``'data'``, ``'affine'``, the metadata's, ``'path'``, ``'stem'``, ``'type'``."""
        return [DATA, AFFINE, *self.metadata, PATH, STEM, TYPE]

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def get(self, key: str, default: Any = None) -> Any:
        """``image[key]``, or ``default`` for a key it does not have."""
        return self[key] if key in self.keys() else default

    def values(self) -> list[Any]:
        """The values of :meth:`keys` (``'data'`` loads the voxels)."""
        return [self[key] for key in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        """``(key, value)`` pairs of :meth:`keys` (``'data'`` loads the voxels)."""
        return [(key, self[key]) for key in self.keys()]

    @property
    def orientation_str(self) -> str:
        """The orientation codes as one string, e.g. ``'RAS'``."""
        return "".join(self.orientation)

    @property
    def direction(self) -> tuple[float, ...]:
        """The nine RAS+ direction cosines, row by row: the affine's columns divided by the spacing."""
        block = np.asarray(self.affine, dtype=np.float64)[:3, :3]
        return tuple(float(v) for v in (block / np.linalg.norm(block, axis=0)).ravel())

    @property
    def itemsize(self) -> int:
        """Bytes of one voxel of one channel (from the header's dtype: nothing is read)."""
        return int(self.dtype.itemsize)

    @property
    def bounds(self) -> np.ndarray[Any, Any]:
        """The RAS+ centres of the first and the last voxel, ``(2, 3)``."""
        last = np.asarray(self.spatial_shape, dtype=np.float64) - 1
        return self._world(np.stack([np.zeros(3), last]))

    def get_bounds(self) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
        """RAS+ coordinates of the outer corners of the first and the last voxel, axis by axis: ``((x0, x1), ...)``.

        As in TorchIO, ``x0`` belongs to the first voxel (it is the larger
        value where the axis points to the left).
        """
        corners = self._world(np.stack([np.full(3, -0.5), np.asarray(self.spatial_shape, dtype=np.float64) - 0.5]))
        x, y, z = (tuple(float(v) for v in column) for column in corners.T)
        return (x[0], x[1]), (y[0], y[1]), (z[0], z[1])

    def _world(self, indices: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        affine = np.asarray(self.affine, dtype=np.float64)
        return indices @ affine[:3, :3].T + affine[:3, 3]

    def check_is_2d(self) -> None:
        """Raise ``RuntimeError`` unless the image is 2D (depth one), giving its spatial shape."""
        if not self.is_2d():
            raise RuntimeError(f"{self._describe()} is not 2D: its spatial shape is {tuple(self.spatial_shape)}")

    @property
    def height(self) -> int:
        """Rows of a 2D image (its ``J`` size); ``RuntimeError`` on a 3D one."""
        self.check_is_2d()
        return int(self.spatial_shape[1])

    @property
    def width(self) -> int:
        """Columns of a 2D image (its ``I`` size); ``RuntimeError`` on a 3D one."""
        self.check_is_2d()
        return int(self.spatial_shape[0])

    def get_spacing_string(self) -> str:
        """The spacing with two decimals: ``'(1.00, 1.00, 2.50)'``."""
        return "(" + ", ".join(f"{value:.2f}" for value in self.spacing) + ")"

    def to_ras(self) -> Any:
        """This image in RAS+ orientation: itself when it already is, else a new one, its axes permuted and flipped.

        No voxel value changes (as :class:`~torchpatch.transforms.ToCanonical`).

        Example:
            >>> from torchpatch import ScalarImage
            >>> image = ScalarImage(tensor=torch.arange(6.0).reshape(1, 3, 2, 1), affine=np.diag([-1.0, 1, 1, 1]))
            >>> ras = image.to_ras()
            >>> ras.orientation_str, ras.data[0, :, 0, 0].tolist(), image.to_ras().to_ras() is not image
            ('RAS', [4.0, 2.0, 0.0], True)
        """
        return reoriented(self, "RAS")


def reoriented(image: Any, orientation: str) -> Any:
    """``image`` with its voxel axes permuted and flipped into ``orientation`` (an upper-case code): itself if it is.

    Only ``torch.permute`` and ``torch.flip``: no value changes, every voxel
    keeps its world position (the affine follows). What ``to_ras`` and
    :class:`~torchpatch.transforms.ToOrientation` do to each image.

    Example:
        >>> from torchpatch import ScalarImage
        >>> image = ScalarImage(tensor=torch.arange(6.0).reshape(1, 3, 2, 1))
        >>> reoriented(image, 'LAS').data[0, :, 0, 0].tolist(), reoriented(image, 'RAS') is image
        ([4.0, 2.0, 0.0], True)
    """
    permutation, flips = orientation_axes(image.affine, orientation)
    if permutation == (0, 1, 2) and not any(flips):
        return image
    data = image.data.permute(0, *(1 + axis for axis in permutation))
    flipped = [1 + axis for axis in range(3) if flips[axis]]
    if flipped:
        data = torch.flip(data, flipped)
    index_map = reorientation_index_map(image.spatial_shape, permutation, flips)
    return image.derive(data.contiguous(), np.asarray(image.affine, dtype=np.float64) @ index_map)


class LabelCounts:
    """A label map's voxel counts, TorchIO's names (mixed into :class:`~torchpatch.LabelMap`).

    Example:
        >>> from torchpatch import LabelMap
        >>> labels = LabelMap(tensor=torch.tensor([0, 2, 2, 5], dtype=torch.uint8).reshape(1, 4, 1, 1))
        >>> labels.count_nonzero(), labels.count_labels()
        (3, {0: 1, 2: 2, 5: 1})
    """

    # Provided by Image.
    @property
    def data(self) -> torch.Tensor:
        raise NotImplementedError

    def count_nonzero(self) -> int:
        """Voxels (of every channel) that are not 0."""
        return int(torch.count_nonzero(self.data))

    def count_labels(self) -> dict[int, int]:
        """Voxels (of every channel) of each label value present, by increasing label."""
        values, counts = torch.unique(self.data, sorted=True, return_counts=True)
        return dict(zip(values.tolist(), counts.tolist()))


__all__ = ["ImageInfo", "LabelCounts", "natural_size", "reoriented"]
