"""TorchIO's name, is_invertible() and inverse() of transforms (base, Compose, Pad/Crop, given parameters)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import torchpatch as tp
from torchpatch import LabelMap, ScalarImage, Subject

SPIKE = [[0.1, 0.2, 0.3]]

# name -> (args, kwargs), built the same way with TorchIO's and torchpatch's classes.
TRANSFORMS = {
    "Flip": ((0,), {}),
    "Affine": ((1.1, 10, 2), {}),
    "Pad": ((2,), {}),
    "Crop": ((1,), {}),
    "Noise": ((0, 1, 3), {}),
    "Gamma": ((1.5,), {}),
    "Swap": (((2, 2, 2), [((0, 0, 0), (3, 3, 3))]), {}),
    "Blur": (((1, 1, 1),), {}),
    "BiasField": (([0.1] * 10, 2), {}),
    "ElasticDeformation": ((np.zeros((5, 5, 5, 3)), 1), {}),
    "Spike": ((SPIKE, 1.0), {}),
    "Motion": (([[0, 0, 0]], [[0, 0, 0]], [0.5], "linear"), {}),
    "Ghosting": ((2, 1, 0.5, 0), {}),
    "RescaleIntensity": ((), {}),
    "ZNormalization": ((), {}),
    "Clamp": ((0, 1), {}),
    "RandomFlip": ((), {}),
    "RandomAffine": ((), {}),
    "RandomNoise": ((), {}),
    "ToCanonical": ((), {}),
    "Resample": ((2,), {}),
    "CropOrPad": ((8,), {}),
    "EnsureShapeMultiple": ((4,), {}),
    "RemapLabels": (({1: 2},), {}),
    "RemoveLabels": (([1],), {}),
    "Transpose": ((), {}),
    "OneHot": ((), {}),
}


def _subject() -> Subject:
    generator = torch.Generator().manual_seed(0)
    data = torch.rand(1, 10, 9, 8, generator=generator) + 0.5
    return Subject(t1=ScalarImage(tensor=data), seg=LabelMap(tensor=(data > 1).to(torch.uint8)))


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_is_invertible_where_torchio_says_so(name) -> None:
    tio = pytest.importorskip("torchio")
    args, kwargs = TRANSFORMS[name]
    theirs, ours = getattr(tio, name)(*args, **kwargs), getattr(tp, name)(*args, **kwargs)
    assert ours.name == theirs.name == name
    assert ours.is_invertible() == theirs.is_invertible()
    assert tp.Compose([ours]).is_invertible() == tio.Compose([theirs]).is_invertible()
    if not ours.is_invertible():
        with pytest.raises((RuntimeError, ValueError)):  # TorchIO's RemoveLabels gives one all the same
            ours.inverse()


def test_one_hot_decodes_as_torchio_does() -> None:
    tio = pytest.importorskip("torchio")
    data = torch.tensor([0, 3, 1, 2, 0, 3], dtype=torch.uint8).reshape(1, 3, 2, 1)
    ours, theirs = Subject(seg=LabelMap(tensor=data)), tio.Subject(seg=tio.LabelMap(tensor=data))
    encode_ours, encode_theirs = tp.OneHot(), tio.OneHot()
    decoded = encode_ours.inverse()(encode_ours(ours)).seg.data
    assert torch.equal(decoded, data)
    assert torch.equal(decoded.long(), encode_theirs.inverse()(encode_theirs(theirs)).seg.data.long())
    assert not encode_ours.invert_transform and encode_ours.inverse().inverse().invert_transform is False


@pytest.mark.parametrize("name", ["Flip", "Pad", "Noise", "Gamma", "Swap", "BiasField", "Transpose"])
def test_the_inverse_gives_the_input_back(name) -> None:
    args, kwargs = TRANSFORMS[name]
    transform = getattr(tp, name)(*args, **kwargs)
    subject = _subject()
    back = transform.inverse()(transform(subject))
    torch.testing.assert_close(back.t1.data, subject.t1.data, atol=1e-5, rtol=1e-5)
    assert torch.equal(back.seg.data, subject.seg.data) or name in ("Noise", "Gamma", "BiasField", "Swap")
    np.testing.assert_allclose(back.t1.affine, subject.t1.affine, atol=1e-9)
    assert transform.inverse().inverse() is transform or type(transform.inverse().inverse()) is type(transform)


def test_affine_and_crop_undo_themselves_where_voxels_stay() -> None:
    subject = _subject()
    shift = tp.Affine(1, 0, (2, 0, 0))
    torch.testing.assert_close(shift.inverse()(shift(subject)).t1.data[:, :7], subject.t1.data[:, :7])
    crop = tp.Crop(1)
    restored = crop.inverse()(crop(subject))
    assert type(crop.inverse()).__name__ == "Pad" and restored.spatial_shape == subject.spatial_shape
    torch.testing.assert_close(restored.t1.data[:, 1:-1, 1:-1, 1:-1], subject.t1.data[:, 1:-1, 1:-1, 1:-1])
    assert float(restored.t1.data[:, 0].abs().max()) == 0.0


def test_same_inverses_as_torchio() -> None:
    tio = pytest.importorskip("torchio")
    subject = _subject()
    theirs_subject = tio.Subject(t1=tio.ScalarImage(tensor=subject.t1.data.clone()))
    # Not Gamma: TorchIO's inverse multiplies by x ** (1 - gamma), giving x ** (2 - gamma), which does not undo
    # x ** gamma; torchpatch's raises to 1 / gamma (test_the_inverse_gives_the_input_back).
    for name in ("Flip", "Pad", "Crop", "Noise", "Affine"):
        args, kwargs = TRANSFORMS[name]
        ours = getattr(tp, name)(*args, **kwargs).inverse()(subject)
        theirs = getattr(tio, name)(*args, **kwargs).inverse()(theirs_subject)
        torch.testing.assert_close(ours.t1.data, theirs.t1.data, atol=1e-4, rtol=1e-4, msg=name)
        np.testing.assert_allclose(ours.t1.affine, theirs.t1.affine, atol=1e-6, err_msg=name)


def test_compose_inverts_in_reverse_and_skips_what_it_cannot() -> None:
    subject = _subject()
    chain = tp.Compose([tp.Pad(2), tp.Flip(1)])
    assert chain.is_invertible()
    inverse = chain.inverse()
    assert [type(t).__name__ for t in inverse] == ["Inverse", "Crop"]
    torch.testing.assert_close(inverse(chain(subject)).t1.data, subject.t1.data)
    mixed = tp.Compose([tp.RescaleIntensity((0, 1)), tp.Flip(0)])
    assert not mixed.is_invertible()
    with pytest.warns(RuntimeWarning, match="Skipping RescaleIntensity as it is not invertible"):
        assert len(mixed.inverse()) == 1
    with pytest.warns(RuntimeWarning) as caught:
        tp.Compose([tp.RandomFlip()]).inverse()
    assert [str(w.message) for w in caught] == [
        "Skipping RandomFlip as it is not invertible",
        "No invertible transforms found",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(mixed.inverse(warn=False)) == 1


def test_random_transforms_are_undone_through_the_history() -> None:
    subject = _subject()
    with pytest.raises(RuntimeError, match=r"RandomFlip is not invertible .*apply_inverse_transform"):
        tp.RandomFlip().inverse()
    flipped = tp.RandomFlip(axes=(0,), flip_probability=1)(subject)
    torch.testing.assert_close(flipped.apply_inverse_transform().t1.data, subject.t1.data)
