"""The history as transforms: get_applied_transforms, get_composed_history, inverses (TorchIO's API)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import torchpatch as tp
from torchpatch.transforms.augmentation.history import Replay


def _subject() -> tp.Subject:
    i, j, k = torch.meshgrid(
        torch.linspace(-1, 1, 24), torch.linspace(-1, 1, 26), torch.linspace(-1, 1, 22), indexing="ij"
    )
    image = (torch.exp(-(i**2 + j**2 + k**2) * 2) + 0.2 * torch.sin(3 * i) + 1.0).unsqueeze(0).float()
    return tp.Subject(
        t1=tp.ScalarImage(tensor=image, affine=np.diag([1.2, 1.0, 0.9, 1.0])),
        seg=tp.LabelMap(tensor=(image > 1.4).to(torch.uint8), affine=np.diag([1.2, 1.0, 0.9, 1.0])),
    )


def test_applied_transforms_replay_the_records_exactly() -> None:
    subject = _subject()
    pipeline = tp.Compose([tp.RandomFlip(axes=(0, 1)), tp.RandomAffine(degrees=10), tp.RandomGamma(), tp.RandomNoise()])
    torch.manual_seed(3)
    out = pipeline(subject)
    applied = out.get_applied_transforms()
    assert [type(replay.transform).__name__ for replay in applied] == [r["name"] for r in out["history"]]
    assert all(isinstance(replay, Replay) for replay in applied)
    replayed = tp.Compose(applied[1:])(applied[0](subject))  # one by one: no fusion of flip and affine
    separately = out.get_composed_history()(subject)
    assert replayed.t1.data.shape == out.t1.data.shape
    torch.testing.assert_close(separately.t1.data, replayed.t1.data)
    intensity_free = out.get_applied_transforms(ignore_intensity=True)
    assert [type(r.transform).__name__ for r in intensity_free] == ["RandomFlip", "RandomAffine"]


def test_flip_gamma_noise_and_bias_field_invert_exactly() -> None:
    subject = _subject()
    pipeline = tp.Compose(
        [
            tp.RandomFlip(axes=(0, 1, 2), flip_probability=1),
            tp.RandomGamma(),
            tp.RandomNoise(std=0.1),
            tp.RandomBiasField(),
        ]
    )
    torch.manual_seed(0)
    out = pipeline(subject)
    assert not torch.allclose(out.t1.data, subject.t1.data)
    restored = out.apply_inverse_transform()
    torch.testing.assert_close(restored.t1.data, subject.t1.data, atol=1e-4, rtol=1e-4)
    assert torch.equal(restored.seg.data, subject.seg.data)
    assert restored["history"] == []


def test_affine_and_elastic_invert_up_to_interpolation_inside() -> None:
    subject = _subject()
    torch.manual_seed(1)
    out = tp.RandomAffine(scales=0.1, degrees=10, translation=1, default_pad_value=0)(subject)
    restored = out.apply_inverse_transform()
    inner = (slice(None), slice(6, -6), slice(6, -6), slice(6, -6))
    error = (restored.t1.data - subject.t1.data)[inner].abs()
    assert float(error.max()) < 0.05
    torch.manual_seed(2)
    elastic = tp.RandomElasticDeformation(num_control_points=5, max_displacement=2)
    deformed = elastic(subject)
    back = deformed.apply_inverse_transform()
    assert float((back.t1.data - subject.t1.data)[inner].abs().mean()) < float(
        (deformed.t1.data - subject.t1.data)[inner].abs().mean()
    )


def test_transforms_that_cannot_be_inverted_are_left_out_with_a_warning() -> None:
    subject = _subject()
    out = tp.Compose([tp.RandomFlip(flip_probability=1), tp.RandomBlur(std=1)])(subject)
    with pytest.warns(RuntimeWarning, match="RandomBlur cannot be inverted"):
        inverse = out.get_inverse_transform()
    assert len(inverse) == 1
    assert len(out.get_inverse_transform(warn=False)) == 1


def test_unknown_records_are_named() -> None:
    subject = _subject().with_images({}, history=[{"name": "RandomFoo", "spikes": 1}])
    with pytest.raises(ValueError, match=r"history record 0 .* names 'RandomFoo'"):
        subject.get_applied_transforms()


def test_clear_history_and_pickling() -> None:
    out = tp.RandomGamma()(_subject())
    replay = pickle.loads(pickle.dumps(out.get_applied_transforms()[0]))
    assert replay.invertible and replay.inverse().inverted
    out.clear_history()
    assert out["history"] == [] and out.get_applied_transforms() == []
