"""UniformSampler: the sampler contract, uniform corners, argument errors."""

from __future__ import annotations

import inspect
import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import LOCATION, LabelMap, ScalarImage, Subject, UniformSampler
from torchpatch.geometry import shift_affine
from torchpatch.testing import check_sampler, expected_patch_size

#: A permuted, flipped, anisotropic affine: patch affines must follow it.
AFFINE = np.array(
    [
        [0.0, -0.5, 0.0, 12.25],
        [2.0, 0.0, 0.0, -30.5],
        [0.0, 0.0, 0.75, 8.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def make_subject(shape: tuple[int, int, int] = (10, 12, 9), channels: int = 1, seed: int = 0) -> Subject:
    generator = torch.Generator().manual_seed(seed)
    return Subject(
        t1=ScalarImage(tensor=torch.rand(channels, *shape, generator=generator), affine=AFFINE),
        seg=LabelMap(tensor=torch.randint(0, 3, (1, *shape), generator=generator, dtype=torch.uint8), affine=AFFINE),
        subject_id="sub-uniform",
        age=42,
    )


def starts(sampler: UniformSampler, subject: Subject, num_patches: int, seed: int = 0) -> list[tuple[int, ...]]:
    return [tuple(p[LOCATION][:3].tolist()) for p in sampler(subject, num_patches, generator=seed)]


# Contract ---------------------------------------------------------------------------


def test_contract_on_3d_subject_with_cubic_patch():
    patches = check_sampler(UniformSampler(4), make_subject())
    assert patches[0]["t1"].shape == (1, 4, 4, 4)
    assert patches[0]["subject_id"] == "sub-uniform"


def test_contract_with_anisotropic_patch():
    patches = check_sampler(UniformSampler((3, 5, 2)), make_subject(), num_patches=16)
    assert patches[0]["seg"].shape == (1, 3, 5, 2)


def test_contract_on_2d_rgb_subject_int_patch_is_depth_one():
    subject = make_subject((20, 16, 1), channels=3)
    patches = check_sampler(UniformSampler(5), subject)
    assert patches[0]["t1"].shape == (3, 5, 5, 1)
    assert all(int(p[LOCATION][2]) == 0 and int(p[LOCATION][5]) == 1 for p in patches)


def test_contract_on_lazy_nifti_reads_regions_without_loading(tmp_path: Path):
    ScalarImage(tensor=torch.rand(1, 10, 11, 12), affine=AFFINE).save(tmp_path / "t1.nii")
    lazy = Subject(t1=ScalarImage(tmp_path / "t1.nii"), subject_id="lazy")
    patches = list(UniformSampler(4)(lazy, 5, generator=0))
    assert not lazy["t1"].is_loaded
    assert patches[0]["t1"].shape == (1, 4, 4, 4)
    check_sampler(UniformSampler(4), Subject(t1=ScalarImage(tmp_path / "t1.nii"), subject_id="lazy"))


def test_expected_patch_size_follows_the_2d_rule_only_for_ints():
    assert expected_patch_size(UniformSampler(4), (16, 16, 1)) == (4, 4, 1)
    assert expected_patch_size(UniformSampler((4, 4, 1)), (16, 16, 1)) == (4, 4, 1)
    assert expected_patch_size(UniformSampler(4), (16, 16, 16)) == (4, 4, 4)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_locations_in_bounds_and_data_match_for_any_shape(data: st.DataObject):
    shape = tuple(data.draw(st.integers(1, 12), label=f"size {axis}") for axis in range(3))
    patch = tuple(data.draw(st.integers(1, size), label=f"patch {axis}") for axis, size in enumerate(shape))
    subject = make_subject(shape, seed=data.draw(st.integers(0, 100), label="seed"))  # type: ignore[arg-type]
    check_sampler(UniformSampler(patch), subject)


@settings(max_examples=15, deadline=None)
@given(size_i=st.integers(1, 12), size_j=st.integers(1, 12), data=st.data())
def test_int_patch_on_any_2d_image_is_depth_one(size_i: int, size_j: int, data: st.DataObject):
    patch = data.draw(st.integers(1, min(size_i, size_j)), label="patch")
    check_sampler(UniformSampler(patch), make_subject((size_i, size_j, 1)))


@pytest.mark.skipif(
    "padding_mode" not in inspect.signature(UniformSampler).parameters, reason="samplers without padding_mode"
)
def test_contract_with_padding_mode_on_an_image_smaller_than_the_patch():
    patches = check_sampler(UniformSampler((12, 4, 4), padding_mode=0), make_subject((8, 10, 9)))
    assert all(int(p[LOCATION][0]) == -2 and int(p[LOCATION][3]) == 10 for p in patches)


# check_sampler must catch broken samplers --------------------------------------------------------


class ShiftedData(UniformSampler):
    """Cuts the voxels one step away from the location it reports."""

    def extract_patch(self, subject: Subject, index_ini: object, **metadata: object) -> Subject:
        patch = super().extract_patch(subject, index_ini, **metadata)  # type: ignore[arg-type]
        return patch.with_images({"t1": ScalarImage(tensor=patch["t1"].data + 1, affine=patch["t1"].affine)})


class UnshiftedAffine(UniformSampler):
    """Keeps the subject's affine on every patch."""

    def extract_patch(self, subject: Subject, index_ini: object, **metadata: object) -> Subject:
        patch = super().extract_patch(subject, index_ini, **metadata)  # type: ignore[arg-type]
        images = {
            name: type(image)(tensor=image.data, affine=subject[name].affine) for name, image in patch.images.items()
        }
        return patch.with_images(images)


class Int32Location(UniformSampler):
    def extract_patch(self, subject: Subject, index_ini: object, **metadata: object) -> Subject:
        patch = super().extract_patch(subject, index_ini, **metadata)  # type: ignore[arg-type]
        patch[LOCATION] = patch[LOCATION].to(torch.int32)
        return patch


class DropsAnImage(UniformSampler):
    def extract_patch(self, subject: Subject, index_ini: object, **metadata: object) -> Subject:
        patch = super().extract_patch(subject, index_ini, **metadata)  # type: ignore[arg-type]
        del patch["seg"]
        return patch


class IgnoresTheSeed(UniformSampler):
    def __call__(self, subject: Subject, num_patches: int | None = None, *, generator: object = None) -> object:
        return super().__call__(subject, num_patches, generator=np.random.default_rng(0))


class Unseeded(UniformSampler):
    def __call__(self, subject: Subject, num_patches: int | None = None, *, generator: object = None) -> object:
        return super().__call__(subject, num_patches, generator=None)


class Unpicklable(UniformSampler):
    def __init__(self, patch_size: int) -> None:
        super().__init__(patch_size)
        self.hook = lambda: None


@pytest.mark.parametrize(
    ("sampler", "message"),
    [
        (ShiftedData(4), "the voxels of image 't1'"),
        (UnshiftedAffine(4), "affine of image 't1' is not the subject's shifted"),
        (Int32Location(4), "must be int64, got torch.int32"),
        (DropsAnImage(4), r"lacks the images \['seg'\]"),
        (IgnoresTheSeed(4), "the seed is ignored"),
        (Unseeded(4), "the same seed must give the same patches"),
        (Unpicklable(4), "cannot be pickled"),
    ],
)
def test_check_sampler_catches_broken_samplers(sampler: UniformSampler, message: str):
    with pytest.raises(AssertionError, match=message):
        check_sampler(sampler, make_subject())


class Scribbles(UniformSampler):
    """Writes into the subject it samples."""

    def extract_patch(self, subject: Subject, index_ini: object, **metadata: object) -> Subject:
        subject["t1"].data[0, 0, 0, 0] = -1.0
        return super().extract_patch(subject, index_ini, **metadata)  # type: ignore[arg-type]


def test_check_sampler_catches_a_changed_subject():
    with pytest.raises(AssertionError, match="changed the voxels of image 't1'"):
        check_sampler(Scribbles(4), make_subject(), num_patches=2)


def test_check_sampler_checks_the_affine_with_shift_affine():
    patch = check_sampler(UniformSampler(3), make_subject())[0]
    np.testing.assert_allclose(patch["t1"].affine, shift_affine(AFFINE, patch[LOCATION][:3].tolist()))


# Hand-computed cases ----------------------------------------------------------------------


def test_patch_as_large_as_the_image_always_starts_at_zero():
    subject = make_subject((5, 6, 7))
    assert set(starts(UniformSampler((5, 6, 7)), subject, 20)) == {(0, 0, 0)}


def test_five_voxels_patch_two_gives_four_equally_likely_starts():
    # Axis of 5 voxels, patch 2: starts 0, 1, 2, 3 (4 positions), each 1/4.
    subject = make_subject((5, 1, 1))
    draws = 4000
    counts = Counter(s[0] for s in starts(UniformSampler((2, 1, 1)), subject, draws, seed=1))
    assert set(counts) == {0, 1, 2, 3}
    sigma = np.sqrt(draws * 0.25 * 0.75)
    for start in range(4):
        assert abs(counts[start] - draws / 4) < 4 * sigma, counts


def test_every_position_of_a_small_volume_is_reached_uniformly():
    # 4x3x2 positions for a (2, 2, 1) patch in (5, 4, 2): 24 cells, chi-square with 23 dof.
    subject = make_subject((5, 4, 2))
    draws = 4800
    counts = Counter(starts(UniformSampler((2, 2, 1)), subject, draws, seed=2))
    cells = list(itertools.product(range(4), range(3), range(2)))
    assert set(counts) == set(cells)
    expected = draws / len(cells)
    chi_square = sum((counts[c] - expected) ** 2 / expected for c in cells)
    assert chi_square < 23 + 6 * np.sqrt(2 * 23), chi_square


def test_location_holds_indices_beyond_uint16():
    subject = Subject(t1=ScalarImage(tensor=torch.arange(70_000.0).reshape(1, 70_000, 1, 1)))
    patches = list(UniformSampler((4, 1, 1))(subject, 200, generator=0))
    largest = max(int(p[LOCATION][0]) for p in patches)
    assert largest > 2**16
    patch = next(p for p in patches if int(p[LOCATION][0]) == largest)
    assert patch[LOCATION].dtype == torch.int64
    assert patch["t1"].data.flatten().tolist() == [float(largest + d) for d in range(4)]


# Seeds and streams ---------------------------------------------------------------------------


def test_torch_manual_seed_makes_the_default_generator_reproducible():
    subject = make_subject()
    torch.manual_seed(123)
    first = [p[LOCATION].tolist() for p in UniformSampler(3)(subject, 10)]
    torch.manual_seed(123)
    second = [p[LOCATION].tolist() for p in UniformSampler(3)(subject, 10)]
    assert first == second


def test_numpy_generator_is_used_as_given():
    subject = make_subject()
    first = starts(UniformSampler(3), subject, 10, seed=np.random.default_rng(5))  # type: ignore[arg-type]
    second = starts(UniformSampler(3), subject, 10, seed=np.random.default_rng(5))  # type: ignore[arg-type]
    assert first == second


def test_none_patches_is_an_endless_stream_beyond_one_chunk():
    stream = UniformSampler(3)(make_subject(), None, generator=0)
    patches = list(itertools.islice(stream, 600))
    assert len(patches) == 600


def test_zero_patches_yields_nothing():
    assert list(UniformSampler(3)(make_subject(), 0, generator=0)) == []


def test_distribution_is_built_once_per_call(monkeypatch: pytest.MonkeyPatch):
    calls = []
    original = UniformSampler.prepare

    def counting(self: UniformSampler, *args: object) -> object:
        calls.append(1)
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(UniformSampler, "prepare", counting)
    patches = list(UniformSampler(2)(make_subject((6, 6, 6)), 1000, generator=0))
    assert len(patches) == 1000
    assert len(calls) == 1


def test_sampling_leaves_the_subject_unchanged():
    subject = make_subject()
    before = subject["t1"].data.clone()
    for patch in UniformSampler(4)(subject, 10, generator=0):
        patch["t1"].data.fill_(-1.0)
    assert torch.equal(subject["t1"].data, before)


# Errors ------------------------------------------------------------------------------------------


def test_patch_larger_than_the_image_names_subject_and_suggests_crop_or_pad():
    with pytest.raises(ValueError, match=r"(?s)exceeds the spatial shape \(10, 12, 9\).*sub-uniform.*CropOrPad"):
        next(UniformSampler(10)(make_subject(), 1, generator=0))


def test_int_patch_on_2d_image_never_exceeds_depth():
    patch = next(UniformSampler(16)(make_subject((16, 16, 1)), 1, generator=0))
    assert patch[LOCATION].tolist() == [0, 0, 0, 16, 16, 1]


def test_tuple_patch_deeper_than_a_2d_image_is_an_error():
    with pytest.raises(ValueError, match="exceeds"):
        next(UniformSampler((4, 4, 4))(make_subject((16, 16, 1)), 1, generator=0))


@pytest.mark.parametrize("num_patches", [-1, -100])
def test_negative_num_patches_is_a_value_error(num_patches: int):
    with pytest.raises(ValueError, match=f"num_patches must be >= 0, got {num_patches}"):
        next(UniformSampler(2)(make_subject(), num_patches))


@pytest.mark.parametrize("num_patches", [1.5, True, "3"])
def test_non_int_num_patches_is_a_type_error(num_patches: object):
    with pytest.raises((TypeError, ValueError), match="num_patches"):
        next(UniformSampler(2)(make_subject(), num_patches))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("patch_size", "error"),
    [(0, ValueError), (-3, ValueError), ((4, 4), ValueError), ("4", TypeError), (2.5, TypeError), (True, TypeError)],
)
def test_bad_patch_size_fails_at_construction(patch_size: object, error: type[Exception]):
    with pytest.raises(error, match="patch_size"):
        UniformSampler(patch_size)  # type: ignore[arg-type]


def test_images_on_different_grids_are_refused():
    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8)), t2=ScalarImage(tensor=torch.rand(1, 8, 8, 7)))
    with pytest.raises(ValueError, match="different spatial shapes"):
        next(UniformSampler(2)(subject, 1, generator=0))


def test_a_subclass_changing_its_patches_is_not_thread_safe_unless_it_says_so():
    class Plain(UniformSampler):
        pass

    class Vouched(ShiftedData):
        thread_safe = True

    assert UniformSampler.thread_safe and Plain.thread_safe
    assert not ShiftedData.thread_safe and not IgnoresTheSeed.thread_safe
    assert Vouched.thread_safe
