"""TorchIO's image and subject utilities: as_sitk, from_sitk, as_pil, plot, get_images_names."""

from __future__ import annotations

import sys

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from torchpatch import Image, LabelMap, ScalarImage, Subject
from torchpatch.constants import INTENSITY

OBLIQUE = np.array(
    [
        [0.0, -1.5, 0.2, 10.0],
        [2.0, 0.0, 0.0, -20.0],
        [0.0, 0.1, 3.0, 5.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def sitk_geometry(image: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.array(image.GetSpacing()), np.array(image.GetOrigin()), np.array(image.GetDirection())


# as_sitk / from_sitk ---------------------------------------------------------------------------


def test_as_sitk_matches_simpleitk_reading_the_same_nifti(tmp_path):
    data = torch.arange(4 * 5 * 6, dtype=torch.int16).reshape(1, 4, 5, 6)
    path = tmp_path / "x.nii"
    nib.save(nib.Nifti1Image(data[0].numpy(), OBLIQUE), path)
    expected = sitk.ReadImage(str(path))
    converted = ScalarImage(tensor=data, affine=OBLIQUE).as_sitk()
    for ours, theirs in zip(sitk_geometry(converted), sitk_geometry(expected)):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert converted.GetSize() == (4, 5, 6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(converted), sitk.GetArrayFromImage(expected))


def test_as_sitk_then_from_sitk_gives_the_image_back():
    image = LabelMap(tensor=torch.randint(0, 5, (1, 4, 5, 6)), affine=OBLIQUE)
    back = LabelMap.from_sitk(image.as_sitk())
    assert isinstance(back, LabelMap)
    assert torch.equal(back.data, image.data)
    np.testing.assert_allclose(back.affine, image.affine, atol=1e-9)


def test_several_channels_make_a_vector_image():
    data = torch.rand(3, 4, 5, 6)
    converted = ScalarImage(tensor=data).as_sitk()
    assert converted.GetNumberOfComponentsPerPixel() == 3
    assert converted.GetSize() == (4, 5, 6)
    assert torch.equal(ScalarImage.from_sitk(converted).data, data)


def test_a_2d_image_becomes_a_2d_sitk_image_unless_force_3d():
    image = ScalarImage(tensor=torch.rand(1, 8, 6, 1), affine=np.diag([0.5, 0.25, 1.0, 1.0]))
    flat = image.as_sitk()
    assert flat.GetDimension() == 2 and flat.GetSize() == (8, 6)
    assert flat.GetSpacing() == (0.5, 0.25)
    assert flat.GetDirection() == (-1.0, 0.0, 0.0, -1.0)
    deep = image.as_sitk(force_3d=True)
    assert deep.GetDimension() == 3 and deep.GetSize() == (8, 6, 1)
    for converted in (flat, deep):
        back = ScalarImage.from_sitk(converted)
        assert torch.equal(back.data, image.data)
        np.testing.assert_allclose(back.affine, image.affine)


def test_a_2d_image_keeps_its_in_plane_direction():
    # A PNG read through SimpleITK has direction identity (LPS): RAS+ affine diag(-1, -1, 1).
    png = sitk.GetImageFromArray(np.arange(12, dtype=np.uint8).reshape(3, 4))
    image = ScalarImage.from_sitk(png)
    np.testing.assert_allclose(image.affine, np.diag([-1.0, -1.0, 1.0, 1.0]))
    assert image.as_sitk().GetDirection() == png.GetDirection()


def test_as_sitk_refuses_a_2d_image_whose_third_axis_is_rotated_into_the_plane():
    affine = np.eye(4)
    affine[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    with pytest.raises(ValueError, match="force_3d=True"):
        ScalarImage(tensor=torch.zeros(1, 2, 2, 1), affine=affine).as_sitk()
    assert ScalarImage(tensor=torch.zeros(1, 2, 2, 1), affine=affine).as_sitk(force_3d=True).GetSize() == (2, 2, 1)


def test_types_simpleitk_lacks_are_widened():
    assert LabelMap(tensor=torch.ones(1, 2, 2, 2, dtype=torch.bool)).as_sitk().GetPixelID() == sitk.sitkUInt8
    half = ScalarImage(tensor=torch.ones(1, 2, 2, 2, dtype=torch.float16)).as_sitk()
    assert half.GetPixelID() == sitk.sitkFloat32


def test_from_sitk_on_image_makes_an_intensity_image_and_takes_arguments():
    image = Image.from_sitk(sitk.Image(2, 3, 4, sitk.sitkUInt16), subject_part="brain")
    assert image.type == INTENSITY
    assert image.dtype == torch.int32  # uint16 widened, as when reading a file
    assert image.metadata == {"subject_part": "brain"}
    with pytest.raises(TypeError, match=r"SimpleITK\.Image"):
        ScalarImage.from_sitk(np.zeros((2, 2)))


# as_pil ------------------------------------------------------------------------------------------


def test_as_pil_shows_the_picture_as_its_file_rows_j_columns_i():
    data = torch.zeros(3, 4, 2, 1)
    data[0, 3, 0, 0] = 200  # I = 3 (column 3), J = 0 (row 0): red
    picture = ScalarImage(tensor=data).as_pil()
    assert picture.size == (4, 2) and picture.mode == "RGB"
    assert picture.getpixel((3, 0)) == (200, 0, 0)
    assert ScalarImage(tensor=data).as_pil(transpose=False).size == (2, 4)


def test_as_pil_clamps_repeats_grey_and_keeps_alpha():
    grey = ScalarImage(tensor=torch.tensor([-5.0, 100.0, 999.0]).reshape(1, 3, 1, 1)).as_pil()
    assert [grey.getpixel((i, 0)) for i in range(3)] == [(0, 0, 0), (100, 100, 100), (255, 255, 255)]
    assert ScalarImage(tensor=torch.zeros(4, 2, 2, 1)).as_pil().mode == "RGBA"


def test_as_pil_needs_a_2d_image_of_1_3_or_4_channels():
    with pytest.raises(ValueError, match="2D image"):
        ScalarImage(tensor=torch.zeros(1, 2, 2, 2)).as_pil()
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        ScalarImage(tensor=torch.zeros(2, 2, 2, 1)).as_pil()


# plot ----------------------------------------------------------------------------------------------


def test_image_plot_draws_three_views_with_the_voxel_aspect(tmp_path):
    image = ScalarImage(tensor=torch.rand(1, 8, 6, 4), affine=np.diag([1.0, 2.0, 3.0, 1.0]))
    assert image.plot(show=False) is None  # TorchIO returns nothing unless asked
    path = tmp_path / "views.png"
    figure = image.plot(show=False, return_fig=True, output_path=path, title="t1")
    assert path.stat().st_size > 0
    assert [ax.get_title() for ax in figure.axes] == ["Sagittal", "Coronal", "Axial"]
    sagittal, coronal, axial = (ax.images[0].get_array().shape for ax in figure.axes)
    assert (sagittal, coronal, axial) == ((4, 6), (4, 8), (6, 8))
    assert figure.axes[2].get_aspect() == pytest.approx(2.0)  # A spacing / R spacing
    assert figure.axes[0].xaxis_inverted()


def test_image_plot_reorients_to_ras():
    # Voxel axes L (flipped R), S, A: reoriented, the axial view is (A, R) = (K, I).
    affine = np.array([[-1.0, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    image = ScalarImage(tensor=torch.rand(1, 8, 6, 4), affine=affine)
    axial = image.plot(show=False, return_fig=True).axes[2].images[0].get_array()
    assert axial.shape == (4, 8)
    expected = image.numpy()[0, ::-1, 3, :].T  # I flipped to R, slice through S = J centre
    np.testing.assert_allclose(np.asarray(axial), expected)


def test_a_2d_image_is_one_panel_of_its_picture():
    data = torch.rand(3, 8, 6, 1)
    figure = ScalarImage(tensor=data).plot(show=False, return_fig=True)
    (ax,) = figure.axes
    assert ax.images[0].get_array().shape == (6, 8, 3)


def test_plot_channels_labels_and_errors():
    with pytest.warns(RuntimeWarning, match="channel=..."):
        ScalarImage(tensor=torch.rand(2, 4, 4, 4)).plot(show=False)
    figure = ScalarImage(tensor=torch.rand(2, 4, 4, 4)).plot(show=False, channel=1, return_fig=True)
    assert figure.axes[0].images[0].get_array().shape == (4, 4)
    labels = LabelMap(tensor=torch.randint(0, 3, (1, 4, 4, 4)))
    shown = labels.plot(show=False, return_fig=True, cmap={1: "red"}).axes[0].images[0]
    assert shown.get_interpolation() == "none"
    with pytest.raises(ValueError, match="channel"):
        ScalarImage(tensor=torch.rand(2, 4, 4, 4)).plot(show=False, channel=2)
    with pytest.raises(ValueError, match="indices"):
        ScalarImage(tensor=torch.rand(1, 4, 4, 4)).plot(show=False, indices=(0, 0, 9))


def test_subject_plot_lays_out_rows_of_views_or_columns_for_many_images():
    volume = torch.rand(1, 6, 6, 6)
    two = Subject(t1=ScalarImage(tensor=volume), seg=LabelMap(tensor=volume > 0.5))
    assert two.plot(show=False) is None
    figure = two.plot(show=False, return_fig=True)
    assert [ax.get_title() for ax in figure.axes][3:] == ["seg (sagittal)", "seg (coronal)", "seg (axial)"]
    three = Subject(a=ScalarImage(tensor=volume), b=ScalarImage(tensor=volume), c=ScalarImage(tensor=volume))
    axes = three.plot(show=False, return_fig=True).axes
    assert axes[0].get_subplotspec().get_geometry()[:2] == (3, 3)
    assert axes[1].get_title() == "b (sagittal)"  # one column per image


def test_subject_plot_of_2d_images_is_one_row_of_pictures():
    subject = Subject(photo=ScalarImage(tensor=torch.rand(3, 8, 6, 1)), seg=LabelMap(tensor=torch.zeros(1, 8, 6, 1)))
    figure = subject.plot(show=False, return_fig=True)
    assert [ax.get_title() for ax in figure.axes] == ["photo", "seg"]


def test_plot_without_matplotlib_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install torchpatch\[plot\]"):
        ScalarImage(tensor=torch.rand(1, 4, 4, 4)).plot(show=False)


# Subject helpers ----------------------------------------------------------------------------------


def test_get_images_names_lists_images_only_in_order():
    subject = Subject(
        t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)), age=3, seg=LabelMap(tensor=torch.zeros(1, 2, 2, 2))
    )
    assert subject.get_images_names() == ["t1", "seg"]


def test_get_images_takes_torchio_arguments_by_name_and_position():
    subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)), seg=LabelMap(tensor=torch.zeros(1, 2, 2, 2)))
    assert subject.get_images(intensity_only=True) == [subject.t1]
    assert subject.get_images(False, None, ["t1"]) == [subject.seg]
    assert subject.get_images(intensity_only=False, include=["seg"]) == [subject.seg]


# Against TorchIO itself (skipped when it is not installed) ----------------------------------------


def test_as_sitk_and_from_sitk_equal_torchios():
    tio = pytest.importorskip("torchio")
    for data, affine in (
        (torch.rand(1, 4, 5, 6), OBLIQUE),
        (torch.rand(3, 4, 5, 6), OBLIQUE),
        (torch.rand(1, 7, 5, 1), np.eye(4)),
    ):
        ours = ScalarImage(tensor=data, affine=affine).as_sitk()
        theirs = tio.ScalarImage(tensor=data, affine=affine).as_sitk()
        assert ours.GetSize() == theirs.GetSize()
        assert ours.GetNumberOfComponentsPerPixel() == theirs.GetNumberOfComponentsPerPixel()
        for a, b in zip(sitk_geometry(ours), sitk_geometry(theirs)):
            np.testing.assert_allclose(a, b, atol=1e-6)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(theirs))
        back, their_back = ScalarImage.from_sitk(theirs), tio.ScalarImage.from_sitk(theirs)
        np.testing.assert_array_equal(back.numpy(), their_back.numpy())
        np.testing.assert_allclose(back.affine, their_back.affine, atol=1e-9)


def test_as_pil_equals_torchios():
    tio = pytest.importorskip("torchio")
    pytest.importorskip("PIL")
    for channels in (1, 3, 4):
        data = torch.rand(channels, 7, 5, 1) * 300
        for transpose in (True, False):
            ours = np.asarray(ScalarImage(tensor=data).as_pil(transpose))
            theirs = np.asarray(tio.ScalarImage(tensor=data).as_pil(transpose))
            np.testing.assert_array_equal(ours, theirs)


def test_subject_helpers_equal_torchios():
    tio = pytest.importorskip("torchio")
    zeros = torch.zeros(1, 2, 2, 2)
    ours = Subject(t1=ScalarImage(tensor=zeros), seg=LabelMap(tensor=zeros), t2=ScalarImage(tensor=zeros), age=3)
    theirs = tio.Subject(
        t1=tio.ScalarImage(tensor=zeros), seg=tio.LabelMap(tensor=zeros), t2=tio.ScalarImage(tensor=zeros), age=3
    )
    assert ours.get_images_names() == theirs.get_images_names()
    for kwargs in (
        {"intensity_only": True},
        {"intensity_only": False, "exclude": ["t2"]},
        {"intensity_only": True, "include": ["t2"]},
    ):
        names = [n for n, image in ours.items() if any(image is i for i in ours.get_images(**kwargs))]
        their_names = [n for n, image in theirs.items() if any(image is i for i in theirs.get_images(**kwargs))]
        assert names == their_names
