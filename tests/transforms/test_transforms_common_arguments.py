"""TorchIO's keywords every transform takes: p, copy, keys, keep, parse_input, label_keys."""

from __future__ import annotations

import pytest
import torch

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.transforms import Compose, Crop, CropOrPad, Pad, RescaleIntensity, ZNormalization
from torchpatch.transforms.augmentation import OneOf, RandomFlip


def _subject() -> Subject:
    return Subject(
        t1=ScalarImage(tensor=torch.arange(8.0).reshape(1, 2, 2, 2)), seg=LabelMap(tensor=torch.ones(1, 2, 2, 2))
    )


def test_preprocessing_p_zero_skips_and_p_one_applies() -> None:
    subject = _subject()
    assert Pad(1, p=0)(subject).t1.spatial_shape == (2, 2, 2)
    assert Pad(1, p=1)(subject).t1.spatial_shape == (4, 4, 4)


def test_preprocessing_draws_one_number_per_call_like_torchio() -> None:
    torch.manual_seed(0)
    Pad(1)(_subject())
    after = torch.rand(1)
    torch.manual_seed(0)
    torch.rand(1)
    assert torch.equal(after, torch.rand(1))


def test_keep_adds_the_original_images_under_new_names() -> None:
    out = RescaleIntensity((0, 1), keep={"t1": "t1_raw"})(_subject())
    assert torch.equal(out.t1_raw.data, _subject().t1.data)
    assert float(out.t1.data.max()) == 1.0


def test_keep_is_added_even_when_p_skips() -> None:
    out = ZNormalization(p=0, keep={"t1": "t1_raw"})(_subject())
    assert "t1_raw" in out


def test_keep_rejects_existing_names_and_bad_types() -> None:
    with pytest.raises(ValueError, match="keep would add 'seg'"):
        Pad(1, keep={"t1": "seg"})(_subject())
    with pytest.raises(TypeError, match="keep must be None or a mapping"):
        Pad(1, keep=["t1"])  # type: ignore[arg-type]


def test_keys_is_a_deprecated_include() -> None:
    with pytest.warns(FutureWarning, match="use include"):
        transform = Crop(1, keys=["t1"])
    assert transform.include == ("t1",)


def test_copy_is_accepted_and_the_input_is_never_modified() -> None:
    subject = _subject()
    out = RescaleIntensity((0, 1), copy=False)(subject)
    assert out is not subject
    assert float(subject.t1.data.max()) == 7.0


def test_dict_input_with_include_and_label_keys() -> None:
    data = {"img": torch.zeros(1, 2, 2, 1), "lab": torch.ones(1, 2, 2, 1), "age": 3}
    out = Pad((1, 0, 0), include=["img", "lab"], label_keys=["lab"])(data)
    assert out["img"].shape == (1, 4, 2, 1) and out["lab"].shape == (1, 4, 2, 1) and out["age"] == 3


def test_dict_input_without_include_is_refused() -> None:
    with pytest.raises(ValueError, match="needs include"):
        Pad(1)({"img": torch.zeros(1, 2, 2, 1)})


def test_parse_input_false_takes_subjects_only() -> None:
    with pytest.raises(TypeError, match="parse_input=False takes a Subject"):
        Pad(1, parse_input=False)(torch.zeros(1, 2, 2, 1))


def test_compose_and_one_of_take_transform_keywords() -> None:
    out = Compose([Pad(1)], keep={"t1": "t1_raw"})(_subject())
    assert out.t1_raw.spatial_shape == (2, 2, 2)
    out = OneOf([RandomFlip(flip_probability=1)], keep={"t1": "orig"})(_subject())
    assert "orig" in out


def test_bad_p_is_refused() -> None:
    with pytest.raises(ValueError, match="p must be a probability"):
        Pad(1, p=2)
    with pytest.raises(TypeError, match="p must be a number"):
        CropOrPad(2, p="x")  # type: ignore[arg-type]
