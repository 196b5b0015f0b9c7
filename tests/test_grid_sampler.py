"""GridSampler: TorchIO's start rule, 2D, small images, border padding, laziness."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from torchpatch import DATA, LOCATION, LabelMap, ScalarImage, Subject, SubjectsLoader
from torchpatch.sampler.grid import GridSampler, grid_starts, parse_padding_mode
from torchpatch.testing import check_sampler


def arange_subject(shape: tuple[int, int, int], channels: int = 1, **metadata: object) -> Subject:
    data = torch.arange(channels * int(np.prod(shape)), dtype=torch.float32).reshape(channels, *shape)
    return Subject(t1=ScalarImage(tensor=data, affine=np.diag([2.0, 3.0, 4.0, 1.0])), **metadata)


# Starts ------------------------------------------------------------------------------


def test_grid_starts_shift_the_last_patch_back_to_the_border() -> None:
    # size 10, patch 5, overlap 2 -> step 3: 0, 3, then 6 would end at 11 > 10, so 5.
    assert grid_starts(10, 5, 2).tolist() == [0, 3, 5]
    # size 11, patch 4, overlap 1 -> step 3: 0, 3, 6 ends at 10 < 11, so one more at 7.
    assert grid_starts(11, 4, 1).tolist() == [0, 3, 6, 7]
    # Already ending on the border: no extra patch.
    assert grid_starts(10, 4, 1).tolist() == [0, 3, 6]
    assert grid_starts(4, 4, 0).tolist() == [0]


def test_locations_match_torchio_rule_for_an_anisotropic_grid() -> None:
    # Computed by hand from TorchIO's rule, sorted like TorchIO (i, then j, then k):
    # I: size 10, patch 5, overlap 2 -> [0, 3, 5]; J: size 11, patch 4, overlap 1 -> [0, 3, 6, 7];
    # K: size 4, patch 4, overlap 0 -> [0].
    sampler = GridSampler(arange_subject((10, 11, 4)), (5, 4, 4), (2, 1, 0))
    expected = [[i, j, 0, i + 5, j + 4, 4] for i in (0, 3, 5) for j in (0, 3, 6, 7)]
    assert sampler.locations.tolist() == expected
    assert sampler.locations.dtype == np.int64
    assert [sampler[n][LOCATION].tolist() for n in range(len(sampler))] == expected


def test_locations_match_torchio_rule_for_a_cube() -> None:
    # TorchIO's documented example on each axis: size 10, patch 5, overlap 2 -> 0, 3, 5.
    sampler = GridSampler(arange_subject((10, 10, 10)), 5, 2)
    starts = (0, 3, 5)
    assert sampler.locations[:, :3].tolist() == [[i, j, k] for i in starts for j in starts for k in starts]


def test_4x4_image_patch_3_overlap_1_cuts_the_expected_patches() -> None:
    # voxel (i, j) holds 4 i + j. Starts on I and J: 0, then 1 (shifted back: 2 + 3 > 4).
    sampler = GridSampler(arange_subject((4, 4, 1)), 3, 1)
    assert sampler.patch_size == (3, 3, 1)
    assert sampler.patch_overlap == (1, 1, 0)
    assert sampler.locations.tolist() == [
        [0, 0, 0, 3, 3, 1],
        [0, 1, 0, 3, 4, 1],
        [1, 0, 0, 4, 3, 1],
        [1, 1, 0, 4, 4, 1],
    ]
    assert sampler[0]["t1"].data[0, :, :, 0].tolist() == [[0, 1, 2], [4, 5, 6], [8, 9, 10]]
    assert sampler[3]["t1"].data[0, :, :, 0].tolist() == [[5, 6, 7], [9, 10, 11], [13, 14, 15]]


def test_int_sizes_on_a_2d_image_leave_depth_alone() -> None:
    sampler = GridSampler(arange_subject((6, 5, 1)), 4, 2)
    assert sampler.patch_size == (4, 4, 1)
    assert sampler.patch_overlap == (2, 2, 0)
    assert {tuple(loc[2::3]) for loc in sampler.locations.tolist()} == {(0, 1)}


def test_odd_overlap_is_accepted() -> None:
    sampler = GridSampler(arange_subject((9, 9, 9)), 4, 3)
    assert sampler.grid_starts[0].tolist() == [0, 1, 2, 3, 4, 5]


# Small images and border padding ------------------------------------------------------


def test_image_smaller_than_the_patch_is_padded_at_its_end() -> None:
    # I has 3 voxels for a patch of 4: one zero voxel is added after the last.
    sampler = GridSampler(arange_subject((3, 5, 1)), (4, 4, 1))
    assert sampler.padding == (0, 1, 0, 0, 0, 0)
    assert sampler.locations.tolist() == [[0, 0, 0, 4, 4, 1], [0, 1, 0, 4, 5, 1]]
    patch = sampler[0]["t1"].data[0, :, :, 0]
    assert patch.tolist() == [[0, 1, 2, 3], [5, 6, 7, 8], [10, 11, 12, 13], [0, 0, 0, 0]]


def test_padding_mode_pads_half_the_overlap_and_locations_start_below_zero() -> None:
    # 4x4 image, patch 3, overlap 2: pad 1 on each side of I and J (padded 6x6),
    # starts 0, 1, 2, 3 in the padded grid, i.e. -1, 0, 1, 2 in the image's.
    sampler = GridSampler(arange_subject((4, 4, 1)), 3, 2, padding_mode=-7)
    assert sampler.padding == (1, 1, 1, 1, 0, 0)
    assert sampler.grid_starts[0].tolist() == [-1, 0, 1, 2]
    first = sampler[0]
    assert first[LOCATION].tolist() == [-1, -1, 0, 2, 2, 1]
    assert first["t1"].data[0, :, :, 0].tolist() == [[-7, -7, -7], [-7, 0, 1], [-7, 4, 5]]
    last = sampler[len(sampler) - 1]
    assert last[LOCATION].tolist() == [2, 2, 0, 5, 5, 1]
    assert last["t1"].data[0, :, :, 0].tolist() == [[10, 11, -7], [14, 15, -7], [-7, -7, -7]]


@pytest.mark.parametrize(
    "padding_mode",
    [0, 2.5, "constant", "edge", "reflect", "symmetric", "wrap", "mean", "median", "minimum", "maximum"],
)
def test_padded_patches_equal_numpy_pad_of_the_whole_image(padding_mode: object) -> None:
    rng = np.random.default_rng(1)
    array = rng.random((2, 5, 3, 4)).astype(np.float32)
    subject = Subject(t1=ScalarImage(tensor=torch.from_numpy(array)))
    sampler = GridSampler(subject, (4, 4, 3), (2, 3, 2), padding_mode=padding_mode)
    i0, i1, j0, j1, k0, k1 = sampler.padding
    mode, fill = parse_padding_mode(padding_mode)
    widths = ((0, 0), (i0, i1), (j0, j1), (k0, k1))
    kwargs = {"constant_values": fill} if mode == "constant" else {}
    padded = np.pad(array, widths, mode=mode, **kwargs)  # type: ignore[call-overload]
    for index in range(len(sampler)):
        patch = sampler[index]
        a, b, c, d, e, f = (patch[LOCATION] + torch.tensor([i0, j0, k0, i0, j0, k0])).tolist()
        np.testing.assert_array_equal(patch["t1"].data.numpy(), padded[:, a:d, b:e, c:f])
        np.testing.assert_array_equal(sampler.patch_data(index, "t1").numpy(), padded[:, a:d, b:e, c:f])


def test_label_maps_are_padded_with_zero_unless_the_mode_copies_voxels() -> None:
    labels = LabelMap(tensor=torch.full((1, 2, 2, 1), 3, dtype=torch.uint8))
    subject = Subject(t1=ScalarImage(tensor=torch.ones(1, 2, 2, 1)), seg=labels)
    for mode, border in ((5, 0), ("mean", 0), ("edge", 3), ("reflect", 3)):
        patch = GridSampler(subject, 3, 2, padding_mode=mode)[0]
        assert patch["seg"].data[0, 0, 0, 0].item() == border
        assert patch["seg"].data.dtype == torch.uint8


def test_patch_affines_are_shifted_by_their_location() -> None:
    subject = arange_subject((4, 4, 1))
    sampler = GridSampler(subject, 3, 2, padding_mode="edge")
    for index in (0, 5, len(sampler) - 1):
        patch = sampler[index]
        ini = patch[LOCATION][:3].numpy().astype(float)
        expected_origin = subject.t1.affine[:3, :3] @ ini + subject.t1.affine[:3, 3]
        np.testing.assert_allclose(patch["t1"].origin, expected_origin)


def test_metadata_and_every_image_are_carried_by_each_patch(make_subject) -> None:
    subject = make_subject((1, 5, 6, 7), subject_id="sub-9")
    sampler = GridSampler(subject, 4, 1)
    patch = sampler[2]
    ini, fin = patch[LOCATION][:3].tolist(), patch[LOCATION][3:].tolist()
    assert patch["subject_id"] == "sub-9"
    for name in ("t1", "seg"):
        region = subject[name].data[:, ini[0] : fin[0], ini[1] : fin[1], ini[2] : fin[2]]
        assert torch.equal(patch[name].data, region)


# Laziness ---------------------------------------------------------------------------------


def test_a_grid_over_a_lazy_npy_file_reads_regions_only(tmp_path: Path) -> None:
    array = np.arange(6 * 5 * 4, dtype=np.float32).reshape(1, 6, 5, 4)
    path = tmp_path / "volume.npy"
    np.save(path, array)
    image = ScalarImage(path)
    for padding_mode in (None, 0, "reflect"):
        sampler = GridSampler(Subject(t1=image), 4, 2, padding_mode=padding_mode)
        patches = list(sampler)
        assert not image.is_loaded
        assert len(patches) == len(sampler)
    patch = GridSampler(Subject(t1=image), 4, 2)[1]
    ini, fin = patch[LOCATION][:3].tolist(), patch[LOCATION][3:].tolist()
    np.testing.assert_array_equal(patch["t1"].data.numpy(), array[:, ini[0] : fin[0], ini[1] : fin[1], ini[2] : fin[2]])


def test_patches_of_loaded_images_are_views_until_batched() -> None:
    subject = arange_subject((8, 8, 8))
    patch = GridSampler(subject, 4)[0]
    assert patch["t1"].data.data_ptr() == subject.t1.data.data_ptr()


# Dataset protocol --------------------------------------------------------------------------


def test_dataset_protocol_len_getitem_and_iteration() -> None:
    sampler = GridSampler(arange_subject((5, 5, 1)), 3, 1)
    assert len(sampler) == 4
    assert torch.equal(sampler[-1][LOCATION], sampler[3][LOCATION])
    assert torch.equal(sampler[np.int64(2)][LOCATION], sampler[2][LOCATION])
    assert [p[LOCATION].tolist() for p in sampler] == sampler.locations.tolist()
    with pytest.raises(IndexError, match="patch index 4 is out of range for a grid of 4 patches"):
        sampler[4]
    with pytest.raises(TypeError, match="index must be an int, got str"):
        sampler["0"]  # type: ignore[index]


def test_calling_the_sampler_yields_patches_in_order() -> None:
    subject = arange_subject((5, 5, 1))
    sampler = GridSampler(subject, 3, 1)
    assert len(list(sampler())) == 4
    assert [p[LOCATION].tolist() for p in sampler(num_patches=2)] == sampler.locations[:2].tolist()
    other = arange_subject((7, 5, 1))
    assert len(list(sampler(other))) == 6
    with pytest.raises(ValueError, match="num_patches must be >= 0"):
        list(sampler(num_patches=-1))


def test_batches_from_the_loader_carry_int64_locations() -> None:
    sampler = GridSampler(arange_subject((6, 6, 6)), 4, 2)
    batch = next(iter(SubjectsLoader(sampler, batch_size=3)))
    assert batch["t1"][DATA].shape == (3, 1, 4, 4, 4)
    assert batch[LOCATION].shape == (3, 6)
    assert batch[LOCATION].dtype == torch.int64


def test_sampler_pickles_for_worker_processes() -> None:
    sampler = GridSampler(arange_subject((5, 5, 5)), 3, 1, padding_mode="reflect")
    clone = pickle.loads(pickle.dumps(sampler))
    assert torch.equal(clone[7]["t1"].data, sampler[7]["t1"].data)
    assert "patch_overlap=(1, 1, 1)" in repr(sampler)


def test_large_indices_are_int64() -> None:
    # 100 000 voxels a side would overflow uint16 indices.
    sampler = GridSampler(Subject(t1=ScalarImage(tensor=torch.zeros(1, 70_000, 2, 1))), (40_000, 2, 1))
    assert sampler.locations.tolist() == [[0, 0, 0, 40_000, 2, 1], [30_000, 0, 0, 70_000, 2, 1]]


# Errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overlap", "error", "message"),
    [
        (4, ValueError, r"patch_overlap \(4, 4, 4\) must be >= 0 and smaller than patch_size \(4, 4, 4\)"),
        ((1, 5, 1), ValueError, r"patch_overlap \(1, 5, 1\) must be >= 0 and smaller than patch_size"),
        (-1, ValueError, r"patch_overlap \(-1, -1, -1\) must be >= 0"),
        ((1, 1), ValueError, "patch_overlap must have three values"),
        # One rule everywhere (torchpatch.geometry.arguments): floats are fractions of the patch in [0, 1).
        (1.5, ValueError, r"fractional patch_overlap must be in \[0, 1\), got 1.5"),
        (True, TypeError, "patch_overlap must be an int .* got the bool"),
        ((1, 1.0, 1), TypeError, r"patch_overlap must hold only ints \(voxels\) or only floats"),
    ],
)
def test_bad_overlaps_are_named_with_their_values(overlap: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        GridSampler(arange_subject((8, 8, 8), subject_id="sub-1"), 4, overlap)  # type: ignore[arg-type]


def test_overlap_errors_name_the_subject() -> None:
    with pytest.raises(ValueError, match="subject 'sub-1'"):
        GridSampler(arange_subject((8, 8, 8), subject_id="sub-1"), 4, 4)


@pytest.mark.parametrize(
    ("padding_mode", "error", "message"),
    [
        ("nearest", ValueError, "padding_mode must be None or one of"),
        (float("nan"), ValueError, "padding_mode must be a finite number"),
        ([0], TypeError, "padding_mode must be None or one of .* got list"),
    ],
)
def test_bad_padding_modes_are_rejected(padding_mode: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        GridSampler(arange_subject((4, 4, 4)), 2, 1, padding_mode=padding_mode)  # type: ignore[arg-type]


def test_a_fill_value_that_does_not_fit_an_integer_image_is_an_error() -> None:
    subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 4, dtype=torch.uint8)), subject_id="sub-2")
    with pytest.raises(ValueError, match=r"padding_mode -1 does not fit the torch.uint8 voxels of image 't1'.*'sub-2'"):
        GridSampler(subject, 2, 1, padding_mode=-1)


def test_subject_and_patch_size_types_are_checked() -> None:
    with pytest.raises(TypeError, match="subject must be a Subject, got ScalarImage"):
        GridSampler(ScalarImage(tensor=torch.zeros(1, 4, 4, 4)), 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="patch_size must be at least 1"):
        GridSampler(arange_subject((4, 4, 4)), 0)


def test_patch_data_names_a_missing_image() -> None:
    sampler = GridSampler(arange_subject((4, 4, 4)), 2)
    with pytest.raises(KeyError, match="image_name 'ct' is not an image of subject"):
        sampler.patch_data(0, "ct")


# The sampler contract ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "patch_size", "overlap", "padding_mode"),
    [((8, 8, 8), 4, 2, None), ((7, 6, 1), 4, 1, "reflect"), ((3, 9, 5), 4, 0, None), ((6, 6, 6), 4, 2, "mean")],
)
def test_grid_sampler_keeps_the_sampler_contract(
    shape: tuple[int, int, int], patch_size: int, overlap: int, padding_mode: str | None
) -> None:
    sampler = GridSampler(arange_subject(shape), patch_size, overlap, padding_mode)
    patches = check_sampler(sampler, sampler.subject, num_patches=len(sampler) + 5)
    assert len(patches) == len(sampler)


def _loop_subject() -> Subject:
    generator = torch.Generator().manual_seed(5)
    affine = np.diag([0.5, 1.0, 2.0, 1.0])
    return Subject(
        t1=ScalarImage(tensor=torch.rand(2, 11, 9, 7, generator=generator), affine=affine),
        seg=LabelMap(tensor=torch.randint(0, 4, (1, 11, 9, 7), generator=generator).to(torch.uint8), affine=affine),
        subject_id="loop",
    )


@pytest.mark.parametrize("padding_mode", [None, "edge", 0])
@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_batches_are_cut_straight_into_the_batch(padding_mode, num_workers):
    subject = _loop_subject()
    sampler = GridSampler(subject, patch_size=(4, 4, 3), patch_overlap=(2, 0, 1), padding_mode=padding_mode)
    batches = list(SubjectsLoader(sampler, batch_size=5, num_workers=num_workers))
    assert sum(len(batch[LOCATION]) for batch in batches) == len(sampler)
    start = 0
    for batch in batches:
        size = len(batch[LOCATION])
        expected = [sampler[index] for index in range(start, start + size)]
        assert torch.equal(batch[LOCATION], torch.stack([patch[LOCATION] for patch in expected]))
        for name in ("t1", "seg"):
            voxels = torch.stack([patch[name][DATA] for patch in expected])
            assert batch[name][DATA].dtype == voxels.dtype and torch.equal(batch[name][DATA], voxels)
            assert torch.equal(batch[name]["affine"], torch.from_numpy(np.stack([p[name].affine for p in expected])))
        assert batch["subject_id"] == ["loop"] * size
        start += size


def test_getitems_hands_the_batch_tensors_to_the_collate():
    from torchpatch.loader import StackedPatches, collate_subjects

    sampler = GridSampler(_loop_subject(), patch_size=4)
    patches = sampler.__getitems__([2, -1, 0])
    assert isinstance(patches, StackedPatches) and len(patches) == 3
    batch = collate_subjects(patches)
    assert batch["t1"][DATA] is patches.stacked["t1"]  # no second copy
    # Each patch's voxels are rows of the batch, in the order asked for.
    assert torch.equal(patches[1]["t1"][DATA], sampler[len(sampler) - 1]["t1"][DATA])
    assert patches[1]["t1"][DATA].data_ptr() == batch["t1"][DATA][1].data_ptr()
    assert sampler.__getitems__([]) == []
    with pytest.raises(IndexError, match="out of range"):
        sampler.__getitems__([0, len(sampler)])
    with pytest.raises(TypeError, match="must be an int"):
        sampler.__getitems__([0.5])


def test_loader_cuts_the_next_grid_batch_in_a_thread(two_threads):
    from torchpatch import SubjectsDataset

    sampler = GridSampler(_loop_subject(), patch_size=(4, 4, 3), patch_overlap=(2, 0, 1), padding_mode="edge")
    iterator = iter(SubjectsLoader(sampler, batch_size=4))
    assert not isinstance(iterator, torch.utils.data.dataloader._BaseDataLoaderIter)  # the cutting thread's
    ahead = list(iterator)
    torch.set_num_threads(1)
    plain = list(SubjectsLoader(sampler, batch_size=4))
    assert len(ahead) == len(plain) == -(-len(sampler) // 4)
    for a, b in zip(ahead, plain, strict=True):
        assert torch.equal(a[LOCATION], b[LOCATION]) and torch.equal(a["t1"][DATA], b["t1"][DATA])
    torch.set_num_threads(2)
    # Leaving early is fine, and other datasets (which may draw from torch's RNG) get no thread.
    for _ in SubjectsLoader(sampler, batch_size=4):
        break
    dataset = SubjectsDataset([_loop_subject()])
    assert isinstance(iter(SubjectsLoader(dataset)), torch.utils.data.dataloader._BaseDataLoaderIter)


class FailingGrid(GridSampler):
    def __getitems__(self, indices):
        if 0 not in indices:
            raise RuntimeError(f"cannot cut patches {list(indices)}")
        return super().__getitems__(indices)


def test_an_error_in_the_cutting_thread_reaches_the_caller(two_threads):
    sampler = FailingGrid(_loop_subject(), patch_size=4)
    batches = iter(SubjectsLoader(sampler, batch_size=2))
    assert len(next(batches)[LOCATION]) == 2
    with pytest.raises(RuntimeError, match=r"cannot cut patches \[2, 3\]"):
        next(batches)
