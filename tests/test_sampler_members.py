"""TorchIO's public members of the samplers, the Queue and the aggregator, and the subclass hooks they make.

Hand-computed on tiny maps; the comparisons with TorchIO itself are in
``test_sampler_members_torchio.py``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from torchpatch import (
    LOCATION,
    GridAggregator,
    GridSampler,
    LabelMap,
    LabelSampler,
    PatchSampler,
    Queue,
    ScalarImage,
    Subject,
    SubjectsDataset,
    SubjectsLoader,
    UniformSampler,
    WeightedSampler,
)
from torchpatch.sampler import RandomSampler
from torchpatch.sampler.probability_steps import ProbabilityMapSteps

AFFINE = np.array(
    [
        [0.0, -0.5, 0.0, 12.25],
        [2.0, 0.0, 0.0, -30.5],
        [0.0, 0.0, 0.75, 8.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def grid_subject(name: str = "sub-members") -> Subject:
    """t1 holds 0..15 on a 4x4 plane; seg is 1 on its right half; w is 1 everywhere."""
    t1 = torch.arange(16.0).reshape(1, 4, 4, 1)
    seg = torch.zeros(1, 4, 4, 1, dtype=torch.uint8)
    seg[0, :, 2:] = 1
    return Subject(
        t1=ScalarImage(tensor=t1, affine=AFFINE),
        seg=LabelMap(tensor=seg, affine=AFFINE),
        w=ScalarImage(tensor=torch.ones(1, 4, 4, 1), affine=AFFINE),
        subject_id=name,
    )


def volume_subject(shape: tuple[int, int, int] = (9, 8, 7), name: str = "sub-volume") -> Subject:
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (1, *shape), generator=generator, dtype=torch.uint8)
    return Subject(
        t1=ScalarImage(tensor=torch.rand(1, *shape, generator=generator), affine=AFFINE),
        seg=LabelMap(tensor=labels, affine=AFFINE),
        w=ScalarImage(tensor=torch.rand(1, *shape, generator=generator), affine=AFFINE),
        subject_id=name,
    )


def centre_of(location: list[int]) -> tuple[int, ...]:
    return tuple(a + (b - a) // 2 for a, b in zip(location[:3], location[3:]))


def every_sampler(subject: Subject) -> list[PatchSampler]:
    return [
        PatchSampler(2),
        UniformSampler(2),
        WeightedSampler(2, "w"),
        LabelSampler(2, "seg"),
        GridSampler(subject, 2),
    ]


# crop ------------------------------------------------------------------------------------------------------


def test_crop_cuts_every_image_and_records_the_location():
    subject = grid_subject()
    for sampler in every_sampler(subject):
        patch = sampler.crop(subject, (1, 2, 0), (3, 2, 1))
        assert patch["t1"].data[0, :, :, 0].tolist() == [[6.0, 7.0], [10.0, 11.0], [14.0, 15.0]], sampler
        assert patch["seg"].data[0, :, :, 0].tolist() == [[1, 1], [1, 1], [1, 1]]
        assert patch[LOCATION].dtype == torch.int64 and patch[LOCATION].tolist() == [1, 2, 0, 4, 4, 1]


def test_crop_shifts_the_affine_to_the_box_origin_and_copies():
    subject = grid_subject()
    patch = UniformSampler(2).crop(subject, np.array([1, 2, 0]), torch.tensor([2, 2, 1]))
    expected = AFFINE.copy()
    expected[:3, 3] = AFFINE[:3, :3] @ np.array([1, 2, 0]) + AFFINE[:3, 3]
    np.testing.assert_allclose(patch["t1"].affine, expected)
    patch["t1"].data[:] = -1
    assert float(subject["t1"].data.min()) == 0  # the subject is untouched


def test_crop_outside_the_image_is_an_error_naming_the_subject():
    with pytest.raises(ValueError, match=r"\(3, 0, 0\) -> \(5, 2, 1\).*\(4, 4, 1\).*'sub-members'.*padding_mode"):
        UniformSampler(2).crop(grid_subject(), (3, 0, 0), (2, 2, 1))


def test_crop_outside_the_image_is_padded_with_padding_mode():
    patch = UniformSampler(2, padding_mode=-1).crop(grid_subject(), (-1, 0, 0), (2, 2, 1))
    assert patch["t1"].data[0, :, :, 0].tolist() == [[-1.0, -1.0], [0.0, 1.0]]
    assert patch[LOCATION].tolist() == [-1, 0, 0, 1, 2, 1]


@pytest.mark.parametrize(
    ("index_ini", "patch_size", "error", "match"),
    [
        ((1, 2), (2, 2, 1), TypeError, r"index_ini must be three ints, got \(1, 2\).*'sub-members'"),
        ((1.5, 0, 0), (2, 2, 1), TypeError, "index_ini must be three ints"),
        ((True, 0, 0), (2, 2, 1), TypeError, "index_ini must be three ints"),
        ((0, 0, 0), 2, TypeError, "patch_size must be three ints, got 2"),
        ((0, 0, 0), (2, 0, 1), ValueError, r"patch_size must be three ints >= 1, got \(2, 0, 1\).*'sub-members'"),
    ],
)
def test_crop_rejects_bad_arguments(index_ini, patch_size, error, match):
    with pytest.raises(error, match=match):
        UniformSampler(2).crop(grid_subject(), index_ini, patch_size)


def test_crop_needs_a_torchpatch_subject():
    with pytest.raises(TypeError, match="subject must be a torchpatch Subject, got dict"):
        UniformSampler(2).crop({"t1": torch.zeros(1, 4, 4, 1)}, (0, 0, 0), (2, 2, 1))  # type: ignore[arg-type]


class MarkedUniform(UniformSampler):
    """Overrides crop, as a TorchIO subclass may: every patch says it was made here."""

    def crop(self, subject, index_ini, patch_size):
        patch = super().crop(subject, index_ini, patch_size)
        patch["marked"] = True
        return patch


def test_an_overridden_crop_makes_every_patch():
    subject = grid_subject()
    sampler = MarkedUniform(2)
    assert not sampler.cuts_by_plan and not sampler.thread_safe
    assert all(patch["marked"] for patch in sampler(subject, 3, generator=0))
    assert all(patch["marked"] for patch in sampler.patches(subject, 3, generator=0))
    with Queue(SubjectsDataset([subject]), 4, 4, sampler, seed=0) as queue:
        assert all(patch["marked"] for patch in queue)


def test_an_overridden_crop_makes_every_grid_patch():
    class MarkedGrid(GridSampler):
        def crop(self, subject, index_ini, patch_size):
            patch = super().crop(subject, index_ini, patch_size)
            patch["marked"] = True
            return patch

    sampler = MarkedGrid(grid_subject(), 2)
    assert sampler[1]["marked"] and sampler[1][LOCATION].tolist() == [0, 2, 0, 2, 4, 1]
    batch = next(iter(SubjectsLoader(sampler, batch_size=4)))
    assert list(batch["marked"]) == [True] * 4
    assert batch["t1"]["data"][1, 0, :, :, 0].tolist() == [[2.0, 3.0], [6.0, 7.0]]


def test_grid_crop_at_a_padded_location_is_the_grid_patch():
    subject = grid_subject()
    sampler = GridSampler(subject, 3, patch_overlap=2, padding_mode="reflect")
    for index, location in enumerate(sampler.locations.tolist()):
        patch = sampler.crop(sampler.subject, location[:3], sampler.patch_size)
        torch.testing.assert_close(patch["t1"].data, sampler[index]["t1"].data)
        assert patch[LOCATION].tolist() == location


# WeightedSampler: names and steps --------------------------------------------------------------------------


def test_weighted_defaults_take_the_fast_path_and_stay_thread_safe():
    for kind in (WeightedSampler, LabelSampler):
        assert kind.steps_overridden == () and kind.thread_safe
    sampler = WeightedSampler(2, "w")
    assert sampler.cdf is None and sampler.probability_map_name == "w"


def test_probability_map_name_is_the_probability_map_argument():
    sampler = WeightedSampler(2, "w")
    sampler.probability_map_name = "t1"
    assert sampler.probability_map == "t1"
    assert sampler.get_probability_map_image(grid_subject()) is not None
    with pytest.raises(TypeError, match="probability_map must be the name of an image"):
        sampler.probability_map_name = 3  # type: ignore[assignment]


def test_get_probability_map_image_names_the_subject():
    subject = grid_subject()
    assert WeightedSampler(2, "w").get_probability_map_image(subject) is subject["w"]
    with pytest.raises(KeyError, match="probability_map 'nope' is not an image of subject 'sub-members'"):
        WeightedSampler(2, "nope").get_probability_map_image(subject)


def test_a_weighted_sampler_without_a_map_name_says_to_override_get_probability_map():
    with pytest.raises(ValueError, match=r"no probability_map name.*'sub-members'.*override get_probability_map"):
        WeightedSampler(2, None).plan(grid_subject(), 1, generator=0)


def test_process_probability_map_clears_the_border_and_normalises_in_float64():
    subject = Subject(w=ScalarImage(tensor=torch.tensor([5.0, 1.0, 2.0, 6.0, 2.0]).reshape(1, 5, 1, 1)))
    array = WeightedSampler((4, 1, 1), "w").process_probability_map(subject["w"].data, subject)
    assert array.dtype == np.float64 and array.shape == (5, 1, 1)
    assert array.ravel().tolist() == [0.0, 0.0, 0.25, 0.75, 0.0]  # centres 2 and 3 (p // 2 = 2 before, 1 after)


def test_process_probability_map_uses_the_2d_patch_size():
    subject = Subject(w=ScalarImage(tensor=torch.ones(1, 4, 4, 1)))
    array = WeightedSampler(3, "w").process_probability_map(subject["w"].data, subject)
    assert array[:, :, 0].tolist() == [[0, 0, 0, 0], [0, 0.25, 0.25, 0], [0, 0.25, 0.25, 0], [0, 0, 0, 0]]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (torch.ones(2, 4, 4, 1), r"'w' of subject 'sub-members' must have shape \(1, \*\(4, 4, 1\)\).*\(2, 4, 4, 1\)"),
        (torch.ones(1, 4, 3, 1), r"must have shape .*got \(1, 4, 3, 1\)"),
        (-torch.ones(1, 4, 4, 1), "'w' of subject 'sub-members' holds negative values"),
        (torch.full((1, 4, 4, 1), float("nan")), "holds NaN or infinite values"),
        (torch.eye(4).reshape(1, 4, 4, 1) * 0, r"is zero wherever a patch of \(3, 3, 1\) fits.*Pad\(\(1, 1, 0\)\)"),
    ],
)
def test_process_probability_map_rejects_bad_maps(data, match):
    with pytest.raises(ValueError, match=match):
        WeightedSampler(3, "w").process_probability_map(data, grid_subject())


def test_clear_probability_borders_zeroes_half_a_patch_on_each_side_in_place():
    array = np.ones((7, 3, 2))
    ProbabilityMapSteps.clear_probability_borders(array, (4, 3, 1))
    assert array[:, 1, 0].tolist() == [0, 0, 1, 1, 1, 1, 0]
    assert array[3, :, 1].tolist() == [0, 1, 0]
    tensor = torch.ones(3, 1, 1)
    WeightedSampler.clear_probability_borders(tensor, np.array([5, 1, 1]))  # a patch longer than the axis
    assert tensor.flatten().tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match=r"must be 3D \(I, J, K\), got shape \(1, 3, 1, 1\)"):
        WeightedSampler.clear_probability_borders(np.ones((1, 3, 1, 1)), (1, 1, 1))


def test_cumulative_distribution_function_is_the_normalised_running_sum():
    cdf = WeightedSampler.get_cumulative_distribution_function(np.array([[[0.0, 2.0], [1.0, 1.0]]]))
    assert cdf.tolist() == [0.0, 0.5, 0.75, 1.0]
    with pytest.raises(ValueError, match=r"positive finite total, got 0\.0"):
        WeightedSampler.get_cumulative_distribution_function(np.zeros((2, 2, 2)))


def test_sample_probability_map_follows_the_map_and_is_seeded():
    probability = np.array([0.0, 1.0, 0.0, 3.0]).reshape(4, 1, 1)
    cdf = WeightedSampler.get_cumulative_distribution_function(probability)
    draws = Counter(
        int(WeightedSampler.sample_probability_map(probability, cdf, generator=rng)[0])
        for rng in [np.random.default_rng(0)] * 4000
    )
    assert set(draws) == {1, 3} and abs(draws[3] / 4000 - 0.75) < 0.03
    torch.manual_seed(4)
    first = WeightedSampler.sample_probability_map(probability, cdf)
    torch.manual_seed(4)
    assert WeightedSampler.sample_probability_map(probability, cdf).tolist() == first.tolist()


def test_sample_probability_map_rejects_a_cdf_of_another_map():
    probability = np.array([1.0, 0.0, 0.0, 0.0]).reshape(4, 1, 1)
    with pytest.raises(ValueError, match="cdf has 3 values but the probability map has 4 voxels"):
        WeightedSampler.sample_probability_map(probability, np.array([0.2, 0.5, 1.0]))
    with pytest.raises(ValueError, match=r"drew voxel \(3, 0, 0\) whose probability is 0.0"):
        WeightedSampler.sample_probability_map(probability, np.array([0.0, 0.0, 0.0, 1.0]), generator=0)


def test_get_random_index_ini_is_the_centre_minus_half_the_patch():
    probability = np.zeros((6, 5, 1))
    probability[3, 2, 0] = 1
    cdf = WeightedSampler.get_cumulative_distribution_function(probability)
    corner = WeightedSampler((3, 4, 1), "w").get_random_index_ini(probability, cdf, generator=1)
    assert corner.tolist() == [2, 0, 0]
    with pytest.raises(ValueError, match=r"drew centre \(3, 2, 0\), where no patch of \(8, 1, 1\) fits"):
        WeightedSampler((8, 1, 1), "w").get_random_index_ini(probability, cdf, generator=1)


# Subclasses overriding TorchIO's steps ------------------------------------------------------------------------


class BrightestVoxel(WeightedSampler):
    """TorchIO's most common subclass: the map computed from the subject, here t1's brightest voxel."""

    def get_probability_map(self, subject):
        data = subject["t1"].data
        return (data == data.max()).float()


def bright_subject() -> Subject:
    """A volume whose t1 is brightest at (4, 3, 2)."""
    subject = volume_subject()
    subject["t1"].data[0, 4, 3, 2] = 2
    return subject


def test_an_overridden_get_probability_map_is_sampled_from():
    subject = bright_subject()
    sampler = BrightestVoxel(3, probability_map=None)
    assert sampler.steps_overridden == ("get_probability_map",) and not sampler.thread_safe
    locations = sampler.plan(subject, 20, generator=0).locations.tolist()
    assert {centre_of(location) for location in locations} == {(4, 3, 2)}
    patch = next(sampler(subject, 1, generator=1))
    assert patch[LOCATION].tolist() == [3, 2, 1, 6, 5, 4]


def test_a_queue_samples_an_overridden_get_probability_map():
    with Queue(SubjectsDataset([bright_subject()]), 4, 4, BrightestVoxel(3, None), seed=0) as queue:
        assert {centre_of(patch[LOCATION].tolist()) for patch in queue} == {(4, 3, 2)}


def test_an_overridden_get_probability_map_is_checked():
    class Negative(WeightedSampler):
        def get_probability_map(self, subject):
            return -subject["w"].data

    class Flat(WeightedSampler):
        def get_probability_map(self, subject):
            return subject["w"].data[0]

    with pytest.raises(ValueError, match="of subject 'sub-volume' holds negative values"):
        Negative(3, "w").plan(volume_subject(), 1, generator=0)
    with pytest.raises(ValueError, match=r"'w' of subject 'sub-volume' must have shape \(1, \*\(9, 8, 7\)\)"):
        Flat(3, "w").plan(volume_subject(), 1, generator=0)


def test_an_overridden_process_probability_map_is_sampled_from():
    class FirstRowOnly(WeightedSampler):
        def process_probability_map(self, probability_map, subject):
            array = super().process_probability_map(probability_map, subject)
            array[2:] = 0
            return array / array.sum()

    locations = FirstRowOnly(3, "w").plan(volume_subject(), 50, generator=0).locations
    assert set(locations[:, 0].tolist()) == {0}  # centre 1: the only row left


def test_overridden_draw_steps_are_called_once_per_patch():
    calls = Counter()

    class Counting(WeightedSampler):
        def get_cumulative_distribution_function(self, probability_map):
            calls["cdf"] += 1
            return super().get_cumulative_distribution_function(probability_map)

        def sample_probability_map(self, probability_map, cdf):  # TorchIO's arguments
            calls["sample"] += 1
            return np.array([4, 4, 3])

    sampler = Counting(3, "w")
    assert set(sampler.steps_overridden) == {"get_cumulative_distribution_function", "sample_probability_map"}
    patches = list(sampler(volume_subject(), 5, generator=0))
    assert [patch[LOCATION].tolist() for patch in patches] == [[3, 3, 2, 6, 6, 5]] * 5
    assert calls["cdf"] == 1 and calls["sample"] >= 5


def test_an_overridden_get_random_index_ini_outside_the_image_is_an_error():
    class Outside(WeightedSampler):
        def get_random_index_ini(self, probability_map, cdf):
            return np.array([7, 0, 0])

    with pytest.raises(ValueError, match=r"gave \[7, 0, 0\] for subject 'sub-volume'.*\(6, 5, 4\)"):
        Outside(3, "w").plan(volume_subject(), 1, generator=0)


def test_a_random_sampler_overriding_only_get_probability_map_is_pointed_to_weighted_sampler():
    class MapOnly(RandomSampler):
        def get_probability_map(self, subject):
            return subject["w"].data

    with pytest.raises(NotImplementedError, match="subclass WeightedSampler instead"):
        MapOnly(3).plan(volume_subject(), 1, generator=0)


# LabelSampler: names and steps ----------------------------------------------------------------------------------


def test_label_sampler_names_are_torchio_s():
    sampler = LabelSampler(2, "seg", {0: 1, 1: 3})
    assert sampler.probability_map_name == "seg" and sampler.label_probabilities_dict == {0: 1.0, 1: 3.0}
    sampler.label_probabilities_dict = {1: 2}
    sampler.probability_map_name = None
    assert sampler.label_probabilities == {1: 2.0} and sampler.label_name is None
    with pytest.raises(ValueError, match=r"label_probabilities\[1\] must be a finite number >= 0, got -2"):
        sampler.label_probabilities_dict = {1: -2}
    with pytest.raises(TypeError, match="label_name must be a str or None, got int"):
        sampler.probability_map_name = 1  # type: ignore[assignment]


def test_label_get_probability_map_image_finds_the_first_label_map():
    subject = grid_subject()
    assert LabelSampler(2).get_probability_map_image(subject) is subject["seg"]
    with pytest.raises(ValueError, match="subject 'sub-t1' has no LabelMap to sample from"):
        LabelSampler(2).get_probability_map_image(Subject(t1=subject["t1"], subject_id="sub-t1"))


def test_get_probabilities_from_label_map_by_hand():
    labels = torch.tensor([[0, 1, 1, 2, 2, 3]]).reshape(1, 6, 1, 1)
    # Valid centres of a patch of 3: voxels 1..4. Weights {1: 1, 2: 1, 3: 2}: class 3 has no valid voxel,
    # so the map keeps 1/4 + 1/4 of the total, shared by two voxels each.
    probability = LabelSampler.get_probabilities_from_label_map(labels, {1: 1, 2: 1, 3: 2}, np.array([3, 1, 1]))
    assert probability.dtype == torch.float32 and probability.shape == (1, 6, 1, 1)
    assert probability.flatten().tolist() == [0, 0.125, 0.125, 0.125, 0.125, 0]


def test_get_probabilities_from_label_map_of_fractions_by_hand():
    fractions = torch.zeros(2, 4, 1, 1)
    fractions[1, 1], fractions[1, 2] = 0.25, 0.75
    fractions[0] = 1 - fractions[1]
    probability = LabelSampler.get_probabilities_from_label_map(fractions, {1: 1}, (3, 1, 1))
    assert probability.flatten().tolist() == [0, 0.25, 0.75, 0]
    with pytest.raises(ValueError, match="class 2 has no channel in a label map of 2 channels"):
        LabelSampler.get_probabilities_from_label_map(fractions, {2: 1}, (3, 1, 1))
    with pytest.raises(ValueError, match=r"patch_size \(5, 1, 1\) must be three ints >= 1 that fit"):
        LabelSampler.get_probabilities_from_label_map(fractions, {1: 1}, (5, 1, 1))


def test_an_overridden_get_probabilities_from_label_map_is_sampled_from():
    class OnlyTheLastColumn(LabelSampler):
        @staticmethod
        def get_probabilities_from_label_map(label_map, label_probabilities_dict, patch_size):
            probability = torch.zeros_like(label_map[:1])
            probability[0, :, -2] = 1  # the last column a patch of 3 can be centred on
            return probability

    subject = volume_subject()
    sampler = OnlyTheLastColumn(3, "seg", {1: 1})
    assert sampler.steps_overridden == ("get_probabilities_from_label_map",)
    centres = {centre_of(location) for location in sampler.plan(subject, 40, generator=0).locations.tolist()}
    assert {centre[1] for centre in centres} == {6}
    assert float(sampler.get_probability_map(subject)[0, :, 6].sum()) == pytest.approx(1)


def test_a_label_sampler_overriding_get_probability_map_is_sampled_from():
    class Corner(LabelSampler):
        def get_probability_map(self, subject):
            probability = torch.zeros(1, *subject.spatial_shape)
            probability[0, 1, 1, 1] = 1
            return probability

    locations = Corner(3, "seg").plan(volume_subject(), 10, generator=0).locations.tolist()
    assert locations == [[0, 0, 0, 3, 3, 3]] * 10


# Queue.patches_list and the aggregator's attributes -----------------------------------------------------------


@pytest.mark.parametrize("shuffle_patches", [True, False])
def test_patches_list_holds_the_waiting_patches_the_next_one_last(shuffle_patches):
    subjects = [volume_subject(name=f"sub-{i}") for i in range(2)]
    dataset = SubjectsDataset(subjects)
    with Queue(dataset, 6, 3, UniformSampler(3), shuffle_patches=shuffle_patches, seed=0) as queue:
        assert len(queue.patches_list) == 0
        first = queue[0]
        waiting = queue.patches_list
        assert len(waiting) == queue.num_patches == (5 if shuffle_patches else 2)
        for _ in range(len(waiting)):
            expected = waiting[-1][LOCATION].tolist()
            assert queue[0][LOCATION].tolist() == expected
        assert first is not None
        with pytest.raises(AttributeError):
            queue.patches_list = []  # type: ignore[misc]
        with pytest.raises(IndexError, match="out of range: the queue holds 0 patches"):
            queue.patches_list[0]


def test_aggregator_has_patch_overlap_and_volume_padded():
    subject = volume_subject()
    plain = GridAggregator(GridSampler(subject, 4, patch_overlap=2))
    padded = GridAggregator(GridSampler(subject, 4, patch_overlap=(2, 0, 2), padding_mode="edge"))
    assert plain.patch_overlap == (2, 2, 2) and plain.volume_padded is False
    assert padded.patch_overlap == (2, 0, 2) and padded.volume_padded is True


def test_an_overridden_process_probability_map_leaving_weight_on_the_border_is_an_error():
    class Uncleared(WeightedSampler):
        def process_probability_map(self, probability_map, subject):
            array = subject["w"].data[0].numpy().astype(np.float64)  # the raw map, border included
            return array / array.sum()

    with pytest.raises(ValueError, match=r"left weight on the border of subject 'sub-volume'.*\(3, 3, 3\)"):
        Uncleared(3, "w").plan(volume_subject(), 1, generator=0)
