"""Reading and writing every supported format: data, affine, dtype, errors."""

from __future__ import annotations

import ast
import gzip
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from torchpatch import LabelMap, ScalarImage, Subject, io
from torchpatch.geometry import LPS_TO_RAS
from torchpatch.io import order


def _find_shared_data() -> Path | None:
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "shared" / "data", here.parents[1] / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return None


#: Real samples (absent in a user's clone: those tests skip).
SHARED_DATA = _find_shared_data()
needs_shared_data = pytest.mark.skipif(SHARED_DATA is None, reason="shared/data sample images are not available")

FORMATS_3D = [".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".npz"]


def sitk_array_to_ours(array: np.ndarray) -> np.ndarray:
    """SimpleITK's scalar ``(K, J, I)`` array as our ``(1, I, J, K)``."""
    return array.transpose(2, 1, 0)[None]


# Round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", FORMATS_3D)
def test_round_trip_keeps_multichannel_data_and_affine(tmp_path, suffix, exact_affine, rng):
    data = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    path = tmp_path / f"image{suffix}"
    ScalarImage(tensor=torch.from_numpy(data), affine=exact_affine).save(path)
    image = ScalarImage(path)
    assert image.shape == (2, 3, 4, 5)
    np.testing.assert_allclose(image.affine, exact_affine, atol=1e-6)
    assert image.dtype == torch.float32
    assert torch.equal(image.data, torch.from_numpy(data))
    header = io.read_header(path)
    assert header.spatial_shape == (3, 4, 5)
    assert header.num_channels == 2
    assert header.dtype == np.float32
    np.testing.assert_allclose(header.affine, exact_affine, atol=1e-6)


@pytest.mark.parametrize("suffix", [*FORMATS_3D, ".npy"])
def test_write_leaves_no_temporary_files(tmp_path, suffix):
    path = tmp_path / f"scan{suffix}"
    io.write_image(np.zeros((1, 2, 2, 2), np.int16), np.eye(4), path)
    leftovers = [p.name for p in tmp_path.iterdir() if "partial" in p.name]
    assert leftovers == []
    assert path.exists()


def test_npy_round_trip_takes_affine_from_caller(tmp_path, exact_affine, rng):
    data = rng.integers(-100, 100, size=(1, 4, 3, 2), dtype=np.int16)
    path = tmp_path / "volume.npy"
    io.write_image(data, exact_affine, path)
    image = ScalarImage(path, affine=exact_affine)
    np.testing.assert_array_equal(image.affine, exact_affine)
    assert image.dtype == torch.int16
    assert torch.equal(image.data, torch.from_numpy(data))
    # Without one, a .npy file has the identity affine.
    np.testing.assert_array_equal(ScalarImage(path).affine, np.eye(4))


@pytest.mark.parametrize(("shape", "expected"), [((4, 3), (1, 4, 3, 1)), ((4, 3, 2), (1, 4, 3, 2))])
def test_npy_with_fewer_dimensions_gets_channel_and_depth_axes(tmp_path, shape, expected):
    path = tmp_path / "plain.npy"
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    np.save(path, array)
    image = ScalarImage(path)
    assert image.shape == expected
    np.testing.assert_array_equal(image.numpy().reshape(shape), array)


def test_npz_round_trip_stores_affine(tmp_path, exact_affine):
    data = np.arange(24, dtype=np.uint8).reshape(1, 2, 3, 4)
    path = tmp_path / "archive.npz"
    io.write_image(data, exact_affine, path)
    with np.load(path) as archive:
        np.testing.assert_array_equal(archive["affine"], exact_affine)
    image = LabelMap(path)
    np.testing.assert_array_equal(image.affine, exact_affine)
    assert image.dtype == torch.uint8
    assert torch.equal(image.data, torch.from_numpy(data))


def test_npz_with_several_unnamed_arrays_is_rejected_naming_keys(tmp_path):
    path = tmp_path / "ambiguous.npz"
    np.savez(path, first=np.zeros((2, 2, 2)), second=np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"ambiguous\.npz.*first.*second.*'data'"):
        io.read_array(path)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64])
@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".npy"])
def test_label_map_keeps_integer_dtype(tmp_path, dtype, suffix):
    data = np.arange(24, dtype=dtype).reshape(1, 2, 3, 4)
    path = tmp_path / f"label{suffix}"
    io.write_image(data, np.eye(4), path)
    label = LabelMap(path)
    expected = torch.from_numpy(data).dtype
    assert label.dtype == expected  # known from the header, before loading
    assert not label.is_loaded
    assert label.data.dtype == expected
    assert torch.equal(label.data, torch.from_numpy(data))


@pytest.mark.parametrize(("dtype", "expected"), [(np.uint16, torch.int32), (np.uint32, torch.int64)])
@pytest.mark.parametrize("suffix", [".nii", ".nrrd"])
def test_label_map_widens_unsigned_types_torch_cannot_use(tmp_path, dtype, expected, suffix):
    top = np.iinfo(dtype).max
    data = np.array([0, 1, 7, top], dtype=dtype).reshape(1, 2, 2, 1)
    path = tmp_path / f"label{suffix}"
    io.write_image(data, np.eye(4), path)
    label = LabelMap(path)
    assert label.dtype == expected
    assert label.data.dtype == expected
    assert label.data.flatten().tolist() == [0, 1, 7, int(top)]


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8])
def test_scalar_image_keeps_file_dtype_and_casts_on_request(tmp_path, dtype):
    data = np.arange(8, dtype=dtype).reshape(1, 2, 2, 2)
    path = tmp_path / "scan.nii.gz"
    io.write_image(data, np.eye(4), path)
    kept = ScalarImage(path)
    assert kept.dtype == torch.from_numpy(data).dtype
    assert kept.data.dtype == torch.from_numpy(data).dtype
    cast = ScalarImage(path, dtype=torch.float32)
    assert cast.dtype == torch.float32
    assert cast.data.dtype == torch.float32
    assert cast.data.flatten().tolist() == list(range(8))


# 2D images --------------------------------------------------------------------------


def test_png_uint8_rgb_round_trip_keeps_pixels_and_spacing(tmp_path, rng):
    data = rng.integers(0, 256, size=(3, 7, 5, 1), dtype=np.uint8)
    # PNG stores the pixel spacing but no origin or direction: the affine of a
    # 2D file is the LPS identity with its spacing, in RAS+.
    affine = np.diag([-0.5, -0.25, 1.0, 1.0])
    path = tmp_path / "photo.png"
    io.write_image(data, affine, path)
    image = ScalarImage(path)
    assert image.shape == (3, 7, 5, 1)
    assert image.dtype == torch.uint8
    assert torch.equal(image.data, torch.from_numpy(data))
    np.testing.assert_allclose(image.affine, affine, atol=1e-6)
    assert image.spacing == pytest.approx((0.5, 0.25, 1.0))
    assert image.is_2d()


def test_png_16_bit_grayscale_round_trip_widens_to_int32(tmp_path, rng):
    data = rng.integers(0, 2**16, size=(1, 6, 4, 1), dtype=np.uint16)
    data[0, 0, 0, 0] = 65535
    path = tmp_path / "depth.png"
    io.write_image(data, np.diag([-1.0, -1.0, 1.0, 1.0]), path)
    assert sitk.ReadImage(str(path)).GetPixelID() == sitk.sitkUInt16
    image = ScalarImage(path)
    assert image.dtype == torch.int32
    assert image.shape == (1, 6, 4, 1)
    assert torch.equal(image.data, torch.from_numpy(data.astype(np.int32)))
    np.testing.assert_allclose(image.affine, np.diag([-1.0, -1.0, 1.0, 1.0]), atol=1e-6)


def test_bmp_round_trip_keeps_pixels(tmp_path, rng):
    data = rng.integers(0, 256, size=(3, 6, 4, 1), dtype=np.uint8)
    path = tmp_path / "picture.bmp"
    io.write_image(data, np.diag([-1.0, -1.0, 1.0, 1.0]), path)
    image = ScalarImage(path)
    assert torch.equal(image.data, torch.from_numpy(data))
    np.testing.assert_allclose(image.affine, np.diag([-1.0, -1.0, 1.0, 1.0]), atol=1e-6)


def test_tiff_2d_round_trip_keeps_pixels_and_spacing(tmp_path, rng):
    data = rng.integers(0, 256, size=(3, 6, 4, 1), dtype=np.uint8)
    affine = np.diag([-0.5, -0.25, 1.0, 1.0])
    path = tmp_path / "slide.tif"
    io.write_image(data, affine, path)
    image = ScalarImage(path)
    assert torch.equal(image.data, torch.from_numpy(data))
    np.testing.assert_allclose(image.affine, affine, atol=1e-6)


def test_tiff_3d_round_trip_keeps_data(tmp_path, rng):
    # TIFF drops the direction, so only the voxels are compared.
    data = rng.integers(0, 256, size=(1, 4, 5, 3), dtype=np.uint8)
    path = tmp_path / "stack.tiff"
    io.write_image(data, np.eye(4), path)
    image = ScalarImage(path)
    assert image.shape == (1, 4, 5, 3)
    assert torch.equal(image.data, torch.from_numpy(data))


def test_jpeg_loads_rgb_as_channels_with_approximate_values(tmp_path):
    # A smooth gradient survives lossy compression within a few grey levels.
    rows, columns = 16, 24
    y, x = np.mgrid[0:rows, 0:columns]
    pixels = np.stack([x * 10, y * 15, np.full_like(x, 128)], axis=-1).astype(np.uint8)  # (rows, columns, 3)
    path = tmp_path / "photo.jpg"
    sitk.WriteImage(sitk.GetImageFromArray(pixels, isVector=True), str(path))
    image = ScalarImage(path)
    assert image.shape == (3, columns, rows, 1)
    assert image.dtype == torch.uint8
    expected = pixels.transpose(2, 1, 0)[..., None].astype(np.int16)
    error = np.abs(image.numpy().astype(np.int16) - expected)
    assert error.mean() < 4
    assert error.max() < 40


def test_2d_file_axes_are_column_then_row_with_unit_depth(tmp_path):
    pixels = np.zeros((4, 8), dtype=np.uint8)  # 4 rows (y), 8 columns (x)
    pixels[2, 5] = 255  # column x = 5, row y = 2
    path = tmp_path / "dot.png"
    image_2d = sitk.GetImageFromArray(pixels)
    image_2d.SetSpacing((0.5, 2.0))
    sitk.WriteImage(image_2d, str(path))
    image = ScalarImage(path)
    assert image.shape == (1, 8, 4, 1)
    assert image.data[0, 5, 2, 0] == 255
    assert int(image.data.sum()) == 255
    assert image.spacing == pytest.approx((0.5, 2.0, 1.0))
    header = io.read_header(path)
    assert header.spatial_shape == (8, 4, 1)


# NIfTI layouts and stacking ---------------------------------------------------------


def test_4d_nifti_time_series_loads_time_as_channels(tmp_path, exact_affine):
    series = np.arange(3 * 4 * 2 * 5, dtype=np.float32).reshape(3, 4, 2, 5)  # (I, J, K, T)
    path = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(series, exact_affine), str(path))
    image = ScalarImage(path)
    assert image.shape == (5, 3, 4, 2)
    assert image.num_channels == 5
    for t in range(5):
        assert torch.equal(image.data[t], torch.from_numpy(series[..., t]))
    np.testing.assert_allclose(image.affine, exact_affine, atol=1e-6)


def test_5d_nifti_vector_loads_components_as_channels(tmp_path):
    vectors = np.arange(2 * 3 * 4 * 3, dtype=np.float32).reshape(2, 3, 4, 1, 3)  # (I, J, K, 1, C)
    path = tmp_path / "field.nii"
    nib.save(nib.Nifti1Image(vectors, np.eye(4)), str(path))
    image = ScalarImage(path)
    assert image.shape == (3, 2, 3, 4)
    assert torch.equal(image.data[2], torch.from_numpy(vectors[:, :, :, 0, 2]))


def test_2d_nifti_loads_with_unit_depth(tmp_path):
    plane = np.arange(12, dtype=np.int16).reshape(3, 4)
    path = tmp_path / "plane.nii"
    nib.save(nib.Nifti1Image(plane, np.eye(4)), str(path))
    image = ScalarImage(path)
    assert image.shape == (1, 3, 4, 1)
    assert torch.equal(image.data[0, :, :, 0], torch.from_numpy(plane))


def test_list_of_paths_stacks_files_as_channels(tmp_path, exact_affine):
    first = np.zeros((1, 3, 4, 2), np.float32)
    second = np.ones((1, 3, 4, 2), np.float32)
    io.write_image(first, exact_affine, tmp_path / "t1.nii.gz")
    io.write_image(second, exact_affine, tmp_path / "t2.nrrd")
    image = ScalarImage([tmp_path / "t1.nii.gz", tmp_path / "t2.nrrd"])
    assert image.shape == (2, 3, 4, 2)  # from the headers
    assert not image.is_loaded
    assert torch.equal(image.data, torch.from_numpy(np.concatenate([first, second])))
    np.testing.assert_allclose(image.affine, exact_affine, atol=1e-6)
    assert image.stem == "t1"


def test_list_of_paths_with_different_shapes_names_both_files(tmp_path):
    io.write_image(np.zeros((1, 3, 4, 2), np.float32), np.eye(4), tmp_path / "small.nii")
    io.write_image(np.zeros((1, 3, 4, 3), np.float32), np.eye(4), tmp_path / "large.nii")
    image = ScalarImage([tmp_path / "small.nii", tmp_path / "large.nii"])
    pattern = r"small\.nii.*\(3, 4, 2\).*large\.nii.*\(3, 4, 3\)"
    with pytest.raises(ValueError, match=re.compile(pattern, re.DOTALL)):
        _ = image.shape
    with pytest.raises(ValueError, match=re.compile(pattern, re.DOTALL)):
        _ = image.data


# DICOM --------------------------------------------------------------------------------


def test_dicom_folder_header_matches_full_read(dicom_series):
    folder, _, _ = dicom_series
    header = io.read_header(folder)
    data, affine = io.read_array(folder)
    assert header.spatial_shape == data.shape[1:] == (5, 6, 4)
    assert header.num_channels == 1
    assert header.dtype == data.dtype == np.int16
    np.testing.assert_allclose(header.affine, affine, atol=1e-4)


def test_dicom_folder_data_round_trips_and_is_converted_to_ras(dicom_series):
    folder, volume, lps = dicom_series
    image = ScalarImage(folder)
    assert image.dtype == torch.int16
    assert torch.equal(image.data, torch.from_numpy(sitk_array_to_ours(volume)))
    np.testing.assert_allclose(image.affine, LPS_TO_RAS @ lps, atol=1e-4)
    np.testing.assert_allclose(image.affine, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps, atol=1e-4)
    # LPS origin (10, -20, 30) is RAS (-10, 20, 30).
    np.testing.assert_allclose(image.origin, (-10.0, 20.0, 30.0), atol=1e-4)
    assert image.spacing == pytest.approx((0.5, 0.75, 2.0), abs=1e-4)
    assert image.orientation == ("L", "P", "S")
    assert image.stem == "series"


def test_coronal_dicom_series_header_and_read_agree(tmp_path, dicom_writer):
    # In LPS: rows run along +x (left), columns towards the feet (-z) and
    # slices along row x column = +y (posterior).
    volume = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    folder = tmp_path / "coronal"
    lps = dicom_writer(
        folder,
        volume,
        spacing=(1.0, 1.5, 3.0),
        origin=(-5.0, 7.0, 40.0),
        row_direction=(1.0, 0.0, 0.0),
        column_direction=(0.0, 0.0, -1.0),
    )
    header = io.read_header(folder)
    image = ScalarImage(folder)
    np.testing.assert_allclose(header.affine, LPS_TO_RAS @ lps, atol=1e-4)
    np.testing.assert_allclose(image.affine, LPS_TO_RAS @ lps, atol=1e-4)
    assert image.orientation == ("L", "I", "P")
    assert torch.equal(image.data, torch.from_numpy(sitk_array_to_ours(volume)))


def test_folder_without_dicom_series_is_rejected_naming_folder(tmp_path):
    folder = tmp_path / "not_dicom"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"no DICOM series found in folder .*not_dicom"):
        io.read_header(folder)


# Orientation of LPS files ------------------------------------------------------------


def test_nrrd_written_in_lps_comes_out_in_ras(tmp_path):
    volume = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)  # (K, J, I)
    written = sitk.GetImageFromArray(volume)
    written.SetSpacing((0.5, 2.0, 3.0))
    written.SetOrigin((10.0, -20.0, 5.0))  # LPS, identity direction
    path = tmp_path / "lps.nrrd"
    sitk.WriteImage(written, str(path))
    image = ScalarImage(path)
    expected = np.diag([-0.5, -2.0, 3.0, 1.0])
    expected[:3, 3] = (-10.0, 20.0, 5.0)
    np.testing.assert_allclose(image.affine, expected, atol=1e-12)
    assert image.orientation == ("L", "P", "S")
    assert image.spacing == (0.5, 2.0, 3.0)
    assert image.shape == (1, 4, 3, 2)
    assert torch.equal(image.data, torch.from_numpy(sitk_array_to_ours(volume)))


def test_oblique_affine_survives_sitk_round_trip(tmp_path):
    angle = np.radians(20.0)
    affine = np.eye(4)
    affine[:3, :3] = np.array(
        [[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]]
    ) @ np.diag([1.5, 2.0, 2.5])
    affine[:3, 3] = (1.0, -2.0, 3.0)
    path = tmp_path / "oblique.mha"
    io.write_image(np.zeros((1, 3, 3, 3), np.float32), affine, path)
    np.testing.assert_allclose(io.read_header(path).affine, affine, atol=1e-9)
    np.testing.assert_allclose(io.read_array(path)[1], affine, atol=1e-9)


# Region reads ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii", ".npy"])
def test_read_region_returns_slice_of_full_read(tmp_path, suffix, rng):
    data = rng.standard_normal((2, 6, 5, 4)).astype(np.float32)
    path = tmp_path / f"volume{suffix}"
    io.write_image(data, np.eye(4), path)
    full, _ = io.read_array(path)
    region = io.read_region(path, (1, 2, 0), (4, 5, 3))
    np.testing.assert_array_equal(region, full[:, 1:4, 2:5, 0:3])
    assert region.flags.c_contiguous


def test_read_region_refuses_compressed_files(tmp_path):
    path = tmp_path / "volume.nii.gz"
    io.write_image(np.zeros((1, 2, 2, 2), np.float32), np.eye(4), path)
    assert not io.supports_region_reads(path)
    with pytest.raises(ValueError, match=r"uncompressed \.nii or \.npy.*volume\.nii\.gz"):
        io.read_region(path, (0, 0, 0), (1, 1, 1))


@pytest.mark.parametrize(
    ("path", "suffix", "stem"),
    [
        ("a/b/sub-01_T1w.nii.gz", ".nii.gz", "sub-01_T1w"),
        ("scan.NII", ".nii", "scan"),
        ("photo.v2.PNG", ".png", "photo.v2"),
        ("series_folder", "", "series_folder"),
    ],
)
def test_suffix_and_stem_treat_nii_gz_as_one_suffix(path, suffix, stem):
    assert io.get_suffix(path) == suffix
    assert io.get_stem(path) == stem


# Bad inputs ---------------------------------------------------------------------------------


def test_missing_file_raises_file_not_found_with_path(tmp_path):
    path = tmp_path / "nowhere" / "missing.nii.gz"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        io.read_header(path)
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        ScalarImage(path)


def test_unsupported_extension_lists_supported_ones(tmp_path):
    path = tmp_path / "volume.xyz"
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match=r"unsupported image file extension '\.xyz'.*volume\.xyz.*\.nii\.gz.*\.nrrd"):
        ScalarImage(path)
    with pytest.raises(ValueError, match=r"unsupported extension '\.xyz'.*supported: .*\.nii"):
        io.write_image(np.zeros((1, 1, 1, 1)), np.eye(4), path)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".png", ".npy"])
def test_empty_file_is_rejected_as_empty(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.touch()
    with pytest.raises(ValueError, match=rf"empty.*{re.escape(path.name)}"):
        ScalarImage(path)


def test_gzip_cut_in_half_raises_value_error_naming_path(tmp_path, rng):
    path = tmp_path / "cut.nii.gz"
    io.write_image(rng.standard_normal((1, 16, 16, 16)).astype(np.float32), np.eye(4), path)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    image = ScalarImage(path)
    assert image.spatial_shape == (16, 16, 16)  # the header survived
    with pytest.raises(ValueError, match=re.escape(str(path))):
        _ = image.data


def test_gzip_of_garbage_raises_value_error_naming_path(tmp_path):
    path = tmp_path / "garbage.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti header" * 10))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        io.read_header(path)


def test_random_bytes_with_nii_gz_name_raise_value_error_naming_path(tmp_path):
    path = tmp_path / "random.nii.gz"
    path.write_bytes(os.urandom(1000))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        ScalarImage(path).spatial_shape  # noqa: B018
    with pytest.raises(ValueError, match=re.escape(str(path))):
        io.read_array(path)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".png"])
def test_random_bytes_in_sitk_formats_raise_value_error_naming_path(tmp_path, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(np.random.default_rng(1).bytes(500))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        io.read_header(path)


def test_truncated_npy_raises_value_error_naming_path(tmp_path):
    path = tmp_path / "cut.npy"
    io.write_image(np.zeros((1, 32, 32, 32), np.float32), np.eye(4), path)
    with open(path, "r+b") as file:
        file.truncate(200)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        io.read_header(path)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        io.read_array(path)


def test_truncated_nii_region_read_raises_value_error_naming_path(tmp_path):
    path = tmp_path / "cut.nii"
    io.write_image(np.zeros((1, 32, 32, 32), np.float32), np.eye(4), path)
    with open(path, "r+b") as file:
        file.truncate(352 + 8)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        io.read_region(path, (30, 30, 30), (32, 32, 32))


@pytest.mark.parametrize("path", [123, 4.5, b"scan.nii", None, ["a.nii"]])
def test_path_of_wrong_type_raises_type_error(path):
    with pytest.raises(TypeError, match=r"must be a str or os\.PathLike"):
        io.check_path(path)


@pytest.mark.parametrize("path", [123, 4.5, b"scan.nii"])
def test_image_path_of_wrong_type_raises_type_error(path):
    with pytest.raises(TypeError, match=r"str or os\.PathLike"):
        ScalarImage(path)


def test_write_image_rejects_bad_shape_and_missing_folder(tmp_path):
    with pytest.raises(ValueError, match=r"\(C, I, J, K\).*\(2, 2, 2\)"):
        io.write_image(np.zeros((2, 2, 2)), np.eye(4), tmp_path / "x.nii")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.write_image(np.zeros((1, 2, 2, 2)), np.eye(4), tmp_path / "absent" / "x.nii")
    with pytest.raises(ValueError, match="singular"):
        io.write_image(np.zeros((1, 2, 2, 2)), np.zeros((4, 4)), tmp_path / "x.nii")


# Real samples (skipped when shared/data is absent) ---------------------------------------


@needs_shared_data
def test_pyradiomics_brain_nrrd_loads_in_ras_with_its_spacing():
    assert SHARED_DATA is not None
    image_path = SHARED_DATA / "pyradiomics" / "brain1_image.nrrd"
    label_path = SHARED_DATA / "pyradiomics" / "brain1_label.nrrd"
    image = ScalarImage(image_path)
    assert image.shape == (1, 256, 256, 25)
    assert image.spacing == pytest.approx((0.78125, 0.78125, 6.5))
    assert image.dtype == torch.int16
    reference = sitk.ReadImage(str(image_path))
    ox, oy, oz = reference.GetOrigin()
    np.testing.assert_allclose(image.affine @ np.array([0, 0, 0, 1.0]), (-ox, -oy, oz, 1.0), atol=1e-6)
    subject = Subject(image=image, label=LabelMap(label_path))
    subject.check_consistent_space()
    assert subject.label.dtype == torch.int32
    assert not image.is_loaded


@needs_shared_data
def test_totalsegmentator_ct_and_seg_load_as_ras_3mm_with_uint8_labels():
    assert SHARED_DATA is not None
    ct = ScalarImage(SHARED_DATA / "totalsegmentator" / "example_ct_sm.nii.gz")
    seg = LabelMap(SHARED_DATA / "totalsegmentator" / "example_seg.nii.gz")
    assert ct.shape == seg.shape == (1, 122, 101, 30)
    assert ct.orientation == ("R", "A", "S")
    assert ct.spacing == pytest.approx((3.0, 3.0, 3.0))
    assert ct.dtype == torch.int16
    assert seg.dtype == torch.uint8
    Subject(ct=ct, seg=seg).check_consistent_space()
    assert seg.data.dtype == torch.uint8


@needs_shared_data
def test_deepforest_png_loads_as_three_channels_depth_one():
    assert SHARED_DATA is not None
    image = ScalarImage(SHARED_DATA / "deepforest" / "OSBS_029.png")
    assert image.shape == (3, 400, 400, 1)
    assert image.dtype == torch.uint8
    assert image.is_2d()
    assert image.spacing[2] == 1.0


@pytest.mark.parametrize(
    ("suffix", "array"),
    [
        (".png", np.zeros((2, 4, 4, 1), np.uint8)),
        (".png", np.zeros((5, 4, 4, 1), np.uint8)),
        (".png", np.zeros((1, 4, 4, 1), np.float32)),
        (".jpg", np.zeros((1, 4, 4, 1), np.int16)),
        (".bmp", np.zeros((1, 4, 4, 1), np.uint8)),
        (".png", np.zeros((1, 4, 4, 3), np.uint8)),
        (".tif", np.zeros((1, 4, 4, 1), np.float64)),
    ],
)
def test_raster_formats_refuse_what_they_cannot_store(tmp_path, suffix, array):
    path = tmp_path / f"x{suffix}"
    with pytest.raises(ValueError, match=re.escape(str(path))):
        io.write_image(array, np.eye(4), path)
    assert not path.exists()


def test_nii_gz_with_a_flipped_byte_fails_the_crc_check(tmp_path, rng):
    data = rng.integers(-100, 100, (2, 8, 8, 8)).astype(np.int16)  # 4D: nibabel reads it
    plain = tmp_path / "bold.nii"
    io.write_image(data, np.eye(4), plain)
    stored = bytearray(gzip.compress(plain.read_bytes(), compresslevel=0))  # a flip stays valid deflate
    path = tmp_path / "bold.nii.gz"
    path.write_bytes(bytes(stored))
    np.testing.assert_array_equal(io.read_array(path)[0], data)
    stored[len(stored) // 2] ^= 0x01
    path.write_bytes(bytes(stored))
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}.*CRC check failed"):
        io.read_array(path)


# The backend table, the raster table, atomic writes -----------------------------------


def test_every_supported_suffix_has_a_backend_and_region_reads_are_nii_and_npy():
    assert set(io.BACKENDS) == set(io.SUPPORTED_SUFFIXES)
    assert set(io.REGION_READ_SUFFIXES) == {".nii", ".npy"}
    assert io.backend_of(Path("a.NII.GZ")).read_region is None


def test_raster_table_covers_every_2d_suffix_and_says_what_each_holds():
    from torchpatch.io.paths import SITK_2D_SUFFIXES

    assert set(io.RASTER_FORMATS) == set(SITK_2D_SUFFIXES)
    png, jpg, tif = (io.raster_capabilities(s) for s in (".png", ".JPG", ".tiff"))
    assert png is not None and jpg is not None and tif is not None
    assert png.holds(np.uint16, 4) and not png.holds(np.uint16, 2) and not png.holds(np.float32, 1)
    assert jpg.holds(bool, 3) and not jpg.holds(np.uint16, 1)
    assert tif.holds(np.float16, 7) and not tif.holds(np.float64, 1) and tif.volumes
    assert (png.widest_integer(), jpg.widest_integer()) == (np.dtype(np.uint16), np.dtype(np.uint8))
    assert io.raster_capabilities(".nii.gz") is None


@pytest.mark.parametrize(("suffix", "dtype", "channels"), [(".png", np.uint16, 3), (".jpg", np.uint8, 1)])
def test_what_the_raster_table_holds_round_trips(tmp_path, suffix, dtype, channels):
    data = np.arange(channels * 12, dtype=dtype).reshape(channels, 4, 3, 1)
    assert io.raster_capabilities(suffix).holds(dtype, channels)
    io.write_image(data, np.eye(4), tmp_path / f"x{suffix}")
    read, _ = io.read_array(tmp_path / f"x{suffix}")
    assert read.dtype == dtype and read.shape == data.shape


def test_write_atomic_writes_text_and_bytes_and_refuses_other_types(tmp_path):
    from torchpatch.io.atomic import write_atomic

    write_atomic(tmp_path / "a.txt", "line\r\n")
    write_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "a.txt").read_bytes() == b"line\r\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    with pytest.raises(TypeError, match="bytes or str, got int"):
        write_atomic(tmp_path / "c.txt", 3)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_atomic_path_removes_its_file_on_error_and_keeps_the_old_target(tmp_path):
    from torchpatch.io.atomic import atomic_path

    (tmp_path / "x.npy").write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer failed"), atomic_path(tmp_path / "x.npy") as temporary:
        assert temporary.name.endswith(".npy") and temporary.parent == tmp_path
        temporary.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]
    assert (tmp_path / "x.npy").read_bytes() == b"old"


def test_partials_of_dead_writers_are_removed_by_the_next_write_and_live_ones_kept(tmp_path):
    dead_file = tmp_path / ".scan.partial-999999999-0123abcd.nii.gz"  # no such process: a killed save()
    dead_folder = tmp_path / ".out.partial-999999999-4567abcd"
    ours = tmp_path / f".other.partial-{os.getpid()}-89abcdef.npy"  # this process is alive: still writing
    dead_file.write_bytes(b"half")
    (dead_folder / "images").mkdir(parents=True)
    ours.write_bytes(b"half")
    io.write_image(np.zeros((1, 2, 2, 2), np.int16), np.eye(4), tmp_path / "scan.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == [ours.name, "scan.nii.gz"]


def test_a_killed_writer_leaves_a_partial_that_the_next_run_removes(tmp_path):
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        "from torchpatch.io.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as temporary:\n"
        "    temporary.write_bytes(b'half')\n"
        "    os._exit(9)\n"
    )
    target = tmp_path / "scan.npy"
    assert subprocess.run([sys.executable, "-c", script, str(target)], check=False).returncode == 9
    (leftover,) = tmp_path.iterdir()
    assert leftover.name.startswith(".scan.partial-") and leftover.name.endswith(".npy")
    from torchpatch.io.atomic import remove_dead_partials

    assert remove_dead_partials(tmp_path) == [leftover]
    assert list(tmp_path.iterdir()) == []


def test_atomic_folder_replaces_or_keeps_an_existing_target(tmp_path):
    from torchpatch.io.atomic import atomic_folder

    target = tmp_path / "entry"
    with atomic_folder(target) as temporary:
        (temporary / "a").write_text("first")
    with atomic_folder(target, replace=False) as temporary:
        (temporary / "a").write_text("second")
    assert (target / "a").read_text() == "first"
    with atomic_folder(target) as temporary:
        (temporary / "a").write_text("third")
    assert (target / "a").read_text() == "third"
    with pytest.raises(KeyError), atomic_folder(target) as temporary:
        raise KeyError("failed export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]
    assert (target / "a").read_text() == "third"


# c_order ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.float32, np.float64, np.bool_])
@pytest.mark.parametrize("channels", [1, 3])
def test_c_order_of_f_ordered_channels_equals_numpy_with_and_without_reuse(dtype, channels, rng, monkeypatch):
    on_disk = np.asfortranarray((rng.random((9, 7, 5, channels)) * 100).astype(dtype))  # NIfTI's layout
    array = np.moveaxis(on_disk, -1, 0)
    expected = np.ascontiguousarray(array)
    copy = io.c_order(array)
    assert copy.flags.c_contiguous and not np.shares_memory(copy, on_disk)
    np.testing.assert_array_equal(copy, expected)
    # The compiled reorder writes apart from its input (one pass); torch's, given reuse, in the input's memory.
    reused = io.c_order(array.copy(order="K"), reuse=True)
    assert reused.flags.c_contiguous
    np.testing.assert_array_equal(reused, expected)
    monkeypatch.setattr(order, "compiled", None)
    reused = io.c_order(array, reuse=True)
    assert reused.flags.c_contiguous and np.shares_memory(reused, on_disk)
    np.testing.assert_array_equal(reused, expected)


def test_c_order_reuse_leaves_read_only_and_other_layouts_alone(rng):
    on_disk = np.asfortranarray(rng.random((6, 5, 4, 2)).astype(np.float32))
    array = np.moveaxis(on_disk, -1, 0)
    array.flags.writeable = False
    reused = io.c_order(array, reuse=True)
    assert not np.shares_memory(reused, on_disk)
    np.testing.assert_array_equal(reused, np.ascontiguousarray(array))
    strided = np.asfortranarray(rng.random((1, 8, 6, 4)))[:, ::2]  # neither C nor F blocks
    np.testing.assert_array_equal(io.c_order(strided, reuse=True), np.ascontiguousarray(strided))


def test_npy_headers_are_parsed_one_at_a_time_across_threads(tmp_path, monkeypatch):
    # numpy parses a .npy header with ast.literal_eval, which CPython 3.11 cannot run in two
    # threads at once ("AST constructor recursion depth mismatch"): load_npy serialises it.
    paths = []
    for index in range(4):
        paths.append(tmp_path / f"x{index}.npy")
        np.save(paths[-1], np.full((2, 3, 4), index, np.int16))
    inside, most = [0], [0]
    guard = threading.Lock()
    original = ast.literal_eval

    def slow_literal_eval(text):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.01)  # widens the window two threads would share
        try:
            return original(text)
        finally:
            with guard:
                inside[0] -= 1

    monkeypatch.setattr(ast, "literal_eval", slow_literal_eval)
    with ThreadPoolExecutor(4) as pool:
        arrays = list(pool.map(lambda path: io.load_npy(path, mmap_mode="r"), paths * 3))
    assert most[0] == 1
    assert [int(array[0, 0, 0]) for array in arrays] == [0, 1, 2, 3] * 3


def test_npy_maps_read_fortran_order_files_and_new_versions_of_a_file(tmp_path):
    path = tmp_path / "f.npy"
    data = np.asfortranarray(np.arange(2 * 3 * 4 * 5, dtype=np.int16).reshape(2, 3, 4, 5))
    np.save(path, data)
    np.testing.assert_array_equal(io.memory_map(path), data)
    io.release_memory_maps()
    np.save(path, data[:1] * 2)  # rewritten: another size and date, read afresh
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    np.testing.assert_array_equal(io.memory_map(path), data[:1] * 2)
    assert io.read_header(path).num_channels == 1
    assert not io.memory_map(path).flags.writeable
    io.release_memory_maps()


def test_npy_of_python_objects_is_refused_naming_the_path(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        io.read_header(path)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        io.memory_map(path)


def test_a_symbolic_link_loop_is_reported_as_not_found(tmp_path):
    loop = tmp_path / "loop.nii.gz"
    loop.symlink_to(loop)
    with pytest.raises(FileNotFoundError, match=re.escape(str(loop))):
        io.check_path(loop)


@pytest.mark.parametrize(
    "dtype",
    [
        torch.bool,
        torch.uint8,
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.float16,
        torch.float32,
        torch.float64,
        torch.complex64,
    ],
)
def test_numpy_dtype_round_trips_through_from_numpy(dtype):
    array = np.zeros(3, dtype=io.numpy_dtype(dtype))
    assert torch.from_numpy(array).dtype == dtype


def test_numpy_dtype_names_a_dtype_numpy_lacks():
    with pytest.raises(TypeError, match=r"numpy has no dtype for torch\.bfloat16"):
        io.numpy_dtype(torch.bfloat16)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha", ".npy", ".png"])
def test_read_image_file_order_gives_read_images_voxels(tmp_path, suffix):
    # Two channels where the format stores them as blocks (SimpleITK interleaves a vector's components).
    shape = {".png": (1, 6, 5, 1), ".nrrd": (1, 6, 5, 4), ".mha": (1, 6, 5, 4)}.get(suffix, (2, 6, 5, 4))
    array = (np.random.default_rng(3).random(shape) * 200).astype(np.uint8 if suffix == ".png" else np.float32)
    path = tmp_path / f"x{suffix}"
    io.write_image(array, np.diag([2.0, 3.0, 4.0, 1.0]), path)
    data, affine = io.read_image_file_order(path)
    expected, expected_affine = io.read_array(path)
    np.testing.assert_array_equal(io.c_order(data), expected)
    np.testing.assert_allclose(affine, expected_affine)
    # Compressed NIfTI and SimpleITK's formats decode in the file's order; the others come C-ordered.
    assert io.in_file_order(data) if suffix in (".nii.gz", ".nrrd", ".mha", ".png") else data.flags.c_contiguous


def test_read_image_file_order_names_a_corrupt_file(tmp_path):
    path = tmp_path / "x.nii.gz"
    io.write_image(np.zeros((1, 8, 8, 8), np.int16), np.eye(4), path)
    content = bytearray(path.read_bytes())
    content[-12] ^= 0xFF  # a voxel byte near the end: the CRC check fails
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=r"x\.nii\.gz"):
        io.read_image_file_order(path)
    with pytest.raises(FileNotFoundError, match="missing"):
        io.read_image_file_order(tmp_path / "missing.nii.gz")
