"""Bad DICOM series: a missing slice, a truncated slice, and one scan per folder (issue 14)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from torchpatch import ScalarImage, io


@pytest.fixture
def series(tmp_path, dicom_writer):
    volume = np.random.default_rng(5).integers(-1000, 1000, size=(6, 8, 7), dtype=np.int16)
    folder = tmp_path / "series"
    dicom_writer(folder, volume, spacing=(0.5, 0.75, 2.0), origin=(10.0, -20.0, 30.0))
    return folder, volume


def test_missing_slice_is_refused_at_header_naming_folder_and_positions(series):
    folder, _ = series
    (folder / "IM0003.dcm").unlink()  # slice k=3, at 36 mm
    pattern = r"folder '.*series' has uneven slice positions.*IM0004\.dcm at 34 mm -> IM0002\.dcm at 38 mm \(step 4\)"
    with pytest.raises(ValueError, match=pattern):
        io.read_header(folder)
    with pytest.raises(ValueError, match=pattern):
        io.read_array(folder)


def test_missing_first_or_last_slice_is_still_a_regular_series(series):
    folder, _ = series
    (folder / "IM0001.dcm").unlink()  # the last slice along the normal
    header = io.read_header(folder)
    assert header.spatial_shape == (7, 8, 5)
    assert abs(header.affine[2, 2]) == pytest.approx(2.0)


@pytest.mark.parametrize("keep", [200, -100], ids=["header", "pixels"])
def test_truncated_slice_is_named(series, keep):
    folder, _ = series
    path = folder / "IM0003.dcm"
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    pattern = r"cannot be read \(truncated or corrupt\?\): '.*series/IM0003\.dcm'"
    with pytest.raises(ValueError, match=pattern):
        io.read_header(folder)
    with pytest.raises(ValueError, match=pattern):
        io.read_array(folder)


def test_intact_series_reads_as_before_with_other_files_beside_it(series):
    folder, volume = series
    (folder / "notes.txt").write_text("not DICOM")
    image = ScalarImage(folder)
    assert image.shape == (1, 7, 8, 6)
    assert image.spacing == pytest.approx((0.5, 0.75, 2.0), abs=1e-4)
    expected = torch.from_numpy(np.ascontiguousarray(volume.transpose(2, 1, 0)))  # (K, J, I) as (I, J, K)
    assert torch.equal(image.data[0], expected)


def test_two_series_are_refused(series, dicom_writer):
    folder, volume = series
    image = sitk.GetImageFromArray(volume[0])
    for tag, value in {"0020|000e": "1.2.3.4", "0020|000d": "1.2.3", "0008|0018": "1.2.3.4.5"}.items():
        image.SetMetaData(tag, value)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(folder / "other.dcm"))
    writer.Execute(image)
    with pytest.raises(ValueError, match=re.escape("holds 2 DICOM series")):
        io.read_header(folder)


def test_folder_is_scanned_once_for_header_and_voxels(series, monkeypatch):
    folder, _ = series
    path = folder / "IM0003.dcm"
    path.write_bytes(path.read_bytes()[:200])
    calls = []
    original = sitk.ImageFileReader.ReadImageInformation

    def counted(self):
        calls.append(self.GetFileName())
        return original(self)

    monkeypatch.setattr(sitk.ImageFileReader, "ReadImageInformation", counted)
    for _ in range(2):
        with pytest.raises(ValueError, match="IM0003"):
            io.read_header(folder)
        with pytest.raises(ValueError, match="IM0003"):
            io.read_array(folder)
    assert len(calls) == 6  # each file's header once


def test_rewritten_folder_is_scanned_again(series):
    folder, _ = series
    io.read_header(folder)
    (folder / "IM0003.dcm").unlink()
    with pytest.raises(ValueError, match="uneven slice positions"):
        io.read_header(folder)
