"""A plain ``torch.utils.data.DataLoader`` over our datasets fails at once with an error naming SubjectsLoader.

torch's ``default_collate`` cannot stack images, and its table of collate
functions per type is private (``torch.utils.data._utils``), so it cannot
be taught our layout; older TorchIO scripts get told the one-word fix.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import torch
from torch.utils.data import DataLoader

import torchpatch as tio


def subject() -> tio.Subject:
    return tio.Subject(
        t1=tio.ScalarImage(tensor=torch.rand(1, 8, 8, 8)),
        seg=tio.LabelMap(tensor=(torch.rand(1, 8, 8, 8) > 0.5).to(torch.uint8)),
        age=30,
    )


def datasets() -> dict[str, torch.utils.data.Dataset]:
    subjects = tio.SubjectsDataset([subject(), subject()])
    return {
        "SubjectsDataset": subjects,
        "GridSampler": tio.GridSampler(subject(), 4),
        "Queue": tio.Queue(subjects, max_length=4, samples_per_volume=2, sampler=tio.UniformSampler(4)),
    }


@pytest.mark.parametrize("kind", ["SubjectsDataset", "GridSampler", "Queue"])
def test_plain_dataloader_names_subjects_loader(kind: str) -> None:
    dataset = datasets()[kind]
    with pytest.raises(TypeError, match=r"SubjectsLoader.*collate_subjects"):
        next(iter(DataLoader(dataset, batch_size=2, num_workers=0)))


@pytest.mark.parametrize("kind", ["SubjectsDataset", "GridSampler", "Queue"])
def test_the_fix_the_error_names_works(kind: str) -> None:
    dataset = datasets()[kind]
    batch = next(iter(tio.SubjectsLoader(dataset, batch_size=2)))
    assert batch["t1"][tio.DATA].shape[:2] == (2, 1)
    batch = next(iter(DataLoader(dataset, batch_size=2, collate_fn=tio.collate_subjects)))
    assert batch["seg"][tio.DATA].shape[:2] == (2, 1)


def test_image_reads_like_torchios_dict_but_does_not_iterate() -> None:
    image = subject().t1
    assert isinstance(image, Mapping)
    assert image[tio.DATA] is image.data
    with pytest.raises(TypeError, match=r"cannot be iterated.*SubjectsLoader"):
        iter(image)


def test_a_subject_is_not_built_from_an_image() -> None:
    with pytest.raises(TypeError, match="positional argument must be a mapping, got ScalarImage"):
        tio.Subject(subject().t1)


def test_znormalization_mean_is_torchios_foreground_mask() -> None:
    tensor = torch.tensor([0.0, 0.0, 0.0, 0.0, 4.0, 8.0]).reshape(1, 6, 1, 1)
    mask = tio.ZNormalization.mean(tensor)
    assert mask.dtype == torch.bool and mask.flatten().tolist() == [False] * 4 + [True] * 2
    out = tio.ZNormalization(masking_method=tio.ZNormalization.mean)(tio.Subject(a=tio.ScalarImage(tensor=tensor)))
    # statistics on (4, 8): mean 6, sample std 2 * sqrt(2) (as TorchIO)
    assert out.a.data.flatten().tolist() == pytest.approx([v / 2**0.5 for v in (-3.0, -3.0, -3.0, -3.0, -1.0, 1.0)])


def test_znormalization_callable_mask_gets_float_voxels_of_integer_images() -> None:
    tensor = torch.tensor([0, 0, 0, 0, 4, 8], dtype=torch.int16).reshape(1, 6, 1, 1)
    seen: list[torch.dtype] = []

    def above_mean(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.dtype)
        return x > x.mean()  # torch refuses the mean of an integer tensor

    data = tio.Subject(a=tio.ScalarImage(tensor=tensor))
    out = tio.ZNormalization(masking_method=above_mean)(data)
    assert seen == [torch.float32]
    assert out.a.data.flatten().tolist() == pytest.approx([v / 2**0.5 for v in (-3.0, -3.0, -3.0, -3.0, -1.0, 1.0)])
    same = tio.ZNormalization(masking_method=tio.ZNormalization.mean)(data)
    assert torch.equal(same.a.data, out.a.data)


def test_znormalization_label_name_mask() -> None:
    tensor = torch.tensor([0.0, 100.0, 4.0, 8.0]).reshape(1, 4, 1, 1)
    brain = tio.LabelMap(tensor=torch.tensor([0, 0, 1, 1], dtype=torch.uint8).reshape(1, 4, 1, 1))
    out = tio.ZNormalization(masking_method="brain", unbiased=False)(
        tio.Subject(a=tio.ScalarImage(tensor=tensor), brain=brain)
    )
    assert out.a.data.flatten().tolist() == [-3.0, 47.0, -1.0, 1.0]
    assert torch.equal(out.brain.data, brain.data)


def test_znormalization_mean_matches_an_installed_torchio() -> None:
    torchio = pytest.importorskip("torchio")
    tensor = torch.rand(1, 6, 5, 4) * (torch.rand(1, 6, 5, 4) > 0.5)
    ours = tio.ZNormalization(masking_method=tio.ZNormalization.mean)(tio.Subject(a=tio.ScalarImage(tensor=tensor)))
    theirs = torchio.ZNormalization(masking_method=torchio.ZNormalization.mean)(
        torchio.Subject(a=torchio.ScalarImage(tensor=tensor))
    )
    # Same mask, same sample standard deviation (N - 1): TorchIO's numbers.
    assert torch.allclose(ours.a.data, theirs.a.data, atol=1e-5)
