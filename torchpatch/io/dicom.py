"""DICOM series folders, read with SimpleITK (GDCM); one series per folder.

The folder is scanned once: every file's header is read, so a file that
starts like DICOM but cannot be read (truncated, corrupt) is named rather
than silently left out, and slices whose positions are not evenly spaced
(a missing slice) are refused before any voxel is read. The scan is kept
while the folder's files keep their sizes and dates, so reading the header
and then the voxels scans once.

The slice spacing and the third direction are the step between the
first and last slice origins.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..geometry import check_affine
from ..typing import TypeAffine
from .base import Array, Backend, Header
from .sitk import from_sitk, sitk_affine, sitk_dtype

#: Slices may be off the even spacing by this fraction of the median step.
UNEVEN_TOLERANCE = 0.05

_SERIES_UID = "0020|000e"
_INSTANCE_NUMBER = "0020|0013"
_MAX_NAMED = 5
_CACHE_SIZE = 16


@dataclass(frozen=True)
class _Scan:
    files: tuple[str, ...] = ()
    error: str = ""


_scans: OrderedDict[tuple[object, ...], _Scan] = OrderedDict()
_scans_lock = threading.Lock()


def _looks_like_dicom(path: Path) -> bool:
    """Whether ``path`` has the DICOM preamble magic ``DICM`` at byte 128."""
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _instance_number(reader: sitk.ImageFileReader) -> int:
    if not reader.HasMetaDataKey(_INSTANCE_NUMBER):
        return 0
    try:
        return int(float(reader.GetMetaData(_INSTANCE_NUMBER).strip() or 0))
    except ValueError:
        return 0


def _uneven_error(folder: Path, names: list[str], distances: np.ndarray) -> str:
    """A message naming the uneven slice positions, or ``""`` when they are even."""
    if len(distances) < 3:
        return ""
    steps = np.diff(distances)
    median = float(np.median(steps))
    tolerance = UNEVEN_TOLERANCE * abs(median) + 1e-4
    bad = np.flatnonzero(np.abs(steps - median) > tolerance)
    if bad.size == 0:
        return ""
    gaps = "; ".join(
        f"{names[k]} at {distances[k]:g} mm -> {names[k + 1]} at {distances[k + 1]:g} mm (step {steps[k]:g})"
        for k in bad[:_MAX_NAMED]
    )
    more = f" and {bad.size - _MAX_NAMED} more" if bad.size > _MAX_NAMED else ""
    return (
        f"DICOM series in folder {str(folder)!r} has uneven slice positions (a missing or extra slice?): "
        f"the median step along the slice normal is {median:g} mm, but {gaps}{more}"
    )


def _scan(folder: Path) -> _Scan:
    """Read every file header in ``folder`` once: the series in slice order, or why not."""
    slices: dict[str, list[tuple[float, int, str, np.ndarray, np.ndarray]]] = {}
    corrupt: list[str] = []
    paths = sorted(p for p in folder.iterdir() if p.is_file())
    for path in paths:
        reader = sitk.ImageFileReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError as error:
            if path.name.upper() != "DICOMDIR" and _looks_like_dicom(path):
                reason = str(error).strip().splitlines()[-1].strip()
                corrupt.append(f"{str(path)!r} ({reason})")
            continue
        uid = reader.GetMetaData(_SERIES_UID).strip() if reader.HasMetaDataKey(_SERIES_UID) else ""
        direction = np.asarray(reader.GetDirection(), dtype=np.float64).reshape(3, 3)
        origin = np.asarray(reader.GetOrigin(), dtype=np.float64)
        slices.setdefault(uid, []).append((0.0, _instance_number(reader), str(path), origin, direction[:, 2]))
    if corrupt:
        return _Scan(
            error=f"folder {str(folder)!r} holds DICOM files that cannot be read (truncated or corrupt?): "
            + "; ".join(corrupt)
        )
    if not slices:
        return _Scan(error=f"no DICOM series found in folder {str(folder)!r}")
    if len(slices) > 1:
        return _Scan(
            error=f"folder {str(folder)!r} holds {len(slices)} DICOM series {sorted(slices)}; keep one per folder"
        )
    found = next(iter(slices.values()))
    normal = found[0][4]
    ordered = sorted((float(origin @ normal), number, name, origin, n) for _, number, name, origin, n in found)
    files = [name for _, _, name, _, _ in ordered]
    distances = np.asarray([distance for distance, *_ in ordered])
    uneven = _uneven_error(folder, [Path(name).name for name in files], distances)
    return _Scan(error=uneven) if uneven else _Scan(files=tuple(files))


def _scanned(folder: Path) -> _Scan:
    """:func:`_scan`, kept while the folder's files keep their names, sizes and dates."""
    try:
        key: tuple[object, ...] = (
            str(folder.resolve()),
            *((p.name, s.st_size, s.st_mtime_ns) for p in folder.iterdir() for s in [p.stat()]),
        )
    except OSError:
        return _scan(folder)
    with _scans_lock:
        if key in _scans:
            _scans.move_to_end(key)
            return _scans[key]
    result = _scan(folder)
    with _scans_lock:
        _scans[key] = result
        while len(_scans) > _CACHE_SIZE:
            _scans.popitem(last=False)
    return result


def dicom_files(folder: Path) -> list[str]:
    """The files of the one DICOM series in ``folder``, in slice order.

    Raises:
        ValueError: If the folder holds no series or several, a file that
            looks like DICOM but cannot be read (named), or slices that are not
            evenly spaced (the positions named).

    Example:
        >>> import tempfile
        >>> dicom_files(Path(tempfile.mkdtemp()))
        Traceback (most recent call last):
        ...
        ValueError: no DICOM series found in folder '...'
    """
    scan = _scanned(folder)
    if scan.error:
        raise ValueError(scan.error)
    return list(scan.files)


def read_dicom_header(folder: Path) -> Header:
    """Header of the series in ``folder``, from its first and last slice headers.

    Raises:
        ValueError: As :func:`dicom_files` does.

    Example:
        >>> import tempfile
        >>> read_dicom_header(Path(tempfile.mkdtemp()))
        Traceback (most recent call last):
        ...
        ValueError: no DICOM series found in folder '...'
    """
    files = dicom_files(folder)
    first = sitk.ImageFileReader()
    first.SetFileName(files[0])
    first.ReadImageInformation()
    size = first.GetSize()
    spacing = list(first.GetSpacing())
    direction = np.asarray(first.GetDirection(), dtype=np.float64).reshape(3, 3)
    origin = np.asarray(first.GetOrigin(), dtype=np.float64)
    if len(files) > 1:
        last = sitk.ImageFileReader()
        last.SetFileName(files[-1])
        last.ReadImageInformation()
        step = np.asarray(last.GetOrigin(), dtype=np.float64) - origin
        distance = float(np.linalg.norm(step))
        if distance > 0:
            spacing[2] = distance / (len(files) - 1)
            direction[:, 2] = step / distance
    affine = sitk_affine(spacing, origin, direction.ravel())
    shape = (int(size[0]), int(size[1]), len(files))
    return Header(shape, int(first.GetNumberOfComponents()), check_affine(affine, str(folder)), sitk_dtype(first))


def read_dicom(folder: Path) -> tuple[Array, TypeAffine]:
    """All slices of the series in ``folder`` as ``(C, I, J, K)`` and the RAS+ affine.

    Raises:
        ValueError: As :func:`dicom_files` does.

    Example:
        >>> import tempfile
        >>> read_dicom(Path(tempfile.mkdtemp()))
        Traceback (most recent call last):
        ...
        ValueError: no DICOM series found in folder '...'
    """
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(dicom_files(folder))
    return from_sitk(reader.Execute())


#: A folder: read-only.
DICOM = Backend("dicom", (), read_dicom_header, read_dicom)

__all__ = ["DICOM", "dicom_files", "read_dicom", "read_dicom_header"]
