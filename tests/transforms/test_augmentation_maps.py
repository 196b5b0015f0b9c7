"""Coordinate maps: affine, B-spline and chains (sample/forward inverses, bounds, composition, displacement bounds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch.transforms.augmentation.affine import rotation_matrix, world_matrix
from torchpatch.transforms.augmentation.maps import AffineMap, BSplineMap, ChainMap, box_grid, bspline_weights


def random_affine(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = np.eye(4)
    matrix[:3, :3] = rotation_matrix(rng.uniform(-30, 30, 3)) @ np.diag(rng.uniform(0.7, 1.4, 3))
    matrix[:3, 3] = rng.uniform(-3, 3, 3)
    return matrix


def random_bspline(seed: int, shape=(9, 11, 7), points=(5, 6, 4), largest=0.8) -> BSplineMap:
    generator = torch.Generator().manual_seed(seed)
    coefficients = (torch.rand(*points, 3, generator=generator, dtype=torch.float64) * 2 - 1) * largest
    return BSplineMap(coefficients, shape)


def test_bspline_weights_are_non_negative_and_sum_to_one() -> None:
    u = torch.linspace(0, 1, 101, dtype=torch.float64)
    weights = bspline_weights(u)
    assert bool((weights >= 0).all())
    torch.testing.assert_close(weights.sum(-1), torch.ones(101, dtype=torch.float64))


def test_affine_map_samples_with_its_matrix_and_forward_inverts_it() -> None:
    matrix = random_affine(0)
    points = torch.rand(20, 3, dtype=torch.float64) * 10
    expected = points.numpy() @ matrix[:3, :3].T + matrix[:3, 3]
    np.testing.assert_allclose(AffineMap(matrix).sample(points).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(AffineMap(matrix).forward(AffineMap(matrix).sample(points)).numpy(), points, atol=1e-10)


def test_affine_sample_grid_equals_sample_of_the_box_grid() -> None:
    matrix = AffineMap(random_affine(1))
    np.testing.assert_allclose(
        matrix.sample_grid((2, -1, 3), (6, 4, 5)).numpy(), matrix.sample(box_grid((2, -1, 3), (6, 4, 5))).numpy()
    )


def test_affine_map_rejects_a_matrix_that_is_not_finite_4x4() -> None:
    with pytest.raises(ValueError, match=r"finite 4x4 matrix, got shape \(3, 3\)"):
        AffineMap(np.eye(3))
    bad = np.eye(4)
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="finite 4x4"):
        AffineMap(bad)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_bspline_field_never_exceeds_the_largest_coefficient_per_axis(seed: int) -> None:
    field_map = random_bspline(seed)
    field = field_map.field_grid((0, 0, 0), field_map.shape)
    largest = field_map.coefficients.reshape(-1, 3).abs().max(dim=0).values
    assert bool((field.reshape(-1, 3).abs() <= largest + 1e-12).all())
    # Also between and outside the voxels.
    points = torch.rand(500, 3, dtype=torch.float64) * 14 - 2
    assert bool((field_map.field(points).abs() <= largest + 1e-12).all())


def test_bspline_constant_coefficients_give_a_constant_shift() -> None:
    coefficients = torch.zeros(5, 4, 6, 3, dtype=torch.float64)
    coefficients[..., 0], coefficients[..., 2] = 1.5, -0.25
    field_map = BSplineMap(coefficients, (8, 8, 8))
    field = field_map.field_grid((0, 0, 0), (8, 8, 8))
    torch.testing.assert_close(field[..., 0], torch.full((8, 8, 8), 1.5, dtype=torch.float64))
    torch.testing.assert_close(field[..., 2], torch.full((8, 8, 8), -0.25, dtype=torch.float64))
    assert not field_map.is_identity and BSplineMap(torch.zeros(4, 4, 4, 3), (8, 8, 8)).is_identity


def test_bspline_field_grid_equals_the_pointwise_field() -> None:
    field_map = random_bspline(3)
    grid = box_grid((1, 0, 2), (7, 11, 6))
    torch.testing.assert_close(field_map.field_grid((1, 0, 2), (7, 11, 6)), field_map.field(grid))
    torch.testing.assert_close(field_map.sample_grid((1, 0, 2), (7, 11, 6)), field_map.sample(grid))


def test_bspline_forward_inverts_sample_for_a_non_folding_field() -> None:
    field_map = random_bspline(4, largest=0.5)
    points = box_grid((0, 0, 0), field_map.shape).reshape(-1, 3)
    torch.testing.assert_close(field_map.forward(field_map.sample(points)), points, atol=1e-8, rtol=0)


def test_bspline_bounds_hold_every_sampled_position() -> None:
    field_map = random_bspline(5)
    low, high = field_map.bounds(np.array([2.0, 3.0, 1.0]), np.array([6.0, 8.0, 5.0]))
    sampled = field_map.sample_grid((2, 3, 1), (7, 9, 6)).reshape(-1, 3).numpy()
    assert (sampled >= low - 1e-12).all() and (sampled <= high + 1e-12).all()


def test_bspline_needs_four_coefficients_per_axis() -> None:
    with pytest.raises(ValueError, match=r"every n >= 4, got \(3, 4, 4, 3\)"):
        BSplineMap(torch.zeros(3, 4, 4, 3), (5, 5, 5))


def test_chain_multiplies_adjacent_affines_and_drops_identities() -> None:
    a, b = AffineMap(random_affine(6)), AffineMap(random_affine(7))
    chain = ChainMap([a, AffineMap(np.eye(4)), b])
    assert len(chain.maps) == 1
    points = torch.rand(10, 3, dtype=torch.float64) * 8
    # a applies first to the image, so output points sample b first, then a.
    torch.testing.assert_close(chain.sample(points), a.sample(b.sample(points)))
    torch.testing.assert_close(chain.forward(chain.sample(points)), points)
    assert ChainMap([AffineMap(np.eye(4))]).is_identity


def test_chain_of_affine_and_bspline_composes_sample_forward_and_bounds() -> None:
    affine, field_map = AffineMap(random_affine(8)), random_bspline(9, largest=0.4)
    chain = ChainMap([field_map, affine])
    assert len(chain.maps) == 2
    points = box_grid((1, 2, 0), (5, 7, 4)).reshape(-1, 3)
    expected = field_map.sample(affine.sample(points))
    torch.testing.assert_close(chain.sample(points), expected)
    torch.testing.assert_close(chain.sample_grid((1, 2, 0), (5, 7, 4)).reshape(-1, 3), expected)
    torch.testing.assert_close(chain.forward(expected), points, atol=1e-8, rtol=0)
    low, high = chain.bounds(np.array([1.0, 2.0, 0.0]), np.array([4.0, 6.0, 3.0]))
    assert (expected.numpy() >= low - 1e-12).all() and (expected.numpy() <= high + 1e-12).all()


def test_rotation_and_world_matrix_follow_the_docstring() -> None:
    # R about z by 90 degrees sends x to y, about x sends y to z, about y sends z to x.
    np.testing.assert_allclose(rotation_matrix([0, 0, 90]) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(rotation_matrix([90, 0, 0]) @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(rotation_matrix([0, 90, 0]) @ [0, 0, 1], [1, 0, 0], atol=1e-12)
    # Composed about y first, then x, then z: R = Rz Rx Ry.
    composed = rotation_matrix([0, 0, 30]) @ rotation_matrix([20, 0, 0]) @ rotation_matrix([0, -40, 0])
    np.testing.assert_allclose(rotation_matrix([20, -40, 30]), composed, atol=1e-12)
    # F(q) = c + S (R (q - c) + t): q - c = (1, 0, 0), R -> (0, 1, 0), + t -> (1, 1, 0), S -> (2, 1, 0), + c.
    forward = world_matrix([2, 1, 1], [0, 0, 90], [1, 0, 0], [1, 1, 1])
    np.testing.assert_allclose(forward @ [2, 1, 1, 1], [3, 2, 1, 1], atol=1e-12)
