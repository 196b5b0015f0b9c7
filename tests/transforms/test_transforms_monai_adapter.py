"""MonaiAdapter: MONAI transforms inside torchpatch pipelines, compared with TorchIO's adapter where installed."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import torchpatch as tp
from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.transforms import Compose, MonaiAdapter, RescaleIntensity

AFFINE = np.array([[1.5, 0, 0, 3], [0, 1.0, 0, -2], [0, 0, 2.0, 1], [0, 0, 0, 1]])
T1 = torch.rand(1, 10, 12, 8, generator=torch.Generator().manual_seed(0))
SEG = (T1 > 0.5).long()


def _subject() -> Subject:
    return Subject(
        t1=ScalarImage(tensor=T1.clone(), affine=AFFINE), seg=LabelMap(tensor=SEG.clone(), affine=AFFINE), age=3
    )


def _cases() -> list[tuple[str, Callable[[], Any]]]:
    mt = pytest.importorskip("monai.transforms")
    return [
        ("NormalizeIntensity", lambda: mt.NormalizeIntensity()),
        ("NormalizeIntensityd", lambda: mt.NormalizeIntensityd(keys=["t1"])),
        ("Spacingd", lambda: mt.Spacingd(keys=["t1", "seg"], pixdim=(2.0, 2.0, 2.0), mode=("bilinear", "nearest"))),
        ("RandSpatialCropd", lambda: mt.RandSpatialCropd(keys=["t1", "seg"], roi_size=[5, 6, 4]).set_random_state(0)),
        ("CopyItemsd", lambda: mt.CopyItemsd(keys=["t1"], names=["t1_copy"])),
        ("Flip", lambda: mt.Flip(spatial_axis=0)),
    ]


@pytest.mark.parametrize("index", range(6))
def test_monai_transforms_give_torchio_adapter_numbers_and_affines(index: int) -> None:
    tio = pytest.importorskip("torchio")
    name, make = _cases()[index]
    theirs_in = tio.Subject(
        t1=tio.ScalarImage(tensor=T1.clone(), affine=AFFINE), seg=tio.LabelMap(tensor=SEG.clone(), affine=AFFINE), age=3
    )
    subject = _subject()
    theirs = tio.MonaiAdapter(make())(theirs_in)
    ours = MonaiAdapter(make())(subject)
    assert sorted(ours.keys()) == sorted(theirs.keys()), name
    for key, value in theirs.items():
        if isinstance(value, tio.Image):
            assert type(ours[key]).__name__ == type(value).__name__
            torch.testing.assert_close(ours[key].data.double(), value.data.double())
            np.testing.assert_allclose(ours[key].affine, value.affine, atol=1e-6)
            if isinstance(value, tio.ScalarImage):
                assert ours[key].data.dtype == value.data.dtype
        else:
            assert ours[key] == value
    # The input is as it was; nothing is recorded.
    assert torch.equal(subject.t1.data, T1) and np.array_equal(subject.t1.affine, AFFINE)
    assert "history" not in ours or ours["history"] == []


def test_an_in_place_array_transform_leaves_the_input_unless_copy_is_false() -> None:
    def double_in_place(data: torch.Tensor) -> torch.Tensor:
        return data.mul_(2)

    subject = _subject()
    out = MonaiAdapter(double_in_place, include=["t1"])(subject)
    assert torch.equal(subject.t1.data, T1) and torch.equal(out.t1.data, T1 * 2)
    assert torch.equal(out.seg.data, SEG)
    MonaiAdapter(double_in_place, include=["t1"], copy=False)(subject)
    assert torch.equal(subject.t1.data, T1 * 2)


def test_a_random_array_transform_on_several_images_warns() -> None:
    mt = pytest.importorskip("monai.transforms")
    with pytest.warns(UserWarning, match=r"RandFlip.*'t1', 'seg'.*RandFlipd"):
        MonaiAdapter(mt.RandFlip(prob=1.0))(_subject())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MonaiAdapter(mt.RandFlip(prob=1.0), include=["t1"])(_subject())


def test_inside_a_pipeline() -> None:
    mt = pytest.importorskip("monai.transforms")
    pipeline = Compose([tp.ToCanonical(), MonaiAdapter(mt.ScaleIntensityd(keys=["t1"])), RescaleIntensity((0, 2))])
    out = pipeline(_subject())
    assert float(out.t1.data.min()) == 0.0 and float(out.t1.data.max()) == 2.0
    assert repr(MonaiAdapter(mt.ScaleIntensity())).startswith("MonaiAdapter(<monai.transforms")


def test_bad_transforms_and_results_name_what_to_fix() -> None:
    mt = pytest.importorskip("monai.transforms")
    with pytest.raises(TypeError, match="callable"):
        MonaiAdapter(3)  # type: ignore[arg-type]
    samples = mt.RandSpatialCropSamplesd(keys=["t1"], roi_size=[4, 4, 4], num_samples=2)
    subject = Subject(t1=ScalarImage(tensor=T1), name="case3")
    with pytest.raises(TypeError, match=r"gave a list for subject 'case3'.*one mapping"):
        MonaiAdapter(samples)(subject)
    with pytest.raises(TypeError, match=r"ndarray for image 't1' of subject 'case3'"):
        MonaiAdapter(lambda data: data.numpy())(subject)
    with pytest.raises(ValueError, match=r"3D tensor of shape \(10, 12, 8\)"):
        MonaiAdapter(lambda data: data[0])(subject)
