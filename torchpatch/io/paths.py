"""File names: suffixes (``.nii.gz`` is one), stems, and which files are images.

The suffix lists here are the one place that says which extensions each
backend of :mod:`torchpatch.io` handles; the backends and the suffix table
of :mod:`torchpatch.io` are built from them.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
from pathlib import Path

from ..typing import TypePath

NIFTI_SUFFIXES = (".nii", ".nii.gz")
NUMPY_SUFFIXES = (".npy", ".npz")
SITK_3D_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
SITK_2D_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MINC_SUFFIXES = (".mnc",)
ANALYZE_SUFFIXES = (".hdr", ".img")
SUPPORTED_SUFFIXES = (
    NIFTI_SUFFIXES + NUMPY_SUFFIXES + SITK_3D_SUFFIXES + SITK_2D_SUFFIXES + MINC_SUFFIXES + ANALYZE_SUFFIXES
)


def get_suffix(path: TypePath) -> str:
    """Lower-case suffix, treating ``.nii.gz`` as one suffix; ``''`` for folders.

    Example:
        >>> get_suffix('scan.NII.GZ')
        '.nii.gz'
    """
    return _suffix(os.fspath(path))


@functools.lru_cache(maxsize=4096)
def _suffix(path: str) -> str:
    """:func:`get_suffix`, kept by path (asked several times for every patch plan of a cached subject)."""
    name = os.path.basename(path.rstrip("/")).lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    dot = name.rfind(".")  # pathlib's rule for Path.suffix, without building a Path
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def get_stem(path: TypePath) -> str:
    """File name without its (possibly double) suffix.

    Example:
        >>> get_stem('/data/sub-01_t1.nii.gz')
        'sub-01_t1'
    """
    return _stem(os.fspath(path))


@functools.lru_cache(maxsize=4096)
def _stem(path: str) -> str:
    """:func:`get_stem`, kept by path (a batch lists the stem of every patch's images)."""
    name = os.path.basename(path.rstrip("/"))
    suffix = get_suffix(name)
    return name[: len(name) - len(suffix)] if suffix else name


#: What ``Path.exists`` takes as "nothing there" (a symbolic link loop included).
_MISSING = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)


def check_path(path: TypePath) -> Path:
    """Resolve ``path`` and check it is a readable image file or DICOM folder.

    Raises:
        FileNotFoundError: If nothing exists at ``path``.
        ValueError: If the file is empty or its extension is not supported.

    Example:
        >>> check_path('missing.nii.gz')
        Traceback (most recent call last):
        ...
        FileNotFoundError: image file not found: 'missing.nii.gz'
    """
    return checked_status(path)[0]


def checked_status(path: TypePath) -> tuple[Path, os.stat_result]:
    """:func:`check_path` and the ``os.stat`` it took (one system call for existence, kind, size and date).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> checked_status(folder)[1].st_size >= 0
        True
    """
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"an image path must be a str or os.PathLike, got {type(path).__name__} {path!r}")
    resolved = path if isinstance(path, Path) else Path(path)
    if str(resolved)[:1] == "~":
        resolved = resolved.expanduser()
    try:
        status = os.stat(resolved)
    except ValueError:  # a NUL in the name
        raise FileNotFoundError(f"image file not found: {str(path)!r}") from None
    except OSError as error:
        if error.errno not in _MISSING:
            raise
        raise FileNotFoundError(f"image file not found: {str(path)!r}") from None
    if stat.S_ISDIR(status.st_mode):
        return resolved, status
    suffix = get_suffix(resolved)
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(
            f"unsupported image file extension {suffix!r} for {str(path)!r}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)} and DICOM series folders"
        )
    if status.st_size == 0:
        raise ValueError(f"image file is empty (0 bytes): {str(path)!r}")
    return resolved, status


def names_path(error: Exception, path: TypePath, resolved: Path) -> bool:
    """Whether ``error`` is one of ours that already names the file (re-raised as is).

    Example:
        >>> names_path(ValueError("bad file 'a.nii'"), 'a.nii', Path('a.nii'))
        True
    """
    if not isinstance(error, (ValueError, FileNotFoundError, TypeError)):
        return False
    message = str(error)
    return str(path) in message or str(resolved) in message


__all__ = [
    "ANALYZE_SUFFIXES",
    "MINC_SUFFIXES",
    "NIFTI_SUFFIXES",
    "NUMPY_SUFFIXES",
    "SITK_2D_SUFFIXES",
    "SITK_3D_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "check_path",
    "checked_status",
    "get_stem",
    "get_suffix",
    "names_path",
]
