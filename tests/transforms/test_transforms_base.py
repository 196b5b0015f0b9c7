"""Transform base class and Compose: selection, immutability, errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.cache import CachedLabelMap, LabelIndex
from torchpatch.transforms import (
    Compose,
    Crop,
    CropOrPad,
    Pad,
    Resample,
    RescaleIntensity,
    ToCanonical,
    Transform,
    ZNormalization,
)
from torchpatch.transforms.base import rebuild_image


class AddOne(Transform):
    def apply_image(self, image, name, subject):
        return rebuild_image(image, image.data + 1)


def make_subject() -> Subject:
    affine = np.diag([-1.0, -2.0, 1.5, 1.0])
    t1 = ScalarImage(tensor=torch.arange(60, dtype=torch.float32).reshape(1, 3, 4, 5), affine=affine)
    t2 = ScalarImage(tensor=torch.arange(60, dtype=torch.int16).reshape(1, 3, 4, 5), affine=affine)
    seg = LabelMap(tensor=(torch.arange(60).reshape(1, 3, 4, 5) % 3).to(torch.uint8), affine=affine)
    return Subject(t1=t1, t2=t2, seg=seg, subject_id="sub-01")


def test_transform_applies_to_every_image_by_default():
    subject = make_subject()
    out = AddOne()(subject)
    assert all(float(out[name].data.min()) == 1 for name in ("t1", "t2"))
    assert int(out.seg.data.max()) == 3


def test_transform_include_selects_images_and_passes_others_through():
    subject = make_subject()
    out = AddOne(include=["t1"])(subject)
    assert float(out.t1.data.min()) == 1
    assert out.t2 is subject.t2
    assert out.seg is subject.seg


def test_transform_include_accepts_a_single_name():
    out = AddOne(include="t2")(make_subject())
    assert float(out.t2.data.min()) == 1
    assert float(out.t1.data.min()) == 0


def test_transform_exclude_skips_images():
    subject = make_subject()
    out = AddOne(exclude=("seg", "t2"))(subject)
    assert out.seg is subject.seg and out.t2 is subject.t2
    assert float(out.t1.data.min()) == 1


def test_transform_keeps_metadata_and_returns_a_new_subject():
    subject = make_subject()
    out = AddOne()(subject)
    assert out is not subject
    assert out["subject_id"] == "sub-01"


def test_transform_rejects_include_and_exclude_together():
    with pytest.raises(ValueError, match=r"include or exclude, not both.*\['t1'\].*\['seg'\]"):
        AddOne(include=["t1"], exclude=["seg"])


@pytest.mark.parametrize("names", [3, ["t1", 2], {"t1": 1}])
def test_transform_rejects_names_that_are_not_strings(names):
    with pytest.raises(TypeError, match="include must be None, an image name or a sequence"):
        AddOne(include=names)


def test_transform_include_of_a_missing_image_names_the_subject():
    with pytest.raises(KeyError, match=r"\['flair'\].*sub-01"):
        AddOne(include=["flair"])(make_subject())


def test_transform_called_on_an_image_returns_an_image_like_torchio():
    image = ScalarImage(tensor=torch.zeros(1, 2, 2, 1), affine=np.diag([2.0, 1.0, 1.0, 1.0]))
    out = AddOne()(image)
    assert isinstance(out, ScalarImage)
    assert torch.equal(out.data, torch.ones(1, 2, 2, 1)) and np.array_equal(out.affine, image.affine)
    assert torch.equal(image.data, torch.zeros(1, 2, 2, 1))  # the input is left unchanged


def test_transforms_and_compose_called_on_a_label_map_return_a_label_map():
    seg = LabelMap(tensor=torch.tensor([0, 1, 1, 2], dtype=torch.uint8).reshape(1, 4, 1, 1))
    out = Compose([Pad(1), Resample((2, 1, 1))])(seg)
    assert isinstance(out, LabelMap) and out.dtype == torch.uint8
    assert out.spatial_shape == (3, 3, 1)  # padded to (6, 3, 1), then halved along I
    # Functions in a Compose still receive a subject.
    seen = []
    Compose([lambda subject: seen.append(type(subject).__name__) or subject])(seg)
    assert seen == ["Subject"]


def test_transform_called_on_a_tensor_is_a_type_error():
    with pytest.raises(TypeError, match=r"takes a Subject, got Tensor \(a bare Image, or a 4D"):
        AddOne()(torch.zeros(2, 2, 1))


def test_transform_without_apply_image_says_what_to_implement():
    with pytest.raises(NotImplementedError, match="Transform must implement apply_image"):
        Transform()(make_subject())


def test_intensity_transform_with_include_naming_a_label_map_is_an_error():
    with pytest.raises(ValueError, match=r"intensity images.*\['seg'\].*sub-01"):
        ZNormalization(include=["t1", "seg"])(make_subject())


def test_rebuild_image_keeps_class_metadata_and_new_dtype():
    image = ScalarImage(tensor=torch.zeros(1, 2, 2, 1), dtype=torch.int16, modality="ct")
    new = rebuild_image(image, torch.full((1, 2, 2, 1), 0.5), np.diag([2.0, 2.0, 2.0, 1.0]))
    assert isinstance(new, ScalarImage)
    assert new.dtype == torch.float32 and float(new.data[0, 0, 0, 0]) == 0.5
    assert new["modality"] == "ct"
    assert new.spacing == (2.0, 2.0, 2.0)
    assert image.dtype == torch.int16 and image.spacing == (1.0, 1.0, 1.0)


def test_compose_applies_transforms_in_order_with_a_plain_lambda():
    pipeline = Compose([Pad(1), lambda s: s.with_images({}, padded_shape=s.t1.spatial_shape), Crop(1)])
    out = pipeline(make_subject())
    assert out["padded_shape"] == (5, 6, 7)
    assert out.t1.spatial_shape == (3, 4, 5)
    assert torch.equal(out.t1.data, make_subject().t1.data)


def test_compose_of_nothing_returns_an_equal_new_subject():
    subject = make_subject()
    out = Compose([])(subject)
    assert out is not subject
    assert out.t1 is subject.t1


def test_compose_names_the_position_of_a_non_callable():
    with pytest.raises(TypeError, match=r"transforms\[1\] must be a callable Subject -> Subject, got int 5"):
        Compose([Pad(1), 5])


def test_compose_of_a_single_transform_suggests_a_list():
    with pytest.raises(TypeError, match=r"sequence of callables, got Pad; wrap a single transform"):
        Compose(Pad(1))


def test_compose_names_a_step_that_does_not_return_a_subject():
    with pytest.raises(TypeError, match=r"transforms\[0\] .* must return a Subject, got NoneType for subject 'sub-01'"):
        Compose([lambda s: None])(make_subject())


def test_compose_is_a_sequence_with_a_readable_repr():
    pipeline = Compose([Pad(1), Crop((1, 2, 3))])
    assert len(pipeline) == 2
    assert isinstance(pipeline[1], Crop)
    assert [type(t).__name__ for t in pipeline] == ["Pad", "Crop"]
    assert repr(pipeline) == "Compose([Pad(padding=1, padding_mode=0), Crop(cropping=(1, 1, 2, 2, 3, 3))])"


def test_transform_repr_shows_arguments():
    assert repr(Resample(2.0, include=["t1"])) == (
        "Resample(target=(2.0, 2.0, 2.0), image_interpolation='linear', label_interpolation='nearest', include=['t1'])"
    )
    assert repr(ZNormalization(masking_method="seg")) == "ZNormalization(masking_method='seg')"


ALL_TRANSFORMS = [
    ToCanonical(),
    Resample(2.0),
    Resample("t2"),
    Pad((1, 2, 0, 1, 2, 0), padding_mode="reflect"),
    Crop(1),
    CropOrPad((4, 2, 6), mask_name="seg"),
    RescaleIntensity((-1, 1), percentiles=(1, 99)),
    ZNormalization(masking_method="seg"),
]


@pytest.mark.parametrize("transform", ALL_TRANSFORMS, ids=lambda t: type(t).__name__)
def test_transforms_never_modify_the_input_subject(transform):
    subject = make_subject()
    before = {name: (image.data.clone(), image.affine.copy()) for name, image in subject.images.items()}
    out = transform(subject)
    assert out is not subject
    for name, image in subject.images.items():
        assert torch.equal(image.data, before[name][0])
        assert image.data.dtype == before[name][0].dtype
        assert np.array_equal(image.affine, before[name][1])
    # In-place changes to the output do not reach the input either.
    for image in out.images.values():
        if image is not subject.images[_name_of(out, image)]:
            image.data.zero_()
    for name, image in subject.images.items():
        assert torch.equal(image.data, before[name][0])


def _name_of(subject: Subject, image) -> str:
    return next(name for name, candidate in subject.images.items() if candidate is image)


@pytest.mark.parametrize("transform", ALL_TRANSFORMS, ids=lambda t: type(t).__name__)
def test_transforms_survive_a_pickle_round_trip(transform):
    copy = pickle.loads(pickle.dumps(transform))
    subject = make_subject()
    expected, actual = transform(subject), copy(subject)
    for name in subject.images:
        assert torch.equal(expected[name].data, actual[name].data)


def test_subclass_without_super_init_still_works():
    class Double(Transform):
        def __init__(self, factor):
            self.factor = factor

        def apply_image(self, image, name, subject):
            return rebuild_image(image, image.data * self.factor)

    out = Double(2)(make_subject())
    assert float(out.t1.data.max()) == 118.0


def with_cached_labels(subject: Subject, folder: Path) -> Subject:
    """``subject`` whose label map carries the decode-once cache's class positions."""
    labels = subject.seg.data.numpy()
    index = LabelIndex.build(labels, folder / "seg")
    seg = CachedLabelMap(tensor=subject.seg.data, affine=subject.seg.affine, label_index=index)
    return subject.with_images({"seg": seg})


@pytest.mark.parametrize("transform", [Crop(1), Pad(1), Resample(2.0), CropOrPad((2, 2, 2)), ToCanonical()])
def test_spatial_transforms_drop_cached_label_positions(transform, tmp_path):
    subject = with_cached_labels(make_subject(), tmp_path)
    index = subject.seg.label_index
    out = transform(subject)
    assert out.seg.label_index is None
    assert subject.seg.label_index is index


def test_intensity_transforms_keep_cached_label_positions_of_untouched_label_maps(tmp_path):
    subject = with_cached_labels(make_subject(), tmp_path)
    index = subject.seg.label_index
    assert ZNormalization()(subject).seg.label_index is index
