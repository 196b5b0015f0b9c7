"""Lambda, Clamp, Mask, CopyAffine, EnsureShapeMultiple: TorchIO 1.x's documented behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchpatch as tp
from torchpatch import INTENSITY, LABEL, BoundingBoxes, LabelMap, ScalarImage, Subject
from torchpatch.transforms import Clamp, Compose, CopyAffine, EnsureShapeMultiple, Lambda, Mask


def line(values, dtype=torch.float32, cls=ScalarImage):
    return cls(tensor=torch.tensor(values, dtype=dtype).reshape(1, -1, 1, 1))


def flat(image) -> list:
    return image.data.flatten().tolist()


def negate(tensor: torch.Tensor) -> torch.Tensor:
    return -tensor


def test_names_are_at_the_top_as_in_torchio():
    assert (tp.Lambda, tp.Clamp, tp.Mask, tp.CopyAffine, tp.EnsureShapeMultiple) == (
        Lambda,
        Clamp,
        Mask,
        CopyAffine,
        EnsureShapeMultiple,
    )


# Lambda ------------------------------------------------------------------------------------------


def test_lambda_applies_to_every_type_by_default():
    out = Lambda(negate)(Subject(t1=line([1.0, 2.0]), seg=line([1, 0], torch.int64, LabelMap)))
    assert flat(out.t1) == [-1.0, -2.0] and flat(out.seg) == [-1, 0]


def test_lambda_changing_voxels_in_place_leaves_the_input_unless_copy_is_false():
    subject = Subject(t1=line([1.0, 2.0]))
    out = Lambda(lambda x: x.mul_(10))(subject)
    assert out.t1.data.flatten().tolist() == [10.0, 20.0]
    assert subject.t1.data.flatten().tolist() == [1.0, 2.0]
    Lambda(lambda x: x.mul_(10), copy=False)(subject)
    assert subject.t1.data.flatten().tolist() == [10.0, 20.0]


def test_lambda_types_to_apply():
    subject = Subject(t1=line([1.0, 2.0]), seg=line([1, 0], torch.int64, LabelMap))
    out = Lambda(lambda x: 1 - x, types_to_apply=[LABEL])(subject)
    assert out.t1 is subject.t1 and flat(out.seg) == [0, 1]
    out = Lambda(negate, types_to_apply=[INTENSITY], exclude="t1")(subject)
    assert out.t1 is subject.t1 and out.seg is subject.seg


def test_lambda_may_change_channels_and_keeps_affine():
    image = ScalarImage(tensor=torch.ones(1, 2, 2, 1), affine=np.diag([3.0, 3.0, 3.0, 1.0]))
    out = Lambda(lambda x: torch.cat([x, 2 * x]))(Subject(t1=image)).t1
    assert out.shape == (2, 2, 2, 1) and out.spacing == (3.0, 3.0, 3.0)


def test_lambda_errors():
    subject = Subject(t1=line([1.0]))
    with pytest.raises(TypeError, match=r"must return a torch\.Tensor, got ndarray for image 't1'"):
        Lambda(lambda x: x.numpy())(subject)
    with pytest.raises(ValueError, match=r"4D tensor .* got shape \(1,\)"):
        Lambda(lambda x: x.flatten())(subject)
    with pytest.raises(TypeError, match="callable"):
        Lambda(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="types_to_apply"):
        Lambda(negate, types_to_apply=["scalar"])
    with pytest.raises(TypeError, match="types_to_apply"):
        Lambda(negate, types_to_apply=INTENSITY)  # type: ignore[arg-type]


def test_lambda_in_compose_leaves_input_alone():
    subject = Subject(t1=line([1.0, 2.0]))
    Compose([Lambda(negate)])(subject)
    assert flat(subject.t1) == [1.0, 2.0]


# Clamp -------------------------------------------------------------------------------------------


def test_clamp_bounds_and_none():
    subject = Subject(ct=line([-3000, -500, 0, 2000], torch.int16))
    assert flat(Clamp(-1000, 1000)(subject).ct) == [-1000, -500, 0, 1000]
    assert Clamp(-1000, 1000)(subject).ct.data.dtype == torch.int16
    assert flat(Clamp(out_min=0)(subject).ct) == [0, 0, 0, 2000]
    assert flat(Clamp(out_max=0)(subject).ct) == [-3000, -500, 0, 0]
    assert Clamp()(subject).ct is subject.ct


def test_clamp_fractional_bounds_promote_integers_like_torch():
    out = Clamp(1.5, 3.2)(Subject(a=line(list(range(6)), torch.int16))).a
    assert out.data.dtype == torch.float32
    assert flat(out) == pytest.approx([1.5, 1.5, 2.0, 3.0, 3.2, 3.2])


def test_clamp_skips_label_maps_and_checks_arguments():
    seg = line([0, 5], torch.int64, LabelMap)
    assert Clamp(0, 1)(Subject(seg=seg)).seg is seg
    with pytest.raises(ValueError, match="out_min=2 and out_max=1"):
        Clamp(2, 1)
    with pytest.raises(TypeError, match="out_min"):
        Clamp("0")  # type: ignore[arg-type]


# Mask --------------------------------------------------------------------------------------------


def test_mask_by_label_map_and_labels():
    subject = Subject(t1=line([1.0, 1.0, 1.0, 1.0]), brain=line([0, 1, 2, 0], torch.int64, LabelMap))
    assert flat(Mask("brain")(subject).t1) == [0.0, 1.0, 1.0, 0.0]
    assert flat(Mask("brain", outside_value=-1, labels=[2])(subject).t1) == [-1.0, -1.0, 1.0, -1.0]
    assert Mask("brain")(subject).brain is subject.brain


def test_mask_one_channel_mask_applies_to_every_channel():
    rgb = ScalarImage(tensor=torch.ones(3, 2, 1, 1))
    out = Mask("m")(Subject(rgb=rgb, m=line([1, 0], torch.int64, LabelMap))).rgb
    assert out.data[:, :, 0, 0].tolist() == [[1.0, 0.0]] * 3


def test_mask_callable_gets_the_voxels_as_they_are():
    seen = []

    def above_one(tensor):
        seen.append(tensor.dtype)
        return tensor > 1

    out = Mask(above_one)(Subject(a=line([0, 1, 2, 3], torch.int16))).a
    assert seen == [torch.int16] and out.data.dtype == torch.int16 and flat(out) == [0, 0, 2, 3]


def test_mask_anatomical_halves_and_bounds():
    image = ScalarImage(tensor=torch.ones(1, 4, 4, 4))
    subject = Subject(a=image)
    assert Mask("Left")(subject).a.data[0, :2].all() and not Mask("Left")(subject).a.data[0, 2:].any()
    assert not Mask("Anterior")(subject).a.data[0, :, :2].any() and Mask("Anterior")(subject).a.data[0, :, 2:].all()
    assert not Mask("superior")(subject).a.data[0, :, :, :2].any()
    assert int(Mask(1)(subject).a.data.sum()) == 8
    assert flat(Mask((1, 2, 0, 0, 0, 0))(Subject(a=line([1.0] * 4))).a) == [0.0, 1.0, 0.0, 0.0]
    # An int on a depth-one 2D image leaves the depth alone, as Crop does.
    assert int(Mask(1)(Subject(a=ScalarImage(tensor=torch.ones(1, 4, 4, 1)))).a.data.sum()) == 4


def test_mask_errors_name_the_culprit():
    with pytest.raises(ValueError, match=r"mask 'm' has spatial shape \(3, 1, 1\) but image 'a'"):
        Mask("m")(Subject(a=line([1.0, 1.0]), m=line([1, 1, 1], torch.int64, LabelMap)))
    with pytest.raises(ValueError, match=r"outside_value -1 does not fit the torch\.uint8 voxels of image 'a'"):
        Mask("Left", outside_value=-1)(Subject(a=line([1, 2], torch.uint8)))
    with pytest.raises(ValueError, match="neither an image"):
        Mask("brain")(Subject(a=line([1.0])))
    with pytest.raises(TypeError, match="labels"):
        Mask("m", labels=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mask of shape"):
        Mask(lambda x: torch.ones(2, 2, dtype=torch.bool))(Subject(a=line([1.0, 1.0, 1.0])))


# CopyAffine --------------------------------------------------------------------------------------


def test_copy_affine_makes_one_grid():
    affine = np.diag([0.5, 0.6, 0.7, 1.0])
    t1 = ScalarImage(tensor=torch.rand(1, 3, 3, 3), affine=affine)
    t2 = ScalarImage(tensor=torch.rand(1, 3, 3, 3), affine=affine.astype(np.float16).astype(np.float64))
    subject = Subject(t1=t1, t2=t2, seg=LabelMap(tensor=torch.zeros(1, 3, 3, 3)))
    with pytest.raises(ValueError):
        subject.check_consistent_space(tolerance=1e-9)
    fixed = CopyAffine("t1")(subject)
    fixed.check_consistent_space(tolerance=0)
    assert fixed.t1 is t1 and torch.equal(fixed.t2.data, t2.data)
    assert not np.array_equal(t2.affine, affine)  # the input is unchanged


def test_copy_affine_errors():
    with pytest.raises(TypeError, match="target"):
        CopyAffine(1)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="CopyAffine target 'ref'"):
        CopyAffine("ref")(Subject(a=line([1.0])))


# EnsureShapeMultiple -----------------------------------------------------------------------------


def test_ensure_shape_multiple_torchio_colin_shapes():
    subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 181, 217, 181)))
    assert EnsureShapeMultiple(8)(subject).t1.spatial_shape == (184, 224, 184)
    assert EnsureShapeMultiple(8, method="crop")(subject).t1.spatial_shape == (176, 216, 176)


def test_ensure_shape_multiple_2d_keeps_depth_one_unless_asked():
    subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 5, 6, 1)))
    assert EnsureShapeMultiple(4)(subject).t1.spatial_shape == (8, 8, 1)
    assert EnsureShapeMultiple((4, 4, 4))(subject).t1.spatial_shape == (8, 8, 4)
    assert EnsureShapeMultiple(8, method="crop")(subject).t1.spatial_shape == (1, 1, 1)


def test_ensure_shape_multiple_pads_centred_like_crop_or_pad_and_moves_boxes():
    image = ScalarImage(tensor=torch.ones(1, 5, 4, 1))
    boxes = BoundingBoxes([[1, 1, 0, 3, 3, 1]], "xyzxyz", (5, 4, 1))
    out = EnsureShapeMultiple(4)(Subject(t1=image, boxes=boxes))
    assert out.t1.spatial_shape == (8, 4, 1)
    # 3 voxels of padding on I: 2 before (the odd one goes first, as in CropOrPad), 1 after.
    assert out.t1.origin == (-2.0, 0.0, 0.0)
    assert out.boxes.data[0, 0].item() == 3 and out.boxes.data[0, 3].item() == 5


def test_ensure_shape_multiple_errors():
    with pytest.raises(ValueError, match="method"):
        EnsureShapeMultiple(8, method="resize")
    with pytest.raises(ValueError, match="at least 1"):
        EnsureShapeMultiple(0)
    with pytest.raises(TypeError, match="target_multiple"):
        EnsureShapeMultiple(2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one spatial shape"):
        EnsureShapeMultiple(4)(Subject(a=line([1.0]), b=line([1.0, 2.0])))


def test_reprs():
    assert repr(Clamp(-1, 1)) == "Clamp(out_min=-1, out_max=1)"
    assert repr(EnsureShapeMultiple(8)) == "EnsureShapeMultiple(target_multiple=8, method='pad')"
    assert repr(CopyAffine("t1")) == "CopyAffine(target='t1')"
    assert repr(Mask("brain")) == "Mask(masking_method='brain', outside_value=0)"
