"""NIfTI headers are parsed once per file content (torchpatch/io/nifti.py), never reused for a changed file."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from torchpatch import ScalarImage
from torchpatch.io import nifti
from torchpatch.io.nifti import read_nifti, read_nifti_header, write_nifti


@pytest.fixture
def loads(monkeypatch):
    calls: list[str] = []
    load = nib.load

    def counting(path, *args, **kwargs):
        calls.append(str(path))
        return load(path, *args, **kwargs)

    monkeypatch.setattr(nifti.nib, "load", counting)
    return calls


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_a_file_is_parsed_once_for_its_header_and_its_voxels(tmp_path, loads, suffix):
    path = tmp_path / f"x{suffix}"
    write_nifti(np.arange(24, dtype=np.int16).reshape(1, 4, 3, 2), np.diag([2.0, 3.0, 4.0, 1.0]), path)
    for _ in range(3):
        image = ScalarImage(path)
        assert image.affine[0, 0] == 2.0
        assert int(image.data.sum()) == 276
    assert loads == [str(path)]


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_a_rewritten_header_is_parsed_again_and_new_voxels_are_read(tmp_path, loads, suffix):
    path = tmp_path / f"x{suffix}"
    write_nifti(np.zeros((1, 4, 3, 2), np.float32), np.eye(4), path)
    assert read_nifti_header(path).affine[0, 3] == 0.0
    # Same size, same moment: only the header's bytes tell the files apart.
    shifted = np.eye(4)
    shifted[0, 3] = 7.5
    write_nifti(np.zeros((1, 4, 3, 2), np.float32), shifted, path)
    assert read_nifti_header(path).affine[0, 3] == 7.5
    assert len(loads) == 2
    # The same header over other voxels: the kept header, the new voxels.
    write_nifti(np.ones((1, 4, 3, 2), np.float32), shifted, path)
    data, affine = read_nifti(path)
    assert float(data.sum()) == 24.0 and affine[0, 3] == 7.5
    assert len(loads) == 2


def test_an_affine_changed_by_a_caller_does_not_reach_the_kept_header(tmp_path):
    path = tmp_path / "x.nii.gz"
    write_nifti(np.zeros((1, 2, 2, 2), np.uint8), np.eye(4), path)
    first = read_nifti_header(path).affine
    first[0, 3] = 99.0
    assert read_nifti_header(path).affine[0, 3] == 0.0
    assert read_nifti(path)[1][0, 3] == 0.0


def test_what_is_not_a_gzip_stream_fails_as_before(tmp_path):
    path = tmp_path / "x.nii.gz"
    path.write_bytes(b"not a gzip stream at all" * 40)
    with pytest.raises(Exception, match=r"x\.nii\.gz|gzip|file signature"):
        read_nifti(path)
