"""Pure index and affine maths, checked on hand-computed examples."""

from __future__ import annotations

import math
import re

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch.geometry import (
    LPS_TO_RAS,
    check_affine,
    check_region,
    is_number,
    location_from_region,
    orientation_from_affine,
    origin_from_affine,
    parse_patch_size,
    shift_affine,
    shift_affines,
    spacing_from_affine,
    to_triplet,
)


def rotation_z(degrees: float) -> np.ndarray:
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    return np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])


# to_triplet and parse_patch_size ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4, (4, 4, 4)),
        (np.int64(3), (3, 3, 3)),
        ((8, 8, 1), (8, 8, 1)),
        ([2, 3, 4], (2, 3, 4)),
        (np.array([5, 6, 7]), (5, 6, 7)),
    ],
)
def test_to_triplet_accepts_int_or_three_ints(value, expected):
    result = to_triplet(value, "patch_size")
    assert result == expected
    assert all(type(v) is int for v in result)


@pytest.mark.parametrize("value", [True, 2.0, None, (2.0, 2, 2), (1, 2, True), {"a": 1}])
def test_to_triplet_rejects_non_ints_with_type_error(value):
    with pytest.raises(TypeError, match="patch_size"):
        to_triplet(value, "patch_size")


@pytest.mark.parametrize("value", ["64", "abc"])
def test_to_triplet_rejects_strings_with_type_error(value):
    with pytest.raises(TypeError, match="patch_size"):
        to_triplet(value, "patch_size")


def test_to_triplet_rejects_wrong_length_naming_values():
    with pytest.raises(ValueError, match=r"patch_size must have three values.*\(1, 2\)"):
        to_triplet((1, 2), "patch_size")


def test_to_triplet_enforces_minimum_naming_values():
    with pytest.raises(ValueError, match=r"patch_size must be at least 1.*\(4, 0, 4\)"):
        to_triplet((4, 0, 4), "patch_size")
    assert to_triplet(0, "patch_overlap", minimum=0) == (0, 0, 0)


def test_parse_patch_size_int_on_2d_image_is_depth_one():
    assert parse_patch_size(32, (512, 400, 1)) == (32, 32, 1)


def test_parse_patch_size_int_on_3d_image_is_cube():
    assert parse_patch_size(32, (64, 64, 64)) == (32, 32, 32)
    assert parse_patch_size(32) == (32, 32, 32)


def test_parse_patch_size_tuple_is_kept_even_on_2d_image():
    assert parse_patch_size((16, 8, 1), (64, 64, 1)) == (16, 8, 1)


# check_affine ---------------------------------------------------------------------


def test_check_affine_returns_float64_copy():
    affine = np.eye(4, dtype=np.float32)
    checked = check_affine(affine)
    assert checked.dtype == np.float64
    assert checked.shape == (4, 4)
    checked[0, 0] = 5
    assert affine[0, 0] == 1


@pytest.mark.parametrize("affine", [np.eye(3), np.eye(4)[:3], np.zeros((4, 4, 1)), [1, 2, 3]])
def test_check_affine_rejects_non_4x4_naming_shape(affine):
    shape = np.asarray(affine).shape
    with pytest.raises(ValueError, match=rf"affine must have shape \(4, 4\), got {re.escape(str(shape))}"):
        check_affine(affine)


def test_check_affine_rejects_singular_matrix():
    affine = np.diag([1.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="singular"):
        check_affine(affine)
    parallel = np.eye(4)
    parallel[:3, 1] = parallel[:3, 0]
    with pytest.raises(ValueError, match="singular"):
        check_affine(parallel)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_affine_rejects_nan_and_infinity(bad):
    affine = np.eye(4)
    affine[1, 3] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_affine(affine)


def test_check_affine_rejects_non_numbers_with_type_error_naming_argument():
    with pytest.raises(TypeError, match="my_affine must be a 4x4 array of numbers, got str"):
        check_affine("eye", "my_affine")


# spacing, origin, orientation ------------------------------------------------------


def test_spacing_origin_orientation_of_diagonal_affine():
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = (-1.5, 2.5, 10.0)
    assert spacing_from_affine(affine) == (2.0, 3.0, 4.0)
    assert origin_from_affine(affine) == (-1.5, 2.5, 10.0)
    assert orientation_from_affine(affine) == ("R", "A", "S")


def test_spacing_and_orientation_of_flipped_and_permuted_axes():
    # I steps towards anterior (+y), J towards left (-x), K towards inferior (-z).
    affine = np.array(
        [
            [0.0, -0.5, 0.0, 0.0],
            [2.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, -3.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    assert spacing_from_affine(affine) == (2.0, 0.5, 3.0)
    assert orientation_from_affine(affine) == ("A", "L", "I")


def test_lps_to_ras_flips_first_two_world_axes():
    assert orientation_from_affine(LPS_TO_RAS) == ("L", "P", "S")
    np.testing.assert_array_equal(LPS_TO_RAS @ LPS_TO_RAS, np.eye(4))


@pytest.mark.parametrize(
    ("degrees", "expected"),
    [
        # 30 degrees about z: I = (0.87, 0.5, 0) is mostly R, J = (-0.5, 0.87, 0) mostly A.
        (30.0, ("R", "A", "S")),
        # 60 degrees: I = (0.5, 0.87, 0) is mostly A, J = (-0.87, 0.5, 0) mostly L.
        (60.0, ("A", "L", "S")),
        # 150 degrees: I = (-0.87, 0.5, 0) is mostly L, J = (-0.5, -0.87, 0) mostly P.
        (150.0, ("L", "P", "S")),
    ],
)
def test_oblique_rotation_keeps_spacing_and_picks_closest_axes(degrees, expected):
    affine = np.eye(4)
    affine[:3, :3] = rotation_z(degrees) @ np.diag([2.0, 3.0, 4.0])
    affine[:3, 3] = (5.0, 6.0, 7.0)
    np.testing.assert_allclose(spacing_from_affine(affine), (2.0, 3.0, 4.0), atol=1e-12)
    assert origin_from_affine(affine) == (5.0, 6.0, 7.0)
    assert orientation_from_affine(affine) == expected


def test_orientation_of_axes_oblique_out_of_plane_gets_three_distinct_codes():
    # I and J both lean mostly towards R; the greedy choice gives R to the
    # stronger one (I, 0.9) and J its next best world axis (A).
    block = np.array([[0.9, 0.8, 0.0], [0.1, 0.6, 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = block
    codes = orientation_from_affine(affine)
    assert codes == ("R", "A", "S")
    assert len(set(codes)) == 3


# shift_affine, regions ------------------------------------------------------------


def test_shift_affine_moves_origin_to_first_voxel_of_crop():
    affine = np.array(
        [
            [0.0, -0.5, 0.0, 1.0],
            [2.0, 0.0, 0.0, 2.0],
            [0.0, 0.0, 3.0, 3.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    shifted = shift_affine(affine, (1, 2, 3))
    # Hand computed: origin + 1 * (0, 2, 0) + 2 * (-0.5, 0, 0) + 3 * (0, 0, 3).
    np.testing.assert_array_equal(shifted[:3, 3], (0.0, 4.0, 12.0))
    np.testing.assert_array_equal(shifted[:3, :3], affine[:3, :3])
    np.testing.assert_array_equal(affine[:3, 3], (1.0, 2.0, 3.0))  # input untouched


@st.composite
def diagonal_permuted_affines(draw):
    permutation = draw(st.permutations([0, 1, 2]))
    signs = draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=3, max_size=3))
    spacing = draw(st.lists(st.floats(0.1, 10.0), min_size=3, max_size=3))
    origin = draw(st.lists(st.floats(-500.0, 500.0), min_size=3, max_size=3))
    affine = np.eye(4)
    affine[:3, :3] = 0.0
    for axis, world in enumerate(permutation):
        affine[world, axis] = signs[axis] * spacing[axis]
    affine[:3, 3] = origin
    return affine


@settings(max_examples=100, deadline=None, database=None)
@given(
    affine=diagonal_permuted_affines(),
    index_ini=st.tuples(*(st.integers(0, 100_000),) * 3),
)
def test_shift_affine_maps_voxel_zero_where_original_maps_index_ini(affine, index_ini):
    shifted = shift_affine(affine, index_ini)
    expected = affine @ np.array([*index_ini, 1.0])
    np.testing.assert_allclose(shifted @ np.array([0.0, 0.0, 0.0, 1.0]), expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(shifted[:3, :3], affine[:3, :3])
    np.testing.assert_allclose(spacing_from_affine(shifted), spacing_from_affine(affine))


@settings(max_examples=100, deadline=None, database=None)
@given(
    affine=diagonal_permuted_affines(),
    corners=st.lists(st.tuples(*(st.integers(-1000, 100_000),) * 3), min_size=0, max_size=20),
)
def test_shift_affines_are_shift_affine_of_each_corner_bit_for_bit(affine, corners):
    affine[:3, :3] += np.random.default_rng(len(corners)).normal(0.0, 0.3, (3, 3))  # oblique too
    stacked = shift_affines(affine, np.array(corners, dtype=np.int64).reshape(-1, 3))
    assert stacked.shape == (len(corners), 4, 4) and stacked.dtype == np.float64
    for corner, shifted in zip(corners, stacked):
        np.testing.assert_array_equal(shifted, shift_affine(affine, corner))
        expected = affine @ np.array([*corner, 1.0])
        np.testing.assert_allclose(shifted[:, 3], expected, rtol=1e-12, atol=1e-9)


@settings(max_examples=100, deadline=None, database=None)
@given(affine=diagonal_permuted_affines())
def test_orientation_of_permuted_affines_matches_nibabel(affine):
    assert orientation_from_affine(affine) == tuple(nib.aff2axcodes(affine))


def test_check_region_returns_int_triplets():
    assert check_region((0, 1, 0), (2, 3, 1), (4, 4, 1)) == ((0, 1, 0), (2, 3, 1))
    assert check_region(np.array([0, 0, 0]), np.array([4, 4, 1]), (4, 4, 1)) == ((0, 0, 0), (4, 4, 1))


@pytest.mark.parametrize(
    ("index_ini", "index_fin"),
    [
        ((-1, 0, 0), (2, 2, 1)),  # negative start
        ((0, 0, 0), (5, 2, 1)),  # past the end
        ((2, 0, 0), (2, 2, 1)),  # empty along I
        ((3, 0, 0), (2, 2, 1)),  # reversed
    ],
)
def test_check_region_rejects_boxes_outside_shape_naming_image(index_ini, index_fin):
    with pytest.raises(ValueError, match=r"region .* is not inside the spatial shape \(4, 4, 1\) of image 't1'"):
        check_region(index_ini, index_fin, (4, 4, 1), "image 't1'")


def test_check_region_rejects_wrong_length():
    with pytest.raises(ValueError, match="index_ini must have three values"):
        check_region((0, 0), (2, 2, 1), (4, 4, 1))


def test_check_region_rejects_float_indices():
    with pytest.raises(TypeError, match="index_fin must hold ints"):
        check_region((0, 0, 0), (2.0, 2, 1), (4, 4, 1))


def test_location_from_region_is_six_ints():
    location = location_from_region(np.array([0, 1, 2]), (4, 5, 6))
    assert location == (0, 1, 2, 4, 5, 6)
    assert all(type(v) is int for v in location)


def test_is_number_excludes_bools_and_strings():
    assert is_number(3) and is_number(2.5) and is_number(np.float32(1))
    assert not is_number(True) and not is_number("1") and not is_number(None)
