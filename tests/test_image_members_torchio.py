"""TorchIO's remaining Image members against TorchIO 1.x's own (skipped without TorchIO).

The same calls on the same image in both libraries give the same values;
where torchpatch refuses (``clear``, ``popitem``, ``fromkeys``, popping a
field), the TorchIO calls shown here break the image or always fail.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

import torchpatch as tp

tio = pytest.importorskip("torchio")

AFFINES = {
    "RAS": np.eye(4),
    "LPS": np.diag([-1.0, -1.0, 1.0, 1.0]),
    "SRA": np.array([[0.0, 1, 0, 3], [0, 0, 1, -2], [1, 0, 0, 1], [0, 0, 0, 1]]),
    "oblique": np.array([[0.0, -0.9, 0.1, 0], [0.2, 0, 0.95, 0], [-1.1, 0, 0, 0], [0, 0, 0, 1]]),
}
AXES = ["L", "R", "A", "P", "S", "I", "T", "B", "left", "Right", "anterior", "posterior", "sup", "inf", "top"]


def _pair(affine=None, **metadata):
    tensor = torch.arange(24.0).reshape(1, 2, 3, 4)
    ours = tp.ScalarImage(tensor=tensor, affine=affine, **metadata)
    theirs = tio.ScalarImage(tensor=tensor, affine=affine, **metadata)
    return ours, theirs


@pytest.mark.parametrize("axis", [*AXES, "dorsal", "Ventral"])
def test_flip_axis_as_torchio(axis) -> None:
    assert tp.Image.flip_axis(axis) == tio.Image.flip_axis(axis)


@pytest.mark.parametrize("name", list(AFFINES))
def test_axis_name_to_index_as_torchio(name) -> None:
    ours, theirs = _pair(AFFINES[name])
    assert ours.orientation == theirs.orientation
    for axis in AXES:
        assert ours.axis_name_to_index(axis) == theirs.axis_name_to_index(axis), axis


@pytest.mark.parametrize("axis", ["x", "dorsal"])
def test_unknown_axes_raise_value_error_in_both(axis) -> None:
    ours, theirs = _pair()
    for image in (ours, theirs):
        with pytest.raises(ValueError):
            image.axis_name_to_index(axis)


@pytest.mark.parametrize(
    ("suffix", "dtype", "affine"),
    [(".nii.gz", np.int16, AFFINES["SRA"]), (".nii", np.float32, AFFINES["LPS"]), (".nii.gz", np.uint16, np.eye(4))],
)
def test_read_and_check_as_torchio(tmp_path, suffix, dtype, affine) -> None:
    path = tmp_path / f"x{suffix}"
    nib.Nifti1Image(np.arange(60).reshape(3, 4, 5).astype(dtype), affine).to_filename(path)
    ours, theirs = _pair()
    our_voxels, our_affine = ours.read_and_check(path)
    their_voxels, their_affine = theirs.read_and_check(path)
    assert our_voxels.dtype == their_voxels.dtype
    assert torch.equal(our_voxels, their_voxels)
    np.testing.assert_allclose(our_affine, their_affine, atol=1e-6)
    assert ours.shape == theirs.shape == (1, 2, 3, 4)  # neither image changed


def _nan_reader(path):
    return np.full((1, 2, 2, 2), np.nan, np.float32), np.diag([2.0, 2.0, 2.0, 1.0])


def test_read_and_check_with_a_custom_reader_warns_on_nan_in_both_when_asked(tmp_path) -> None:
    # A custom reader: TorchIO's NIfTI reader (SimpleITK) turns NaN into 0.
    path = tmp_path / "nan.raw"
    path.write_bytes(b"")
    images = [module.ScalarImage(path, reader=_nan_reader) for module in (tp, tio)]
    for image in images:
        voxels, affine = image.read_and_check(path)  # check_nans off: no warning (-W error)
        assert voxels.shape == (1, 2, 2, 2) and bool(voxels.isnan().all()) and affine[0, 0] == 2.0
        image.set_check_nans(True)
        assert image.check_nans is True
        with pytest.warns(RuntimeWarning, match="NaN"):
            image.read_and_check(path)


def test_copy_as_torchio() -> None:
    ours, theirs = _pair(AFFINES["LPS"], modality="T1", site="Lyon")
    our_copy, their_copy = ours.copy(), theirs.copy()
    assert type(our_copy) is type(their_copy) is dict
    assert list(our_copy) == list(their_copy)
    assert torch.equal(our_copy["data"], their_copy["data"])
    np.testing.assert_array_equal(our_copy["affine"], their_copy["affine"])
    for key in ("modality", "site", "type"):
        assert our_copy[key] == their_copy[key]


def test_metadata_mutators_as_torchio() -> None:
    ours, theirs = _pair(modality="T1")
    for image in (ours, theirs):
        image.update({"site": "Lyon"}, age=40)
        image.update([("scanner", "3T")])
    # TorchIO puts keys added later after 'type'; torchpatch lists the metadata before 'path', 'stem' and 'type'.
    assert set(ours.keys()) == set(theirs.keys())
    assert [ours.setdefault(k, 0) for k in ("site", "new", "type")] == [
        theirs.setdefault(k, 0) for k in ("site", "new", "type")
    ]
    assert ours.pop("site") == theirs.pop("site") == "Lyon"
    assert ours.pop("site", None) is theirs.pop("site", None) is None
    assert set(ours.keys()) == set(theirs.keys())
    assert all(ours[key] == theirs[key] for key in ("modality", "age", "scanner", "new", "type"))
    for image in (ours, theirs):
        with pytest.raises(KeyError):
            image.pop("site")


def test_update_of_data_as_torchio() -> None:
    ours, theirs = _pair()
    new = torch.ones(2, 3, 3, 3)
    ours.update(data=new)
    theirs.update(data=new)
    assert ours.shape == theirs.shape == (2, 3, 3, 3)
    assert torch.equal(ours.data, theirs.data)


def test_what_torchpatch_does_not_provide_breaks_or_fails_in_torchio() -> None:
    _, theirs = _pair()
    assert theirs.popitem()[0] == "type"  # popitem always removes the type ...
    with pytest.raises(KeyError):
        _ = theirs.type  # ... and the image no longer knows it
    _, theirs = _pair()
    theirs.clear()
    with pytest.raises(KeyError):
        _ = theirs.data
    with pytest.raises(ValueError):
        tio.ScalarImage.fromkeys(["data"])  # calls ScalarImage(): always fails
    ours, _ = _pair()
    assert not any(hasattr(ours, name) for name in ("clear", "popitem", "fromkeys"))


@pytest.mark.parametrize("squeeze", [None, True, False])
@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".mha", ".nhdr"])
def test_save_squeeze_writes_torchio_files(tmp_path, squeeze, suffix) -> None:
    import SimpleITK as sitk

    tensor = torch.rand(1, 5, 4, 1)
    affine = np.diag([0.5, 2.0, 3.0, 1.0])
    tp.ScalarImage(tensor=tensor, affine=affine).save(tmp_path / f"ours{suffix}", squeeze=squeeze)
    tio.ScalarImage(tensor=tensor, affine=affine).save(tmp_path / f"theirs{suffix}", squeeze=squeeze)
    ours = sitk.ReadImage(str(tmp_path / f"ours{suffix}"))
    theirs = sitk.ReadImage(str(tmp_path / f"theirs{suffix}"))
    assert ours.GetSize() == theirs.GetSize()
    assert np.allclose(ours.GetSpacing(), theirs.GetSpacing())
    assert np.array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(theirs))
    back = tp.ScalarImage(tmp_path / f"ours{suffix}")
    assert torch.equal(back.data, tensor)
    kept = (slice(0, 2), slice(0, 2)) if squeeze else (slice(None), slice(None))  # a 2D file has no depth spacing
    assert np.allclose(back.affine[kept], affine[kept])


def test_save_squeeze_is_checked(tmp_path) -> None:
    with pytest.raises(TypeError, match="squeeze"):
        tp.ScalarImage(tensor=torch.rand(1, 2, 2, 1)).save(tmp_path / "x.nrrd", squeeze="yes")


@pytest.mark.parametrize("dtype", [torch.float32, torch.int16, torch.uint8, torch.float64])
@pytest.mark.parametrize("kind", ["ScalarImage", "LabelMap"])
def test_repr_is_torchio_s_loaded_and_not(tmp_path, dtype, kind) -> None:
    tensor = (torch.arange(2 * 30 * 40 * 5) % 7).reshape(2, 30, 40, 5).to(dtype)
    affine = np.diag([0.8, -1.5, 2.0, 1.0])
    ours, theirs = getattr(tp, kind)(tensor=tensor, affine=affine), getattr(tio, kind)(tensor=tensor, affine=affine)
    if kind == "LabelMap" and dtype.is_floating_point:
        # A label map of whole floats becomes int64 (docs/migration.rst, "LabelMap dtypes"); TorchIO keeps floats.
        assert ours.data.dtype == torch.int64 and theirs.data.dtype == dtype
        return
    assert repr(ours) == repr(theirs)
    path = tmp_path / "image.nii.gz"
    nib.Nifti1Image(tensor[0].numpy(), affine).to_filename(path)
    ours, theirs = getattr(tp, kind)(path), getattr(tio, kind)(path)
    assert repr(ours) == repr(theirs)  # not loaded: the path
    ours.load()
    theirs.load()
    assert repr(ours) == repr(theirs)


def test_subject_repr_is_torchio_s() -> None:
    tensor = torch.zeros(1, 2, 2, 2)
    ours = tp.Subject(t1=tp.ScalarImage(tensor=tensor), age=3, seg=tp.LabelMap(tensor=tensor))
    theirs = tio.Subject(t1=tio.ScalarImage(tensor=tensor), age=3, seg=tio.LabelMap(tensor=tensor))
    assert repr(ours) == repr(theirs)


def test_memory_prints_as_torchio_s() -> None:
    humanize = pytest.importorskip("humanize")
    from torchpatch.image_info import natural_size

    sizes = [0, 1, 2, 1023, 1024, 1025, 1536, 2**20 - 1, 2**20, 123456789, 3 * 2**40, 10**17]
    sizes += [int(x) for x in np.random.default_rng(0).integers(0, 2**50, 2000)]
    for size in sizes:
        assert natural_size(size) == humanize.naturalsize(size, binary=True), size
