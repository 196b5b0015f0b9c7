"""Queue(patch_transform=...): patches augmented with context, reproducible whatever the number of workers."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from torchpatch import LOCATION, LabelMap, Queue, ScalarImage, Subject, SubjectsDataset, UniformSampler
from torchpatch.transforms import Compose
from torchpatch.transforms.augmentation import RandomAffine, RandomElasticDeformation, RandomFlip, RandomGamma
from torchpatch.transforms.augmentation.context import augment_patches

SIZE = (16, 14, 12)
PATCH = 8


def make_subjects(count: int = 3) -> list[Subject]:
    subjects = []
    axes = [torch.linspace(0, 1, n, dtype=torch.float64) for n in SIZE]
    i, j, k = torch.meshgrid(*axes, indexing="ij")
    for index in range(count):
        data = (torch.sin(6 * i + index) * torch.cos(5 * j) * torch.sin(4 * k + 1) + 2).unsqueeze(0).float()
        affine = np.diag([1.0, 0.8, 1.2, 1.0])
        affine[:3, 3] = (index, -2.0, 4.0)
        subjects.append(
            Subject(
                t1=ScalarImage(tensor=data, affine=affine),
                seg=LabelMap(tensor=(data > 2).to(torch.uint8), affine=affine),
                subject_id=f"sub-{index}",
            )
        )
    return subjects


def pipeline() -> Compose:
    return Compose(
        [
            RandomFlip(axes=(0, 1, 2)),
            RandomAffine(scales=0.1, degrees=15, translation=2),
            RandomElasticDeformation(num_control_points=5, max_displacement=1.5),
            RandomGamma(),
        ]
    )


@pytest.fixture
def queues() -> Iterator[list[Queue]]:
    made: list[Queue] = []
    yield made
    for queue in made:
        queue.close()


def epoch(queues: list[Queue], num_workers: int, seed: int = 3) -> list[Subject]:
    queue = Queue(
        SubjectsDataset(make_subjects()),
        max_length=6,
        samples_per_volume=2,
        sampler=UniformSampler(PATCH),
        num_workers=num_workers,
        patch_transform=pipeline(),
        seed=seed,
        shuffle_subjects=False,
        shuffle_patches=False,
    )
    queues.append(queue)
    return list(queue)


def test_same_seed_gives_the_same_augmented_patches_and_records_with_0_or_2_workers(queues: list[Queue]) -> None:
    runs = [epoch(queues, 0), epoch(queues, 2)]
    assert len(runs[0]) == len(runs[1]) == 6
    for first, second in zip(*runs):
        assert first["subject_id"] == second["subject_id"]
        assert torch.equal(first[LOCATION], second[LOCATION])
        assert first["history"] == second["history"]
        assert torch.equal(first.t1.data, second.t1.data) and torch.equal(first.seg.data, second.seg.data)


def test_each_patch_carries_its_records_and_location_and_matches_augment_patches(queues: list[Queue]) -> None:
    patches = epoch(queues, 0)
    originals = {s["subject_id"]: s for s in make_subjects()}
    histories = set()
    for patch in patches:
        names = [record["name"] for record in patch["history"]]
        assert names[-1] == "RandomGamma" and "RandomAffine" in names and "RandomElasticDeformation" in names
        location = patch[LOCATION].tolist()
        assert len(location) == 6 and [b - a for a, b in zip(location[:3], location[3:])] == [PATCH] * 3
        assert patch.t1.spatial_shape == (PATCH,) * 3
        histories.add(repr(patch["history"]))
        # Replaying the patch's own draws on the whole subject gives the patch (up to rounding).
        subject = originals[patch["subject_id"]]
        whole = subject
        for transform in pipeline().transforms:
            record = next(r for r in patch["history"] if r["name"] == type(transform).__name__)
            whole = transform.apply_params(whole, {k: v for k, v in record.items() if k != "name"})
        i0, j0, k0, i1, j1, k1 = location
        assert abs(patch.t1.data - whole.t1.data[:, i0:i1, j0:j1, k0:k1]).mean() < 0.05
    assert len(histories) == len(patches)  # every patch draws its own parameters


def test_different_seeds_give_different_augmentations(queues: list[Queue]) -> None:
    first = [p["history"] for p in epoch(queues, 0, seed=1)]
    second = [p["history"] for p in epoch(queues, 0, seed=2)]
    assert first != second


def test_augment_patches_of_the_queue_locations_equals_the_whole_subject_cropped() -> None:
    subject = make_subjects(1)[0]
    locations = [[0, 0, 0, 8, 8, 8], [8, 6, 4, 16, 14, 12]]
    for row in locations:
        torch.manual_seed(9)
        whole = pipeline()(subject)
        torch.manual_seed(9)
        patch = augment_patches(pipeline(), subject, [row])[0]
        i0, j0, k0, i1, j1, k1 = row
        torch.testing.assert_close(patch.t1.data, whole.t1.data[:, i0:i1, j0:j1, k0:k1], atol=1e-4, rtol=1e-4)
        assert patch["history"] == whole["history"]
