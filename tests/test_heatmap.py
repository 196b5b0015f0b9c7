"""points_to_heatmap: unit mass per point, border renormalisation, patches and stitching keep counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import DATA, LOCATION, ScalarImage, Subject, SubjectsLoader, WeightedSampler
from torchpatch.annotations import Points
from torchpatch.heatmap import gaussian_kernel, points_to_heatmap


def test_kernel_is_odd_about_six_sigma_wide_and_sums_to_one():
    kernel = gaussian_kernel(2.0)
    assert kernel.numel() == 13 and float(kernel.sum()) == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(kernel, kernel.flip(0)) and int(kernel.argmax()) == 6
    assert gaussian_kernel(0.0).tolist() == [1.0]
    assert gaussian_kernel(1.0, truncate=2.0).numel() == 5


def test_point_in_the_middle_is_a_separable_gaussian_on_its_voxel():
    heatmap = points_to_heatmap(Points([[4.5, 4.25]], (9, 9)), sigma=1.0)
    assert heatmap.shape == (1, 9, 9, 1) and heatmap.data.dtype == torch.float32
    kernel = gaussian_kernel(1.0)
    expected = torch.zeros(9, 9, dtype=torch.float64)
    expected[1:8, 1:8] = kernel[:, None] * kernel[None, :]
    assert torch.allclose(heatmap.data[0, :, :, 0].to(torch.float64), expected, atol=1e-7)


def test_heatmap_sums_to_the_number_of_points_even_at_the_border():
    points = Points([[0.5, 0.5], [11.9, 3.0], [6.0, 7.5], [6.2, 7.9]], (12, 8))
    heatmap = points_to_heatmap(points, sigma=2.0)
    assert float(heatmap.data.sum(dtype=torch.float64)) == pytest.approx(4.0, abs=1e-4)


def test_without_renormalisation_border_points_lose_the_mass_outside():
    heatmap = points_to_heatmap(Points([[0.5, 4.5]], (12, 9)), sigma=1.0, renormalize=False)
    kernel = gaussian_kernel(1.0)
    assert float(heatmap.data.sum()) == pytest.approx(float(kernel[3:].sum()), abs=1e-6)


def test_each_point_alone_integrates_to_one():
    for position in ([0.0, 0.0], [3.5, 9.99], [7.99, 5.0]):
        heatmap = points_to_heatmap(Points([position], (8, 10)), sigma=(1.5, 3.0, 0.0))
        assert float(heatmap.data.sum(dtype=torch.float64)) == pytest.approx(1.0, abs=1e-5)


def test_points_outside_the_image_are_not_drawn():
    heatmap = points_to_heatmap(torch.tensor([[-1.0, 2.0], [2.0, 2.0], [8.0, 1.0]]), (8, 4), sigma=1.0)
    assert float(heatmap.data.sum()) == pytest.approx(1.0, abs=1e-5)


def test_anisotropic_sigma_in_millimetres_uses_the_spacing():
    points = Points([[8.5, 8.5]], (17, 17))
    in_voxels = points_to_heatmap(points, sigma=(1.0, 2.0, 0.0))
    in_mm = points_to_heatmap(points, sigma=(2.0, 2.0, 1.0), spacing=(2.0, 1.0, 1.0))
    assert torch.allclose(in_voxels.data, in_mm.data)
    profile = in_voxels.data[0, :, :, 0]
    assert float(profile[8, 6]) > float(profile[6, 8])  # wider along J than along I


def test_3d_heatmap_with_the_affine_of_a_reference_image():
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    image = ScalarImage(tensor=torch.zeros(1, 10, 9, 8), affine=affine)
    points = Points([[1.0, 2.0, 3.0], [9.5, 8.5, 7.5], [5.0, 5.0, 5.0]], (10, 9, 8))
    heatmap = points_to_heatmap(points, image, sigma=3.0, spacing=image.spacing)
    assert heatmap.shape == (1, 10, 9, 8) and np.array_equal(heatmap.affine, affine)
    assert float(heatmap.data.sum(dtype=torch.float64)) == pytest.approx(3.0, abs=1e-4)


def test_points_sharing_a_voxel_add_up():
    heatmap = points_to_heatmap(torch.tensor([[2.2, 2.2], [2.7, 2.9]]), (5, 5), sigma=0.0)
    assert float(heatmap.data[0, 2, 2, 0]) == 2.0 and float(heatmap.data.sum()) == 2.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sigma": -1.0}, ValueError, "sigma must be finite and >= 0"),
        ({"sigma": float("nan")}, ValueError, "sigma must be finite"),
        ({"sigma": (1.0, 2.0)}, ValueError, "three numbers"),
        ({"sigma": "2"}, TypeError, "sigma must be a number"),
        ({"sigma": True}, TypeError, "sigma must be a number"),
        ({"spacing": 0.0}, ValueError, "spacing must be positive"),
        ({"truncate": 0}, ValueError, "truncate"),
        ({"affine": np.zeros((4, 4))}, ValueError, "singular"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        points_to_heatmap(Points([[1.0, 1.0]], (4, 4)), **kwargs)


def test_plain_positions_need_a_canvas_of_the_right_dimensionality():
    with pytest.raises(ValueError, match="spatial_shape is needed"):
        points_to_heatmap(torch.tensor([[1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\(N, 2\) for 2D or \(N, 3\)"):
        points_to_heatmap(torch.tensor([[1.0, 1.0, 1.0, 1.0]]), (4, 4))
    with pytest.raises(ValueError, match="depth-one"):
        points_to_heatmap(torch.tensor([[1.0, 1.0]]), (4, 4, 4))


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 20), st.integers(1, 20), st.integers(1, 5)),
    sigma=st.floats(0.0, 4.0),
    seed=st.integers(0, 2**16),
    count=st.integers(0, 15),
)
def test_heatmap_sum_equals_the_count(shape, sigma, seed, count):
    positions = np.random.default_rng(seed).uniform(0, 1, size=(count, 3)) * np.array(shape)
    heatmap = points_to_heatmap(Points(positions, shape), sigma=sigma)
    assert float(heatmap.data.sum(dtype=torch.float64)) == pytest.approx(count, abs=1e-4)
    assert float(heatmap.data.min()) >= 0


def _counting_subject() -> tuple[Subject, int]:
    generator = np.random.default_rng(1)
    positions = generator.uniform(0, 1, size=(40, 2)) * np.array([30, 22])
    points = Points(positions, (30, 22))
    heatmap = points_to_heatmap(points, sigma=2.5)
    subject = Subject(photo=ScalarImage(tensor=torch.rand(3, 30, 22, 1)), density=heatmap, points=points)
    return subject, 40


def test_tiles_of_a_non_overlapping_grid_sum_to_the_count():
    subject, count = _counting_subject()
    total = 0.0
    for i in range(0, 30, 7):
        for j in range(0, 22, 5):
            tile = subject.crop((i, j, 0), (min(i + 7, 30), min(j + 5, 22), 1))
            total += float(tile["density"].data.sum(dtype=torch.float64))
    assert total == pytest.approx(count, abs=1e-4)


def test_heatmap_is_a_probability_map_for_the_weighted_sampler():
    subject, _ = _counting_subject()
    patches = list(WeightedSampler(8, "density")(subject, 16, generator=0))
    assert all(p["density"].data.sum() > 0 for p in patches)


def test_grid_stitching_in_average_mode_keeps_the_count():
    from torchpatch.inference.aggregator import GridAggregator
    from torchpatch.sampler.grid import GridSampler

    subject, count = _counting_subject()
    sampler = GridSampler(subject, patch_size=(8, 8, 1), patch_overlap=(3, 2, 0))
    aggregator = GridAggregator(sampler, overlap_mode="average")
    for batch in SubjectsLoader(sampler, batch_size=8):
        aggregator.add_batch(batch["density"][DATA], batch[LOCATION])
    stitched = aggregator.get_output_tensor()
    assert float(stitched.sum(dtype=torch.float64)) == pytest.approx(count, abs=1e-4)
    assert torch.allclose(stitched, subject["density"].data, atol=1e-6)
