"""MRI k-space artefacts: RandomSpike/Spike, RandomGhosting/Ghosting, RandomMotion/Motion.

The TorchIO comparisons run only where TorchIO 1.x is installed (the
benchmark environment). Spikes and ghosts match to float32 rounding (same
FFTs, same draws); motion to a small tolerance, because TorchIO resamples
with SimpleITK in double precision and we with ``grid_sample`` in float32,
and the k-space composition spreads these rounding differences everywhere.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.transforms.augmentation.ghosting import Ghosting, RandomGhosting
from torchpatch.transforms.augmentation.kspace import RandomSpike, Spike
from torchpatch.transforms.augmentation.motion import Motion, RandomMotion

AFFINE = np.array([[-1.5, 0, 0, 10], [0, 1.2, 0, -4], [0, 0, 2.0, 3], [0, 0, 0, 1]])


def make_subject(shape=(1, 12, 10, 8)) -> Subject:
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(shape, generator=generator) * 100
    return Subject(
        t1=ScalarImage(tensor=image, affine=AFFINE),
        seg=LabelMap(tensor=(image > 50).to(torch.int64), affine=AFFINE),
    )


RANDOM = [
    RandomSpike(num_spikes=(1, 3)),
    RandomGhosting(restore=0.2),
    RandomMotion(num_transforms=3),
]


@pytest.mark.parametrize("transform", RANDOM, ids=lambda t: type(t).__name__)
def test_seeded_draws_are_reproducible_and_labels_untouched(transform):
    subject = make_subject()
    torch.manual_seed(1)
    first = transform(subject)
    torch.manual_seed(1)
    second = transform(subject)
    assert torch.equal(first.t1.data, second.t1.data)
    assert not torch.equal(first.t1.data, subject.t1.data)
    assert torch.equal(first.seg.data, subject.seg.data)
    assert first["history"][0]["name"] == type(transform).__name__
    assert list(first["history"][0]["intensity" if "intensity" in first["history"][0] else "times"]) == ["t1"]


@pytest.mark.parametrize("transform", RANDOM, ids=lambda t: type(t).__name__)
def test_history_record_replays_and_pickles(transform):
    subject = make_subject()
    torch.manual_seed(2)
    out = transform(subject)
    record = {key: value for key, value in out["history"][0].items() if key != "name"}
    replayed = type(transform)().apply_params(subject, record)
    torch.testing.assert_close(replayed.t1.data, out.t1.data)
    clone = pickle.loads(pickle.dumps(transform))
    torch.manual_seed(2)
    assert torch.equal(clone(subject).t1.data, out.t1.data)


def test_identity_parameters_return_the_input():
    subject = make_subject()
    assert Spike([[0.1, 0.2, 0.3]], 0.0)(subject).t1.data is subject.t1.data
    assert Spike([], 2.0)(subject).t1.data is subject.t1.data
    assert Ghosting(0, 1, 0.7, None)(subject).t1.data is subject.t1.data
    assert Ghosting(4, 1, 0.0, None)(subject).t1.data is subject.t1.data
    assert Motion([[0, 0, 0]] * 2, [[0, 0, 0]] * 2, [0.3, 0.6], "linear")(subject).t1.data is subject.t1.data


def test_dict_parameters_apply_per_image():
    subject = make_subject()
    subject = Subject(a=subject.t1, b=subject.t1)
    out = Spike({"a": [[0.2, 0.2, 0.2]]}, {"a": 1.0})(subject)
    assert not torch.equal(out.a.data, subject.a.data)
    assert torch.equal(out.b.data, subject.b.data)


def test_ghosting_on_2d_never_uses_the_depth_axis():
    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 1)))
    torch.manual_seed(0)
    axes = {RandomGhosting(axes=(1, 2))(subject)["history"][0]["axis"]["t1"] for _ in range(10)}
    assert axes == {1}
    with pytest.raises(ValueError, match="axes"):
        RandomGhosting(axes=2)(subject)


def test_motion_on_2d_stays_in_plane():
    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 1)))
    record = RandomMotion()(subject)["history"][0]
    assert all(row[:2] == [0, 0] for row in record["degrees"]["t1"])
    assert all(row[2] == 0 for row in record["translation"]["t1"])


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: RandomSpike(num_spikes=1.5), TypeError, "num_spikes"),
        (lambda: RandomSpike(num_spikes=(3, 1)), ValueError, "num_spikes"),
        (lambda: RandomSpike(intensity=(3, 1)), ValueError, "intensity"),
        (lambda: RandomGhosting(num_ghosts=-1), ValueError, "num_ghosts"),
        (lambda: RandomGhosting(axes=3), ValueError, "axes"),
        (lambda: RandomGhosting(axes="LR"), TypeError, "axes"),
        (lambda: RandomGhosting(restore=(0.5, 2)), ValueError, "restore"),
        (lambda: RandomGhosting(intensity=-1), ValueError, "intensity"),
        (lambda: RandomMotion(num_transforms=0), ValueError, "num_transforms"),
        (lambda: RandomMotion(num_transforms=1.0), TypeError, "num_transforms"),
        (lambda: RandomMotion(image_interpolation="cubic"), ValueError, "image_interpolation"),
        (lambda: RandomMotion(degrees=(5, 1)), ValueError, "degrees"),
        (lambda: Spike([[0, 0, 0]], 1, p=2), ValueError, "p"),
    ],
)
def test_bad_arguments_are_named(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_bad_deterministic_parameters_are_named():
    subject = make_subject()
    with pytest.raises(ValueError, match="axis"):
        Ghosting(2, 5, 0.5, None)(subject)
    with pytest.raises(ValueError, match="times"):
        Motion([[1, 0, 0]], [[0, 0, 0]], [0.3, 0.6], "linear")(subject)


# --- TorchIO 1.x, same seed: same parameters and numbers -------------------------------------------------------


def _both(name, seed, *args, **kwargs):
    tio = pytest.importorskip("torchio")
    import torchpatch.transforms.augmentation.ghosting as ghosting
    import torchpatch.transforms.augmentation.kspace as kspace
    import torchpatch.transforms.augmentation.motion as motion

    ours_class = getattr(kspace, name, None) or getattr(ghosting, name, None) or getattr(motion, name)
    subject = make_subject()
    theirs_subject = tio.Subject(t1=tio.ScalarImage(tensor=subject.t1.data.clone(), affine=AFFINE))
    torch.manual_seed(seed)
    theirs = getattr(tio, name)(*args, **kwargs)(theirs_subject).t1.data
    torch.manual_seed(seed)
    ours = ours_class(*args, **kwargs)(subject).t1.data
    return ours, theirs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_spike_matches_torchio(seed):
    ours, theirs = _both("RandomSpike", seed, num_spikes=(1, 3), intensity=(-2, 2))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("restore", [None, 0.3])
def test_random_ghosting_matches_torchio(seed, restore):
    ours, theirs = _both("RandomGhosting", seed, restore=restore)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("num_transforms", [1, 3])
def test_random_motion_matches_torchio(seed, num_transforms):
    ours, theirs = _both("RandomMotion", seed, degrees=5, translation=3, num_transforms=num_transforms)
    # Values are 0..100: differences below 0.05 are float32 resampling rounding spread by k-space.
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0.05)
