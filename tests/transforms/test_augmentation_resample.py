"""Resampling chains: Compose fuses spatial transforms (one interpolation), fills once, records every step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.annotations import Points
from torchpatch.transforms import Compose
from torchpatch.transforms.augmentation import RandomAffine, RandomElasticDeformation, RandomFlip, RandomGamma
from torchpatch.transforms.augmentation.context import augment_patches
from torchpatch.transforms.augmentation.fill import fill_value, otsu_threshold
from torchpatch.transforms.augmentation.resample import Frame


def phantom(shape=(24, 24, 12)) -> torch.Tensor:
    axes = [torch.linspace(0, 1, n, dtype=torch.float64) for n in shape]
    i, j, k = torch.meshgrid(*axes, indexing="ij")
    data = torch.sin(9 * i + 0.2) * torch.cos(8 * j) * torch.sin(3 * k + 1) + 2
    return data.unsqueeze(0).float()


def make_subject(shape=(24, 24, 12)) -> Subject:
    data = phantom(shape)
    return Subject(t1=ScalarImage(tensor=data), seg=LabelMap(tensor=(data > 2).to(torch.uint8)))


def rotation(angle: float, **kwargs) -> RandomAffine:
    return RandomAffine(scales=0, degrees=(0, 0, 0, 0, angle, angle), **kwargs)


def test_fused_rotations_of_plus_and_minus_10_degrees_are_nearly_the_identity() -> None:
    subject = make_subject()
    fused = Compose([rotation(10), rotation(-10)])(subject)
    separate = Compose([rotation(-10)])(Compose([rotation(10)])(subject))
    centre = (slice(None), slice(6, 18), slice(6, 18), slice(None))
    fused_error = (fused.t1.data - subject.t1.data)[centre].abs().max().item()
    separate_error = (separate.t1.data - subject.t1.data)[centre].abs().max().item()
    assert fused_error < 1e-4  # one interpolation at (almost) integer positions
    assert separate_error > 100 * fused_error and separate_error > 1e-2  # two interpolations blur
    assert torch.equal(fused.seg.data[centre], subject.seg.data[centre])
    assert [r["name"] for r in fused["history"]] == ["RandomAffine", "RandomAffine"]
    assert [r["degrees"][2] for r in fused["history"]] == [10.0, -10.0]


def test_compose_of_flip_affine_elastic_records_every_step_and_replays() -> None:
    subject = make_subject()
    transforms = [
        RandomFlip(axes=(0, 1), flip_probability=1),
        RandomAffine(degrees=10),
        RandomElasticDeformation(num_control_points=5, max_displacement=2),
    ]
    torch.manual_seed(0)
    out = Compose(transforms)(subject)
    assert [r["name"] for r in out["history"]] == ["RandomFlip", "RandomAffine", "RandomElasticDeformation"]
    assert out["history"][0]["axes"] == [0, 1]
    # Replaying the records one by one resamples three times: close to the fused result, not equal.
    replay = subject
    for transform, record in zip(transforms, out["history"]):
        replay = transform.apply_params(replay, {k: v for k, v in record.items() if k != "name"})
    inner = (slice(None), slice(5, 19), slice(5, 19), slice(2, 10))
    difference = (replay.t1.data - out.t1.data)[inner].abs()
    assert difference.max() < 0.5 and difference.mean() < 0.05


def test_a_skipped_transform_in_a_fused_run_is_not_recorded() -> None:
    subject = make_subject()
    out = Compose([rotation(10, p=0.0), rotation(5)])(subject)
    assert [r["degrees"][2] for r in out["history"]] == [5.0]
    alone = rotation(5)(subject)
    assert torch.equal(out.t1.data, alone.t1.data)


def test_a_flip_in_a_fused_chain_keeps_labels_exactly() -> None:
    subject = make_subject((10, 11, 9))
    out = Compose([RandomFlip(axes=(0, 1, 2), flip_probability=1), RandomAffine(scales=0, degrees=0)])(subject)
    # Labels (nearest) are bit for bit; scalars go through grid_sample at integer positions.
    assert torch.equal(out.seg.data, torch.flip(subject.seg.data, (1, 2, 3)))
    torch.testing.assert_close(out.t1.data, torch.flip(subject.t1.data, (1, 2, 3)), atol=1e-5, rtol=0)
    counts = [torch.unique(s.seg.data, return_counts=True) for s in (subject, out)]
    assert torch.equal(counts[0][0], counts[1][0]) and torch.equal(counts[0][1], counts[1][1])


def test_fused_affine_and_elastic_fill_once_with_the_original_images_statistic() -> None:
    # 'mean' (of the faces) of the original image fills everything moved in from outside, once.
    subject = make_subject()
    shift = RandomAffine(scales=0, degrees=0, translation=(10, 10, 0, 0, 0, 0), default_pad_value="mean")
    elastic = RandomElasticDeformation(num_control_points=5, max_displacement=1, default_pad_value="mean")
    fused = Compose([shift, elastic])(subject)
    mean = fill_value(subject.t1, "mean")
    outside = fused.t1.data[:, :8]
    torch.testing.assert_close(outside, torch.full_like(outside, mean))
    assert bool((fused.seg.data[:, :8] == 0).all())
    assert fused.t1.data.dtype == torch.float32 and fused.seg.data.dtype == torch.uint8


def test_a_leading_flip_does_not_merge_transforms_with_different_settings() -> None:
    """Every member of a run must fuse with the next: flip + nearest affine fuse, the linear elastic does not."""
    subject = make_subject()
    affine = rotation(10, image_interpolation="nearest")
    elastic = RandomElasticDeformation(num_control_points=5, max_displacement=2)
    flip = RandomFlip(flip_probability=0)
    torch.manual_seed(0)
    fused = Compose([flip, affine, elastic])(subject)
    torch.manual_seed(0)
    torch.rand(1)  # Compose's own p
    in_turn = elastic(affine(flip(subject)))
    assert fused["history"] == in_turn["history"]
    torch.testing.assert_close(fused.t1.data, in_turn.t1.data)


def test_spatial_transforms_with_different_settings_are_resampled_apart() -> None:
    subject = make_subject()
    nearest = rotation(10, image_interpolation="nearest")
    out = Compose([nearest, rotation(-10)])(subject)
    separate = rotation(-10)(nearest(subject))
    torch.testing.assert_close(out.t1.data, separate.t1.data)


def test_intensity_transform_between_spatial_ones_splits_the_chain_like_applying_them_in_turn() -> None:
    subject = make_subject()
    pipeline = Compose([rotation(10), RandomGamma(log_gamma=(0.2, 0.2)), rotation(-10)])
    out = pipeline(subject)
    expected = rotation(-10)(RandomGamma(log_gamma=(0.2, 0.2))(rotation(10)(subject)))
    torch.testing.assert_close(out.t1.data, expected.t1.data)
    patch = augment_patches(pipeline, subject, [[4, 4, 0, 20, 20, 12]])[0]
    torch.testing.assert_close(patch.t1.data, out.t1.data[:, 4:20, 4:20, :], atol=1e-4, rtol=1e-4)


def test_fill_value_statistics() -> None:
    # A 1 x 7 x 1 x 1 image: every voxel lies on a face of the volume.
    data = torch.tensor([1.0, 1.2, 0.8, 9.0, 9.5, 10.0, 2.0]).reshape(1, 7, 1, 1)
    image = ScalarImage(tensor=data)
    assert fill_value(image, "minimum") == pytest.approx(0.8)
    assert fill_value(image, "mean") == pytest.approx(float(data.double().mean()))
    threshold = otsu_threshold(data.flatten())
    assert 2.0 <= threshold < 9.0
    assert fill_value(image, "otsu") == pytest.approx(float(data[data <= threshold].double().mean()))
    assert fill_value(image, 4) == 4.0
    assert fill_value(LabelMap(tensor=data.to(torch.int64) + 1), "mean") == 0.0
    # On a volume, 'mean' and 'otsu' read the six faces only (TorchIO's rule); 'minimum' the whole image.
    volume = torch.full((1, 4, 4, 4), 3.0)
    volume[0, 1:3, 1:3, 1:3] = 100.0
    volume[0, 2, 2, 2] = -5.0
    image = ScalarImage(tensor=volume)
    assert fill_value(image, "mean") == 3.0 and fill_value(image, "otsu") == 3.0 and fill_value(image, "minimum") == -5


def test_frame_of_2d_images_and_its_normal_axis() -> None:
    affine = np.array([[0, 0, 2.0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])  # k points along x
    frame = Frame.of(Subject(t1=ScalarImage(tensor=torch.zeros(1, 5, 6, 1), affine=affine)), ["t1"], "test")
    assert frame.is_2d and frame.normal_axis == 0
    assert Frame.of(Subject(t1=ScalarImage(tensor=torch.zeros(1, 5, 6, 7))), ["t1"], "test").is_2d is False


@pytest.mark.parametrize("seed", range(3))
def test_a_point_on_a_blob_follows_a_fused_flip_affine_elastic_chain(seed: int) -> None:
    data = torch.zeros(1, 20, 20, 20)
    data[0, 11:14, 5:8, 8:11] = 1.0
    subject = Subject(t1=ScalarImage(tensor=data), point=Points.from_indices([[12, 6, 9]], (20, 20, 20)))
    pipeline = Compose(
        [
            RandomFlip(axes=(0, 1, 2)),
            RandomAffine(scales=0.1, degrees=20, translation=2, image_interpolation="nearest"),
            RandomElasticDeformation(num_control_points=5, max_displacement=2, image_interpolation="nearest"),
        ]
    )
    torch.manual_seed(seed)
    out = pipeline(subject)
    assert out.t1.data[(0, *out.point.voxel_indices()[0].tolist())] == 1
    torch.manual_seed(seed)
    patch = augment_patches(pipeline, subject, [[2, 2, 2, 18, 18, 18]])[0]
    if len(patch.point):
        assert patch.t1.data[(0, *patch.point.voxel_indices()[0].tolist())] == 1
