"""Custom readers and unchecked paths for :class:`~torchpatch.image.Image` (TorchIO's ``reader`` and ``verify_path``).

By default (``reader`` is :func:`torchpatch.io.read_image`, as TorchIO's is its
``read_image``) an image's file is read by torchpatch's own readers, chosen
from its suffix, and the header is read first (shape and affine
without the voxels; boxes of ``.nii``/``.npy`` files read alone). A custom
``reader``, a callable ``path -> (voxels, affine)`` as in TorchIO, replaces
all of that: the first access to the voxels, the shape or the affine loads
the whole file through it, and boxes are cut from the loaded voxels::

    Image('x.raw', reader=f)   ──first use──> f('x.raw') -> (voxels, affine)
                                              └─ every box, shape, affine from them

``verify_path=False`` skips the check that the file exists at construction
(useful on slow network drives); a missing file then fails when it is read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import io
from .geometry import check_affine
from .regions import RegionReads
from .typing import TypePath, TypeTriplet

#: What a reader returns: ``(C, I, J, K)`` voxels (tensor or array) and a 4x4 affine (``None``: identity).
TypeReader = Callable[[Path], tuple[Any, Any]]

# The default of Image's ``reader``, kept at import (tests replace ``io.read_array`` to count reads).
_BUILTIN_READER = io.read_image


def is_custom_reader(reader: TypeReader) -> bool:
    """Whether ``reader`` replaces the built-in :func:`torchpatch.io.read_image`.

    Example:
        >>> is_custom_reader(io.read_image), is_custom_reader(lambda path: (np.zeros((1, 1, 1, 1)), None))
        (False, True)
    """
    return reader is not _BUILTIN_READER


def check_reader(reader: Any) -> TypeReader:
    """``reader``, checked to be callable.

    Raises:
        TypeError: When it is not.

    Example:
        >>> check_reader(3)
        Traceback (most recent call last):
        ...
        TypeError: reader must be a callable path -> (voxels, affine), got int 3
    """
    if not callable(reader):
        raise TypeError(f"reader must be a callable path -> (voxels, affine), got {type(reader).__name__} {reader!r}")
    return reader


def _one_path(path: TypePath, custom_reader: bool, verify_path: bool) -> Path:
    if not custom_reader and verify_path:
        return io.check_path(path)  # suffix, existence and size
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"an image path must be a str or os.PathLike, got {type(path).__name__} {path!r}")
    resolved = Path(path).expanduser()
    if verify_path and not resolved.exists():
        raise FileNotFoundError(f"image file not found: {str(path)!r}")
    return resolved


def parse_image_paths(
    path: TypePath | Sequence[TypePath], custom_reader: bool = False, verify_path: bool = True
) -> Path | list[Path]:
    """The path (or list of paths, one per channel group) of an image, checked as asked.

    Args:
        path: A path or a non-empty list of paths.
        custom_reader: The image has its own reader: any suffix is accepted.
        verify_path: Check that each file exists (and, for the built-in
            reader, that its suffix is supported and it is not empty).

    Raises:
        FileNotFoundError: When ``verify_path`` and a file is missing.
        ValueError: When the list is empty, or the built-in reader cannot
            read the suffix.

    Example:
        >>> parse_image_paths('missing.xyz', custom_reader=True, verify_path=False).name
        'missing.xyz'
        >>> parse_image_paths(['missing.nii'])
        Traceback (most recent call last):
        ...
        FileNotFoundError: image file not found: 'missing.nii'
    """
    if isinstance(path, (list, tuple)):
        if not path:
            raise ValueError("an image needs at least one path, got an empty list")
        paths = [_one_path(p, custom_reader, verify_path) for p in path]
        return paths[0] if len(paths) == 1 else paths
    return _one_path(path, custom_reader, verify_path)  # type: ignore[arg-type]


def read_with(reader: TypeReader, paths: Path | list[Path]) -> tuple[torch.Tensor | np.ndarray[Any, Any], Any]:
    """Voxels and affine read by ``reader``; the channels of several files are concatenated (first affine kept).

    A 3D result (one channel) gets its channel axis, as TorchIO's readers do.

    Raises:
        TypeError: When the reader does not return a pair.
        ValueError: When the voxels are not 3D or 4D.

    Example:
        >>> voxels, affine = read_with(lambda path: (np.zeros((2, 3, 4)), None), Path('a.raw'))
        >>> voxels.shape, affine
        ((1, 2, 3, 4), None)
    """
    parts = []
    affine = None
    for number, path in enumerate(paths if isinstance(paths, list) else [paths]):
        result = reader(path)
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError(f"reader {reader!r} must return (voxels, affine) for {str(path)!r}, got {result!r:.80}")
        voxels, file_affine = result
        if not isinstance(voxels, (torch.Tensor, np.ndarray)):
            voxels = np.asarray(voxels)
        if voxels.ndim == 3:
            voxels = voxels[None]
        if voxels.ndim != 4:
            raise ValueError(
                f"reader {reader!r} must return 3D or 4D (C, I, J, K) voxels for {str(path)!r}, "
                f"got shape {tuple(voxels.shape)}"
            )
        parts.append(voxels)
        affine = file_affine if number == 0 else affine
    if len(parts) == 1:
        return parts[0], affine
    if all(isinstance(part, np.ndarray) for part in parts):
        return np.concatenate(parts), affine
    return torch.cat([torch.as_tensor(part) for part in parts]), affine


class CustomReads(RegionReads):
    """Region reads that load the whole file first when the image has a custom reader.

    The built-in fast paths (boxes of ``.nii``/``.npy`` files read alone,
    memory maps) read files with torchpatch's own readers, which a custom
    reader replaces.

    Example:
        >>> CustomReads.__mro__[1].__name__
        'RegionReads'
    """

    reader: TypeReader
    path: Path | list[Path] | None
    _data: torch.Tensor | None
    _affine: Any

    def load(self) -> None:
        raise NotImplementedError

    def set_data(self, tensor: torch.Tensor | np.ndarray[Any, Any] | None) -> None:
        raise NotImplementedError

    def load_with_reader(self) -> None:
        """Read the voxels (and the affine, unless the image was given one) with the custom reader."""
        assert self.path is not None
        data, affine = read_with(self.reader, self.path)
        self.set_data(data)
        if self._affine is None:  # an affine given to the image replaces the file's
            self._affine = np.eye(4) if affine is None else check_affine(affine, self._describe("affine"))

    @property
    def header(self) -> io.Header:
        raise NotImplementedError

    def header_from_reader(self) -> io.Header:
        """The header of the voxels read by the custom reader (which gives no header of its own)."""
        self.load()
        return self.header

    def _load_if_custom(self) -> None:
        if self._data is None and is_custom_reader(self.reader):
            self.load()

    def _region_array(self) -> np.ndarray[Any, Any] | None:
        self._load_if_custom()
        return super()._region_array()

    def _read_inside(self, ini: TypeTriplet, fin: TypeTriplet, out: torch.Tensor | None) -> torch.Tensor:
        self._load_if_custom()
        return super()._read_inside(ini, fin, out)
