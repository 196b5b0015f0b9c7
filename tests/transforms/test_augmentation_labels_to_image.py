"""Images made from label maps (RandomLabelsToImage, LabelsToImage), compared with TorchIO where installed."""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.transforms import Compose
from torchpatch.transforms.augmentation import (
    LabelsToImage,
    RandomAffine,
    RandomBlur,
    RandomFlip,
    RandomLabelsToImage,
)
from torchpatch.transforms.augmentation.context import augment_patches
from torchpatch.transforms.augmentation.label_tissues import TABLE_SPAN, label_slots, labels_found


def _maps() -> dict[str, tuple[torch.Tensor, list[float]]]:
    """A categorical map (labels 0, 2, 4, 6), a partial-volume map and a one-hot map, with a mean per label."""
    generator = torch.Generator().manual_seed(0)
    categorical = torch.randint(0, 4, (1, 5, 6, 7), generator=generator) * 2
    partial = torch.rand(3, 5, 6, 7, generator=generator)
    partial[:, 0] = 0  # unlabelled voxels when discretized
    one_hot = torch.nn.functional.one_hot(categorical[0] // 2, 4).permute(3, 0, 1, 2).float()
    return {
        "categorical": (categorical, [1.0, 2.0, 3.0, 4.0]),
        "partial": (partial, [1.0, 2.0, 3.0]),
        "one_hot": (one_hot, [1.0, 2.0, 3.0, 4.0]),
    }


T1 = torch.rand(1, 5, 6, 7, generator=torch.Generator().manual_seed(1)) * 100

CASES = list(
    itertools.product(["categorical", "partial", "one_hot"], [None, [2, 4], [0, 6], [1]], [False, True], [False, True])
)


@pytest.mark.parametrize(("kind", "used_labels", "ignore_background", "discretize"), CASES)
@pytest.mark.parametrize("fill", [False, True])
def test_labels_to_image_gives_torchio_numbers(
    kind: str, used_labels: list[int] | None, ignore_background: bool, discretize: bool, fill: bool
) -> None:
    tio = pytest.importorskip("torchio")
    data, means = _maps()[kind]
    key = "t1" if fill else "image_from_labels"
    arguments: dict[str, Any] = {
        "mean": means,
        "std": [0.0] * len(means),
        "image_key": key,
        "used_labels": used_labels,
        "ignore_background": ignore_background,
        "discretize": discretize,
    }
    theirs = tio.LabelsToImage("seg", **arguments)(
        tio.Subject(t1=tio.ScalarImage(tensor=T1.clone()), seg=tio.LabelMap(tensor=data.clone()))
    )
    subject = Subject(t1=ScalarImage(tensor=T1.clone()), seg=LabelMap(tensor=data.clone()))
    ours = LabelsToImage("seg", **arguments)(subject)
    assert ours[key].data.dtype == theirs[key].data.dtype == torch.float32
    torch.testing.assert_close(ours[key].data, theirs[key].data)
    np.testing.assert_allclose(ours[key].affine, theirs[key].affine)
    # TorchIO writes -1 into its output's label map for unused labels; torchpatch leaves label maps alone.
    assert torch.equal(ours.seg.data, data)
    assert torch.equal(subject.t1.data, T1) and "image_from_labels" not in subject


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["categorical", "partial"])
def test_a_seed_draws_torchio_means_and_standard_deviations(seed: int, kind: str) -> None:
    tio = pytest.importorskip("torchio")
    data, _ = _maps()[kind]
    arguments: dict[str, Any] = {"default_mean": (0.2, 0.8), "default_std": (0.0, 0.3)}
    torch.manual_seed(seed)
    theirs = tio.RandomLabelsToImage("seg", **arguments)(tio.Subject(seg=tio.LabelMap(tensor=data)))
    torch.manual_seed(seed)
    ours = RandomLabelsToImage("seg", **arguments)(Subject(seg=LabelMap(tensor=data)))
    record = ours["history"][0]
    np.testing.assert_allclose(record["mean"], theirs.history[0].means, rtol=1e-6)
    np.testing.assert_allclose(record["std"], theirs.history[0].stds, rtol=1e-6)
    # Given ranges, one per label (a number is a fixed value); TorchIO reads them by label value, so labels 0..n-1.
    data = data // 2 if kind == "categorical" else data
    count = len(record["labels"])
    ranges: dict[str, Any] = {"mean": [(0, 1), 0.5, (2, 3), 4][:count], "std": [0] * count}
    torch.manual_seed(seed)
    theirs = tio.RandomLabelsToImage("seg", **ranges)(tio.Subject(seg=tio.LabelMap(tensor=data)))
    torch.manual_seed(seed)
    ours = RandomLabelsToImage("seg", **ranges)(Subject(seg=LabelMap(tensor=data)))
    torch.testing.assert_close(ours.image_from_labels.data, theirs.image_from_labels.data)


def test_each_label_gets_its_own_gaussian_tissue() -> None:
    labels = torch.arange(3).repeat_interleave(20000).reshape(1, 60000, 1, 1)
    subject = Subject(seg=LabelMap(tensor=labels))
    out = LabelsToImage("seg", mean=[0.0, 5.0, -2.0], std=[1.0, 0.5, 0.0])(subject)
    values = out.image_from_labels.data.flatten()
    for label, (mean, std) in enumerate([(0.0, 1.0), (5.0, 0.5), (-2.0, 0.0)]):
        part = values[labels.flatten() == label]
        assert abs(float(part.mean()) - mean) < 0.03
        assert abs(float(part.std()) - std) < 0.03
    # Partial volumes: each channel's own field, weighted by the fractions (variance sum of w^2 std^2).
    fractions = torch.full((2, 40000, 1, 1), 0.5)
    out = LabelsToImage("seg", mean=[2.0, 4.0], std=[1.0, 1.0])(Subject(seg=LabelMap(tensor=fractions)))
    values = out.image_from_labels.data.flatten()
    assert abs(float(values.mean()) - 3.0) < 0.02
    assert abs(float(values.std()) - 0.5**0.5) < 0.02


def test_the_record_replays_the_same_voxels_and_history_gives_the_transform() -> None:
    data, _ = _maps()["categorical"]
    subject = Subject(t1=ScalarImage(tensor=T1), seg=LabelMap(tensor=data))
    torch.manual_seed(4)
    out = RandomLabelsToImage(used_labels=[0, 2, 4, 6], image_key="t1")(subject)
    record = out["history"][0]
    assert record["label_key"] == "seg" and record["labels"] == [0, 2, 4, 6] and record["image_key"] == "t1"
    replayed = RandomLabelsToImage().apply_params(subject, {k: v for k, v in record.items() if k != "name"})
    assert torch.equal(replayed.t1.data, out.t1.data)
    assert torch.equal(out.get_composed_history()(subject).t1.data, out.t1.data)
    fixed = LabelsToImage("seg", mean=[0, 1, 2, 3], std=[0.1] * 4)
    once = fixed(subject)
    again = LabelsToImage.from_record(once["history"][0])
    assert repr(again) == repr(fixed)
    assert torch.equal(once.get_composed_history()(subject).image_from_labels.data, once.image_from_labels.data)
    assert not fixed.is_invertible()


def test_the_first_label_map_is_taken_when_no_key_is_given() -> None:
    data, _ = _maps()["categorical"]
    subject = Subject(t1=ScalarImage(tensor=T1), a=LabelMap(tensor=data), b=LabelMap(tensor=data + 1))
    out = RandomLabelsToImage(mean=[0, 1, 2, 3], std=[0, 0, 0, 0])(subject)
    assert out["history"][0]["label_key"] == "a"
    assert sorted(out.image_from_labels.data.unique().tolist()) == [0.0, 1.0, 2.0, 3.0]


def test_sparse_and_negative_and_float_label_values() -> None:
    values = torch.tensor([7, -3, 1000000, 7, -3]).reshape(1, 5, 1, 1)
    for data in (values, values.double(), values.to(torch.int16).clamp(-3, 30000)):
        labels = labels_found(data, False, False)
        means = [float(index + 1) for index in range(len(labels))]
        out = LabelsToImage("seg", mean=means, std=[0.0] * len(labels))(Subject(seg=LabelMap(tensor=data)))
        expected = [means[labels.index(int(value))] for value in data.flatten().tolist()]
        assert out.image_from_labels.data.flatten().tolist() == expected
        assert torch.equal(out.seg.data, data) and data.flatten().tolist()[:2] in ([7, -3], [7.0, -3.0])


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.integers(-5, 40).filter(lambda value: value != -1), min_size=1, max_size=30),
    wide=st.booleans(),
    used=st.lists(st.integers(-5, 40), max_size=5),
)
def test_label_lookup_matches_a_plain_dictionary(values: list[int], wide: bool, used: list[int]) -> None:
    data = torch.tensor(values).reshape(1, -1, 1, 1) * (TABLE_SPAN if wide else 1)
    labels = sorted(set(data.flatten().tolist()) | {u * (TABLE_SPAN if wide else 1) for u in used})
    present = labels_found(data, False, False)
    index, slot = label_slots(data, present)
    positions = slot[index.long()].tolist()
    assert positions == [present.index(v) for v in data.flatten().tolist()]
    index, slot = label_slots(data, labels[: len(labels) // 2])
    claimed = labels[: len(labels) // 2]
    expected = [claimed.index(v) if v in claimed else len(claimed) for v in data.flatten().tolist()]
    assert slot[index.long()].tolist() == expected


def test_patches_equal_the_whole_subject_cropped_and_later_transforms_see_the_new_image() -> None:
    data = torch.randint(0, 4, (1, 12, 12, 12), generator=torch.Generator().manual_seed(0))
    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 12, 12, 12)), seg=LabelMap(tensor=data))
    pipelines = [
        Compose([RandomFlip(axes=(0,)), RandomLabelsToImage("seg", std=[0] * 4)]),
        Compose([RandomLabelsToImage("seg", std=[0] * 4), RandomBlur(std=(0.5, 0.5))]),
        Compose([RandomLabelsToImage(std=[0] * 4), RandomAffine(degrees=10, default_pad_value=0)]),
    ]
    for pipeline in pipelines:
        torch.manual_seed(1)
        whole = pipeline(subject)
        torch.manual_seed(1)
        patch = augment_patches(pipeline, subject, [[2, 2, 2, 8, 8, 8]])
        new = patch.data["image_from_labels"][0]
        torch.testing.assert_close(new, whole.image_from_labels.data[:, 2:8, 2:8, 2:8], atol=1e-5, rtol=0)


def test_bad_arguments_name_what_to_fix() -> None:
    with pytest.raises(TypeError, match="label_key"):
        RandomLabelsToImage(label_key=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="used_labels must hold ints"):
        RandomLabelsToImage(used_labels=[1.5])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="used_labels"):
        RandomLabelsToImage(used_labels=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mean and used_labels"):
        RandomLabelsToImage(used_labels=[1, 2], mean=[0.5])
    with pytest.raises(ValueError, match=r"std\[0\] must be at least 0"):
        RandomLabelsToImage(std=[-1])
    with pytest.raises(ValueError, match="low <= high"):
        RandomLabelsToImage(default_mean=(1, 0))
    with pytest.raises(TypeError, match="discretize"):
        RandomLabelsToImage(discretize="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mean must be a sequence"):
        LabelsToImage("seg", mean=None, std=[0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="numbers only"):
        LabelsToImage("seg", mean=[(0, 1)], std=[0])  # type: ignore[list-item]


def test_bad_subjects_name_the_subject_and_images() -> None:
    data, _ = _maps()["categorical"]
    subject = Subject(t1=ScalarImage(tensor=T1), seg=LabelMap(tensor=data), name="case7")
    with pytest.raises(RuntimeError, match=r"mean must give a value for each label.*'seg'.*'case7'.*\[0, 2, 4, 6\]"):
        LabelsToImage("seg", mean=[0, 1], std=[0, 0, 0, 0])(subject)
    with pytest.raises(RuntimeError, match="no label map in subject 'case7'"):
        RandomLabelsToImage()(Subject(t1=ScalarImage(tensor=T1), name="case7"))
    with pytest.raises(TypeError, match="must name a label map"):
        RandomLabelsToImage("t1")(subject)
    with pytest.raises(TypeError, match="names a LabelMap"):
        RandomLabelsToImage("seg", image_key="seg")(subject)
    two = Subject(t1=ScalarImage(tensor=torch.cat([T1, T1])), seg=LabelMap(tensor=data), name="case8")
    with pytest.raises(ValueError, match=r"'t1' of subject 'case8'.*one channel.*\(2, 5, 6, 7\)"):
        RandomLabelsToImage("seg", image_key="t1")(two)


def test_repr_and_probability() -> None:
    transform = LabelsToImage("seg", mean=[0.5], std=[0.1], p=0.5)
    assert repr(transform).startswith("LabelsToImage(label_key='seg', mean=[0.5], std=[0.1]")
    assert "default_mean=(0.1, 0.9)" in repr(RandomLabelsToImage())
    data, _ = _maps()["categorical"]
    subject = Subject(seg=LabelMap(tensor=data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "image_from_labels" not in RandomLabelsToImage(p=0)(subject)


def test_labels_found_are_remembered_until_the_map_changes_in_place() -> None:
    data = torch.tensor([0, 2, 2, 5]).reshape(1, 4, 1, 1)
    assert labels_found(data, False, False) == [0, 2, 5]
    assert labels_found(data, False, False) == [0, 2, 5]
    data[0, 0] = 9
    assert labels_found(data, False, False) == [2, 5, 9]
    assert labels_found(data.clone(), False, False) == [2, 5, 9]
