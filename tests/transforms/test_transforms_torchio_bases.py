"""TorchIO's base classes for transforms of one's own, and the copy a TorchIO-style ``apply_transform`` gets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import torchpatch as tp
from torchpatch import LabelMap, ScalarImage, Subject, SubjectsDataset
from torchpatch.copying import input_for_apply
from torchpatch.transforms import (
    Compose,
    FourierTransform,
    IntensityTransform,
    LabelTransform,
    NormalizationTransform,
    RescaleIntensity,
    SpatialTransform,
    Transform,
)


def _volume(seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 6, 5, 4, generator=torch.Generator().manual_seed(seed)) * 10


def _segmentation() -> torch.Tensor:
    return (_volume(1) > 5).to(torch.int64)


def _scripts(library: Any) -> dict[str, type]:
    """The same transform classes, written once, on ``library``'s base classes (TorchIO's or torchpatch's)."""

    class Gain(library.IntensityTransform):
        def __init__(self, gain: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.gain = gain
            self.args_names = ["gain"]

        def apply_transform(self, subject: Any) -> Any:
            for name, image in self.get_images_dict(subject).items():
                image.set_data(image.data * self.get_parameter(self.gain, name))
            return subject

    class FlipFirstAxis(library.SpatialTransform):
        def apply_transform(self, subject: Any) -> Any:
            for image in self.get_images(subject):
                image.set_data(image.data.flip(1))
            return subject

    class Shift(library.LabelTransform):
        def apply_transform(self, subject: Any) -> Any:
            for image in self.get_images(subject):
                image.set_data(image.data + 1)
            return subject

    class MinMax(library.transforms.preprocessing.intensity.NormalizationTransform):
        def apply_normalization(self, subject: Any, image_name: str, mask: torch.Tensor) -> None:
            image = subject[image_name]
            inside = image.data[mask.expand_as(image.data)]
            image.set_data((image.data - inside.min()) / (inside.max() - inside.min()))

    class Mutating(library.Transform):
        def apply_transform(self, subject: Any) -> Any:
            subject["t1"].set_data(subject["t1"].data + 100)
            return subject

    return {"gain": Gain, "flip": FlipFirstAxis, "shift": Shift, "minmax": MinMax, "mutating": Mutating}


CASES: list[tuple[str, dict[str, Any]]] = [
    ("gain", {"gain": 3.0}),
    ("gain", {"gain": {"t1": 2.0, "t2": 0.5}}),
    ("gain", {"gain": 2.0, "include": ["t2"]}),
    ("flip", {}),
    ("flip", {"exclude": ["seg"]}),
    ("shift", {}),
    ("minmax", {}),
    ("minmax", {"masking_method": "seg"}),
    ("minmax", {"masking_method": "Left"}),
    ("minmax", {"masking_method": lambda x: x > 5}),
    ("mutating", {}),
]


@pytest.mark.parametrize(("kind", "arguments"), CASES)
def test_a_torchio_script_transform_gives_torchio_numbers_and_leaves_its_input(
    kind: str, arguments: dict[str, Any]
) -> None:
    tio = pytest.importorskip("torchio")
    images = {"t1": _volume(0), "t2": _volume(2)}
    theirs_in = tio.Subject(
        **{name: tio.ScalarImage(tensor=data.clone()) for name, data in images.items()},
        seg=tio.LabelMap(tensor=_segmentation()),
    )
    ours_in = Subject(
        **{name: ScalarImage(tensor=data.clone()) for name, data in images.items()},
        seg=LabelMap(tensor=_segmentation()),
    )
    theirs = _scripts(tio)[kind](**arguments)(theirs_in)
    ours = _scripts(tp)[kind](**arguments)(ours_in)
    for name in ("t1", "t2", "seg"):
        torch.testing.assert_close(ours[name].data, theirs[name].data)
    for name, data in images.items():  # the input is as it was, as TorchIO leaves it
        assert torch.equal(ours_in[name].data, data)
    assert torch.equal(ours_in.seg.data, _segmentation())


def test_copy_false_lets_the_transform_change_its_input_as_in_torchio() -> None:
    mutating = _scripts(tp)["mutating"]
    subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)))
    out = mutating(copy=False)(subject)
    assert float(subject.t1.data.max()) == 100.0 and out.t1 is subject.t1


def test_builtin_transforms_get_the_subject_itself() -> None:
    subject = Subject(t1=ScalarImage(tensor=_volume()))
    for transform in (RescaleIntensity(), Compose([RescaleIntensity()]), tp.RandomFlip(), tp.ZNormalization()):
        assert input_for_apply(transform, subject) is subject
    assert input_for_apply(_scripts(tp)["mutating"](), subject) is not subject


def test_a_mutating_transform_in_a_dataset_does_not_pile_up_epoch_after_epoch() -> None:
    mutating = _scripts(tp)["mutating"]
    dataset = SubjectsDataset([Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)))], transform=mutating())
    first = [float(dataset[0].t1.data.max()) for _ in range(3)]
    assert first == [100.0, 100.0, 100.0]


@pytest.mark.parametrize(
    "masking_method", [None, "seg", "Left", "anterior", lambda x: x > 4, NormalizationTransform.mean, 1, (1, 0, 2)]
)
def test_masks_from_masking_method_are_torchio_masks(masking_method: Any) -> None:
    tio = pytest.importorskip("torchio")
    data = _volume()
    theirs = tio.RescaleIntensity().get_mask_from_masking_method(
        masking_method, tio.Subject(t1=tio.ScalarImage(tensor=data), seg=tio.LabelMap(tensor=_segmentation())), data
    )
    subject = Subject(t1=ScalarImage(tensor=data), seg=LabelMap(tensor=_segmentation()))
    ours = RescaleIntensity().get_mask_from_masking_method(masking_method, subject, data)
    assert ours.shape == theirs.shape
    assert torch.equal(ours.bool(), theirs.bool())
    assert torch.equal(NormalizationTransform.ones(data), tio.RescaleIntensity().ones(data).bool())


def test_fourier_helpers_give_torchio_numbers() -> None:
    tio = pytest.importorskip("torchio")
    volume = torch.rand(5, 6, 7)
    spectrum = FourierTransform.fourier_transform(volume)
    torch.testing.assert_close(spectrum, tio.transforms.FourierTransform.fourier_transform(volume))
    torch.testing.assert_close(
        FourierTransform.inv_fourier_transform(spectrum),
        tio.transforms.FourierTransform.inv_fourier_transform(spectrum),
    )
    np.testing.assert_allclose(FourierTransform.inv_fourier_transform(spectrum).real.numpy(), volume.numpy(), atol=1e-6)


def test_what_each_base_class_selects() -> None:
    subject = Subject(t1=ScalarImage(tensor=_volume()), seg=LabelMap(tensor=_segmentation()))
    assert [type(i).__name__ for i in IntensityTransform().get_images(subject)] == ["ScalarImage"]
    assert list(LabelTransform().get_images_dict(subject)) == ["seg"]
    assert list(SpatialTransform().get_images_dict(subject)) == ["t1", "seg"]
    assert list(SpatialTransform(exclude="seg").get_images_dict(subject)) == ["t1"]
    assert isinstance(IntensityTransform(), Transform)


def test_arguments_are_dict_and_missing_normalization() -> None:
    gain = _scripts(tp)["gain"]
    assert gain({"t1": 2.0}).arguments_are_dict() and not gain(2.0).arguments_are_dict()
    mixed = gain(2.0)
    mixed.args_names = ["gain", "other"]
    mixed.other = {"t1": 1}
    with pytest.raises(ValueError, match="all dicts or none"):
        mixed.arguments_are_dict()
    with pytest.raises(NotImplementedError, match="apply_normalization"):
        NormalizationTransform()(Subject(t1=ScalarImage(tensor=_volume())))
    with pytest.raises(TypeError, match="masking_method"):
        NormalizationTransform(masking_method=2.5)  # type: ignore[arg-type]
