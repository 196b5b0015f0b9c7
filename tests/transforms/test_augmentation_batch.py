"""BatchTransform: per-sample parameters over a collated batch, one grid_sample, cropped to the patch."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import torchpatch as tp
from torchpatch.transforms import Compose
from torchpatch.transforms.augmentation import (
    RandomAffine,
    RandomBiasField,
    RandomElasticDeformation,
    RandomFlip,
    RandomGamma,
    RandomNoise,
)
from torchpatch.transforms.augmentation.batch import BatchTransform, context_margin


def _phantom(shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    axes = [torch.linspace(-1, 1, n) for n in shape]
    i, j, k = torch.meshgrid(*axes, indexing="ij")
    body = torch.exp(-(i**2 + j**2 + k**2) * 2) + 0.3 * torch.sin(5 * i) * torch.cos(3 * j)
    return (body + 0.01 * torch.randn(shape, generator=generator)).unsqueeze(0).float()


def _batch(size: tuple[int, int, int], count: int = 3) -> dict:
    subjects = []
    for index in range(count):
        image = _phantom(size, index)
        subjects.append(
            tp.Subject(
                t1=tp.ScalarImage(tensor=image),
                seg=tp.LabelMap(tensor=(image > 0.4).to(torch.uint8)),
                location=torch.tensor([0, 0, 0, *size]),
            )
        )
    return tp.collate_subjects(subjects)


def test_identity_parameters_give_the_central_crop_bit_for_bit() -> None:
    augment = BatchTransform(Compose([RandomAffine(scales=0, degrees=0), RandomGamma(log_gamma=0)]), patch_size=8)
    size = augment.context_size
    batch = _batch(size)
    out = augment(batch)
    ini = [(s - 8) // 2 for s in size]
    crop = (slice(None), slice(None), *[slice(a, a + 8) for a in ini])
    assert torch.equal(out["t1"]["data"], batch["t1"]["data"][crop])
    assert torch.equal(out["seg"]["data"], batch["seg"]["data"][crop])
    assert out["location"][0].tolist() == [*ini, *[a + 8 for a in ini]]


def test_a_quarter_turn_with_nearest_rotates_each_sample_about_its_centre() -> None:
    transform = RandomAffine(scales=0, degrees=(0, 0, 0, 0, 90, 90), image_interpolation="nearest")
    augment = BatchTransform(Compose([transform]), patch_size=(9, 9, 1))
    size = augment.context_size
    batch = _batch(size, 2)
    out = augment(batch)
    ini = [(s - n) // 2 for s, n in zip(size, (9, 9, 1))]
    centre = batch["t1"]["data"][:, :, ini[0] : ini[0] + 9, ini[1] : ini[1] + 9]
    # Content turns +90 degrees about k (x -> y): output (i, j) samples input (j, 8 - i).
    expected = torch.rot90(centre, k=1, dims=(2, 3))
    assert torch.equal(out["t1"]["data"], expected)
    assert torch.equal(
        out["seg"]["data"], torch.rot90(batch["seg"]["data"][:, :, ini[0] : ini[0] + 9, ini[1] : ini[1] + 9], 1, (2, 3))
    )


def test_each_sample_draws_its_own_parameters_and_records_them() -> None:
    pipeline = Compose(
        [
            RandomFlip(axes=(0, 1, 2)),
            RandomAffine(scales=0.1, degrees=10),
            RandomElasticDeformation(max_displacement=1),
            RandomGamma(),
            RandomNoise(std=0.01),
            RandomBiasField(0.2),
        ]
    )
    augment = BatchTransform(pipeline, patch_size=12)
    batch = _batch(augment.context_size, 3)
    torch.manual_seed(0)
    out = augment(batch)
    names = [[record["name"] for record in history] for history in out["history"]]
    assert all(n[-3:] == ["RandomGamma", "RandomNoise", "RandomBiasField"] for n in names)
    degrees = [next(r for r in h if r["name"] == "RandomAffine")["degrees"] for h in out["history"]]
    assert degrees[0] != degrees[1]
    assert tuple(out["t1"]["data"].shape) == (3, 1, 12, 12, 12)
    assert set(out["seg"]["data"].unique().tolist()) <= {0, 1}
    torch.manual_seed(0)
    again = augment(batch)
    assert torch.equal(again["t1"]["data"], out["t1"]["data"])
    assert "history" not in batch


def test_labels_keep_their_dtype_and_values_and_images_become_float() -> None:
    augment = BatchTransform(RandomAffine(degrees=20), patch_size=10)
    batch = _batch(augment.context_size)
    batch["t1"]["data"] = (batch["t1"]["data"] * 100).to(torch.int16)
    out = augment(batch)
    assert out["t1"]["data"].dtype == torch.float32
    assert out["seg"]["data"].dtype == torch.uint8


def test_the_margin_covers_the_parameter_ranges() -> None:
    margin = context_margin(Compose([RandomAffine(scales=0, degrees=0, translation=5)]), 20)
    assert all(m >= 5 for m in margin)
    assert context_margin(RandomFlip(), 20) == (0, 0, 0)
    assert context_margin(RandomAffine(degrees=30), (16, 16, 1))[2] == 0


def test_a_batch_smaller_than_the_patch_is_refused() -> None:
    augment = BatchTransform(RandomGamma(), patch_size=16)
    with pytest.raises(ValueError, match="smaller than patch_size"):
        augment(_batch((8, 8, 8)))


def test_spatial_transforms_must_come_together_first() -> None:
    augment = BatchTransform(Compose([RandomAffine(), RandomGamma(), RandomAffine()]), patch_size=4)
    with pytest.raises(ValueError, match="separated by other transforms"):
        augment(_batch(augment.context_size, 1))


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="transform must be callable"):
        BatchTransform(3, patch_size=4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="patch_size"):
        BatchTransform(RandomGamma(), patch_size=0)


def test_pickles() -> None:
    augment = pickle.loads(pickle.dumps(BatchTransform(Compose([RandomAffine(), RandomGamma()]), patch_size=6)))
    out = augment(_batch(augment.context_size, 2))
    assert tuple(out["t1"]["data"].shape) == (2, 1, 6, 6, 6)


def test_points_follow_the_voxels() -> None:
    transform = RandomAffine(scales=0, degrees=(0, 0, 0, 0, 90, 90), image_interpolation="nearest")
    augment = BatchTransform(transform, patch_size=(9, 9, 1))
    size = augment.context_size
    centre = [(n - 1) // 2 for n in size]
    image = torch.zeros(1, *size)
    image[0, centre[0] + 2, centre[1] - 1, 0] = 1.0
    points = tp.Points([[centre[0] + 2.5, centre[1] - 0.5]], size[:2])
    batch = tp.collate_subjects([tp.Subject(t1=tp.ScalarImage(tensor=image), pts=points)])
    out = augment(batch)
    point = out["pts"][0].data[0]
    i, j = int(point[0]), int(point[1])
    assert out["t1"]["data"][0, 0, i, j, 0] == 1.0
    assert out["t1"]["data"].sum() == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_like_on_cpu() -> None:
    augment = BatchTransform(Compose([RandomAffine(degrees=10), RandomGamma()]), patch_size=8)
    batch = _batch(augment.context_size, 2)
    cuda = {k: ({**v, "data": v["data"].cuda()} if isinstance(v, dict) else v) for k, v in batch.items()}
    torch.manual_seed(1)
    on_cpu = augment(batch)
    torch.manual_seed(1)
    on_gpu = augment(cuda)
    assert on_gpu["t1"]["data"].is_cuda
    np.testing.assert_allclose(on_gpu["t1"]["data"].cpu().numpy(), on_cpu["t1"]["data"].numpy(), atol=1e-4)
