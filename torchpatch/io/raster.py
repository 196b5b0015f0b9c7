"""What each 2D raster format stores and reads back: dtypes, channels, depth.

The one table of raster capabilities: :func:`torchpatch.io.write_image`
refuses what a format would store wrongly or not read back, and the export
chooses patch formats and casts from the same table.

=========  ==============  ==================================  ======
suffix     channels        numpy dtypes                        depth
=========  ==============  ==================================  ======
``.png``   1, 3, 4         uint8, uint16                       1
``.jpg``   1, 3            uint8                               1
``.bmp``   3, 4            uint8                               1
``.tif``   any             8, 16 and 32-bit integers, float32  any
=========  ==============  ==================================  ======

(``.jpeg`` is ``.jpg``; ``.tiff`` is ``.tif``.) ``bool`` voxels are written
as uint8 and float16 as float32 (:func:`stored_dtype`), so they count as those.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..typing import TypePath


@dataclass(frozen=True)
class RasterFormat:
    """The voxels a raster format stores and reads back unchanged.

    Attributes:
        suffix: Lower-case suffix.
        channels: Channel counts it holds; ``None`` for any.
        dtypes: Names of the numpy dtypes it holds, narrowest integer first.
        volumes: Whether it holds a depth above one (multi-page TIFF).

    Example:
        >>> png = RASTER_FORMATS['.png']
        >>> png.holds(np.dtype('uint16'), 3), png.holds(np.dtype('float32'), 1)
        (True, False)
    """

    suffix: str
    channels: tuple[int, ...] | None
    dtypes: tuple[str, ...]
    volumes: bool = False

    def holds(self, dtype: npt.DTypeLike, num_channels: int) -> bool:
        """Whether ``num_channels`` channels of ``dtype`` (after :func:`stored_dtype`) are stored as they are.

        Example:
            >>> RASTER_FORMATS['.jpg'].holds(bool, 1)
            True
        """
        channels_ok = self.channels is None or num_channels in self.channels
        return channels_ok and stored_dtype(dtype).name in self.dtypes

    def widest_integer(self) -> np.dtype[np.generic]:
        """The widest unsigned integer dtype it holds (what integer voxels are cast to).

        Example:
            >>> RASTER_FORMATS['.png'].widest_integer(), RASTER_FORMATS['.jpg'].widest_integer()
            (dtype('uint16'), dtype('uint8'))
        """
        unsigned = [np.dtype(name) for name in self.dtypes if np.dtype(name).kind == "u"]
        return max(unsigned, key=lambda dtype: dtype.itemsize)


_TIFF_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32")

#: Each 2D raster suffix and what it holds (see the module docstring).
RASTER_FORMATS: dict[str, RasterFormat] = {
    ".png": RasterFormat(".png", (1, 3, 4), ("uint8", "uint16")),
    ".jpg": RasterFormat(".jpg", (1, 3), ("uint8",)),
    ".jpeg": RasterFormat(".jpeg", (1, 3), ("uint8",)),
    ".bmp": RasterFormat(".bmp", (3, 4), ("uint8",)),
    ".tif": RasterFormat(".tif", None, _TIFF_DTYPES, volumes=True),
    ".tiff": RasterFormat(".tiff", None, _TIFF_DTYPES, volumes=True),
}


def raster_capabilities(suffix: str) -> RasterFormat | None:
    """What the raster format of ``suffix`` holds, or ``None`` when it is not a raster format.

    Example:
        >>> raster_capabilities('.PNG').channels, raster_capabilities('.nii.gz')
        ((1, 3, 4), None)
    """
    return RASTER_FORMATS.get(suffix.lower())


def stored_dtype(dtype: npt.DTypeLike) -> np.dtype[np.generic]:
    """The dtype :func:`torchpatch.io.write_image` writes voxels of ``dtype`` as.

    Example:
        >>> stored_dtype(bool), stored_dtype(np.float16), stored_dtype(np.int16)
        (dtype('uint8'), dtype('float32'), dtype('int16'))
    """
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype


def check_raster(data: npt.NDArray[np.generic], suffix: str, path: TypePath) -> None:
    """Refuse ``(C, I, J, K)`` voxels that a raster format would store wrongly or not read back.

    ``data`` has already been cast by :func:`stored_dtype`; other suffixes pass.

    Raises:
        ValueError: Naming the file, the format and what it holds.

    Example:
        >>> check_raster(np.zeros((2, 4, 4, 1), np.uint8), '.png', 'x.png')
        Traceback (most recent call last):
        ...
        ValueError: cannot write 'x.png': .png stores (1, 3, 4) channels of uint8/uint16, got 2 channels of uint8; ...
    """
    raster = raster_capabilities(suffix)
    if raster is None:
        return
    if raster.volumes:  # TIFF: any shape and channels, up to 32 bits
        if data.dtype.name not in raster.dtypes:
            raise ValueError(
                f"cannot write {str(path)!r}: TIFF does not store {data.dtype}; cast to float32/int32 "
                f"or write .nii.gz or .npy"
            )
        return
    if data.shape[3] != 1:
        raise ValueError(f"cannot write {str(path)!r}: {suffix} holds 2D images, got spatial shape {data.shape[1:]}")
    if not raster.holds(data.dtype, data.shape[0]):
        raise ValueError(
            f"cannot write {str(path)!r}: {suffix} stores {raster.channels} channels of {'/'.join(raster.dtypes)}, "
            f"got {data.shape[0]} channels of {data.dtype}; rescale and cast, or write .tif, .nii.gz or .npy"
        )


__all__ = ["RASTER_FORMATS", "RasterFormat", "check_raster", "raster_capabilities", "stored_dtype"]
