"""Shared fixtures: small synthetic volumes, subjects and DICOM series built in code.

Every file the tests read is written by the tests themselves (the optional
real samples under ``shared/data`` are handled in ``test_io.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from torchpatch import LabelMap, ScalarImage, Subject

#: An oblique-free but non-trivial affine whose entries are exact in float32
#: (NIfTI stores float32), with a permutation and a flip.
EXACT_AFFINE = np.array(
    [
        [0.0, -0.5, 0.0, 12.25],
        [2.0, 0.0, 0.0, -30.5],
        [0.0, 0.0, 0.75, 8.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Torch's intra-op threads set to 2 for the test (the cutting and blending threads' setting), then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def team() -> Iterator[int]:
    """torch's OpenMP team bound for the compiled copies (as with two torch threads): how many threads it gives.

    Calls of every size split while it is in use (the tests' boxes are far below ``TEAM_BYTES``).
    """
    from torchpatch.io import team as team_module

    before, smallest = torch.get_num_threads(), team_module.TEAM_BYTES
    torch.set_num_threads(2)
    try:
        threads = team_module.team_threads()
    finally:
        torch.set_num_threads(before)
    team_module.TEAM_BYTES = 0
    try:
        yield threads
    finally:
        team_module.TEAM_BYTES = smallest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def exact_affine() -> np.ndarray:
    return EXACT_AFFINE.copy()


@pytest.fixture
def make_subject() -> Callable[..., Subject]:
    """Factory for a tensor-backed subject with an intensity image and a label map."""

    def make(shape: Sequence[int] = (1, 4, 5, 6), seed: int = 0, **metadata: object) -> Subject:
        generator = torch.Generator().manual_seed(seed)
        t1 = ScalarImage(tensor=torch.rand(*shape, generator=generator))
        seg = LabelMap(tensor=(torch.rand(*shape, generator=generator) > 0.5).to(torch.uint8))
        return Subject(t1=t1, seg=seg, **metadata)

    return make


def write_dicom_series(
    folder: Path,
    volume: np.ndarray,
    spacing: Sequence[float],
    origin: Sequence[float],
    row_direction: Sequence[float] = (1.0, 0.0, 0.0),
    column_direction: Sequence[float] = (0.0, 1.0, 0.0),
) -> np.ndarray:
    """Write ``volume`` (int16, indexed ``(K, J, I)``) as one DICOM file per slice.

    ``spacing`` is ``(column step, row step, slice step)`` in millimetres and
    ``origin`` the LPS position of the first voxel; slices step along the
    normal ``row_direction x column_direction``. Returns the expected LPS
    affine of the series, computed by hand from the tags written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    row = np.asarray(row_direction, dtype=np.float64)
    column = np.asarray(column_direction, dtype=np.float64)
    normal = np.cross(row, column)
    series_uid = "1.2.826.0.1.3680043.2.1125.7.1"
    study_uid = "1.2.826.0.1.3680043.2.1125.7.2"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    orientation = "\\".join(f"{v:g}" for v in (*row, *column))
    for k in range(volume.shape[0]):
        position = np.asarray(origin, dtype=np.float64) + k * spacing[2] * normal
        image = sitk.GetImageFromArray(np.ascontiguousarray(volume[k]))
        image.SetSpacing((float(spacing[0]), float(spacing[1])))  # the writer derives PixelSpacing from this
        tags = {
            "0008|0060": "CT",
            "0008|0018": f"{series_uid}.{k + 1}",
            "0020|000d": study_uid,
            "0020|000e": series_uid,
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:g}" for v in position),
            "0020|0037": orientation,
            # PixelSpacing is (row spacing, column spacing): the step along J, then along I.
            "0028|0030": f"{spacing[1]:g}\\{spacing[0]:g}",
            "0018|0050": f"{spacing[2]:g}",
        }
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        # Write slices in reverse order so the reader must sort by position.
        writer.SetFileName(str(folder / f"IM{volume.shape[0] - k:04d}.dcm"))
        writer.Execute(image)
    lps = np.eye(4)
    lps[:3, 0] = row * spacing[0]
    lps[:3, 1] = column * spacing[1]
    lps[:3, 2] = normal * spacing[2]
    lps[:3, 3] = origin
    return lps


@pytest.fixture
def dicom_writer() -> Callable[..., np.ndarray]:
    """:func:`write_dicom_series`, for tests that need other orientations."""
    return write_dicom_series


@pytest.fixture
def dicom_series(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 5x6x4 int16 axial series: ``(folder, volume (K, J, I), LPS affine)``."""
    volume = np.random.default_rng(3).integers(-1000, 1000, size=(4, 6, 5), dtype=np.int16)
    folder = tmp_path / "series"
    lps = write_dicom_series(folder, volume, spacing=(0.5, 0.75, 2.0), origin=(10.0, -20.0, 30.0))
    return folder, volume, lps
