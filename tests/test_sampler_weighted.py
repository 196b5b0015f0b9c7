"""WeightedSampler: centres follow the map, hand-computed cases, statistics, errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from torchpatch import LOCATION, LabelMap, ScalarImage, Subject, WeightedSampler
from torchpatch.testing import check_sampler

AFFINE = np.array(
    [
        [0.0, -0.5, 0.0, 12.25],
        [2.0, 0.0, 0.0, -30.5],
        [0.0, 0.0, 0.75, 8.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def make_subject(weights: torch.Tensor, seed: int = 0, channels: int = 1, name: str = "sub-weighted") -> Subject:
    """A subject with an intensity image, a label map and the map ``'w'`` on the grid of ``weights``."""
    shape = tuple(weights.shape[1:])
    generator = torch.Generator().manual_seed(seed)
    return Subject(
        t1=ScalarImage(tensor=torch.rand(channels, *shape, generator=generator), affine=AFFINE),
        seg=LabelMap(tensor=torch.randint(0, 3, (1, *shape), generator=generator, dtype=torch.uint8), affine=AFFINE),
        w=ScalarImage(tensor=weights, affine=AFFINE),
        subject_id=name,
    )


def map_only(weights: torch.Tensor, name: str = "sub-map") -> Subject:
    """The map alone: statistics draw thousands of patches, and each image costs a crop."""
    return Subject(w=ScalarImage(tensor=weights), subject_id=name)


def centres(subject: Subject, patch_size: int | tuple[int, int, int], draws: int, seed: int = 0) -> Counter:
    """Counts of patch centres ``start + size // 2``."""
    counter: Counter = Counter()
    for patch in WeightedSampler(patch_size, "w")(subject, draws, generator=seed):
        location = patch[LOCATION].tolist()
        counter[tuple(a + (b - a) // 2 for a, b in zip(location[:3], location[3:]))] += 1
    return counter


def assert_frequencies(counts: Counter, probabilities: dict, draws: int, sigmas: float = 4.0) -> None:
    """Each cell within ``sigmas`` binomial standard deviations, nothing outside the support."""
    assert set(counts) <= {k for k, p in probabilities.items() if p > 0}, (counts, probabilities)
    for key, probability in probabilities.items():
        sigma = np.sqrt(draws * probability * (1 - probability))
        assert abs(counts[key] - draws * probability) <= sigmas * sigma + 1e-9, (key, counts[key], draws * probability)


# Contract ---------------------------------------------------------------------------


def test_contract_on_3d_subject():
    weights = torch.rand(1, 10, 12, 9, generator=torch.Generator().manual_seed(1))
    check_sampler(WeightedSampler(4, "w"), make_subject(weights))


def test_contract_with_anisotropic_patch():
    weights = torch.rand(1, 10, 12, 9, generator=torch.Generator().manual_seed(2))
    check_sampler(WeightedSampler((3, 6, 2), "w"), make_subject(weights), num_patches=16)


def test_contract_on_2d_rgb_subject():
    weights = torch.rand(1, 20, 16, 1, generator=torch.Generator().manual_seed(3))
    patches = check_sampler(WeightedSampler(5, "w"), make_subject(weights, channels=3))
    assert patches[0]["t1"].shape == (3, 5, 5, 1)


def test_contract_with_sparse_integer_mask_as_map():
    mask = torch.zeros(1, 12, 12, 12, dtype=torch.uint8)
    mask[0, 3:9, 4:6, 5:8] = 1
    patches = check_sampler(WeightedSampler(4, "w"), make_subject(mask), num_patches=16)
    for patch in patches:
        i0, j0, k0 = patch[LOCATION][:3].tolist()
        assert mask[0, i0 + 2, j0 + 2, k0 + 2] == 1


# Hand-computed cases ---------------------------------------------------------------------


def test_one_dimensional_map_with_two_weights_gives_only_those_centres():
    # Axis of 8 voxels, patch 4: valid centres 2..6; weights 1 at 2 and 3 at 6.
    # centre = start + 4 // 2, so the starts are 0 (p = 1/4) and 4 (p = 3/4).
    weights = torch.zeros(1, 8, 1, 1)
    weights[0, 2] = 1.0
    weights[0, 6] = 3.0
    draws = 4000
    starts = Counter(
        int(p[LOCATION][0]) for p in WeightedSampler((4, 1, 1), "w")(map_only(weights), draws, generator=0)
    )
    assert_frequencies(starts, {0: 0.25, 4: 0.75}, draws, sigmas=3)


@pytest.mark.parametrize(("size", "start"), [(3, 4), (4, 3), (5, 3), (1, 5)])
def test_centre_is_start_plus_half_the_patch(size: int, start: int):
    # One weight at index 5: the patch of `size` centred there starts at 5 - size // 2.
    weights = torch.zeros(1, 9, 1, 1)
    weights[0, 5] = 1.0
    patch = next(WeightedSampler((size, 1, 1), "w")(map_only(weights), 1, generator=0))
    assert patch[LOCATION].tolist() == [start, 0, 0, start + size, 1, 1]


def test_weights_where_the_patch_does_not_fit_are_ignored():
    # Patch 4 on 8 voxels: centres 0, 1 and 7 are invalid; only the weight at 3 counts.
    weights = torch.zeros(1, 8, 1, 1)
    weights[0, [0, 1, 7]] = 100.0
    weights[0, 3] = 0.5
    starts = {int(p[LOCATION][0]) for p in WeightedSampler((4, 1, 1), "w")(map_only(weights), 300, generator=0)}
    assert starts == {1}


def test_2d_map_frequencies_follow_the_weights():
    # 6x6 map, patch 1: every voxel is a centre; 36 cells with weights 0..35 (cell 0 never drawn).
    weights = torch.arange(36.0).reshape(1, 6, 6, 1)
    draws = 6000
    counts = centres(map_only(weights), 1, draws, seed=4)
    probabilities = {(i, j, 0): float(weights[0, i, j, 0]) / float(weights.sum()) for i in range(6) for j in range(6)}
    assert (0, 0, 0) not in counts
    assert_frequencies(counts, probabilities, draws)
    support = [k for k, p in probabilities.items() if p > 0]
    chi_square = sum((counts[k] - draws * probabilities[k]) ** 2 / (draws * probabilities[k]) for k in support)
    dof = len(support) - 1
    assert chi_square < dof + 6 * np.sqrt(2 * dof), chi_square


def test_weights_across_table_blocks_and_at_both_ends():
    # 10 000 centres: three blocks of 4096 in the cumulative table, the last one padded.
    # Weights on the first centre, on both sides of the first block boundary and on the last centre.
    weights = torch.zeros(1, 10_000, 1, 1)
    flat = {0: 1.0, 4095: 2.0, 4096: 3.0, 9999: 4.0}
    for index, value in flat.items():
        weights[0, index] = value
    draws = 3000
    counts = centres(map_only(weights), 1, draws, seed=5)
    assert_frequencies(counts, {(i, 0, 0): v / 10.0 for i, v in flat.items()}, draws)


def test_rows_of_the_last_axis_as_blocks_at_their_boundaries_and_ends():
    # Valid centres in rows of 100 along K (at least 64): each row is a block of the table.
    weights = torch.zeros(1, 2, 3, 100)
    cells = {(0, 0, 0): 1.0, (0, 0, 99): 2.0, (0, 1, 0): 3.0, (1, 1, 50): 0.5, (1, 2, 99): 3.5}
    for index, value in cells.items():
        weights[(0, *index)] = value
    weights[0, 1, 0] = 0.0  # a whole zero row between weighted ones
    draws = 4000
    counts = centres(map_only(weights), 1, draws, seed=8)
    assert_frequencies(counts, {key: value / 10.0 for key, value in cells.items()}, draws)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.uint8, torch.bool])
def test_maps_of_any_dtype_with_long_rows_draw_only_weighted_centres(dtype: torch.dtype):
    weights = torch.zeros(1, 3, 2, 70, dtype=dtype)
    weights[0, 2, 1, 69] = 1
    weights[0, 0, 0, 3] = 1
    assert set(centres(map_only(weights), 1, 200, seed=9)) == {(2, 1, 69), (0, 0, 3)}


def test_zero_block_in_the_middle_is_never_drawn():
    weights = torch.ones(1, 3 * 4096, 1, 1)
    weights[0, 4096 : 2 * 4096] = 0.0
    counts = centres(map_only(weights), 1, 1000, seed=6)
    assert all(not 4096 <= key[0] < 2 * 4096 for key in counts)


def test_single_weight_on_the_last_valid_centre():
    # The padding of the last block must never be drawn.
    weights = torch.zeros(1, 5000, 1, 1)
    weights[0, 4999] = 1e-3
    assert set(centres(map_only(weights), 1, 500, seed=7)) == {(4999, 0, 0)}


def test_float16_map_and_int_map_give_the_same_patches():
    weights = torch.randint(0, 4, (1, 9, 9, 9), generator=torch.Generator().manual_seed(8))
    as_int = [p[LOCATION].tolist() for p in WeightedSampler(3, "w")(map_only(weights), 50, generator=9)]
    as_half = [p[LOCATION].tolist() for p in WeightedSampler(3, "w")(map_only(weights.half()), 50, generator=9)]
    assert as_int == as_half


def test_distribution_is_built_once_per_call(monkeypatch: pytest.MonkeyPatch):
    calls = []
    original = WeightedSampler.prepare

    def counting(self: WeightedSampler, *args: object) -> object:
        calls.append(1)
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(WeightedSampler, "prepare", counting)
    weights = torch.rand(1, 8, 8, 8, generator=torch.Generator().manual_seed(10))
    assert len(list(WeightedSampler(2, "w")(map_only(weights), 1000, generator=0))) == 1000
    assert len(calls) == 1
    calls.clear()
    # A 128^3 map (2M centres, 512 table blocks) is read once for 200 patches.
    large = torch.rand(1, 128, 128, 128, generator=torch.Generator().manual_seed(11))
    patches = list(WeightedSampler(16, "w")(map_only(large), 200, generator=0))
    assert len(calls) == 1
    assert all(p["w"].shape == (1, 16, 16, 16) for p in patches)


# Errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [(-0.5, "negative values"), (float("nan"), "NaN or infinite"), (float("inf"), "NaN or infinite")],
)
def test_invalid_map_values_name_subject_and_image(bad: float, message: str):
    weights = torch.rand(1, 6, 6, 6)
    weights[0, 3, 3, 3] = bad
    with pytest.raises(ValueError, match=f"(?s)probability map 'w' of subject 'sub-bad'.*{message}"):
        next(WeightedSampler(2, "w")(make_subject(weights, name="sub-bad"), 1, generator=0))


def test_map_zero_at_every_valid_centre_is_an_error():
    # Weights only on the border, where patch 4 cannot be centred.
    weights = torch.zeros(1, 8, 8, 8)
    weights[0, 0] = 1.0
    weights[0, :, 7] = 1.0
    with pytest.raises(ValueError, match=r"'w' of subject 'sub-zero' is zero at every valid patch centre"):
        next(WeightedSampler(4, "w")(make_subject(weights, name="sub-zero"), 1, generator=0))


def test_all_zero_map_is_an_error():
    with pytest.raises(ValueError, match="zero at every valid patch centre"):
        next(WeightedSampler(2, "w")(map_only(torch.zeros(1, 4, 4, 4)), 1, generator=0))


def test_missing_map_names_the_subject_and_the_images():
    subject = make_subject(torch.rand(1, 6, 6, 6), name="sub-missing")
    with pytest.raises(KeyError, match=r"probability_map 'prob' is not an image of subject 'sub-missing'.*'seg'"):
        next(WeightedSampler(2, "prob")(subject, 1, generator=0))


def test_multichannel_map_is_an_error():
    with pytest.raises(ValueError, match="must have one channel, got 2"):
        next(WeightedSampler(2, "w")(map_only(torch.rand(2, 4, 4, 4)), 1, generator=0))


def test_patch_larger_than_the_image_mentions_crop_or_pad():
    with pytest.raises(ValueError, match=r"(?s)exceeds the spatial shape \(6, 6, 6\).*sub-weighted.*CropOrPad"):
        next(WeightedSampler(7, "w")(make_subject(torch.rand(1, 6, 6, 6)), 1, generator=0))


def test_probability_map_must_be_a_name():
    with pytest.raises(TypeError, match="probability_map must be the name of an image"):
        WeightedSampler(2, torch.rand(1, 4, 4, 4))  # type: ignore[arg-type]


@pytest.mark.parametrize(("num_patches", "error"), [(-1, ValueError), (2.5, TypeError), (False, TypeError)])
def test_bad_num_patches(num_patches: object, error: type[Exception]):
    with pytest.raises(error, match="num_patches"):
        next(WeightedSampler(2, "w")(map_only(torch.rand(1, 4, 4, 4)), num_patches))  # type: ignore[arg-type]


# The table and its draws -------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "patch"),
    [((1, 90, 7, 70), (4, 1, 1)), ((1, 90, 7, 70), 4), ((1, 8, 9, 5), 4), ((1, 300, 200, 1), (4, 4, 1))],
    ids=["long rows in place", "long rows strided", "short rows", "2D"],
)
def test_draws_do_not_depend_on_how_they_are_chunked(monkeypatch, shape, patch):
    """Long rows read in place (contiguous or strided), short rows copied into blocks: the same centres
    whether the draws' blocks are summed in one chunk or in many."""
    from torchpatch.sampler import weighted

    weights = torch.rand(shape, generator=torch.Generator().manual_seed(4)) ** 4
    sampler = WeightedSampler(patch, "w")
    subject = map_only(weights)
    size = sampler.get_patch_size(subject.spatial_shape)
    whole = sampler.prepare(subject, size)(np.random.default_rng(9), 5000)
    monkeypatch.setattr(weighted, "_DRAW_CHUNK", 7)
    chunked = sampler.prepare(subject, size)(np.random.default_rng(9), 5000)
    np.testing.assert_array_equal(whole, chunked)
    assert whole.shape == (5000, 3)
    assert sampler.prepare(subject, size)(np.random.default_rng(9), 0).shape == (0, 3)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.float64])
def test_integer_and_double_maps_follow_their_weights(dtype):
    weights = torch.zeros(1, 70, 3, 66, dtype=dtype)
    weights[0, 10, 1, 20] = 3
    weights[0, 50, 1, 40] = 1
    counts = centres(map_only(weights), (4, 1, 4), 4000, seed=2)
    assert_frequencies(counts, {(10, 1, 20): 0.75, (50, 1, 40): 0.25}, 4000)
