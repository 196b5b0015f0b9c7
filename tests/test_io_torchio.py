"""TorchIO's ``tio.io`` functions in torchpatch.io, compared with TorchIO's on files the tests write.

Each function of TorchIO 1.x's ``torchio.data.io`` is called on the same
synthetic NIfTI, NRRD, PNG and transform files as torchpatch's, and the
results are compared: tensors and dtypes equal, affines within 1e-6.
Comparisons skip without TorchIO (the ``tio_io`` fixture); the checks of
torchpatch alone run everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

import torchpatch
from torchpatch import io

#: A rotated, anisotropic, shifted affine (no axis along its own world axis).
ROTATED = np.array([[0, 2.0, 0, 4], [-1.5, 0, 0, 5], [0, 0, 3, 6], [0, 0, 0, 1]])
#: An oblique one: a rotation about a tilted axis, anisotropic spacing (NIfTI's qform holds it exactly).
_ANGLE, _AXIS = 0.4, np.array([1.0, 2.0, 2.0]) / 3.0
_CROSS = np.array([[0, -_AXIS[2], _AXIS[1]], [_AXIS[2], 0, -_AXIS[0]], [-_AXIS[1], _AXIS[0], 0]])
OBLIQUE = np.eye(4)
OBLIQUE[:3, :3] = (np.eye(3) + np.sin(_ANGLE) * _CROSS + (1 - np.cos(_ANGLE)) * _CROSS @ _CROSS) @ np.diag(
    [0.9, 1.1, 2.5]
)
OBLIQUE[:3, 3] = (-20.0, 11.0, 3.5)
#: A floating-to-reference affine for the transform files.
MATRIX = np.array([[0.9, -0.1, 0, 3], [0.1, 0.9, 0.05, -2], [0, -0.05, 1.1, 7], [0, 0, 0, 1]])


@pytest.fixture
def tio_io() -> Any:
    """TorchIO's ``tio.io``; the test skips without TorchIO."""
    return pytest.importorskip("torchio").io


def _volume(shape: tuple[int, ...], dtype: Any, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 200).astype(dtype)


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """A NIfTI file written by nibabel (qform and sform both set), as scanners' files are."""
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, str(path))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Synthetic files of each kind TorchIO reads: NIfTI (3D, uint16, 4D), NRRD, MetaImage, a 2D PNG."""
    written = {
        "int16.nii.gz": _nifti(tmp_path / "int16.nii.gz", _volume((5, 4, 3), np.int16), ROTATED),
        "uint16.nii": _nifti(tmp_path / "uint16.nii", _volume((5, 4, 3), np.uint16) * 300, OBLIQUE),
        "time.nii.gz": _nifti(tmp_path / "time.nii.gz", _volume((5, 4, 3, 2), np.float32), ROTATED),
    }
    image = sitk.GetImageFromArray(_volume((3, 4, 5), np.float32))  # (K, J, I)
    image.SetSpacing((0.5, 0.7, 2.0))
    image.SetOrigin((10.0, -4.0, 3.0))
    image.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    for suffix in (".nrrd", ".mha"):
        written[f"float{suffix}"] = tmp_path / f"float{suffix}"
        sitk.WriteImage(image, str(written[f"float{suffix}"]), True)
    rgb = sitk.GetImageFromArray(_volume((6, 8, 3), np.uint8), isVector=True)
    written["rgb.png"] = tmp_path / "rgb.png"
    sitk.WriteImage(rgb, str(written["rgb.png"]))
    return written


# The names --------------------------------------------------------------------------------


def test_tio_io_and_tio_data_io_are_torchpatch_io() -> None:
    assert torchpatch.io is io
    for name in torchpatch.data.io.__all__:
        assert getattr(torchpatch.data.io, name) is getattr(io, name)


def test_constants_are_torchios(tio_io: Any) -> None:
    assert np.array_equal(io.FLIPXY_33, tio_io.FLIPXY_33)
    assert np.array_equal(io.FLIPXY_44, tio_io.FLIPXY_44)
    assert sorted(io.IMAGE_2D_FORMATS) == sorted(tio_io.IMAGE_2D_FORMATS)


# Reading images ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["int16.nii.gz", "uint16.nii", "time.nii.gz", "float.nrrd", "float.mha", "rgb.png"])
def test_read_image_shape_and_affine_are_torchios(files: dict[str, Path], tio_io: Any, name: str) -> None:
    path = files[name]
    tensor, affine = io.read_image(path)
    their_tensor, their_affine = tio_io.read_image(path)
    assert isinstance(tensor, torch.Tensor)
    assert tensor.dtype == their_tensor.dtype
    assert torch.equal(tensor, their_tensor)
    np.testing.assert_allclose(affine, their_affine, atol=1e-6)
    assert io.read_shape(path) == tuple(tio_io.read_shape(path))
    np.testing.assert_allclose(io.read_affine(path), tio_io.read_affine(path), atol=1e-6)


def test_read_image_widens_uint16_and_read_array_keeps_it(files: dict[str, Path]) -> None:
    array, _ = io.read_array(files["uint16.nii"])
    tensor, _ = io.read_image(files["uint16.nii"])
    assert isinstance(array, np.ndarray) and array.dtype == np.uint16
    assert tensor.dtype == torch.int32
    assert np.array_equal(tensor.numpy(), array)


def test_read_image_shares_memory_with_read_arrays_voxels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    monkeypatch.setattr(io.files, "read_array", lambda path: (data, np.eye(4)))
    tensor, _ = io.read_image(tmp_path / "x.nii")
    assert tensor.data_ptr() == data.ctypes.data  # torch.from_numpy: no copy on the reading path


def test_read_image_of_a_memory_mapped_npy_is_a_writable_copy(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.arange(6, dtype=np.int16).reshape(1, 1, 2, 3))
    tensor, affine = io.read_image(tmp_path / "x.npy")  # no "not writable" warning (-W error)
    tensor += 1
    assert tensor.flatten().tolist() == [1, 2, 3, 4, 5, 6]
    assert np.array_equal(affine, np.eye(4))


@pytest.mark.parametrize("read", [io.read_image, io.read_shape, io.read_affine])
def test_readers_name_a_missing_or_corrupt_file(tmp_path: Path, read: Any) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent\.nii\.gz"):
        read(tmp_path / "absent.nii.gz")
    (tmp_path / "corrupt.nrrd").write_bytes(b"NRRD0004\ngarbage\n")
    with pytest.raises(ValueError, match=r"corrupt\.nrrd"):
        read(tmp_path / "corrupt.nrrd")
    (tmp_path / "notes.xyz").write_text("1234")
    with pytest.raises(ValueError, match=r"notes\.xyz"):
        read(tmp_path / "notes.xyz")


# Writing images ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_write_image_files_read_the_same_in_both_libraries(tmp_path: Path, tio_io: Any, suffix: str) -> None:
    tensor = torch.from_numpy(_volume((2, 5, 4, 3), np.float32))
    io.write_image(tensor, OBLIQUE, tmp_path / f"ours{suffix}")
    tio_io.write_image(tensor, OBLIQUE, tmp_path / f"theirs{suffix}")
    for name in ("ours", "theirs"):
        for read in (io.read_image, tio_io.read_image):
            data, affine = read(tmp_path / f"{name}{suffix}")
            assert torch.equal(data, tensor)
            np.testing.assert_allclose(affine, OBLIQUE, atol=1e-6)


@pytest.mark.parametrize("squeeze", [None, True, False])
@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_write_image_squeeze_writes_torchios_geometry(tmp_path: Path, tio_io: Any, squeeze: Any, suffix: str) -> None:
    tensor = torch.from_numpy(_volume((1, 5, 4, 1), np.int16))
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = (1.0, -2.0, 3.0)
    io.write_image(tensor, affine, tmp_path / f"ours{suffix}", squeeze=squeeze)
    tio_io.write_image(tensor, affine, tmp_path / f"theirs{suffix}", squeeze=squeeze)
    ours, theirs = io.get_reader(tmp_path / f"ours{suffix}"), tio_io.get_reader(tmp_path / f"theirs{suffix}")
    assert ours.GetDimension() == theirs.GetDimension() == (2 if squeeze else 3)
    for get in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        np.testing.assert_allclose(getattr(ours, get)(), getattr(theirs, get)(), atol=1e-6)
    assert torch.equal(io.read_image(tmp_path / f"ours{suffix}")[0], tensor)


def test_write_image_checks_squeeze_and_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="squeeze"):
        io.write_image(torch.zeros(1, 2, 2, 1), np.eye(4), tmp_path / "x.nrrd", squeeze="yes")
    with pytest.raises(ValueError, match=r"x\.nrrd"):
        io.write_image(torch.zeros(2, 2, 2), np.eye(4), tmp_path / "x.nrrd")
    with pytest.raises(FileNotFoundError, match="missing"):
        io.write_image(torch.zeros(1, 2, 2, 2), np.eye(4), tmp_path / "missing" / "x.nrrd")
    assert list(tmp_path.iterdir()) == []


def test_write_image_takes_tensors_of_any_device_dtype_and_grad(tmp_path: Path) -> None:
    tensor = torch.rand(1, 3, 2, 2, requires_grad=True)
    io.write_image(tensor, torch.eye(4, dtype=torch.float64), tmp_path / "x.nii.gz")
    io.write_image(tensor.detach().to(torch.bfloat16), np.eye(4), tmp_path / "half.nrrd")
    assert torch.equal(io.read_image(tmp_path / "x.nii.gz")[0], tensor.detach())
    assert io.read_image(tmp_path / "half.nrrd")[0].dtype == torch.float32


def test_image_save_writes_through_write_image(tmp_path: Path) -> None:
    image = torchpatch.ScalarImage(tensor=torch.rand(1, 4, 3, 1))
    image.save(tmp_path / "slice.nii.gz", squeeze=True)
    assert io.get_reader(tmp_path / "slice.nii.gz").GetDimension() == 2
    assert torch.equal(torchpatch.ScalarImage(tmp_path / "slice.nii.gz").data, image.data)


# SimpleITK conversions ----------------------------------------------------------------------


def _same_sitk(ours: sitk.Image, theirs: sitk.Image) -> None:
    assert ours.GetSize() == theirs.GetSize()
    assert ours.GetNumberOfComponentsPerPixel() == theirs.GetNumberOfComponentsPerPixel()
    for get in ("GetSpacing", "GetOrigin", "GetDirection"):
        np.testing.assert_allclose(getattr(ours, get)(), getattr(theirs, get)(), atol=1e-9)
    assert np.array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(theirs))


@pytest.mark.parametrize(
    ("shape", "affine", "force_3d"),
    [
        ((1, 5, 4, 3), ROTATED, False),
        ((3, 5, 4, 3), OBLIQUE, False),
        ((1, 5, 4, 1), np.diag([2.0, 1.5, 1.0, 1.0]), False),
        ((3, 5, 4, 1), np.eye(4), False),
        ((2, 5, 4, 1), OBLIQUE, True),
    ],
)
def test_nib_to_sitk_and_back_are_torchios(tio_io: Any, shape: tuple[int, ...], affine: Any, force_3d: bool) -> None:
    data = torch.from_numpy(_volume(shape, np.float32))
    ours = io.nib_to_sitk(data, affine, force_3d=force_3d)
    theirs = tio_io.nib_to_sitk(data, affine, force_3d=force_3d)
    _same_sitk(ours, theirs)
    our_data, our_affine = io.sitk_to_nib(theirs)
    their_data, their_affine = tio_io.sitk_to_nib(theirs)
    assert our_data.dtype == their_data.dtype
    assert np.array_equal(our_data, their_data)
    np.testing.assert_allclose(our_affine, their_affine, atol=1e-9)


def test_sitk_to_nib_widens_and_reads_4d_images_as_torchio(tio_io: Any) -> None:
    for image in (sitk.Image([4, 3, 2], sitk.sitkUInt16), sitk.Image([4, 3], sitk.sitkUInt32)):
        ours, theirs = io.sitk_to_nib(image), tio_io.sitk_to_nib(image)
        assert ours[0].dtype == theirs[0].dtype and ours[0].shape == theirs[0].shape
    four = sitk.GetImageFromArray(_volume((2, 3, 4, 5), np.int16), isVector=False)  # size (5, 4, 3, 2): two channels
    ours, theirs = io.sitk_to_nib(four, keepdim=True), tio_io.sitk_to_nib(four, keepdim=True)
    assert ours[0].shape == (2, 5, 4, 3)
    assert np.array_equal(ours[0], theirs[0])
    np.testing.assert_allclose(ours[1], theirs[1])


def test_nib_to_sitk_keeps_a_flipped_2d_direction_where_torchio_drops_it(tio_io: Any) -> None:
    data, flipped = torch.rand(1, 5, 4, 1), np.diag([-2.0, 3.0, 1.0, 1.0])
    assert io.nib_to_sitk(data, flipped).GetDirection() == (1.0, 0.0, 0.0, -1.0)
    assert tio_io.nib_to_sitk(data, flipped).GetDirection() == (-1.0, 0.0, 0.0, -1.0)  # TorchIO's
    back, affine = io.sitk_to_nib(io.nib_to_sitk(data, flipped))
    assert np.array_equal(back, data.numpy())
    np.testing.assert_allclose(affine, flipped)


def test_nib_to_sitk_force_4d_makes_channels_a_fourth_axis() -> None:
    data = torch.from_numpy(_volume((2, 5, 4, 3), np.int16))
    image = io.nib_to_sitk(data, ROTATED, force_4d=True)  # TorchIO's raises for any input
    assert image.GetSize() == (5, 4, 3, 2)
    back, affine = io.sitk_to_nib(image)
    assert np.array_equal(back, data.numpy())
    np.testing.assert_allclose(affine, ROTATED)


def test_nib_to_sitk_refuses_bad_input_clearly() -> None:
    with pytest.raises(ValueError, match=r"\(C, I, J, K\).*\(4, 4\)"):
        io.nib_to_sitk(torch.zeros(4, 4), np.eye(4))
    with pytest.raises(ValueError, match="singular"):
        io.nib_to_sitk(torch.zeros(1, 2, 2, 2), np.zeros((4, 4)))
    tilted = np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    with pytest.raises(ValueError, match="force_3d=True"):
        io.nib_to_sitk(torch.zeros(1, 2, 2, 1), tilted)
    with pytest.raises(TypeError, match=r"SimpleITK\.Image"):
        io.sitk_to_nib(np.zeros((2, 2)))  # type: ignore[arg-type]


@pytest.mark.parametrize("affine", [ROTATED, OBLIQUE, np.eye(4)])
@pytest.mark.parametrize("lps", [True, False])
def test_sitk_metadata_and_rotation_are_torchios(tio_io: Any, affine: Any, lps: bool) -> None:
    ours = io.get_sitk_metadata_from_ras_affine(affine, lps=lps)
    theirs = tio_io.get_sitk_metadata_from_ras_affine(affine, lps=lps)
    for our_values, their_values in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(our_values, their_values, atol=1e-12)
    for our_values, their_values in zip(
        io.get_rotation_and_spacing_from_affine(affine),
        tio_io.get_rotation_and_spacing_from_affine(affine),
        strict=True,
    ):
        np.testing.assert_allclose(our_values, their_values, atol=1e-12)


def test_2d_sitk_metadata_is_torchios_for_plain_axes(tio_io: Any) -> None:
    affine = np.diag([2.0, 3.0, 1.0, 1.0])
    affine[:3, 3] = (5.0, 6.0, 7.0)
    for lps in (True, False):
        ours = io.get_sitk_metadata_from_ras_affine(affine, is_2d=True, lps=lps)
        theirs = tio_io.get_sitk_metadata_from_ras_affine(affine, is_2d=True, lps=lps)
        assert [list(values) for values in ours] == [[float(v) for v in values] for values in theirs]


def test_ras_affine_from_sitk_images_and_readers_is_torchios(files: dict[str, Path], tio_io: Any) -> None:
    for name in ("float.nrrd", "rgb.png", "int16.nii.gz"):
        ours, theirs = io.get_reader(files[name]), tio_io.get_reader(files[name])
        assert type(ours) is type(theirs) and ours.GetSize() == theirs.GetSize()
        np.testing.assert_allclose(io.get_ras_affine_from_sitk(ours), tio_io.get_ras_affine_from_sitk(theirs))
        image = sitk.ReadImage(str(files[name]))
        np.testing.assert_allclose(io.get_ras_affine_from_sitk(image), tio_io.get_ras_affine_from_sitk(image))
    unread = io.get_reader(files["float.nrrd"], read=False)
    assert unread.GetFileName() == str(files["float.nrrd"])


def test_get_reader_names_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent\.nrrd"):
        io.get_reader(tmp_path / "absent.nrrd")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"notes\.txt"):
        io.get_reader(tmp_path / "notes.txt")
    assert io.get_reader(tmp_path / "absent.nrrd", read=False).GetFileName().endswith("absent.nrrd")


# Arrays -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "num_spatial_dims"),
    [
        ((4, 5), None),
        ((3, 4, 5), None),
        ((4, 5, 3), None),
        ((4, 5, 6), None),
        ((2, 4, 5), 2),
        ((2, 4, 5), 3),
        ((2, 4, 5, 6), None),
        ((4, 5, 6, 1, 2), None),
    ],
)
def test_ensure_4d_is_torchios(tio_io: Any, shape: tuple[int, ...], num_spatial_dims: int | None) -> None:
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    assert torch.equal(io.ensure_4d(array, num_spatial_dims), tio_io.ensure_4d(array, num_spatial_dims))


def test_ensure_4d_names_the_shape_it_refuses() -> None:
    with pytest.raises(ValueError, match=r"\(4, 5, 6, 2, 2\)"):
        io.ensure_4d(np.zeros((4, 5, 6, 2, 2)))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        io.ensure_4d(np.zeros(4))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int16, np.float32, np.bool_])
def test_check_uint_to_int_is_torchios(tio_io: Any, dtype: Any) -> None:
    array = np.ones(3, dtype=dtype)
    assert io.check_uint_to_int(array).dtype == tio_io.check_uint_to_int(array).dtype
    if dtype not in (np.uint16, np.uint32):
        assert io.check_uint_to_int(array) is array


# Transform files ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".tfm", ".h5", ".txt", ".trsf"])
def test_matrices_round_trip_between_the_libraries(tmp_path: Path, tio_io: Any, suffix: str) -> None:
    matrix = torch.as_tensor(MATRIX)
    io.write_matrix(matrix, tmp_path / f"ours{suffix}")
    tio_io.write_matrix(matrix, tmp_path / f"theirs{suffix}")
    for name in ("ours", "theirs"):
        ours, theirs = io.read_matrix(tmp_path / f"{name}{suffix}"), tio_io.read_matrix(tmp_path / f"{name}{suffix}")
        assert ours.dtype == theirs.dtype == torch.float64
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
        torch.testing.assert_close(ours, matrix, rtol=0, atol=1e-7)  # text files hold eight decimals
    if suffix in (".tfm", ".txt", ".trsf"):
        assert (tmp_path / f"ours{suffix}").read_text() == (tmp_path / f"theirs{suffix}").read_text()


def test_itk_files_hold_the_inverse_in_lps(tmp_path: Path) -> None:
    shift = np.eye(4)
    shift[:3, 3] = (1.0, 2.0, 3.0)  # floating -> reference, RAS+
    io.write_matrix(shift, tmp_path / "shift.tfm")
    transform = sitk.ReadTransform(str(tmp_path / "shift.tfm"))
    assert transform.GetParameters()[9:] == (1.0, 2.0, -3.0)  # reference -> floating, LPS: -(-1, -2, 3)
    io.write_matrix(shift, tmp_path / "shift.txt")
    np.testing.assert_allclose(np.loadtxt(tmp_path / "shift.txt")[:3, 3], (-1.0, -2.0, -3.0))


def test_read_matrix_honours_an_itk_centre_and_other_linear_transforms(tmp_path: Path) -> None:
    euler = sitk.Euler3DTransform((1.0, 2.0, 3.0), 0.1, 0.2, 0.3, (4.0, 5.0, 6.0))
    sitk.WriteTransform(euler, str(tmp_path / "euler.tfm"))
    matrix = io.read_matrix(tmp_path / "euler.tfm").numpy()
    flip = np.diag([-1.0, -1.0, 1.0])
    fixed = np.array([10.0, -3.0, 7.0])  # LPS
    moving = np.array(euler.TransformPoint(tuple(fixed)))
    np.testing.assert_allclose(matrix[:3, :3] @ (flip @ moving) + matrix[:3, 3], flip @ fixed, atol=1e-9)
    sitk.WriteTransform(sitk.TranslationTransform(3, (1.0, 2.0, 3.0)), str(tmp_path / "shift.tfm"))
    assert io.read_matrix(tmp_path / "shift.tfm")[:3, 3].tolist() == [1.0, 2.0, -3.0]


def test_matrix_files_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent\.tfm"):
        io.read_matrix(tmp_path / "absent.tfm")
    with pytest.raises(ValueError, match=r"x\.mat.*unknown suffix"):
        io.read_matrix(tmp_path / "x.mat")
    with pytest.raises(ValueError, match=r"x\.mat.*unknown suffix"):
        io.write_matrix(np.eye(4), tmp_path / "x.mat")  # TorchIO's writes nothing, silently
    (tmp_path / "short.txt").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(ValueError, match=r"short\.txt.*4x4"):
        io.read_matrix(tmp_path / "short.txt")
    (tmp_path / "garbage.tfm").write_text("garbage\n")
    with pytest.raises(ValueError, match=r"garbage\.tfm"):
        io.read_matrix(tmp_path / "garbage.tfm")
    sitk.WriteTransform(sitk.AffineTransform(2), str(tmp_path / "flat.tfm"))
    with pytest.raises(ValueError, match=r"flat\.tfm.*2D"):
        io.read_matrix(tmp_path / "flat.tfm")
    with pytest.raises(ValueError, match=r"y\.tfm.*invertible 4x4"):
        io.write_matrix(np.zeros((4, 4)), tmp_path / "y.tfm")
    with pytest.raises(TypeError, match=r"y\.txt"):
        io.write_matrix("eye", tmp_path / "y.txt")
    with pytest.raises(FileNotFoundError, match="missing"):
        io.write_matrix(np.eye(4), tmp_path / "missing" / "y.tfm")
    written = {path.name for path in tmp_path.iterdir()}
    assert written == {"short.txt", "garbage.tfm", "flat.tfm"}  # nothing half-written
