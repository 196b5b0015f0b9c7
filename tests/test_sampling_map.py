"""TorchIO's third image type, ``SAMPLING_MAP``: resampled like a label map, left out by intensity transforms.

``tio.Image(path, type=tio.SAMPLING_MAP)`` is how TorchIO's ``WeightedSampler``
docstring builds its map. Here it keeps its type through transforms,
batches, the Queue and the cache, and every transform gives TorchIO's values.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import torchpatch as tp
from torchpatch.utils import get_subjects_from_batch

AFFINE = np.diag([1.2, 0.9, 1.5, 1.0])
AFFINE[:3, 3] = [-3.0, 2.0, 0.5]


def _tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    t1 = torch.rand(1, 12, 14, 10, generator=generator) * 100
    seg = (torch.rand(1, 12, 14, 10, generator=generator) * 3).to(torch.uint8)
    weights = torch.rand(1, 12, 14, 10, generator=generator) + 0.5
    return t1, seg, weights


def _subject(library, affine=AFFINE):
    t1, seg, weights = _tensors()
    return library.Subject(
        t1=library.ScalarImage(tensor=t1, affine=affine),
        seg=library.LabelMap(tensor=seg, affine=affine),
        sampling_map=library.Image(tensor=weights, affine=affine, type=library.SAMPLING_MAP),
    )


TRANSFORMS = {
    "Resample": lambda lib: lib.Resample(2),  # from 1 mm: halfway centres, rounded up by both
    "Affine": lambda lib: lib.Affine(1.1, 10, 1),
    "Flip": lambda lib: lib.Flip(0),
    "RescaleIntensity": lambda lib: lib.RescaleIntensity(),
    "ZNormalization": lambda lib: lib.ZNormalization(),
    "RemapLabels": lambda lib: lib.RemapLabels({1: 5}),
    "CropOrPad": lambda lib: lib.CropOrPad(11),
    "Pad": lambda lib: lib.Pad(2),
    "ToCanonical": lambda lib: lib.ToCanonical(),
    "Resize": lambda lib: lib.Resize(8),
    "Gamma": lambda lib: lib.Gamma(0.5),
    "Noise": lambda lib: lib.Noise(0, 1, 3),
    "Clamp": lambda lib: lib.Clamp(0, 1),
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transforms_treat_a_sampling_map_as_torchio_does(name: str) -> None:
    tio = pytest.importorskip("torchio")
    affine = np.eye(4) if name == "Resample" else AFFINE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = TRANSFORMS[name](tio)(_subject(tio, affine))
    ours = TRANSFORMS[name](tp)(_subject(tp, affine))
    assert ours.sampling_map.type == theirs.sampling_map.type == tp.SAMPLING_MAP == tio.SAMPLING_MAP
    torch.testing.assert_close(ours.sampling_map.data, theirs.sampling_map.data, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.sampling_map.affine, theirs.sampling_map.affine, atol=1e-6)


def test_intensity_transforms_leave_it_and_spatial_ones_use_nearest() -> None:
    subject = _subject(tp)
    out = tp.Compose([tp.RandomNoise(std=5), tp.RandomGamma(), tp.RescaleIntensity()])(subject)
    assert torch.equal(out.sampling_map.data, subject.sampling_map.data)
    moved = tp.RandomAffine(degrees=20, scales=0.2)(subject)
    assert set(torch.unique(moved.sampling_map.data).tolist()) <= set(subject.sampling_map.data.unique().tolist()) | {
        0.0
    }
    with pytest.raises(ValueError, match="image type must be one of"):
        tp.Image(tensor=torch.zeros(1, 2, 2, 2), type="weights")


def test_weighted_sampler_queue_batches_and_cache_keep_the_type(tmp_path) -> None:
    subject = _subject(tp)
    patches = list(tp.WeightedSampler(4, "sampling_map")(subject, 3))
    assert len(patches) == 3 and patches[0].sampling_map.type == tp.SAMPLING_MAP
    dataset = tp.SubjectsDataset([subject, _subject(tp)], cache_dir=tmp_path)
    assert dataset[0].sampling_map.type == tp.SAMPLING_MAP
    assert torch.equal(dataset[0].sampling_map.data, subject.sampling_map.data)
    queue = tp.Queue(
        dataset, 4, 2, tp.WeightedSampler(4, "sampling_map"), num_workers=1, patch_transform=tp.RandomFlip()
    )
    batch = next(iter(tp.SubjectsLoader(queue, batch_size=2)))
    assert batch["sampling_map"][tp.TYPE] == [tp.SAMPLING_MAP] * 2
    rows = get_subjects_from_batch(batch)
    assert [row.sampling_map.type for row in rows] == [tp.SAMPLING_MAP] * 2
    augmented = tp.transforms.BatchTransform(tp.RandomAffine(degrees=10), patch_size=2)(batch)
    assert get_subjects_from_batch(augmented)[0].sampling_map.type == tp.SAMPLING_MAP
