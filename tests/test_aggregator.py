"""GridAggregator: exact reconstruction, hand-computed blends, factors, dtypes, errors, out-of-core."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import DATA, LOCATION, ScalarImage, Subject, SubjectsLoader, io
from torchpatch.inference import GridAggregator
from torchpatch.inference.windows import gaussian_window, hann_window, make_window, torchio_hann_window
from torchpatch.sampler.grid import GridSampler

ROOT = Path(__file__).resolve().parents[1]
MODES = ("crop", "average", "hann", "gaussian")
PADDING_MODES = (None, 0, -2.5, "constant", "edge", "reflect", "symmetric", "wrap")
PADDING_MODES += ("mean", "median", "minimum", "maximum")


def run_grid(sampler: GridSampler, aggregator: GridAggregator, model, batch_size: int = 2, order=None) -> torch.Tensor:
    """Feed every patch of ``sampler`` through ``model`` into ``aggregator``, in ``order``."""
    indices = list(range(len(sampler))) if order is None else list(order)
    for first in range(0, len(indices), batch_size):
        patches = [sampler[i] for i in indices[first : first + batch_size]]
        inputs = torch.stack([p["t1"].data for p in patches])
        locations = torch.stack([p[LOCATION] for p in patches])
        aggregator.add_batch(model(inputs), locations)
    return aggregator.get_output_tensor()


def index_model(sampler: GridSampler):
    """A model returning ``ones * (patch index + 1)``, the index read from the location."""
    rows = {tuple(row): n for n, row in enumerate(sampler.locations.tolist())}

    def model(inputs: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        values = [rows[tuple(row)] + 1.0 for row in locations.tolist()]
        return torch.ones_like(inputs) * torch.tensor(values).view(-1, 1, 1, 1, 1)

    return model


def aggregate_index_model(
    shape: tuple[int, int, int], patch: int, overlap: int, mode: str, crop_mode: str = "middle", **kwargs
) -> np.ndarray:
    subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, *shape)))
    sampler = GridSampler(subject, patch, overlap)
    aggregator = GridAggregator(sampler, overlap_mode=mode, crop_mode=crop_mode, **kwargs)
    model = index_model(sampler)
    for batch in SubjectsLoader(sampler, batch_size=3):
        aggregator.add_batch(model(batch["t1"][DATA], batch[LOCATION]), batch[LOCATION])
    return aggregator.get_output_tensor()[0, :, :, 0].numpy()


# Identity reconstruction (property) ----------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 1, 2, 5])),
    patch=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4)),
    data=st.data(),
)
def test_identity_model_reproduces_the_input(shape, patch, data) -> None:
    overlap = tuple(data.draw(st.integers(0, p - 1)) for p in patch)
    padding_mode = data.draw(st.sampled_from(PADDING_MODES))
    mode = data.draw(st.sampled_from(MODES))
    channels = data.draw(st.integers(1, 2))
    batch_size = data.draw(st.integers(1, 5))
    seed = data.draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    volume = torch.rand(channels, *shape, generator=generator) * 200 - 100
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=volume)), patch, overlap, padding_mode)
    order = torch.randperm(len(sampler), generator=generator).tolist()
    output = run_grid(sampler, GridAggregator(sampler, mode), lambda x: x, batch_size, order)
    assert output.shape == volume.shape
    if mode in ("crop", "average"):
        assert torch.equal(output, volume)
    else:
        torch.testing.assert_close(output, volume, rtol=1e-6, atol=0)


# Hand-computed 4x4 blends ------------------------------------------------------------------
#
# 4x4x1 image, patch 3, overlap 1: on I and J the patches start at 0 and 1 (the
# second shifted back to the border). The model returns ones * (index + 1), so
# patch (a, b) holds v = 2 a + b + 1:  (0,0) -> 1, (0,1) -> 2, (1,0) -> 3, (1,1) -> 4.


def test_crop_mode_splits_each_overlap_in_its_middle() -> None:
    # The two patches of an axis overlap on voxels 1 and 2: the cut is 2 // 2 = 1
    # voxel after the second start, so patch 0 writes 0-1 and patch 1 writes 2-3.
    expected = [
        [1, 1, 2, 2],
        [1, 1, 2, 2],
        [3, 3, 4, 4],
        [3, 3, 4, 4],
    ]
    np.testing.assert_array_equal(aggregate_index_model((4, 4, 1), 3, 1, "crop"), expected)


def test_crop_mode_with_patch_2_writes_one_voxel_per_inner_patch() -> None:
    # Patch 2, overlap 1: starts 0, 1, 2 per axis, cuts at 1 and 2; patch (a, b)
    # holds 3 a + b + 1 and the last one also writes the border voxel.
    expected = [
        [1, 2, 3, 3],
        [4, 5, 6, 6],
        [7, 8, 9, 9],
        [7, 8, 9, 9],
    ]
    np.testing.assert_array_equal(aggregate_index_model((4, 4, 1), 2, 1, "crop"), expected)


# Crop mode next to a shifted last patch: 'middle' against 'torchio' ----------------------------
#
# 12x12x1 image, patch 8, overlap 2: per axis the patches start at 0 and 4 (the
# second shifted back from 6 to end on the border), so they share voxels 4-7.


def test_crop_mode_middle_gives_each_side_half_of_what_a_shifted_patch_shares() -> None:
    # shared = 0 + 8 - 4 = 4 voxels: the cut lies 4 // 2 = 2 after the start 4.
    row = aggregate_index_model((12, 12, 1), 8, 2, "crop")[0]
    np.testing.assert_array_equal(row, [1] * 6 + [2] * 6)


def test_crop_mode_torchio_cuts_half_the_overlap_after_the_shifted_start() -> None:
    # TorchIO's cut: overlap // 2 = 1 after the start 4, whatever is shared.
    output = aggregate_index_model((12, 12, 1), 8, 2, "crop", crop_mode="torchio")
    np.testing.assert_array_equal(output[0], [1] * 5 + [2] * 7)
    np.testing.assert_array_equal(output[:, 0], [1] * 5 + [3] * 7)
    np.testing.assert_array_equal(output[11], [3] * 5 + [4] * 7)


@pytest.mark.parametrize(("shape", "patch", "overlap"), [((10, 10, 1), 4, 2), ((11, 11, 1), 5, 3), ((9, 9, 1), 3, 0)])
def test_crop_modes_agree_when_no_patch_is_shifted(shape, patch, overlap) -> None:
    # Evenly spaced patches share exactly the overlap, odd ones included.
    middle = aggregate_index_model(shape, patch, overlap, "crop")
    np.testing.assert_array_equal(aggregate_index_model(shape, patch, overlap, "crop", crop_mode="torchio"), middle)


def test_crop_mode_torchio_with_an_odd_overlap_cuts_at_its_floor_half() -> None:
    # Patch 5, overlap 3, image 8: starts 0, 2 and 3 (shifted); cuts at 2 + 1 and 3 + 1.
    row = aggregate_index_model((8, 8, 1), 5, 3, "crop", crop_mode="torchio")[0]
    np.testing.assert_array_equal(row, [1, 1, 1, 2, 3, 3, 3, 3])
    # 'middle': the shifted patch shares 4 voxels with the one at 2, cut at 3 + 2.
    row = aggregate_index_model((8, 8, 1), 5, 3, "crop")[0]
    np.testing.assert_array_equal(row, [1, 1, 1, 2, 2, 3, 3, 3])


@pytest.mark.parametrize("padding_mode", [None, 0, "edge"])
@pytest.mark.parametrize(("shape", "patch", "overlap"), [((13, 10, 7), (8, 4, 4), (2, 3, 2)), ((9, 6, 1), 4, 2)])
def test_crop_mode_torchio_reproduces_the_input_in_any_order(shape, patch, overlap, padding_mode) -> None:
    volume = torch.rand(2, *shape, generator=torch.Generator().manual_seed(3))
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=volume)), patch, overlap, padding_mode)
    order = torch.randperm(len(sampler), generator=torch.Generator().manual_seed(4)).tolist()
    output = run_grid(sampler, GridAggregator(sampler, crop_mode="torchio"), lambda x: x, 3, order)
    assert torch.equal(output, volume)


def test_crop_mode_torchio_does_not_depend_on_the_order_of_arrival() -> None:
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=torch.zeros(1, 12, 11, 1))), 8, 2)
    model = index_model(sampler)

    def run(order):
        aggregator = GridAggregator(sampler, crop_mode="torchio")
        for index in order:
            location = torch.as_tensor(sampler.locations[index : index + 1])
            aggregator.add_batch(model(torch.zeros(1, 1, 8, 8, 1), location), location)
        return aggregator.get_output_tensor()

    assert torch.equal(run(range(len(sampler))), run(reversed(range(len(sampler)))))


def test_crop_mode_torchio_with_a_downsampling_factor_cuts_in_output_voxels() -> None:
    # Patch 8, overlap 4, factor 2, image 14: starts 0, 4, 6 (shifted), output
    # starts 0, 2, 3, output overlap 2: the cuts lie 2 // 2 = 1 after 2 and 3.
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=torch.zeros(1, 14, 8, 1))), (8, 8, 1), (4, 0, 0))
    model = index_model(sampler)
    aggregator = GridAggregator(sampler, crop_mode="torchio", downsampling_factor=(2, 2, 1))
    for batch in SubjectsLoader(sampler, batch_size=3):
        outputs = model(batch["t1"][DATA], batch[LOCATION])[:, :, ::2, ::2]
        aggregator.add_batch(outputs, batch[LOCATION])
    np.testing.assert_array_equal(aggregator.get_output_tensor()[0, :, 0, 0], [1, 1, 1, 2, 3, 3, 3])


@pytest.mark.parametrize("mode", ["average", "hann", "gaussian"])
def test_crop_mode_is_ignored_by_the_blending_modes(mode: str) -> None:
    expected = aggregate_index_model((12, 12, 1), 8, 2, mode)
    np.testing.assert_array_equal(aggregate_index_model((12, 12, 1), 8, 2, mode, crop_mode="torchio"), expected)


def test_average_mode_is_the_mean_of_the_covering_patches() -> None:
    # Voxels 1 and 2 of each axis are covered by both patches of that axis:
    # out = 2 mean(a) + mean(b) + 1 with mean = 0, .5, .5, 1 along each axis.
    expected = [
        [1.0, 1.5, 1.5, 2.0],
        [2.0, 2.5, 2.5, 3.0],
        [2.0, 2.5, 2.5, 3.0],
        [3.0, 3.5, 3.5, 4.0],
    ]
    np.testing.assert_array_equal(aggregate_index_model((4, 4, 1), 3, 1, "average"), expected)


def test_hann_mode_weights_by_the_window() -> None:
    # Hann of 3 voxels: sin^2(pi (t + 1/2) / 3) = .25, 1, .25. Along an axis the
    # weighted mean of the patch index is 0, .25 / 1.25, 1 / 1.25, 1 = 0, .2, .8, 1,
    # and out = 2 E(a) + E(b) + 1.
    assert hann_window(3).tolist() == [0.25, 1.0, 0.25]
    expected = [
        [1.0, 1.2, 1.8, 2.0],
        [1.4, 1.6, 2.2, 2.4],
        [2.6, 2.8, 3.4, 3.6],
        [3.0, 3.2, 3.8, 4.0],
    ]
    np.testing.assert_allclose(aggregate_index_model((4, 4, 1), 3, 1, "hann"), expected, rtol=1e-6)


def test_hann_mode_torchio_weights_by_torchio_window() -> None:
    # TorchIO's Hann of 3 voxels: sin^2(pi (t + 1) / 4) = .5, 1, .5. Along an axis
    # the weighted mean of the patch index is 0, .5 / 1.5, 1 / 1.5, 1.
    np.testing.assert_allclose(torchio_hann_window(3).tolist(), [0.5, 1.0, 0.5], rtol=1e-7)
    e = [0.0, 1 / 3, 2 / 3, 1.0]
    expected = [[2 * e[i] + e[j] + 1 for j in range(4)] for i in range(4)]
    output = aggregate_index_model((4, 4, 1), 3, 1, "hann", hann_mode="torchio")
    np.testing.assert_allclose(output, expected, rtol=1e-6)


def test_torchio_hann_window_has_no_floor_and_tends_to_zero_at_the_ends() -> None:
    # sin^2(pi / 201) / sin^2(pi 100 / 201) ~ 2.4e-4, below hann_window's 1e-3 floor.
    window = torchio_hann_window(200)
    np.testing.assert_allclose(float(window[0]), math.sin(math.pi / 201) ** 2 / math.sin(math.pi * 100 / 201) ** 2)
    assert float(window.max()) == 1.0
    assert torch.equal(window, window.flip(0))
    assert torchio_hann_window(1).tolist() == [1.0]
    assert float(hann_window(200)[0]) == pytest.approx(1e-3)


def test_make_window_hann_mode() -> None:
    window = make_window((3, 5, 1), "hann", hann_mode="torchio")
    i, j = torchio_hann_window(3), torchio_hann_window(5)
    torch.testing.assert_close(window[0, :, :, 0], i[:, None] * j[None, :])
    assert torch.equal(make_window((3, 5, 1), "gaussian", hann_mode="torchio"), make_window((3, 5, 1), "gaussian"))
    with pytest.raises(ValueError, match=r"hann_mode must be one of \('centred', 'torchio'\), got 'tio'"):
        make_window((3, 5, 1), "hann", hann_mode="tio")


@pytest.mark.parametrize("mode", ["crop", "average", "gaussian"])
def test_hann_mode_is_ignored_by_the_other_modes(mode: str) -> None:
    expected = aggregate_index_model((12, 12, 1), 8, 2, mode)
    np.testing.assert_array_equal(aggregate_index_model((12, 12, 1), 8, 2, mode, hann_mode="torchio"), expected)


def test_hann_modes_differ_where_patches_overlap() -> None:
    centred = aggregate_index_model((12, 12, 1), 8, 4, "hann")
    torchio = aggregate_index_model((12, 12, 1), 8, 4, "hann", hann_mode="torchio")
    assert torchio[0, 0] == centred[0, 0] == 1.0  # one patch only: its value
    assert np.abs(torchio - centred).max() > 0.01


@pytest.mark.parametrize("padding_mode", [None, "edge"])
def test_hann_mode_torchio_reproduces_the_input_exactly(padding_mode) -> None:
    image = ScalarImage(tensor=torch.rand(2, 11, 9, 5, generator=torch.Generator().manual_seed(3)))
    sampler = GridSampler(Subject(t1=image), (6, 4, 3), (4, 2, 2), padding_mode=padding_mode)
    aggregator = GridAggregator(sampler, overlap_mode="hann", hann_mode="torchio")
    assert aggregator.hann_mode == "torchio"
    assert torch.equal(run_grid(sampler, aggregator, lambda x: x, 3, reversed(range(len(sampler)))), image.data)


def test_gaussian_mode_weights_by_the_window() -> None:
    # Gaussian of 3 voxels, sigma 3 / 8: exp(-1 / (2 (3/8)^2)) = exp(-32 / 9) = g at
    # both ends, 1 in the middle. E(a) along an axis: 0, g / (1 + g), 1 / (1 + g), 1.
    g = math.exp(-32 / 9)
    np.testing.assert_allclose(gaussian_window(3).tolist(), [g, 1.0, g], rtol=1e-6)
    e = [0.0, g / (1 + g), 1 / (1 + g), 1.0]
    expected = [[2 * e[i] + e[j] + 1 for j in range(4)] for i in range(4)]
    np.testing.assert_allclose(aggregate_index_model((4, 4, 1), 3, 1, "gaussian"), expected, rtol=1e-6)


# Order, batching, repeats -----------------------------------------------------------------


def test_batches_in_any_order_and_size_give_the_same_output() -> None:
    volume = torch.rand(1, 9, 7, 5)
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=volume)), (4, 3, 2), (1, 2, 1))

    def model(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.sin(), x * 3], dim=1)  # non-identical values in each overlap

    for mode in MODES:
        reference = run_grid(sampler, GridAggregator(sampler, mode), model, batch_size=1)
        order = list(reversed(range(len(sampler))))
        shuffled = run_grid(sampler, GridAggregator(sampler, mode), model, batch_size=4, order=order)
        torch.testing.assert_close(shuffled, reference, rtol=1e-6, atol=1e-6)
        assert reference.shape == (2, 9, 7, 5)


@pytest.mark.parametrize("mode", MODES)
def test_a_batch_gives_bit_for_bit_what_its_patches_give_one_by_one(mode) -> None:
    # add_batch writes channel by channel over the batch's patches; each voxel must still
    # see its patches in batch order, a patch repeated within the batch included.
    volume = torch.rand(1, 10, 9, 6, generator=torch.Generator().manual_seed(5))
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=volume)), (4, 5, 3), (2, 2, 1))

    def model(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.sin(), x * 3, x.exp()], dim=1)

    order = [*range(len(sampler)), 3, 0, 5]
    one_by_one = run_grid(sampler, GridAggregator(sampler, mode), model, batch_size=1, order=order)
    batched = run_grid(sampler, GridAggregator(sampler, mode), model, batch_size=len(order), order=order)
    assert torch.equal(batched, one_by_one)


@pytest.mark.parametrize("mode", ("average", "gaussian"))
def test_blending_on_one_thread_or_torchs_threads_gives_the_same_output(mode, monkeypatch) -> None:
    # The writes of a large batch run on one torch thread or on torch's threads, chosen by
    # timing (write_threads): the choice must not change the output.
    from torchpatch.inference import write_threads

    volume = torch.rand(1, 40, 36, 30, generator=torch.Generator().manual_seed(6))
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=volume)), 20, 6)

    def model(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.sin(), x * 3], dim=1)

    outputs = []
    threads_before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for parallel in (True, False):
            choice = write_threads.WriteThreads()
            monkeypatch.setattr(choice, "choose", lambda parallel=parallel: parallel)
            monkeypatch.setattr(write_threads, "WRITE_THREADS", choice)
            monkeypatch.setattr(write_threads, "PARALLEL_ELEMENTS", 1)
            outputs.append(run_grid(sampler, GridAggregator(sampler, mode), model, batch_size=8))
            assert choice.seconds[int(parallel)] is not None or not write_threads.OPENMP
    finally:
        torch.set_num_threads(threads_before)
    assert torch.equal(outputs[0], outputs[1])


def test_aggregators_of_one_grid_share_their_blending_ratios_and_stay_independent() -> None:
    volume = torch.rand(1, 9, 7, 5)
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=volume)), (4, 3, 2), (1, 2, 1))
    first, second = GridAggregator(sampler, "hann"), GridAggregator(sampler, "hann")
    order = list(reversed(range(len(sampler))))
    shuffled = run_grid(sampler, first, lambda x: x * 2, batch_size=4, order=order)
    in_order = run_grid(sampler, second, lambda x: x.cos(), batch_size=1)
    assert first._weights is second._weights
    torch.testing.assert_close(shuffled, volume * 2, rtol=1e-6, atol=0)
    torch.testing.assert_close(in_order, volume.cos(), rtol=1e-6, atol=0)
    other = GridSampler(Subject(t1=ScalarImage(tensor=volume)), (4, 3, 2), (2, 2, 1))
    third = GridAggregator(other, "hann")
    torch.testing.assert_close(run_grid(other, third, lambda x: x), volume, rtol=1e-6, atol=0)
    assert third._weights is not first._weights


def test_patches_added_twice_are_averaged_like_any_other_prediction() -> None:
    # Test-time augmentation: each patch added once as x and once as x + 2.
    volume = torch.rand(1, 6, 6, 1)
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=volume)), 4, 2)
    aggregator = GridAggregator(sampler, "average")
    run_grid(sampler, aggregator, lambda x: x)
    output = run_grid(sampler, aggregator, lambda x: x + 2)
    torch.testing.assert_close(output, volume + 1)


# Downsampling models --------------------------------------------------------------------------


def pool_model(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool3d(x, kernel_size=(2, 2, 1))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("factor", [None, (2, 2, 1)])
def test_a_downsampling_model_is_stitched_on_the_coarser_grid(mode: str, factor) -> None:
    volume = torch.rand(1, 12, 10, 3)
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=volume)), (4, 4, 3), (2, 2, 0))
    aggregator = GridAggregator(sampler, mode, downsampling_factor=factor)
    output = run_grid(sampler, aggregator, pool_model, batch_size=3)
    assert aggregator.downsampling_factor == (2, 2, 1)
    expected = pool_model(volume[None])[0]
    assert output.shape == (1, 6, 5, 3)
    torch.testing.assert_close(output, expected, rtol=1e-6, atol=1e-7)


def test_the_downsampled_grid_rounds_down() -> None:
    # I has 9 voxels; with border padding every start (-1, 1, ..., 7) is odd,
    # so use a grid whose starts are even: patch 4, overlap 2 on 10 voxels.
    volume = torch.rand(1, 10, 4, 1)
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=volume)), (4, 4, 1), (2, 0, 0))
    output = run_grid(sampler, GridAggregator(sampler, "average"), pool_model)
    assert output.shape == (1, 5, 2, 1)


def test_patch_starts_not_multiple_of_the_factor_are_an_error() -> None:
    # 11 voxels, patch 4, overlap 1: starts 0, 3, 6, 7 are not even.
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=torch.rand(1, 11, 4, 1))), (4, 4, 1), (1, 0, 0))
    aggregator = GridAggregator(sampler, "crop")
    patch = sampler[0]
    with pytest.raises(ValueError, match=r"along axis I the patch starts \[0, 3, 6, 7\].* not all multiples of 2"):
        aggregator.add_batch(pool_model(patch["t1"].data[None]), patch[LOCATION][None])


def test_factor_must_divide_the_patch() -> None:
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=torch.rand(1, 6, 6, 1))), (3, 3, 1))
    patch = sampler[0]
    with pytest.raises(ValueError, match=r"downsampling_factor \(2, 2, 1\) must divide patch_size \(3, 3, 1\)"):
        GridAggregator(sampler, downsampling_factor=(2, 2, 1)).add_batch(
            torch.zeros(1, 1, 1, 1, 1), patch[LOCATION][None]
        )
    with pytest.raises(ValueError, match=r"tensor spatial shape \(2, 2, 1\) is neither patch_size \(3, 3, 1\)"):
        GridAggregator(sampler).add_batch(torch.zeros(1, 1, 2, 2, 1), patch[LOCATION][None])


# Dtypes and devices ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "mode", "expected"),
    [
        (torch.float16, "average", torch.float32),
        (torch.bfloat16, "gaussian", torch.float32),
        (torch.float16, "crop", torch.float32),
        (torch.float32, "hann", torch.float32),
        (torch.float64, "average", torch.float64),
        (torch.float64, "crop", torch.float64),
        (torch.int64, "crop", torch.int64),
        (torch.uint8, "average", torch.float32),
        (torch.bool, "crop", torch.bool),
    ],
)
def test_output_dtype_rules(dtype: torch.dtype, mode: str, expected: torch.dtype) -> None:
    volume = (torch.rand(1, 5, 5, 2) * 4).to(dtype)
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=volume)), 3, 1)
    output = run_grid(sampler, GridAggregator(sampler, mode), lambda x: x)
    assert output.dtype == expected
    assert torch.equal(output, volume.to(expected))


def test_outputs_of_inference_mode_give_a_modifiable_tensor() -> None:
    volume = torch.rand(1, 5, 5, 1)
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=volume)), 3, 1)
    aggregator = GridAggregator(sampler, "gaussian")
    with torch.inference_mode():
        output = run_grid(sampler, aggregator, lambda x: x * 1)
    output.add_(1)  # would raise on an inference tensor
    assert not output.is_inference()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_accumulates_on_the_device_of_the_outputs() -> None:
    volume = torch.rand(1, 6, 6, 4)
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=volume)), 4, 2)
    for mode in MODES:
        output = run_grid(sampler, GridAggregator(sampler, mode), lambda x: x.cuda().half())
        assert output.device.type == "cuda"
        assert output.dtype == torch.float32
        torch.testing.assert_close(output.cpu(), volume.half().float(), rtol=1e-6, atol=0)


# Out-of-core ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_output_path_accumulates_in_a_memory_mapped_npy(tmp_path: Path, mode: str) -> None:
    volume = torch.rand(2, 9, 8, 3)
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=volume)), 4, 1, padding_mode="edge")
    path = tmp_path / "output.npy"
    aggregator = GridAggregator(sampler, mode, output_path=path)
    output = run_grid(sampler, aggregator, lambda x: x * 2, batch_size=3)
    in_memory = run_grid(sampler, GridAggregator(sampler, mode), lambda x: x * 2, batch_size=3)
    assert torch.equal(output, in_memory)
    assert isinstance(np.load(path, mmap_mode="r"), np.memmap)
    np.testing.assert_array_equal(np.load(path), in_memory.numpy())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["output.npy"]


def run_out_of_core(tmp_path: Path, shape: tuple[int, int, int]) -> dict:
    command = [sys.executable, str(ROOT / "benchmarks" / "grid.py"), "--out-of-core", *map(str, shape), str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_out_of_core_rebuild_in_a_subprocess_is_exact(tmp_path: Path) -> None:
    report = run_out_of_core(tmp_path, (96, 80, 40))
    assert report["exact"]
    assert report["memmap"]


@pytest.mark.skipif(io.reorder_backend() != "compiled", reason="the least job copies by the compiled extension")
def test_grid_benchmark_least_job_rebuilds_the_input_in_crop_mode(tmp_path: Path) -> None:
    # 120 voxels: patches start at 0, 48 and 56 along each axis (the last one's overlap is uneven).
    path = tmp_path / "input.npy"
    np.save(path, np.random.default_rng(0).random((1, 120, 120, 120), dtype=np.float32))
    reports = {}
    for mode in ("crop", "blend"):
        command = [sys.executable, str(ROOT / "benchmarks" / "grid.py"), "--child", "least", mode, "8", str(path), "1"]
        result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
        reports[mode] = json.loads(result.stdout.strip().splitlines()[-1])
    assert reports["crop"]["error"] == 0.0  # every channel of the copy-only crop is the input
    assert math.isnan(reports["blend"]["error"])  # the last patch wins: no answer to compare
    assert all(len(report["times"]) == 1 for report in reports.values())


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TORCHPATCH_SLOW_TESTS"), reason="a few minutes; set TORCHPATCH_SLOW_TESTS=1")
def test_out_of_core_1024x1024x512_peak_rss_below_1_gib(tmp_path: Path) -> None:
    report = run_out_of_core(tmp_path, (1024, 1024, 512))
    assert report["exact"]
    assert report["peak_rss_mib"] < 1024


# Errors --------------------------------------------------------------------------------------------


@pytest.fixture
def small_grid() -> tuple[GridSampler, torch.Tensor, torch.Tensor]:
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=torch.rand(1, 6, 6, 1)), subject_id="sub-4"), 4, 2)
    patch = sampler[0]
    return sampler, patch["t1"].data[None], patch[LOCATION][None]


def test_unknown_overlap_mode(small_grid) -> None:
    with pytest.raises(
        ValueError, match=r"overlap_mode must be one of \('crop', 'average', 'hann', 'gaussian'\), got 'max'"
    ):
        GridAggregator(small_grid[0], "max")


def test_unknown_crop_mode(small_grid) -> None:
    with pytest.raises(ValueError, match=r"crop_mode must be one of \('middle', 'torchio'\), got 'centre'"):
        GridAggregator(small_grid[0], crop_mode="centre")
    with pytest.raises(TypeError, match=r"crop_mode must be a str, one of .*, got int"):
        GridAggregator(small_grid[0], crop_mode=1)  # type: ignore[arg-type]


def test_unknown_hann_mode(small_grid) -> None:
    with pytest.raises(ValueError, match=r"hann_mode must be one of \('centred', 'torchio'\), got 'centered'"):
        GridAggregator(small_grid[0], "hann", hann_mode="centered")
    with pytest.raises(TypeError, match=r"hann_mode must be a str, one of .*, got NoneType"):
        GridAggregator(small_grid[0], hann_mode=None)  # type: ignore[arg-type]


def test_constructor_argument_types(small_grid, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="sampler must be a GridSampler, got list"):
        GridAggregator([])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"output_path must be a \.npy file"):
        GridAggregator(small_grid[0], output_path=tmp_path / "out.nii")
    with pytest.raises(ValueError, match="downsampling_factor must be at least 1"):
        GridAggregator(small_grid[0], downsampling_factor=0)
    with pytest.raises(TypeError, match="downsampling_factor must be None, an int or three ints"):
        GridAggregator(small_grid[0], downsampling_factor=2.0)  # type: ignore[arg-type]


def test_a_location_outside_the_grid_is_named(small_grid) -> None:
    sampler, tensor, location = small_grid
    aggregator = GridAggregator(sampler)
    shifted = location + torch.tensor([1, 0, 0, 1, 0, 0])
    with pytest.raises(
        ValueError, match=r"locations\[0\] = \[1, 0, 0, 5, 4, 1\] is not a patch of the grid of subject 'sub-4'"
    ):
        aggregator.add_batch(tensor, shifted)
    wrong_size = location + torch.tensor([0, 0, 0, 1, 0, 0])
    with pytest.raises(ValueError, match="along axis I patches start at"):
        aggregator.add_batch(tensor, wrong_size)


def test_locations_must_match_the_batch(small_grid) -> None:
    sampler, tensor, location = small_grid
    with pytest.raises(ValueError, match=r"locations must be 2 rows of 6 ints.*got int64 of shape \(1, 6\)"):
        GridAggregator(sampler).add_batch(torch.cat([tensor, tensor]), location)
    with pytest.raises(ValueError, match="got float32"):
        GridAggregator(sampler).add_batch(tensor, location.float())


def test_a_tensor_of_the_wrong_shape_is_named(small_grid) -> None:
    sampler, tensor, location = small_grid
    aggregator = GridAggregator(sampler)
    with pytest.raises(ValueError, match=r"tensor must be 5D \(B, C, I, J, K\), got shape \(1, 4, 4, 1\)"):
        aggregator.add_batch(tensor[0], location)
    with pytest.raises(TypeError, match=r"tensor must be a torch\.Tensor"):
        aggregator.add_batch(tensor.numpy(), location)  # type: ignore[arg-type]
    aggregator.add_batch(tensor, location)
    with pytest.raises(
        ValueError, match=r"tensor has shape \(1, 2, 4, 4, 1\) but this aggregator expects \(B, 1, \*\(4, 4, 1\)\)"
    ):
        aggregator.add_batch(torch.cat([tensor, tensor], dim=1), location)
    with pytest.raises(ValueError, match=r"tensor has shape \(1, 1, 2, 2, 1\)"):
        aggregator.add_batch(tensor[..., :2, :2, :], location)


def test_asking_for_the_output_too_early_is_an_error(small_grid) -> None:
    sampler, tensor, location = small_grid
    aggregator = GridAggregator(sampler, "average")
    with pytest.raises(ValueError, match=r"incomplete: 4 of 4 patches were never added"):
        aggregator.get_output_tensor()
    aggregator.add_batch(tensor, location)
    with pytest.raises(
        ValueError, match=r"3 of 4 patches were never added \(first: patch 1 at location \[0, 2, 0, 4, 6, 1\]\)"
    ):
        aggregator.get_output_tensor()
    assert "added=1/4" in repr(aggregator)


def test_complex_outputs_are_rejected(small_grid) -> None:
    sampler, tensor, location = small_grid
    with pytest.raises(TypeError, match="model outputs must be real"):
        GridAggregator(sampler).add_batch(tensor.to(torch.complex64), location)
