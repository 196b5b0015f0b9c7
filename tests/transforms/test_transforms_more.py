"""RemoveLabels, Contour, To, Transpose, ToReferenceSpace and TorchIO's module paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchpatch
from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.transforms import Contour, RemoveLabels, To, ToReferenceSpace, Transpose


def test_remove_labels_to_background_inside_mask_only() -> None:
    seg = LabelMap(tensor=torch.tensor([1, 2, 1, 2]).reshape(1, 4, 1, 1))
    out = RemoveLabels([2], background_label=5)(Subject(seg=seg)).seg
    assert out.data.flatten().tolist() == [1, 5, 1, 5]
    with pytest.raises(ValueError, match="cannot be inverted"):
        RemoveLabels([2]).inverse()


def test_contour_keeps_borders_of_label_one_and_other_labels() -> None:
    data = torch.ones(1, 5, 5, 1, dtype=torch.int64)
    data[0, 0, 0, 0], data[0, 2, 2, 0], data[0, 4, 4, 0] = 0, 3, 2
    out = Contour()(Subject(seg=LabelMap(tensor=data))).seg.data[0, :, :, 0]
    # Pinned to TorchIO 1.2.1 (SimpleITK BinaryContour) on the same input.
    assert out.tolist() == [
        [0, 1, 0, 0, 0],
        [1, 0, 1, 0, 0],
        [0, 1, 3, 1, 0],
        [0, 0, 1, 0, 1],
        [0, 0, 0, 1, 2],
    ]


def test_contour_leaves_scalar_images() -> None:
    image = ScalarImage(tensor=torch.ones(1, 3, 3, 1))
    assert Contour()(Subject(t1=image)).t1 is image


def test_to_casts_intensity_images_only() -> None:
    subject = Subject(t1=ScalarImage(tensor=torch.ones(1, 2, 2, 1)), seg=LabelMap(tensor=torch.ones(1, 2, 2, 1)))
    out = To(torch.float16)(subject)
    assert out.t1.dtype == torch.float16 and out.seg.dtype == torch.int64
    with pytest.raises(TypeError, match="target"):
        To(3)  # type: ignore[arg-type]


def test_transpose_keeps_world_positions_and_is_its_own_inverse() -> None:
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = (1, 2, 3)
    image = ScalarImage(tensor=torch.arange(24.0).reshape(1, 2, 3, 4), affine=affine)
    out = Transpose()(image)
    assert out.shape == (1, 4, 3, 2)
    assert torch.equal(out.data[0], image.data[0].permute(2, 1, 0))
    voxel = np.array([1, 2, 3, 1])
    np.testing.assert_allclose(out.affine @ voxel, image.affine @ voxel[[2, 1, 0, 3]])
    back = Transpose().inverse()(out)
    np.testing.assert_allclose(back.affine, image.affine)


def test_to_reference_space_matches_torchio_grid() -> None:
    affine = np.diag([1.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = (10, 20, 30)
    reference = ScalarImage(tensor=torch.zeros(1, 8, 8, 8), affine=affine)
    out = ToReferenceSpace(reference)(ScalarImage(tensor=torch.zeros(4, 2, 4, 8)))
    assert out.spacing == (4.0, 4.0, 3.0)
    # Centres of the fields of view coincide.
    centre = reference.affine @ np.array([3.5, 3.5, 3.5, 1])
    np.testing.assert_allclose(out.affine @ np.array([0.5, 1.5, 3.5, 1]), centre)
    built = ToReferenceSpace.from_tensor(torch.zeros(4, 2, 4, 8), reference)
    np.testing.assert_allclose(built.affine, out.affine)


def test_torchio_module_paths() -> None:
    assert torchpatch.Transform is torchpatch.transforms.Transform
    assert torchpatch.transforms.preprocessing.label.RemoveLabels is RemoveLabels
    assert torchpatch.transforms.preprocessing.spatial.ToReferenceSpace is ToReferenceSpace
    assert torchpatch.transforms.preprocessing.intensity.To is To
    assert torchpatch.transforms.augmentation.spatial.RandomFlip is torchpatch.RandomFlip
