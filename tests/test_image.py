"""Images: construction, validation, laziness, region reads and crops."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch

import torchpatch.io
from torchpatch import AFFINE, DATA, INTENSITY, LABEL, PATH, STEM, TYPE, Image, LabelMap, ScalarImage, io
from torchpatch.geometry import orientation_from_affine


def forbid_full_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to read a whole volume fail loudly."""

    def refuse(path: object) -> None:
        raise AssertionError(f"a whole volume was read: {path}")

    monkeypatch.setattr(torchpatch.io, "read_array", refuse)
    monkeypatch.setattr(torchpatch.io, "read_image_file_order", refuse)  # compressed NIfTI, left unreordered


# Construction ---------------------------------------------------------------------------


def test_image_from_tensor_has_identity_affine_and_is_loaded():
    image = ScalarImage(tensor=torch.zeros(2, 3, 4, 5))
    assert image.shape == (2, 3, 4, 5)
    assert image.spatial_shape == (3, 4, 5)
    assert image.num_channels == 2
    np.testing.assert_array_equal(image.affine, np.eye(4))
    assert image.is_loaded
    assert image.path is None and image.stem is None
    assert image.type == INTENSITY


def test_image_accepts_numpy_array_as_first_argument():
    array = np.arange(8, dtype=np.int16).reshape(1, 2, 2, 2)
    image = ScalarImage(array)
    assert image.dtype == torch.int16
    assert torch.equal(image.data, torch.from_numpy(array))


def test_image_from_read_only_numpy_array_is_copied_to_a_writeable_tensor():
    array = np.zeros((1, 2, 2, 2), np.float32)
    array.flags.writeable = False
    image = ScalarImage(tensor=array)
    image.data[0, 0, 0, 0] = 1.0
    assert array[0, 0, 0, 0] == 0.0


def test_image_requires_exactly_one_of_path_and_tensor(tmp_path):
    with pytest.raises(ValueError, match="needs a path or a tensor"):
        ScalarImage()
    path = tmp_path / "x.nii"
    io.write_image(np.zeros((1, 2, 2, 2), np.float32), np.eye(4), path)
    with pytest.raises(ValueError, match="path or a tensor, not both"):
        ScalarImage(path, tensor=torch.zeros(1, 2, 2, 2))
    with pytest.raises(TypeError, match="either as path or as tensor"):
        ScalarImage(torch.zeros(1, 2, 2, 2), tensor=torch.zeros(1, 2, 2, 2))


def test_image_type_must_be_intensity_label_or_sampling_map():
    with pytest.raises(
        ValueError, match=r"image type must be one of \('intensity', 'label', 'sampling_map'\), got 'mask'"
    ):
        Image(tensor=torch.zeros(1, 2, 2, 2), type="mask")
    with pytest.raises(ValueError, match="use LabelMap"):
        ScalarImage(tensor=torch.zeros(1, 2, 2, 2), type=LABEL)
    with pytest.raises(ValueError, match="use ScalarImage"):
        LabelMap(tensor=torch.zeros(1, 2, 2, 2), type=INTENSITY)


def test_dtype_argument_must_be_a_torch_dtype():
    with pytest.raises(TypeError, match=r"dtype must be a torch\.dtype"):
        ScalarImage(tensor=torch.zeros(1, 2, 2, 2), dtype=np.float32)


@pytest.mark.parametrize("shape", [(4, 4), (2, 4, 4), (1, 1, 4, 4, 4)])
def test_tensor_of_wrong_ndim_is_rejected_mentioning_4d_and_shape(shape):
    message = rf"must be 4D \(C, I, J, K\), got {len(shape)}D of shape {re.escape(str(shape))}"
    with pytest.raises(ValueError, match=message):
        ScalarImage(tensor=torch.zeros(shape))


def test_3d_tensor_error_suggests_adding_channel_axis():
    with pytest.raises(ValueError, match=r"tensor\[None\]"):
        ScalarImage(tensor=torch.zeros(4, 4, 4))


def test_empty_tensor_is_rejected():
    with pytest.raises(ValueError, match=r"is empty: shape \(1, 0, 4, 4\)"):
        ScalarImage(tensor=torch.zeros(1, 0, 4, 4))


def test_non_array_data_is_rejected_with_type_error():
    with pytest.raises(TypeError, match=r"must be a torch\.Tensor or numpy array, got list"):
        ScalarImage(tensor=[[[[0.0]]]])
    image = ScalarImage(tensor=torch.zeros(1, 1, 1, 1))
    with pytest.raises(TypeError, match="must be a tensor, got None"):
        image.set_data(None)


@pytest.mark.parametrize(
    ("affine", "message"),
    [
        (np.eye(3), r"shape \(4, 4\), got \(3, 3\)"),
        (np.diag([1.0, 1.0, 0.0, 1.0]), "singular"),
        (np.full((4, 4), np.nan), "NaN"),
    ],
)
def test_bad_affine_is_rejected_naming_image(affine, message):
    with pytest.raises(ValueError, match=message):
        ScalarImage(tensor=torch.zeros(1, 2, 2, 2), affine=affine)
    image = ScalarImage(tensor=torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError, match=rf"affine of ScalarImage.*{message}"):
        image.affine = affine


def test_affine_setter_stores_float64_copy():
    image = ScalarImage(tensor=torch.zeros(1, 2, 2, 2))
    new = np.diag([2, 2, 2, 1]).astype(np.float32)
    image.affine = new
    assert image.affine.dtype == np.float64
    assert image.spacing == (2.0, 2.0, 2.0)


# Label maps --------------------------------------------------------------------------------


def test_label_map_with_fractional_floats_keeps_them_as_partial_volume_float32():
    """TorchIO's LabelSampler takes partial-volume label maps: whole floats become int64, fractions stay."""
    data = torch.tensor([0.0, 1.0, 0.5, 2.25, 0.5]).reshape(1, 5, 1, 1)
    label = LabelMap(tensor=data)
    assert label.data.dtype == torch.float32 and label.data.flatten().tolist() == [0.0, 1.0, 0.5, 2.25, 0.5]
    assert LabelMap(tensor=torch.tensor([0.0, 2.0]).reshape(1, 2, 1, 1)).data.dtype == torch.int64


def test_label_map_file_with_fractional_floats_reads_them(tmp_path):
    path = tmp_path / "probabilities.nii.gz"
    io.write_image(np.array([0.0, 0.3, 1.0, 1.0], np.float32).reshape(1, 2, 2, 1), np.eye(4), path)
    assert LabelMap(path).data.flatten().tolist() == pytest.approx([0.0, 0.3, 1.0, 1.0])


def test_label_map_with_nan_is_rejected():
    with pytest.raises(ValueError, match="NaN or infinite"):
        LabelMap(tensor=torch.tensor([0.0, float("nan")]).reshape(1, 2, 1, 1))


@pytest.mark.parametrize("values", [[0.0, 2.0], [-1.0, 300.0], [0.0, 70000.0]])
def test_label_map_whole_number_floats_become_int64_known_before_loading(values, tmp_path):
    label = LabelMap(tensor=torch.tensor(values).reshape(1, 2, 1, 1))
    assert label.dtype == torch.int64
    path = tmp_path / "float_label.nii"
    ScalarImage(tensor=torch.tensor(values).reshape(1, 2, 1, 1)).save(path)
    lazy = LabelMap(path)
    assert lazy.dtype == torch.int64
    assert lazy.memory == 2 * 8
    assert lazy.data.dtype == torch.int64
    assert label.data.flatten().tolist() == [int(v) for v in values]


def test_label_map_bool_becomes_uint8_and_ints_are_kept():
    assert LabelMap(tensor=torch.ones(1, 2, 2, 2, dtype=torch.bool)).dtype == torch.uint8
    assert LabelMap(tensor=torch.ones(1, 2, 2, 2, dtype=torch.int16)).dtype == torch.int16
    assert LabelMap(tensor=np.ones((1, 2, 2, 2), np.uint16)).dtype == torch.int32


def test_scalar_image_keeps_float_values_and_casts_on_request():
    data = torch.tensor([0.25, 1.5]).reshape(1, 2, 1, 1)
    assert torch.equal(ScalarImage(tensor=data).data, data)
    as_double = ScalarImage(tensor=data, dtype=torch.float64)
    assert as_double.dtype == torch.float64


def test_check_nans_warns_when_data_holds_nan():
    data = torch.tensor([0.0, float("nan")]).reshape(1, 2, 1, 1)
    with pytest.warns(RuntimeWarning, match="NaN values found"):
        ScalarImage(tensor=data, check_nans=True)
    ScalarImage(tensor=data)  # no warning by default (warnings are errors here)


# Lazy headers ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha", ".npy", ".png"])
def test_header_properties_never_read_voxels(tmp_path, monkeypatch, suffix, exact_affine):
    depth = 1 if suffix == ".png" else 16
    # PNG stores no direction; .npy stores no affine at all (the identity).
    affine = {".png": np.diag([-1.0, -1.0, 1.0, 1.0]), ".npy": np.eye(4)}.get(suffix, exact_affine)
    path = tmp_path / f"large{suffix}"
    io.write_image(np.zeros((1, 32, 24, depth), np.uint8), affine, path)
    forbid_full_reads(monkeypatch)
    image = ScalarImage(path)
    assert image.spatial_shape == (32, 24, depth)
    assert image.shape == (1, 32, 24, depth)
    np.testing.assert_allclose(image.affine, affine, atol=1e-6)
    assert image.spacing == pytest.approx(tuple(np.linalg.norm(affine[:3, :3], axis=0)))
    assert image.dtype == torch.uint8
    assert image.memory == 32 * 24 * depth
    assert image.orientation == orientation_from_affine(affine)
    assert "shape: (1, 32, 24" in repr(image)
    assert not image.is_loaded
    with pytest.raises(AssertionError, match="a whole volume was read"):
        image.load()


def test_header_of_truncated_nii_works_and_data_names_path(tmp_path):
    path = tmp_path / "truncated.nii"
    io.write_image(np.ones((1, 64, 64, 64), np.float32), np.diag([2.0, 2.0, 2.0, 1.0]), path)
    assert path.stat().st_size == 352 + 64**3 * 4
    with open(path, "r+b") as file:
        file.truncate(352 + 8)
    image = ScalarImage(path)
    assert image.spatial_shape == (64, 64, 64)
    assert image.spacing == (2.0, 2.0, 2.0)
    assert image.memory == 64**3 * 4
    assert image.dtype == torch.float32
    assert not image.is_loaded
    with pytest.raises(ValueError, match=re.escape(str(path))):
        _ = image.data
    assert not image.is_loaded


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_dtype_known_before_loading_matches_loaded_dtype(tmp_path, dtype):
    path = tmp_path / "scan.nii"
    io.write_image(np.zeros((1, 2, 2, 2), dtype), np.eye(4), path)
    image = ScalarImage(path)
    before = image.dtype
    memory = image.memory
    assert not image.is_loaded
    image.load()
    assert image.dtype == before
    assert image.memory == memory


def test_affine_given_for_a_file_replaces_the_file_affine(tmp_path, exact_affine):
    path = tmp_path / "scan.nii.gz"
    io.write_image(np.zeros((1, 2, 2, 2), np.float32), np.eye(4), path)
    image = ScalarImage(path, affine=exact_affine)
    np.testing.assert_array_equal(image.affine, exact_affine)
    np.testing.assert_array_equal(image.header.affine, exact_affine)
    image.load()
    np.testing.assert_array_equal(image.affine, exact_affine)


def test_unload_frees_file_backed_voxels_and_reload_reads_them_again(tmp_path):
    path = tmp_path / "scan.nii.gz"
    data = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    io.write_image(data, np.eye(4), path)
    image = ScalarImage(path)
    image.load()
    assert image.is_loaded
    image.unload()
    assert not image.is_loaded
    assert torch.equal(image.data, torch.from_numpy(data))
    tensor_image = ScalarImage(tensor=torch.zeros(1, 2, 2, 2))
    tensor_image.unload()
    assert tensor_image.is_loaded


# Region reads -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii", ".npy"])
@pytest.mark.parametrize("image_class", [ScalarImage, LabelMap])
def test_read_region_from_disk_equals_slice_of_full_read(tmp_path, monkeypatch, suffix, image_class, rng):
    data = rng.integers(0, 5, size=(2, 9, 7, 5)).astype(np.int16)
    path = tmp_path / f"volume{suffix}"
    io.write_image(data, np.eye(4), path)
    full = image_class(path).data
    forbid_full_reads(monkeypatch)
    image = image_class(path)
    region = image.read_region((2, 1, 0), (6, 7, 3))
    assert region.dtype == torch.int16
    assert torch.equal(region, full[:, 2:6, 1:7, 0:3])
    assert not image.is_loaded


def test_read_region_of_4d_nifti_keeps_all_channels(tmp_path, monkeypatch, rng):
    data = rng.standard_normal((3, 6, 5, 4)).astype(np.float32)
    path = tmp_path / "series.nii"
    io.write_image(data, np.eye(4), path)
    forbid_full_reads(monkeypatch)
    region = ScalarImage(path).read_region((1, 1, 1), (3, 4, 2))
    assert torch.equal(region, torch.from_numpy(data[:, 1:3, 1:4, 1:2]))


def test_read_region_of_compressed_file_loads_whole_volume(tmp_path):
    path = tmp_path / "volume.nii.gz"
    data = np.arange(27, dtype=np.float32).reshape(1, 3, 3, 3)
    io.write_image(data, np.eye(4), path)
    image = ScalarImage(path)
    region = image.read_region((0, 1, 2), (2, 3, 3))
    assert torch.equal(region, torch.from_numpy(data[:, 0:2, 1:3, 2:3]))
    assert image.is_loaded


def test_read_region_outside_image_names_image_and_shape(tmp_path):
    path = tmp_path / "small.nii"
    io.write_image(np.zeros((1, 4, 4, 1), np.float32), np.eye(4), path)
    message = r"region .* not inside the spatial shape \(4, 4, 1\) of ScalarImage .*small\.nii"
    with pytest.raises(ValueError, match=message):
        ScalarImage(path).read_region((0, 0, 0), (5, 4, 1))


def test_read_region_of_loaded_image_is_a_view():
    image = ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1))
    region = image.read_region((1, 1, 0), (3, 2, 1))
    assert region.flatten().tolist() == [5.0, 9.0]
    assert region.data_ptr() == image.data[:, 1:3, 1:2, 0:1].data_ptr()


# Crops -----------------------------------------------------------------------------------------


def test_crop_shifts_affine_and_keeps_metadata_and_class():
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = (10.0, 20.0, 30.0)
    image = LabelMap(tensor=torch.arange(64).reshape(1, 4, 4, 4), affine=affine, rater="ab")
    patch = image.crop((1, 2, 3), (3, 4, 4))
    assert isinstance(patch, LabelMap)
    assert patch.shape == (1, 2, 2, 1)
    assert patch.origin == (12.0, 26.0, 42.0)
    assert patch.spacing == (2.0, 3.0, 4.0)
    assert patch.metadata == {"rater": "ab"}
    assert torch.equal(patch.data, image.data[:, 1:3, 2:4, 3:4])
    np.testing.assert_array_equal(image.affine[:3, 3], (10.0, 20.0, 30.0))


def test_crop_copies_voxels_so_edits_do_not_reach_the_original():
    image = ScalarImage(tensor=torch.zeros(1, 4, 4, 4))
    patch = image.crop((0, 0, 0), (2, 2, 2))
    patch.data.fill_(7.0)
    assert float(image.data.sum()) == 0.0
    view = image.crop((0, 0, 0), (2, 2, 2), copy=False)
    view.data.fill_(1.0)
    assert float(image.data.sum()) == 8.0


def test_crop_of_lazy_file_keeps_its_data_after_unload(tmp_path, monkeypatch):
    path = tmp_path / "volume.nii"
    data = np.arange(64, dtype=np.float32).reshape(1, 4, 4, 4)
    io.write_image(data, np.eye(4), path)
    forbid_full_reads(monkeypatch)
    patch = ScalarImage(path).crop((1, 1, 1), (3, 3, 3))
    patch.unload()
    assert patch.is_loaded
    assert torch.equal(patch.data, torch.from_numpy(data[:, 1:3, 1:3, 1:3]))
    assert patch.origin == (1.0, 1.0, 1.0)


# Access, saving, pickling ------------------------------------------------------------------------


def test_image_keys_match_torchio(tmp_path):
    path = tmp_path / "sub-01_T1w.nii.gz"
    io.write_image(np.zeros((1, 2, 2, 2), np.float32), np.eye(4), path)
    image = ScalarImage(path, site="oxford")
    assert torch.equal(image[DATA], image.data)
    assert image[AFFINE] is image.affine
    assert image[PATH] == path
    assert image[STEM] == "sub-01_T1w"
    assert image[TYPE] == INTENSITY
    assert image["site"] == "oxford"
    assert image.tensor is image.data
    with pytest.raises(KeyError, match="has no key 'spacing'"):
        image["spacing"]


def test_data_setter_validates_shape():
    image = ScalarImage(tensor=torch.zeros(1, 2, 2, 2))
    image.data = torch.ones(3, 4, 4, 1)
    assert image.shape == (3, 4, 4, 1)
    assert image.is_2d()
    with pytest.raises(ValueError, match="must be 4D"):
        image.data = torch.ones(4, 4)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".npz"])
def test_save_then_load_round_trips_label_map(tmp_path, suffix, exact_affine):
    label = LabelMap(tensor=torch.arange(24, dtype=torch.int16).reshape(1, 2, 3, 4), affine=exact_affine)
    path = tmp_path / f"seg{suffix}"
    label.save(path)
    loaded = LabelMap(path)
    assert torch.equal(loaded.data, label.data)
    np.testing.assert_allclose(loaded.affine, exact_affine, atol=1e-6)


def test_pickle_round_trip_of_tensor_image_keeps_data_affine_metadata():
    image = LabelMap(tensor=torch.arange(8).reshape(1, 2, 2, 2), affine=np.diag([2.0, 2.0, 2.0, 1.0]), rater="x")
    restored = pickle.loads(pickle.dumps(image))
    assert isinstance(restored, LabelMap)
    assert torch.equal(restored.data, image.data)
    np.testing.assert_array_equal(restored.affine, image.affine)
    assert restored.metadata == {"rater": "x"}


def test_pickle_of_lazy_image_stays_lazy_and_reads_after(tmp_path):
    path = tmp_path / "scan.nii"
    data = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    io.write_image(data, np.eye(4), path)
    image = ScalarImage(path)
    restored = pickle.loads(pickle.dumps(image))
    assert not restored.is_loaded
    assert restored.path == path
    assert torch.equal(restored.data, torch.from_numpy(data))


def test_repr_of_unreadable_file_says_so(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"\x1f\x8b not really gzip")
    text = repr(ScalarImage(path))
    assert text.startswith("ScalarImage(unreadable:")
    assert "broken.nii.gz" in text
