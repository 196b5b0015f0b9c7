"""TorchIO 1.2.1's module paths and constants reach torchpatch's objects (``tio.data.X``, ``tio.inference.X``)."""

from __future__ import annotations

import importlib

import pytest
import torch

import torchpatch
import torchpatch as tio

DATA_NAMES = [
    "GridAggregator",
    "GridSampler",
    "Image",
    "LabelMap",
    "LabelSampler",
    "PatchSampler",
    "Queue",
    "ScalarImage",
    "Subject",
    "SubjectsDataset",
    "SubjectsLoader",
    "UniformSampler",
    "WeightedSampler",
]


@pytest.mark.parametrize("name", DATA_NAMES)
def test_tio_data_names_are_the_top_level_objects(name: str) -> None:
    assert getattr(tio.data, name) is getattr(torchpatch, name)
    assert getattr(importlib.import_module("torchpatch.data"), name) is getattr(torchpatch, name)


def test_tio_data_inference_and_sampler_paths() -> None:
    from torchpatch.data.inference import GridAggregator, GridSampler
    from torchpatch.data.sampler import LabelSampler, PatchSampler, RandomSampler, UniformSampler, WeightedSampler

    assert (GridSampler, GridAggregator) == (torchpatch.GridSampler, torchpatch.GridAggregator)
    assert tio.data.inference.GridSampler is torchpatch.GridSampler
    assert tio.data.sampler.GridSampler is torchpatch.GridSampler
    assert RandomSampler is torchpatch.sampler.RandomSampler
    samplers = (LabelSampler, PatchSampler, UniformSampler, WeightedSampler)
    assert samplers == (tio.LabelSampler, tio.PatchSampler, tio.UniformSampler, tio.WeightedSampler)


def test_tio_inference_grid_sampler_runs_the_documented_loop() -> None:
    """TorchIO's inference docs: ``tio.inference.GridSampler`` and ``tio.inference.GridAggregator``."""
    subject = tio.Subject(t1=tio.ScalarImage(tensor=torch.rand(1, 10, 10, 10)))
    sampler = tio.inference.GridSampler(subject, 4, 2)
    aggregator = tio.inference.GridAggregator(sampler)
    for batch in tio.SubjectsLoader(sampler, batch_size=4):
        aggregator.add_batch(batch["t1"][tio.DATA], batch[tio.LOCATION])
    assert torch.allclose(aggregator.get_output_tensor(), subject.t1.data)


def test_constants_match_torchio() -> None:
    """The values of TorchIO 1.2.1's ``torchio.constants`` we provide."""
    assert tio.CHANNELS_DIMENSION == 1
    assert tio.HISTORY == "history"
    assert torch.finfo(torch.float32).eps == tio.MIN_FLOAT_32
    batch = torch.zeros(2, 3, 4, 4, 4)
    assert batch.shape[tio.CHANNELS_DIMENSION] == 3


def test_constants_match_an_installed_torchio() -> None:
    torchio = pytest.importorskip("torchio")
    for name in ("AFFINE", "CHANNELS_DIMENSION", "DATA", "HISTORY", "INTENSITY", "LABEL", "LOCATION", "MIN_FLOAT_32"):
        assert getattr(tio, name) == getattr(torchio, name), name
    for name in ("PATH", "STEM", "TYPE"):
        assert getattr(tio, name) == getattr(torchio, name), name


def test_names_of_an_installed_torchio_data_module_are_here() -> None:
    torchio = pytest.importorskip("torchio")
    for module, ours in ((torchio.data, tio.data), (torchio.data.inference, tio.data.inference)):
        names = [n for n in dir(module) if n[:1].isupper()]
        assert [n for n in names if not hasattr(ours, n)] == []
