"""TorchIO's sampler, Queue and aggregator members give TorchIO's numbers (TorchIO 1.x installed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchpatch as tp

tio = pytest.importorskip("torchio")

AFFINE = np.array(
    [
        [0.0, -0.5, 0.0, 12.25],
        [2.0, 0.0, 0.0, -30.5],
        [0.0, 0.0, 0.75, 8.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
SHAPE = (11, 9, 7)


def tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    weights = torch.rand(1, *SHAPE, generator=generator)
    weights[weights < 0.5] = 0
    return {
        "t1": torch.rand(2, *SHAPE, generator=generator),
        "seg": torch.randint(0, 4, (1, *SHAPE), generator=generator, dtype=torch.uint8),
        "w": weights,
    }


def both(seed: int = 0) -> tuple[tp.Subject, object]:
    """The same subject in torchpatch and in TorchIO."""
    data = tensors(seed)
    ours = tp.Subject(
        t1=tp.ScalarImage(tensor=data["t1"], affine=AFFINE),
        seg=tp.LabelMap(tensor=data["seg"], affine=AFFINE),
        w=tp.ScalarImage(tensor=data["w"], affine=AFFINE),
    )
    theirs = tio.Subject(
        t1=tio.ScalarImage(tensor=data["t1"], affine=AFFINE),
        seg=tio.LabelMap(tensor=data["seg"], affine=AFFINE),
        w=tio.ScalarImage(tensor=data["w"], affine=AFFINE),
    )
    return ours, theirs


@pytest.mark.parametrize("index_ini", [(0, 0, 0), (3, 2, 1), (6, 4, 2)])
@pytest.mark.parametrize("patch_size", [(5, 5, 5), (2, 3, 4)])
def test_crop_equals_torchio(index_ini, patch_size):
    ours, theirs = both()
    mine = tp.UniformSampler(2).crop(ours, index_ini, patch_size)
    reference = tio.UniformSampler(2).crop(theirs, index_ini, patch_size)
    assert mine[tp.LOCATION].tolist() == reference[tio.LOCATION].tolist()
    assert mine[tp.LOCATION].dtype == reference[tio.LOCATION].dtype
    for name in ("t1", "seg", "w"):
        torch.testing.assert_close(mine[name].data, reference[name].data)
        np.testing.assert_allclose(mine[name].affine, reference[name].affine)


def test_weighted_steps_equal_torchio():
    ours, theirs = both()
    mine, reference = tp.WeightedSampler((5, 3, 4), "w"), tio.WeightedSampler((5, 3, 4), "w")
    assert mine.probability_map_name == reference.probability_map_name and mine.cdf is reference.cdf is None
    torch.testing.assert_close(
        mine.get_probability_map_image(ours).data, reference.get_probability_map_image(theirs).data
    )
    raw = reference.get_probability_map(theirs)
    expected = reference.process_probability_map(raw, theirs)
    np.testing.assert_array_equal(mine.process_probability_map(raw, ours), expected)
    # Our get_probability_map is already processed; processing it again gives TorchIO's array.
    np.testing.assert_allclose(mine.process_probability_map(mine.get_probability_map(ours), ours), expected, rtol=1e-6)
    np.testing.assert_array_equal(
        mine.get_cumulative_distribution_function(expected), reference.get_cumulative_distribution_function(expected)
    )
    cleared, reference_cleared = np.ones(SHAPE), np.ones(SHAPE)
    mine.clear_probability_borders(cleared, (5, 3, 4))
    reference.clear_probability_borders(reference_cleared, np.array([5, 3, 4]))
    np.testing.assert_array_equal(cleared, reference_cleared)


def test_the_same_torch_seed_draws_torchio_s_voxel_and_corner():
    _, theirs = both()
    mine, reference = tp.WeightedSampler((5, 3, 4), "w"), tio.WeightedSampler((5, 3, 4), "w")
    array = reference.process_probability_map(reference.get_probability_map(theirs), theirs)
    cdf = reference.get_cumulative_distribution_function(array)
    for seed in range(10):
        torch.manual_seed(seed)
        expected_centre = tio.WeightedSampler.sample_probability_map(array, cdf)
        expected_corner = reference.get_random_index_ini(array, cdf)
        torch.manual_seed(seed)
        assert mine.sample_probability_map(array, cdf).tolist() == expected_centre.tolist()
        assert mine.get_random_index_ini(array, cdf).tolist() == expected_corner.tolist()


@pytest.mark.parametrize("probabilities", [None, {0: 1, 1: 2, 3: 1}, {2: 1, 9: 5}, {0: 0, 1: 1}])
def test_label_steps_equal_torchio(probabilities):
    ours, theirs = both()
    mine = tp.LabelSampler((5, 3, 4), "seg", probabilities)
    reference = tio.LabelSampler((5, 3, 4), "seg", probabilities)
    assert mine.probability_map_name == reference.probability_map_name
    assert mine.label_probabilities_dict == reference.label_probabilities_dict
    assert mine.get_probability_map_image(ours).data.equal(reference.get_probability_map_image(theirs).data)
    expected = reference.process_probability_map(reference.get_probability_map(theirs), theirs)
    np.testing.assert_allclose(mine.process_probability_map(mine.get_probability_map(ours), ours), expected, atol=1e-9)
    if probabilities is not None:
        label_map = theirs["seg"].data.float()
        np.testing.assert_array_equal(
            mine.get_probabilities_from_label_map(label_map, probabilities, np.array([5, 3, 4])).numpy(),
            reference.get_probabilities_from_label_map(label_map, probabilities, np.array([5, 3, 4])).numpy(),
        )


def test_get_probabilities_from_fractions_equals_torchio():
    generator = torch.Generator().manual_seed(3)
    fractions = torch.rand(3, *SHAPE, generator=generator)
    fractions /= fractions.sum(0, keepdim=True)
    probabilities = {0: 0.5, 1: 1, 2: 3}
    mine = tp.LabelSampler.get_probabilities_from_label_map(fractions, probabilities, np.array([3, 3, 3]))
    reference = tio.LabelSampler.get_probabilities_from_label_map(fractions, probabilities, np.array([3, 3, 3]))
    np.testing.assert_array_equal(mine.numpy(), reference.numpy())


def subclass_of(base: type) -> type:
    """The same subclass body for both libraries: patches centred on the brightest voxel of t1's first channel."""

    class Brightest(base):  # type: ignore[misc, valid-type]
        def get_probability_map(self, subject):
            data = subject["t1"].data[:1]
            return (data == data.max()).float()

    return Brightest


def test_a_subclass_overriding_get_probability_map_samples_as_in_torchio():
    ours, theirs = both()
    ours["t1"].data[0, 5, 4, 3] = 2
    theirs["t1"].data[0, 5, 4, 3] = 2
    mine = subclass_of(tp.WeightedSampler)(3, None)
    reference = subclass_of(tio.WeightedSampler)(3, None)
    expected = {tuple(patch[tio.LOCATION].tolist()) for patch in reference(theirs, 5)}
    assert {tuple(patch[tp.LOCATION].tolist()) for patch in mine(ours, 5)} == expected == {(4, 3, 2, 7, 6, 5)}


def test_patches_list_holds_what_torchio_s_holds():
    ours, theirs = both()
    with tp.Queue(tp.SubjectsDataset([ours]), 6, 4, tp.UniformSampler(3), seed=0) as queue:
        reference = tio.Queue(tio.SubjectsDataset([theirs]), 6, 4, tio.UniformSampler(3), num_workers=0)
        assert len(queue.patches_list) == len(reference.patches_list) == 0
        queue[0], reference[0]
        assert len(queue.patches_list) == len(reference.patches_list) == queue.num_patches == reference.num_patches
        assert queue.patches_list[-1]["t1"].shape == reference.patches_list[-1]["t1"].shape


@pytest.mark.parametrize(("overlap", "padding_mode"), [(2, None), ((4, 0, 2), "edge"), (0, 0)])
def test_aggregator_attributes_equal_torchio(overlap, padding_mode):
    ours, theirs = both()
    mine = tp.GridAggregator(tp.GridSampler(ours, 5, overlap, padding_mode))
    reference = tio.GridAggregator(tio.GridSampler(theirs, 5, overlap, padding_mode))
    assert mine.volume_padded == reference.volume_padded
    assert mine.patch_overlap == tuple(reference.patch_overlap.tolist())
