"""Analyze 7.5 and NIfTI-1 pairs (``.hdr`` + ``.img``), through SimpleITK as TorchIO reads them.

Either file of the pair may be given; the other must sit beside it with the
same stem. A NIfTI-1 pair (``ni1`` magic) has an orientation and loads with
it. A plain Analyze 7.5 header has none: SimpleITK, and so TorchIO 1.2.1,
takes the identity direction in LPS with the origin at voxel zero, which is
the RAS+ affine ``diag(-sx, -sy, sz)``. nibabel guesses otherwise (it flips
only x and centres the volume), so the same file gives a different affine
there; torchpatch follows TorchIO. SimpleITK prints a "deprecated" warning
to stderr when it reads plain Analyze.

SimpleITK fills a truncated ``.img`` with zeros instead of failing, so its
size is checked against the header before the voxels are read. Writes make
a NIfTI-1 pair (what SimpleITK and TorchIO write), in place: a rename cannot
replace two files at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..typing import TypeAffine
from .base import Array, Backend
from .sitk import read_sitk, read_sitk_header, write_sitk


def pair_paths(path: Path) -> tuple[Path, Path]:
    """The ``(header, image)`` files of the pair ``path`` belongs to (suffix case kept).

    Example:
        >>> [p.name for p in pair_paths(Path('scan.IMG'))]
        ['scan.HDR', 'scan.IMG']
    """
    upper = path.suffix.isupper()
    header, image = (".HDR", ".IMG") if upper else (".hdr", ".img")
    return path.with_suffix(header), path.with_suffix(image)


def check_pair(path: Path) -> None:
    """Check both files of the pair exist and the ``.img`` holds every voxel the header promises.

    Raises:
        FileNotFoundError: When the other file of the pair is missing.
        ValueError: When the ``.img`` is shorter than the header says.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.hdr'
        >>> write_sitk(np.zeros((1, 4, 3, 2), np.int16), np.eye(4), path)
        >>> path.with_suffix('.img').write_bytes(b'0' * 10)
        10
        >>> check_pair(path)
        Traceback (most recent call last):
        ...
        ValueError: truncated Analyze/NIfTI pair '...x.img': 10 bytes, but its header '...x.hdr' describes 48
    """
    header_path, image_path = pair_paths(path)
    for member in (header_path, image_path):
        if not member.exists():
            raise FileNotFoundError(f"{str(path)!r} is half of an Analyze/NIfTI pair, but {str(member)!r} is missing")
    image: Any = nib.load(header_path)
    header = image.header
    expected = int(header.get_data_offset()) + int(np.prod(image.shape)) * np.dtype(header.get_data_dtype()).itemsize
    size = image_path.stat().st_size
    if size < expected:
        raise ValueError(
            f"truncated Analyze/NIfTI pair {str(image_path)!r}: {size} bytes, but its header "
            f"{str(header_path)!r} describes {expected}"
        )


def read_analyze(path: Path) -> tuple[Array, TypeAffine]:
    """All voxels of a ``.hdr``/``.img`` pair as ``(C, I, J, K)`` and the RAS+ affine, checked whole first.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.img'
        >>> write_sitk(np.ones((1, 4, 3, 2), np.uint8), np.diag([2.0, 3.0, 4.0, 1.0]), path)
        >>> data, affine = read_analyze(path)
        >>> data.shape, int(data.sum()), affine.diagonal().tolist()
        ((1, 4, 3, 2), 24, [2.0, 3.0, 4.0, 1.0])
    """
    check_pair(path)
    return read_sitk(path)


#: Both files of a pair name it; written in place (two files, no single rename).
ANALYZE = Backend("analyze", (".hdr", ".img"), read_sitk_header, read_analyze, None, write_sitk, atomic_writes=False)

__all__ = ["ANALYZE", "check_pair", "pair_paths", "read_analyze"]
