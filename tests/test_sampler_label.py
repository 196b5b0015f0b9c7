"""LabelSampler: class frequencies at patch centres, absent classes, one-hot maps, errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from torchpatch import LOCATION, LabelMap, LabelSampler, ScalarImage, Subject
from torchpatch.datasets import make_phantom
from torchpatch.sampler import label as label_module
from torchpatch.testing import check_sampler

AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])
AFFINE[:3, 3] = (-10.0, 4.0, 7.5)


def random_labels(shape: tuple[int, int, int], classes: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, classes, (1, *shape), generator=generator, dtype=torch.uint8)


def make_subject(labels: torch.Tensor, channels: int = 1, name: str = "sub-label") -> Subject:
    shape = tuple(labels.shape[1:])
    generator = torch.Generator().manual_seed(0)
    return Subject(
        t1=ScalarImage(tensor=torch.rand(channels, *shape, generator=generator), affine=AFFINE),
        seg=LabelMap(tensor=labels, affine=AFFINE),
        subject_id=name,
    )


def labels_only(labels: torch.Tensor) -> Subject:
    """The label map alone: statistics draw thousands of patches, and each image costs a crop."""
    return Subject(seg=LabelMap(tensor=labels), subject_id="sub-stats")


def centre_of(patch: Subject) -> tuple[int, int, int]:
    location = patch[LOCATION].tolist()
    i, j, k = (a + (b - a) // 2 for a, b in zip(location[:3], location[3:]))
    return (i, j, k)


def centre_classes(sampler: LabelSampler, subject: Subject, draws: int, seed: int = 0) -> Counter:
    volume = subject["seg"].data
    volume = volume.argmax(dim=0) if volume.shape[0] > 1 else volume[0]
    return Counter(int(volume[centre_of(p)]) for p in sampler(subject, draws, generator=seed))


def assert_close_frequencies(counts: Counter, expected: dict[int, float], tolerance: float = 0.03) -> None:
    draws = sum(counts.values())
    assert set(counts) <= set(expected), (counts, expected)
    for key, probability in expected.items():
        assert abs(counts[key] / draws - probability) <= tolerance, (key, counts, expected)


# Contract ----------------------------------------------------------------------------------


def test_contract_on_3d_phantom():
    phantom = make_phantom((24, 24, 24), seed=1)
    patches = check_sampler(LabelSampler(6, "label", {0: 1, 1: 1, 2: 1}), phantom, num_patches=16)
    assert patches[0]["subject_id"] == "phantom-001"


def test_contract_with_anisotropic_patch_and_default_label_map():
    subject = make_subject(random_labels((10, 12, 9), 3))
    check_sampler(LabelSampler((3, 6, 2)), subject, num_patches=16)


def test_contract_on_2d_rgb_subject():
    subject = make_subject(random_labels((20, 16, 1), 3), channels=3)
    patches = check_sampler(LabelSampler(5, "seg", {1: 1, 2: 3}), subject)
    assert patches[0]["t1"].shape == (3, 5, 5, 1)


def test_contract_with_one_hot_label_map():
    one_hot = torch.nn.functional.one_hot(random_labels((8, 9, 10), 3)[0].long(), 3).permute(3, 0, 1, 2)
    check_sampler(LabelSampler(4, "seg", {1: 1, 2: 1}), make_subject(one_hot.to(torch.uint8)))


# Hand-computed cases ---------------------------------------------------------------------------


def test_single_labelled_voxel_is_always_the_centre():
    # Patch 3 on 8 voxels: class 1 at index 5 -> start 5 - 3 // 2 = 4.
    labels = torch.zeros(1, 8, 1, 1, dtype=torch.uint8)
    labels[0, 5] = 1
    patches = list(LabelSampler((3, 1, 1), "seg", {1: 1})(labels_only(labels), 50, generator=0))
    assert {tuple(p[LOCATION].tolist()) for p in patches} == {(4, 0, 0, 7, 1, 1)}


def test_labelled_voxels_where_the_patch_does_not_fit_are_ignored():
    # Patch 4 on 8 voxels: valid centres 2..6. Class 1 at 0, 1, 7 (invalid) and 3 (valid, start 1).
    labels = torch.zeros(1, 8, 1, 1, dtype=torch.uint8)
    labels[0, [0, 1, 3, 7]] = 1
    patches = list(LabelSampler((4, 1, 1), "seg", {1: 1})(labels_only(labels), 100, generator=0))
    assert {int(p[LOCATION][0]) for p in patches} == {1}


def test_zero_weight_class_is_never_a_centre():
    labels = random_labels((6, 6, 1), 2, seed=3)
    counts = centre_classes(LabelSampler(1, "seg", {0: 0, 1: 1}), labels_only(labels), 300)
    assert set(counts) == {1}


# Statistics ------------------------------------------------------------------------------------------


def test_label_probabilities_set_the_centre_class_frequencies():
    labels = random_labels((12, 12, 12), 3, seed=1)
    counts = centre_classes(LabelSampler(3, "seg", {0: 1, 1: 1, 2: 2}), labels_only(labels), 4000)
    assert_close_frequencies(counts, {0: 0.25, 1: 0.25, 2: 0.5})


def test_classes_absent_from_a_subject_are_skipped_and_the_rest_renormalised():
    labels = random_labels((12, 12, 1), 3, seed=2)
    labels[labels == 2] = 0  # class 2 is absent; 7 never existed
    sampler = LabelSampler(3, "seg", {0: 1, 1: 3, 2: 4, 7: 10})
    counts = centre_classes(sampler, labels_only(labels), 4000)
    assert_close_frequencies(counts, {0: 0.25, 1: 0.75})


def test_none_is_uniform_over_foreground_voxels_never_background():
    # Five foreground voxels of two classes with different sizes: each centre 1/5.
    labels = torch.zeros(1, 7, 7, 1, dtype=torch.uint8)
    foreground = [(1, 1), (1, 2), (2, 5), (4, 4), (5, 1)]
    for (i, j), value in zip(foreground, [1, 1, 1, 2, 2]):
        labels[0, i, j, 0] = value
    draws = 4000
    counts = Counter(centre_of(p)[:2] for p in LabelSampler(3, "seg")(labels_only(labels), draws, generator=3))
    assert set(counts) == set(foreground)
    for cell in foreground:
        assert abs(counts[cell] / draws - 0.2) <= 0.03, counts


@pytest.mark.parametrize("seed", [0, 1])
def test_six_classes_sort_branch_equals_the_scan_branch(monkeypatch: pytest.MonkeyPatch, seed: int):
    labels = random_labels((10, 11, 12), 7, seed=seed)  # classes 0..6
    probabilities = {1: 1, 2: 2, 3: 3, 4: 1, 5: 2, 6: 1}
    assert len(probabilities) > label_module._SCANS  # the stable-sort branch
    subject = labels_only(labels)
    sorted_branch = [p[LOCATION].tolist() for p in LabelSampler(3, "seg", probabilities)(subject, 300, generator=seed)]
    monkeypatch.setattr(label_module, "_SCANS", 100)  # force one scan per class
    scan_branch = [p[LOCATION].tolist() for p in LabelSampler(3, "seg", probabilities)(subject, 300, generator=seed)]
    assert sorted_branch == scan_branch


def test_six_classes_frequencies():
    labels = random_labels((10, 10, 10), 6, seed=4)
    probabilities = {0: 1, 1: 1, 2: 1, 3: 1, 4: 2, 5: 2}
    counts = centre_classes(LabelSampler(2, "seg", probabilities), labels_only(labels), 4000, seed=5)
    assert_close_frequencies(counts, {c: w / 8 for c, w in probabilities.items()})


def test_one_hot_map_gives_the_patches_of_its_argmax():
    labels = random_labels((9, 9, 9), 4, seed=6)
    one_hot = torch.nn.functional.one_hot(labels[0].long(), 4).permute(3, 0, 1, 2).to(torch.uint8)
    probabilities = {1: 1, 3: 2}
    plain = [p[LOCATION].tolist() for p in LabelSampler(3, "seg", probabilities)(labels_only(labels), 40, generator=7)]
    hot = [p[LOCATION].tolist() for p in LabelSampler(3, "seg", probabilities)(labels_only(one_hot), 40, generator=7)]
    assert plain == hot
    counts = centre_classes(LabelSampler(3, "seg", probabilities), labels_only(one_hot), 3000, seed=8)
    assert_close_frequencies(counts, {1: 1 / 3, 3: 2 / 3})


def test_int32_labels_beyond_uint8_and_negative_classes():
    labels = torch.zeros(1, 6, 6, 1, dtype=torch.int32)
    labels[0, 2, 2, 0] = 1000
    labels[0, 3, 3, 0] = -4
    for probabilities in ({1000: 1, -4: 1}, {1000: 1, -4: 1, 1: 1, 2: 1, 3: 1, 5: 1}):
        centres = {centre_of(p) for p in LabelSampler(1, "seg", probabilities)(labels_only(labels), 200, generator=0)}
        assert centres == {(2, 2, 0), (3, 3, 0)}


def test_distribution_is_built_once_per_call(monkeypatch: pytest.MonkeyPatch):
    calls = []
    original = LabelSampler.prepare

    def counting(self: LabelSampler, *args: object) -> object:
        calls.append(1)
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(LabelSampler, "prepare", counting)
    sampler = LabelSampler(2, "seg", {0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1})
    assert len(list(sampler(labels_only(random_labels((8, 8, 8), 6)), 1000, generator=0))) == 1000
    assert len(calls) == 1


# Errors -----------------------------------------------------------------------------------------------------


def test_subject_without_label_map_is_an_error():
    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 6, 6, 6)), subject_id="sub-nolabel")
    with pytest.raises(ValueError, match="subject 'sub-nolabel' has no LabelMap"):
        next(LabelSampler(2)(subject, 1, generator=0))


def test_missing_label_name_is_a_key_error_naming_the_subject():
    subject = make_subject(random_labels((6, 6, 6), 2), name="sub-missing")
    with pytest.raises(KeyError, match="label_name 'mask' is not an image of subject 'sub-missing'"):
        next(LabelSampler(2, "mask")(subject, 1, generator=0))


def test_label_name_must_be_a_string():
    with pytest.raises(TypeError, match="label_name"):
        LabelSampler(2, 3)  # type: ignore[arg-type]


def test_float_image_as_label_map_is_a_type_error():
    subject = make_subject(random_labels((6, 6, 6), 2), name="sub-float")
    with pytest.raises(TypeError, match="label image 't1' of subject 'sub-float' must hold integers"):
        next(LabelSampler(2, "t1")(subject, 1, generator=0))


@pytest.mark.parametrize(
    ("probabilities", "error", "message"),
    [
        ({0: 1, 1: -0.5}, ValueError, "must be a finite number >= 0"),
        ({1: float("nan")}, ValueError, "must be a finite number >= 0"),
        ({1: float("inf")}, ValueError, "must be a finite number >= 0"),
        ({"1": 1}, TypeError, "keys must be int classes"),
        ({1.0: 1}, TypeError, "keys must be int classes"),
        ({True: 1}, TypeError, "keys must be int classes"),
        ({0: 0, 1: 0}, ValueError, "must have a positive weight"),
        ({}, ValueError, "must have a positive weight"),
        ([0.5, 0.5], TypeError, "must be a dict"),
        ({1: "1"}, TypeError, r"label_probabilities\[1\] must be a number"),
        ({0: 1, 1: True}, TypeError, r"label_probabilities\[1\] must be a number"),
    ],
)
def test_invalid_label_probabilities(probabilities: object, error: type[Exception], message: str):
    with pytest.raises(error, match=message):
        LabelSampler(2, "seg", probabilities)  # type: ignore[arg-type]


def test_requested_classes_absent_from_every_valid_centre_is_an_error():
    labels = torch.zeros(1, 8, 8, 8, dtype=torch.uint8)
    labels[0, 0, 0, 0] = 1  # only on the border, where patch 4 cannot be centred
    with pytest.raises(ValueError, match=r"subject 'sub-empty'.*has no voxel of \[1, 2\]"):
        next(LabelSampler(4, "seg", {1: 1, 2: 1})(make_subject(labels, name="sub-empty"), 1, generator=0))


def test_all_background_with_none_is_an_error():
    labels = torch.zeros(1, 6, 6, 6, dtype=torch.uint8)
    with pytest.raises(ValueError, match="has no voxel of foreground"):
        next(LabelSampler(2)(make_subject(labels, name="sub-bg"), 1, generator=0))


def test_patch_larger_than_the_image_mentions_crop_or_pad():
    with pytest.raises(ValueError, match=r"(?s)exceeds the spatial shape.*sub-big.*CropOrPad"):
        next(LabelSampler(7)(make_subject(random_labels((6, 6, 6), 2), name="sub-big"), 1, generator=0))


@pytest.mark.parametrize(("num_patches", "error"), [(-2, ValueError), (0.5, TypeError), (True, TypeError)])
def test_bad_num_patches(num_patches: object, error: type[Exception]):
    with pytest.raises(error, match="num_patches"):
        next(LabelSampler(2)(make_subject(random_labels((6, 6, 6), 2)), num_patches))  # type: ignore[arg-type]
