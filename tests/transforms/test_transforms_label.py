"""OneHot, RemapLabels, SequentialLabels, KeepLargestComponent: TorchIO 1.x's documented behaviour."""

from __future__ import annotations

import pytest
import torch

import torchpatch as tp
from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.transforms import KeepLargestComponent, OneHot, RemapLabels, SequentialLabels


def labels(*values, dtype=torch.int64) -> LabelMap:
    return LabelMap(tensor=torch.tensor(values, dtype=dtype).reshape(1, 1, 1, -1))


def flat(image) -> list:
    return image.data.flatten().tolist()


def test_names_are_at_the_top_as_in_torchio():
    assert tp.OneHot is OneHot and tp.RemapLabels is RemapLabels and tp.SequentialLabels is SequentialLabels
    assert tp.KeepLargestComponent is KeepLargestComponent is tp.KeepLargestConnectedComponent


def test_label_transforms_leave_scalar_images_alone():
    t1 = ScalarImage(tensor=torch.tensor([0.0, 1.0, 2.0]).reshape(1, 3, 1, 1))
    subject = Subject(t1=t1, seg=labels(0, 1, 2))
    for transform in (OneHot(), RemapLabels({1: 5}), SequentialLabels(), KeepLargestComponent()):
        assert transform(subject).t1 is t1
    assert OneHot(include="t1")(subject).t1 is t1


# OneHot ------------------------------------------------------------------------------------------


def test_one_hot_channel_per_class_keeps_dtype():
    out = OneHot()(Subject(seg=labels(0, 2, 1, dtype=torch.int16))).seg
    assert out.shape == (3, 1, 1, 3)
    assert out.data.dtype == torch.int16
    assert out.data[:, 0, 0, :].tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]


def test_one_hot_num_classes_adds_empty_channels():
    assert OneHot(num_classes=5)(Subject(seg=labels(0, 1))).seg.num_channels == 5
    assert OneHot(num_classes=None)(Subject(seg=labels(0, 1))).seg.num_channels == 2


def test_one_hot_errors_name_the_culprit():
    with pytest.raises(ValueError, match="num_classes=2"):
        OneHot(num_classes=2)(Subject(seg=labels(0, 3)))
    with pytest.raises(ValueError, match=r"one channel.*'seg'"):
        OneHot()(Subject(seg=LabelMap(tensor=torch.zeros(2, 2, 2, 1))))
    with pytest.raises(ValueError, match="num_classes"):
        OneHot(num_classes=0)
    with pytest.raises(TypeError, match="num_classes"):
        OneHot(num_classes=2.5)  # type: ignore[arg-type]


def test_one_hot_argmax_gives_the_labels_back():
    seg = labels(0, 3, 1, 2, 3)
    encoded = OneHot()(Subject(seg=seg)).seg
    assert torch.equal(encoded.data.argmax(dim=0, keepdim=True), seg.data)


# RemapLabels -------------------------------------------------------------------------------------


def test_remap_labels_is_simultaneous():
    # TorchIO's docstring example: {1: 2, 2: 1} swaps, it does not chain.
    out = RemapLabels({1: 2, 2: 1, 3: 1, 4: 7})(Subject(seg=labels(0, 1, 2, 3, 4))).seg
    assert flat(out) == [0, 2, 1, 1, 7]


def test_remap_labels_keeps_dtype_and_input():
    seg = labels(0, 1, 2, dtype=torch.uint8)
    out = RemapLabels({1: 9})(Subject(seg=seg)).seg
    assert out.data.dtype == torch.uint8
    assert flat(out) == [0, 9, 2] and flat(seg) == [0, 1, 2]


def test_remap_labels_absent_labels_return_same_image():
    seg = labels(0, 1)
    assert RemapLabels({5: 6})(Subject(seg=seg)).seg is seg


def test_remap_labels_masked_by_anatomical_half():
    seg = LabelMap(tensor=torch.tensor([1, 1, 1, 1]).reshape(1, 4, 1, 1))
    assert flat(RemapLabels({1: 2}, masking_method="Right")(Subject(seg=seg)).seg) == [1, 1, 2, 2]
    assert flat(RemapLabels({1: 2}, masking_method="left")(Subject(seg=seg)).seg) == [2, 2, 1, 1]


def test_remap_labels_masked_by_image_and_bounds():
    seg = LabelMap(tensor=torch.tensor([1, 1, 1, 1]).reshape(1, 4, 1, 1))
    region = LabelMap(tensor=torch.tensor([0, 1, 0, 1]).reshape(1, 4, 1, 1))
    assert flat(RemapLabels({1: 2}, masking_method="region")(Subject(seg=seg, region=region)).seg) == [1, 2, 1, 2]
    assert flat(RemapLabels({1: 2}, masking_method=(1, 2, 0, 0, 0, 0))(Subject(seg=seg)).seg) == [1, 2, 1, 1]


def test_remap_labels_inverse():
    transform = RemapLabels({1: 2, 3: 4}, masking_method="Left", include=["seg"])
    inverse = transform.inverse()
    assert inverse.remapping == {2: 1, 4: 3} and inverse.masking_method == "Left" and inverse.include == ("seg",)
    with pytest.raises(ValueError, match="cannot be inverted"):
        RemapLabels({1: 2, 3: 2}).inverse()


def test_remap_labels_bad_arguments():
    with pytest.raises(TypeError, match="remapping"):
        RemapLabels([(1, 2)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="remapping"):
        RemapLabels({1: "two"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="masking_method"):
        RemapLabels({1: 2}, masking_method=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'Middle'"):
        RemapLabels({1: 2}, masking_method="Middle")(Subject(seg=labels(1)))


# SequentialLabels --------------------------------------------------------------------------------


def test_sequential_labels_torchio_examples():
    assert flat(SequentialLabels()(Subject(seg=labels(0, 5, 10))).seg) == [0, 1, 2]
    assert flat(SequentialLabels()(Subject(seg=labels(7, 11, 99))).seg) == [0, 1, 2]


def test_sequential_labels_each_map_on_its_own():
    out = SequentialLabels()(Subject(a=labels(0, 4, 4), b=labels(2, 3, 9)))
    assert flat(out.a) == [0, 1, 1] and flat(out.b) == [0, 1, 2]


# KeepLargestComponent ----------------------------------------------------------------------------


def test_keep_largest_component_face_connectivity():
    tensor = torch.zeros(1, 4, 4, 1, dtype=torch.int16)
    tensor[0, 0, 0] = 1
    tensor[0, 1, 1] = 1  # touches (0, 0) diagonally only: a separate component
    tensor[0, 3, 1:4] = 1
    out = KeepLargestComponent()(Subject(seg=LabelMap(tensor=tensor))).seg
    assert out.data.dtype == torch.uint8
    expected = torch.zeros(1, 4, 4, 1, dtype=torch.uint8)
    expected[0, 3, 1:4] = 1
    assert torch.equal(out.data, expected)


def test_keep_largest_component_ties_go_to_first_voxel_with_i_fastest():
    tensor = torch.zeros(1, 4, 4, 1, dtype=torch.int64)
    tensor[0, 3, 0] = 1  # position 3 with I fastest, 12 with K fastest
    tensor[0, 0, 3] = 1
    out = KeepLargestComponent()(Subject(seg=LabelMap(tensor=tensor))).seg
    assert out.data[0, 3, 0, 0] == 1 and out.data.sum() == 1


def test_keep_largest_component_all_labels_are_foreground_and_empty_stays_empty():
    out = KeepLargestComponent()(Subject(seg=labels(1, 2, 0, 3))).seg
    assert flat(out) == [1, 1, 0, 0]
    assert flat(KeepLargestComponent()(Subject(seg=labels(0, 0))).seg) == [0, 0]


def test_keep_largest_component_3d():
    tensor = torch.zeros(1, 3, 3, 3)
    tensor[0, :, 0, 0] = 1
    tensor[0, 2, 2, :] = 1
    tensor[0, 2, 2, 2] = 1
    tensor[0, 0, 2, 2] = 1
    tensor[0, 1, 2, 2] = 1  # joins (0, 2, 2) to the K line: 5 voxels
    out = KeepLargestComponent()(Subject(seg=LabelMap(tensor=tensor))).seg
    assert int(out.data.sum()) == 5 and out.data[0, 0, 2, 2] == 1 and out.data[0, 0, 0, 0] == 0


def test_keep_largest_component_needs_one_channel():
    with pytest.raises(ValueError, match="one channel"):
        KeepLargestComponent()(Subject(seg=LabelMap(tensor=torch.zeros(2, 2, 2, 1))))


def test_label_transforms_keep_affine_and_repr():
    assert repr(RemapLabels({1: 2})) == "RemapLabels(remapping={1: 2})"
    assert repr(OneHot(include="seg")) == "OneHot(num_classes=-1, include=['seg'])"
    seg = LabelMap(tensor=torch.ones(1, 2, 2, 1), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])).numpy())
    for transform in (OneHot(), SequentialLabels(), KeepLargestComponent()):
        assert transform(Subject(seg=seg)).seg.spacing == (2.0, 2.0, 2.0)
