"""LabelSampler on partial-volume (float) label maps, and get_probability_map, with TorchIO's meaning."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from torchpatch import LOCATION, LabelMap, LabelSampler, ScalarImage, Subject, SubjectsDataset, WeightedSampler


class FractionMap(LabelMap):
    """A LabelMap keeping float fractions: LabelMap itself still refuses them (see the xfail below)."""

    def _float_labels_to_int(self, array: np.ndarray) -> np.ndarray:
        return array


def subject_of(data: torch.Tensor) -> Subject:
    return Subject(seg=FractionMap(tensor=data), subject_id="sub-pv")


def single_channel() -> torch.Tensor:
    """6x6 map: fractions 0.3, 0.5, a full voxel 1.0 and a 2.0 inside the valid centres of a 3x3 patch."""
    data = torch.zeros(1, 6, 6, 1)
    data[0, 2, 2, 0], data[0, 2, 3, 0], data[0, 3, 2, 0], data[0, 4, 4, 0] = 0.3, 1.0, 0.5, 2.0
    return data


def three_channels() -> torch.Tensor:
    """Background, class 1 (0.25 and 0.75) and class 2 (0.5): the fractions add up to one per voxel."""
    data = torch.zeros(3, 6, 6, 1)
    data[1, 2, 2, 0], data[1, 3, 3, 0], data[2, 3, 2, 0] = 0.25, 0.75, 0.5
    data[0] = 1 - data[1:].sum(0)
    return data


def centre_counts(sampler: LabelSampler, subject: Subject, draws: int) -> Counter:
    counts: Counter = Counter()
    for location in sampler.plan(subject, draws, generator=0).locations.tolist():
        counts[tuple(a + (b - a) // 2 for a, b in zip(location[:3], location[3:]))] += 1
    return counts


def assert_follows(counts: Counter, probability: torch.Tensor, tolerance: float = 0.015) -> None:
    draws = sum(counts.values())
    expected = {tuple(c): float(probability[0][tuple(c)]) for c in probability[0].nonzero().tolist()}
    assert set(counts) <= set(expected), (counts, expected)
    for centre, p in expected.items():
        assert abs(counts[centre] / draws - p) <= tolerance, (centre, counts[centre] / draws, p)


# One channel: classes are equal values, None is "above 0" -------------------------------------------------


def test_single_channel_fractions_are_in_no_class():
    sampler = LabelSampler((3, 3, 1), "seg", {0: 0, 1: 1})
    probability = sampler.get_probability_map(subject_of(single_channel()))
    assert probability.shape == (1, 6, 6, 1) and probability.dtype == torch.float32
    assert probability[0, 2, 3, 0] == 1 and float(probability.sum()) == 1  # only the voxel equal to 1
    assert set(centre_counts(sampler, subject_of(single_channel()), 200)) == {(2, 3, 0)}


def test_single_channel_none_is_uniform_over_voxels_above_zero():
    sampler = LabelSampler((3, 3, 1), "seg")
    probability = sampler.get_probability_map(subject_of(single_channel()))
    expected = torch.zeros(1, 6, 6, 1)
    expected[0, 2, 2, 0] = expected[0, 2, 3, 0] = expected[0, 3, 2, 0] = expected[0, 4, 4, 0] = 0.25
    torch.testing.assert_close(probability, expected)
    assert_follows(centre_counts(sampler, subject_of(single_channel()), 20000), probability)


def test_single_channel_whole_values_above_one_are_classes():
    sampler = LabelSampler((3, 3, 1), "seg", {1: 1, 2: 3})
    probability = sampler.get_probability_map(subject_of(single_channel()))
    assert float(probability[0, 2, 3, 0]) == 0.25 and float(probability[0, 4, 4, 0]) == 0.75


def test_background_class_of_a_fraction_map_is_its_exact_zeros():
    # 16 valid centres; 3 hold a non-zero value (0.3, 1.0, 0.5) and the 2.0 is on (4, 4): 12 zeros.
    probability = LabelSampler((3, 3, 1), "seg", {0: 1, 1: 1}).get_probability_map(subject_of(single_channel()))
    assert float(probability[0, 2, 3, 0]) == pytest.approx(0.5)
    assert float(probability[0, 1, 1, 0]) == pytest.approx(0.5 / 12)
    assert float(probability[0, 2, 2, 0]) == 0 and float(probability[0, 0, 0, 0]) == 0


# Several channels: fraction-weighted per class -------------------------------------------------------------


def test_channels_spread_each_class_share_over_its_fractions():
    # Class 1 holds 0.25 + 0.75, class 2 holds 0.5: each gets 1/2, spread in proportion to the fractions.
    probability = LabelSampler((3, 3, 1), "seg", {0: 0, 1: 1, 2: 1}).get_probability_map(subject_of(three_channels()))
    expected = torch.zeros(1, 6, 6, 1)
    expected[0, 2, 2, 0], expected[0, 3, 3, 0], expected[0, 3, 2, 0] = 0.125, 0.375, 0.5
    torch.testing.assert_close(probability, expected)


def test_sampled_centres_follow_the_fraction_weighted_distribution():
    sampler = LabelSampler((3, 3, 1), "seg", {1: 1, 2: 3})
    subject = subject_of(three_channels())
    probability = sampler.get_probability_map(subject)
    assert float(probability[0, 3, 2, 0]) == pytest.approx(0.75)
    assert float(probability[0, 2, 2, 0]) == pytest.approx(0.0625)
    assert_follows(centre_counts(sampler, subject, 20000), probability)


def test_background_channel_weights_every_voxel_by_its_background_fraction():
    sampler = LabelSampler((3, 3, 1), "seg", {0: 1})
    probability = sampler.get_probability_map(subject_of(three_channels()))
    background = three_channels()[0, 1:5, 1:5, 0]
    torch.testing.assert_close(probability[0, 1:5, 1:5, 0], background / background.sum())


def test_channels_none_is_uniform_where_some_class_other_than_background_is_present():
    probability = LabelSampler((3, 3, 1), "seg").get_probability_map(subject_of(three_channels()))
    assert sorted(map(tuple, probability[0].nonzero().tolist())) == [(2, 2, 0), (3, 2, 0), (3, 3, 0)]
    torch.testing.assert_close(probability.sum(), torch.tensor(1.0))
    assert float(probability.max()) == pytest.approx(1 / 3)


def test_float_one_hot_map_gives_the_distribution_of_the_integer_one():
    labels = torch.randint(0, 3, (7, 8, 5), generator=torch.Generator().manual_seed(0))
    one_hot = torch.nn.functional.one_hot(labels, 3).permute(3, 0, 1, 2)
    for probabilities in (None, {0: 1, 1: 2, 2: 3}, {2: 1}):
        sampler = LabelSampler(3, "seg", probabilities)
        integer = sampler.get_probability_map(Subject(seg=LabelMap(tensor=one_hot.to(torch.uint8))))
        fractions = sampler.get_probability_map(subject_of(one_hot.float()))
        torch.testing.assert_close(fractions, integer)


def test_classes_beyond_the_channels_are_skipped_like_absent_ones():
    sampler = LabelSampler((3, 3, 1), "seg", {2: 1, 7: 5})
    probability = sampler.get_probability_map(subject_of(three_channels()))
    assert float(probability[0, 3, 2, 0]) == 1


def test_contract_on_a_fraction_map():
    from torchpatch.testing import check_sampler

    data = torch.rand(2, 9, 8, 7, generator=torch.Generator().manual_seed(1))
    data[0] = 1 - data[1]
    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 9, 8, 7)), seg=FractionMap(tensor=data), subject_id="s")
    check_sampler(LabelSampler(3, "seg", {0: 1, 1: 1}), subject, num_patches=16)


# Errors, all-zero maps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_all_zero_map_is_an_error_as_in_torchio(channels: int):
    # TorchIO raises RuntimeError("Empty probability map found"); ours names the subject and the classes.
    subject = subject_of(torch.zeros(channels, 6, 6, 1))
    for probabilities in (None, {1: 1}):
        sampler = LabelSampler((3, 3, 1), "seg", probabilities)
        with pytest.raises(ValueError, match="subject 'sub-pv': label image 'seg' has no voxel of"):
            sampler.plan(subject, 1, generator=0)
        with pytest.raises(ValueError, match="has no voxel of"):
            sampler.get_probability_map(subject)


@pytest.mark.parametrize(
    ("value", "message"), [(float("nan"), "NaN or infinite"), (float("inf"), "NaN or infinite"), (-0.5, "negative")]
)
@pytest.mark.parametrize("channels", [1, 3])
def test_bad_fractions_are_value_errors_naming_the_map(value: float, message: str, channels: int):
    data = three_channels() if channels == 3 else single_channel()
    data[-1, 3, 3, 0] = value
    with pytest.raises(ValueError, match=f"label map 'seg' of subject 'sub-pv' holds {message}"):
        LabelSampler((3, 3, 1), "seg", {1: 1}).plan(subject_of(data), 1, generator=0)


def test_a_scalar_image_named_as_label_map_is_still_a_type_error_with_a_hint():
    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 6, 6, 1)), subject_id="sub-f")
    with pytest.raises(TypeError, match=r"label image 't1' of subject 'sub-f' must hold integers.*LabelMap.*Weighted"):
        LabelSampler(2, "t1").plan(subject, 1, generator=0)


def test_a_plain_label_map_keeps_partial_volume_fractions():
    image = LabelMap(tensor=three_channels())
    assert image.data.is_floating_point()


# The cache ------------------------------------------------------------------------------------------------


def test_cached_float_label_file_with_whole_values_samples_like_the_source(tmp_path):
    # A float NIfTI segmentation holding whole classes: read as int64, indexed by the cache, same distribution.
    data = torch.zeros(1, 10, 9, 8)
    data[0, 3:6, 2:5, 3:6] = 1.0
    data[0, 6:8, 5:7, 2:4] = 2.0
    ScalarImage(tensor=data).save(tmp_path / "seg.nii.gz")
    subject = Subject(seg=LabelMap(tmp_path / "seg.nii.gz"), subject_id="s-cache")
    cached = SubjectsDataset([subject], cache_dir=tmp_path / "cache")[0]
    sampler = LabelSampler(3, "seg", {1: 1, 2: 3})
    torch.testing.assert_close(sampler.get_probability_map(cached), sampler.get_probability_map(subject))
    counts = Counter(int(data[0][tuple(c)]) for c in centre_counts(sampler, cached, 4000).elements())
    assert abs(counts[2] / 4000 - 0.75) < 0.03 and set(counts) == {1, 2}


def test_cached_fraction_file_samples_like_the_source(tmp_path):
    # A partial-volume file: cached as float32 without a class index, sampled by its fractions.
    ScalarImage(tensor=three_channels()).save(tmp_path / "pv.nii.gz")
    subject = Subject(seg=LabelMap(tmp_path / "pv.nii.gz"), subject_id="s-pv")
    cached = SubjectsDataset([subject], cache_dir=tmp_path / "cache")[0]
    assert cached.seg.data.is_floating_point()
    sampler = LabelSampler(3, "seg", {1: 1, 2: 1})
    torch.testing.assert_close(sampler.get_probability_map(cached), sampler.get_probability_map(subject))


# WeightedSampler.get_probability_map -------------------------------------------------------------------------


def test_weighted_probability_map_is_normalised_and_zero_on_the_border():
    weights = torch.rand(1, 7, 6, 5, generator=torch.Generator().manual_seed(2))
    subject = Subject(w=ScalarImage(tensor=weights))
    probability = WeightedSampler((3, 2, 1), "w").get_probability_map(subject)
    expected = torch.zeros_like(weights, dtype=torch.float64)
    expected[0, 1:6, 1:6, :] = weights[0, 1:6, 1:6, :].double()
    torch.testing.assert_close(probability, (expected / expected.sum()).float())


def test_probability_map_with_padding_mode_is_in_the_unpadded_grid():
    labels = torch.zeros(1, 3, 6, 1, dtype=torch.uint8)
    labels[0, 1, 3, 0] = 1
    probability = LabelSampler((5, 3, 1), "seg", padding_mode=0).get_probability_map(
        Subject(seg=LabelMap(tensor=labels))
    )
    assert probability.shape == (1, 3, 6, 1) and float(probability[0, 1, 3, 0]) == 1


def test_plan_and_sampling_agree_with_get_probability_map_for_location():
    sampler = LabelSampler((3, 3, 1), "seg", {1: 1, 2: 1})
    subject = subject_of(three_channels())
    patch = next(sampler(subject, 1, generator=3))
    location = patch[LOCATION].tolist()
    centre = tuple(a + (b - a) // 2 for a, b in zip(location[:3], location[3:]))
    assert float(sampler.get_probability_map(subject)[(0, *centre)]) > 0


# TorchIO itself ----------------------------------------------------------------------------------------------


def torchio_map(tio: object, data: torch.Tensor, probabilities: dict[int, float] | None, patch: tuple) -> np.ndarray:
    subject = tio.Subject(seg=tio.LabelMap(tensor=data))  # type: ignore[attr-defined]
    sampler = tio.LabelSampler(patch, "seg", probabilities)  # type: ignore[attr-defined]
    return sampler.process_probability_map(sampler.get_probability_map(subject), subject)


@pytest.mark.parametrize(
    ("make", "probabilities"),
    [
        (single_channel, None),
        (single_channel, {0: 0, 1: 1}),
        (single_channel, {0: 1, 1: 1, 2: 2}),
        (three_channels, {0: 0, 1: 1, 2: 1}),
        (three_channels, {0: 1, 1: 2, 2: 5}),
        (three_channels, {1: 1, 2: 3}),
    ],
)
def test_probability_map_equals_torchio(make, probabilities):
    tio = pytest.importorskip("torchio")
    data = make()
    ours = LabelSampler((3, 3, 1), "seg", probabilities).get_probability_map(subject_of(data))
    np.testing.assert_allclose(ours[0].numpy(), torchio_map(tio, data, probabilities, (3, 3, 1)), atol=1e-6)


def test_random_fraction_volume_equals_torchio():
    tio = pytest.importorskip("torchio")
    data = torch.rand(4, 12, 11, 9, generator=torch.Generator().manual_seed(5))
    data[:, data[1] < 0.6] = 0
    data /= data.sum(0, keepdim=True).clamp(min=1e-6)
    probabilities = {0: 0.1, 1: 1, 2: 0.5, 3: 2}
    ours = LabelSampler((5, 4, 3), "seg", probabilities).get_probability_map(subject_of(data))
    np.testing.assert_allclose(ours[0].numpy(), torchio_map(tio, data, probabilities, (5, 4, 3)), atol=1e-6)
