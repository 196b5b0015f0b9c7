"""MINC (``.mnc``) and Analyze / NIfTI-1 pairs (``.hdr``/``.img``): voxels, RAS+ affine, dtype, errors.

Files are written with SimpleITK or nibabel in each test and read with
torchpatch. The tests at the end compare with TorchIO 1.2.1 and skip when it
is not installed: run them in the benchmark venv with
``.bench-venv-aug/bin/python -m pytest tests/test_io_formats.py``.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from torchpatch import LabelMap, ScalarImage, io
from torchpatch.geometry import LPS_TO_RAS

#: An oblique, anisotropic RAS+ affine (axes permuted and flipped).
OBLIQUE = np.array([[0.0, 2.0, 0.0, 5.0], [-3.0, 0.0, 0.0, 6.0], [0.0, 0.0, 4.0, -7.0], [0.0, 0.0, 0.0, 1.0]])

#: nibabel's own MINC test files (MINC1 NetCDF and MINC2 HDF5), when present.
NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
needs_nibabel_data = pytest.mark.skipif(
    not (NIBABEL_DATA / "minc1_1_scale.mnc").exists(), reason="nibabel's test data is not installed"
)


def _sitk_image(array: np.ndarray) -> sitk.Image:
    """A scalar SimpleITK image of our ``(I, J, K)`` array, with an oblique LPS geometry."""
    image = sitk.GetImageFromArray(array.transpose(2, 1, 0))
    image.SetSpacing((1.5, 2.0, 3.0))
    image.SetOrigin((10.0, 20.0, 30.0))
    image.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0))
    return image


def _sitk_ras_affine(image: sitk.Image) -> np.ndarray:
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ lps


# Files written by SimpleITK -----------------------------------------------------------


@pytest.mark.parametrize("name", ["x.mnc", "x.img", "x.hdr"])
@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
def test_file_written_by_simpleitk_reads_with_its_voxels_dtype_and_ras_affine(tmp_path, name, dtype, rng):
    array = (rng.random((4, 5, 6)) * 100).astype(dtype)
    image = _sitk_image(array)
    sitk.WriteImage(image, str(tmp_path / name))
    data, affine = io.read_array(tmp_path / name)
    assert data.dtype == dtype
    np.testing.assert_array_equal(data, array[None])
    np.testing.assert_allclose(affine, _sitk_ras_affine(image), atol=1e-6)
    header = io.read_header(tmp_path / name)
    assert (header.spatial_shape, header.num_channels, header.dtype) == ((4, 5, 6), 1, np.dtype(dtype))
    np.testing.assert_allclose(header.affine, affine, atol=1e-6)


def test_either_file_of_a_pair_names_the_same_image(tmp_path, rng):
    array = rng.integers(0, 5, (4, 5, 6)).astype(np.int16)
    sitk.WriteImage(_sitk_image(array), str(tmp_path / "seg.hdr"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.hdr", "seg.img"]
    from_header, from_image = LabelMap(tmp_path / "seg.hdr"), LabelMap(tmp_path / "seg.img")
    assert torch.equal(from_header.data, from_image.data)
    np.testing.assert_array_equal(from_header.affine, from_image.affine)


# Files written by nibabel -------------------------------------------------------------


def test_plain_analyze_has_no_orientation_and_loads_as_lps_identity_like_torchio(tmp_path, rng):
    array = rng.integers(-100, 100, (4, 5, 6)).astype(np.int16)
    nib.save(nib.AnalyzeImage(array, np.diag([2.0, 3.0, 4.0, 1.0])), tmp_path / "an.img")
    assert (tmp_path / "an.hdr").read_bytes()[344:348] != b"ni1\x00"  # no NIfTI magic: plain Analyze
    for name in ("an.img", "an.hdr"):
        image = ScalarImage(tmp_path / name)
        assert image.spatial_shape == (4, 5, 6)
        assert image.dtype == torch.int16
        np.testing.assert_array_equal(image.numpy(), array[None])
        # SimpleITK's (and TorchIO's) reading: identity direction in LPS, origin at voxel 0.
        np.testing.assert_allclose(image.affine, np.diag([-2.0, -3.0, 4.0, 1.0]), atol=1e-6)


def test_nifti_pair_written_by_nibabel_keeps_its_affine(tmp_path, rng):
    array = rng.random((4, 5, 6)).astype(np.float32)
    nib.save(nib.Nifti1Pair(array, OBLIQUE), tmp_path / "pair.hdr")
    data, affine = io.read_array(tmp_path / "pair.img")
    np.testing.assert_array_equal(data, array[None])
    np.testing.assert_allclose(affine, OBLIQUE, atol=1e-5)


@needs_nibabel_data
@pytest.mark.parametrize("name", ["minc1_1_scale.mnc", "minc1-no-att.mnc", "tiny.mnc"])
def test_minc1_reads_through_nibabel_as_float32(name):
    path = NIBABEL_DATA / name
    expected = nib.load(path)
    header = io.read_header(path)
    assert header.spatial_shape == expected.shape
    assert header.dtype == np.float32
    data, affine = io.read_array(path)
    assert data.dtype == np.float32 and data.flags.c_contiguous
    np.testing.assert_array_equal(data[0], expected.get_fdata(dtype=np.float32))
    np.testing.assert_allclose(affine, expected.affine)


@needs_nibabel_data
def test_4d_minc1_is_refused_naming_the_file_and_its_shape():
    path = NIBABEL_DATA / "minc1_4d.mnc"
    with pytest.raises(ValueError, match=r"4D MINC1 file .*minc1_4d\.mnc.* \(2, 10, 20, 20\)"):
        io.read_header(path)
    with pytest.raises(ValueError, match=r"minc1_4d\.mnc"):
        io.read_array(path)


@needs_nibabel_data
def test_minc2_reads_through_simpleitk():
    path = NIBABEL_DATA / "minc2_1_scale.mnc"
    image = ScalarImage(path)
    expected = sitk.ReadImage(str(path))
    assert image.spatial_shape == expected.GetSize()
    np.testing.assert_allclose(image.affine, _sitk_ras_affine(expected), atol=1e-6)
    np.testing.assert_array_equal(image.numpy()[0], sitk.GetArrayFromImage(expected).transpose(2, 1, 0))


# Round trips through torchpatch -------------------------------------------------------


@pytest.mark.parametrize("name", ["x.mnc", "x.img", "x.hdr"])
def test_save_and_read_back_keeps_multichannel_voxels_and_oblique_affine(tmp_path, name, rng):
    data = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    ScalarImage(tensor=torch.from_numpy(data), affine=OBLIQUE).save(tmp_path / name)
    image = ScalarImage(tmp_path / name)
    assert image.shape == (3, 4, 5, 6)
    np.testing.assert_allclose(image.affine, OBLIQUE, atol=1e-6)
    assert torch.equal(image.data, torch.from_numpy(data))


def test_label_map_saved_as_pair_reads_back_as_integers(tmp_path, rng):
    labels = torch.from_numpy(rng.integers(0, 4, (1, 6, 5, 4)).astype(np.int16))
    LabelMap(tensor=labels, affine=OBLIQUE).save(tmp_path / "seg.img")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.hdr", "seg.img"]
    assert (tmp_path / "seg.hdr").read_bytes()[344:348] == b"ni1\x00"  # a NIfTI-1 pair: oriented
    image = LabelMap(tmp_path / "seg.hdr")
    assert image.dtype == torch.int16
    assert torch.equal(image.data, labels)


def test_minc_writes_go_through_a_temporary_name(tmp_path):
    io.write_image(np.ones((1, 2, 3, 4), np.uint8), OBLIQUE, tmp_path / "x.mnc")
    assert [p.name for p in tmp_path.iterdir()] == ["x.mnc"]
    assert io.BACKENDS[".mnc"].atomic_writes and not io.BACKENDS[".img"].atomic_writes


# Errors -------------------------------------------------------------------------------


def test_truncated_img_is_refused_naming_the_file(tmp_path, rng):
    # SimpleITK itself fills the missing voxels with zeros.
    io.write_image(rng.random((1, 8, 8, 8)).astype(np.float32), OBLIQUE, tmp_path / "x.hdr")
    image_file = tmp_path / "x.img"
    image_file.write_bytes(image_file.read_bytes()[:1000])
    for name in ("x.hdr", "x.img"):
        with pytest.raises(ValueError, match=r"truncated .*x\.img'.*1000 bytes.*2048"):
            io.read_array(tmp_path / name)


def test_missing_half_of_a_pair_is_refused_naming_both_files(tmp_path):
    io.write_image(np.zeros((1, 2, 2, 2), np.int16), np.eye(4), tmp_path / "x.hdr")
    (tmp_path / "x.img").unlink()
    with pytest.raises(FileNotFoundError, match=r"x\.hdr.*pair.*x\.img.*missing"):
        io.read_array(tmp_path / "x.hdr")


@pytest.mark.parametrize("keep", [0.5, 0.05])
def test_truncated_minc_is_refused_naming_the_file(tmp_path, keep, rng):
    path = tmp_path / "x.mnc"
    io.write_image(rng.random((1, 8, 8, 8)).astype(np.float32), OBLIQUE, path)
    payload = path.read_bytes()
    path.write_bytes(payload[: int(len(payload) * keep)])
    with pytest.raises(ValueError, match=r"x\.mnc"):
        ScalarImage(path).load()


def test_garbage_with_a_minc_or_analyze_suffix_is_refused_naming_the_file(tmp_path):
    for name in ("junk.mnc", "junk.img"):
        (tmp_path / name).write_bytes(b"not an image at all" * 10)
        with pytest.raises((ValueError, FileNotFoundError), match=r"junk\."):
            io.read_array(tmp_path / name)


# The same voxels and affine as TorchIO 1.2.1 (skipped without it) --------------------


def _torchio_and_ours(path: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    tio = pytest.importorskip("torchio")
    theirs = tio.ScalarImage(path)
    ours = ScalarImage(path)
    return (theirs.numpy(), theirs.affine), (ours.numpy(), ours.affine)


@pytest.mark.parametrize("name", ["x.mnc", "x.img", "x.hdr"])
def test_same_as_torchio_for_files_simpleitk_writes(tmp_path, name, rng):
    sitk.WriteImage(_sitk_image((rng.random((4, 5, 6)) * 100).astype(np.float32)), str(tmp_path / name))
    (their_data, their_affine), (our_data, our_affine) = _torchio_and_ours(tmp_path / name)
    np.testing.assert_array_equal(our_data, their_data)
    np.testing.assert_allclose(our_affine, their_affine, atol=1e-6)


def test_same_as_torchio_for_plain_analyze(tmp_path, rng):
    array = rng.integers(-100, 100, (4, 5, 6)).astype(np.int16)
    nib.save(nib.AnalyzeImage(array, np.diag([2.0, 3.0, 4.0, 1.0])), tmp_path / "an.img")
    (their_data, their_affine), (our_data, our_affine) = _torchio_and_ours(tmp_path / "an.img")
    np.testing.assert_array_equal(our_data, their_data)
    np.testing.assert_allclose(our_affine, their_affine, atol=1e-6)


@needs_nibabel_data
@pytest.mark.filterwarnings("ignore:Error loading image with SimpleITK")  # TorchIO tries SimpleITK on MINC1 first
@pytest.mark.parametrize("name", ["minc1_1_scale.mnc", "tiny.mnc", "minc2_1_scale.mnc", "minc2-4d-d.mnc", "small.mnc"])
def test_same_as_torchio_for_nibabel_minc_files(name):
    (their_data, their_affine), (our_data, our_affine) = _torchio_and_ours(NIBABEL_DATA / name)
    assert our_data.shape == their_data.shape
    np.testing.assert_array_equal(our_data, their_data)
    np.testing.assert_allclose(our_affine, their_affine, atol=1e-6)


def test_same_as_torchio_when_torchio_saves(tmp_path, rng):
    """TorchIO's own test fixture writes ``.mnc`` and ``.img`` files with ``save``: we read them alike."""
    tio = pytest.importorskip("torchio")
    data = torch.from_numpy(rng.random((1, 4, 5, 6)).astype(np.float32))
    for name in ("fixture.mnc", "fixture.img"):
        tio.ScalarImage(tensor=data, affine=OBLIQUE).save(tmp_path / name)
        theirs, ours = tio.ScalarImage(tmp_path / name), ScalarImage(tmp_path / name)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-6)


@needs_nibabel_data
def test_minc2_affine_has_x_and_y_negated_against_minc1_as_simpleitk_and_torchio_read_it():
    """Pins the documented difference of :mod:`torchpatch.io.minc` (SimpleITK 2.5's MINC2 reading)."""
    minc1_data, minc1_affine = io.read_array(NIBABEL_DATA / "minc1_1_scale.mnc")  # axes (z, y, x)
    minc2_data, minc2_affine = io.read_array(NIBABEL_DATA / "minc2_1_scale.mnc")  # axes (x, y, z)
    np.testing.assert_array_equal(minc2_data[0], minc1_data[0].transpose(2, 1, 0))
    reordered = minc1_affine[:, [2, 1, 0, 3]]
    np.testing.assert_allclose(minc2_affine, np.diag([-1.0, -1.0, 1.0, 1.0]) @ reordered)
