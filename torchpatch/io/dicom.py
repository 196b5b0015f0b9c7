"""DICOM series folders, read with SimpleITK (GDCM); one series per folder.

The header comes from the first and last slice headers only: the slice
spacing and the third direction are the step between their origins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..geometry import check_affine
from ..typing import TypeAffine
from .base import Array, Backend, Header
from .sitk import from_sitk, sitk_affine, sitk_dtype


def dicom_files(folder: Path) -> list[str]:
    """The files of the one DICOM series in ``folder``, in slice order.

    Example:
        >>> import tempfile
        >>> dicom_files(Path(tempfile.mkdtemp()))
        Traceback (most recent call last):
        ...
        ValueError: no DICOM series found in folder '...'
    """
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise ValueError(f"no DICOM series found in folder {str(folder)!r}")
    if len(series) > 1:
        raise ValueError(f"folder {str(folder)!r} holds {len(series)} DICOM series {list(series)}; keep one per folder")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0])
    return list(files)


def read_dicom_header(folder: Path) -> Header:
    """Header of the series in ``folder``, from its first and last slice headers.

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
