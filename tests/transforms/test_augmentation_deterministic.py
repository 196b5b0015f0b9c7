"""TorchIO's deterministic transforms: same voxels as TorchIO for the same arguments, history, fusion."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import torchpatch as tp
from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.transforms import Compose
from torchpatch.transforms.augmentation.history import applied_transforms, apply_inverse_transform


def _subject(shape=(9, 8, 7), channels=1) -> Subject:
    generator = torch.Generator().manual_seed(3)
    data = torch.rand(channels, *shape, generator=generator)
    seg = (data[:1] > 0.5).to(torch.uint8)
    return Subject(t1=ScalarImage(tensor=data), seg=LabelMap(tensor=seg))


CASES = [
    ("Affine", {"scales": (1.1, 0.9, 1.0), "degrees": (5, -10, 20), "translation": (1, -2, 0.5)}),
    ("Flip", {"axes": (0, 2)}),
    ("Noise", {"mean": 0.1, "std": 0.5, "seed": 42}),
    ("Gamma", {"gamma": 1.7}),
    ("Blur", {"std": (1.0, 0.5, 2.0)}),
    ("BiasField", {"coefficients": [0.1 * (i - 5) for i in range(10)], "order": 2}),
    ("Swap", {"patch_size": (2, 3, 2), "locations": [((0, 0, 0), (5, 4, 3)), ((1, 2, 3), (6, 5, 0))]}),
    (
        "ElasticDeformation",
        {"control_points": np.random.default_rng(0).uniform(-1, 1, (6, 6, 6, 3)), "max_displacement": (1, 1, 1)},
    ),
]


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_same_voxels_as_torchio(name, kwargs) -> None:
    tio = pytest.importorskip("torchio")
    subject = _subject()
    ours = getattr(tp, name)(**kwargs)(subject)
    theirs_subject = tio.Subject(
        t1=tio.ScalarImage(tensor=subject.t1.data.clone()), seg=tio.LabelMap(tensor=subject.seg.data.clone())
    )
    theirs = getattr(tio, name)(**kwargs)(theirs_subject)
    torch.testing.assert_close(ours.t1.data.float(), theirs.t1.data.float(), atol=2e-5, rtol=1e-5)
    assert torch.equal(ours.seg.data.to(torch.uint8), theirs.seg.data.to(torch.uint8)) or name == "ElasticDeformation"


FOLDING = [((2, 2, 2), [0, 1, 2]), ((1, 1.4, 1), [1]), ((1.5, 1, 1.3), [2]), ((1, 1, 1), [])]


@pytest.mark.parametrize(("allowed", "axes"), FOLDING)
def test_folding_warns_where_torchio_warns(allowed, axes) -> None:
    # 6 control points over 9 x 8 x 7 voxels: half their spacing is 1.54, 1.38 and 1.21 mm (ITK's grid).
    tio = pytest.importorskip("torchio")
    points = np.random.default_rng(0).uniform(-1, 1, (6, 6, 6, 3))
    subject = _subject()
    theirs = tio.Subject(t1=tio.ScalarImage(tensor=subject.t1.data.clone()))
    for transform in (tio.ElasticDeformation(points, allowed), tp.ElasticDeformation(points, allowed)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            transform(theirs if transform.__module__.startswith("torchio") else subject)
        folding = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(folding) == (1 if axes else 0)
        assert not axes or str(axes) in folding[0]


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_records_itself_and_replays(name, kwargs) -> None:
    subject = _subject()
    out = getattr(tp, name)(**kwargs)(subject)
    assert out["history"][-1]["name"] == name
    replays = applied_transforms(out)
    assert type(replays[0].transform).__name__ == name
    torch.testing.assert_close(replays[0](subject).t1.data, out.t1.data)


@pytest.mark.parametrize("name", ["Affine", "Flip", "Noise", "Gamma", "BiasField", "Swap"])
def test_inverse_restores(name) -> None:
    kwargs = dict(CASES)[name]
    subject = _subject()
    if name == "Affine":
        kwargs = {"scales": 1, "degrees": 0, "translation": (2, 0, 0)}
    out = getattr(tp, name)(**kwargs)(subject)
    restored = apply_inverse_transform(out)
    if name == "Affine":
        torch.testing.assert_close(restored.t1.data[:, 2:-2], subject.t1.data[:, 2:-2])
    else:
        torch.testing.assert_close(restored.t1.data, subject.t1.data, atol=1e-5, rtol=1e-5)
    assert restored["history"] == []


def test_random_twin_with_same_params_gives_same_voxels() -> None:
    subject = _subject()
    _ = torch.manual_seed(0)
    random = tp.RandomAffine()(subject)
    record = {k: v for k, v in random["history"][0].items() if k != "name"}
    assert torch.equal(tp.Affine(**record)(subject).t1.data, random.t1.data)


def test_draws_one_number_for_p() -> None:
    _ = torch.manual_seed(0)
    tp.Gamma(2.0)(_subject())
    after = torch.rand(1)
    _ = torch.manual_seed(0)
    torch.rand(1)
    assert torch.equal(torch.rand(1), after)


def test_spatial_ones_fuse_in_one_resampling() -> None:
    subject = _subject()
    transforms = [tp.Flip(0), tp.Affine(1, (0, 0, 10), 0)]
    assert transforms[0].fuses(transforms[1])
    out = Compose(transforms)(subject)
    assert [record["name"] for record in out["history"]] == ["Flip", "Affine"]


def test_per_image_dicts() -> None:
    subject = Subject(
        t1=ScalarImage(tensor=torch.full((1, 2, 2, 1), 0.5)), t2=ScalarImage(tensor=torch.full((1, 2, 2, 1), 0.5))
    )
    out = tp.Gamma({"t1": 1.0, "t2": 2.0})(subject)
    assert out.t1.data.max().item() == 0.5 and out.t2.data.max().item() == 0.25
    with pytest.raises(ValueError, match="'t2'"):
        tp.Gamma({"t1": 1.0})(subject)


def test_per_channel_gamma() -> None:
    subject = Subject(t1=ScalarImage(tensor=torch.full((2, 2, 2, 1), 0.5)))
    out = tp.Gamma([1.0, 2.0])(subject)
    assert out.t1.data[0].max().item() == 0.5 and out.t1.data[1].max().item() == 0.25


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="default_pad_label"):
        tp.Affine(1, 0, 0, default_pad_label=float("inf"))
    with pytest.raises(TypeError, match="scales"):
        tp.Affine("a", 0, 0)
    with pytest.raises(ValueError, match="order 1 needs 4"):
        tp.BiasField([1.0], 1)
    with pytest.raises(ValueError, match="control_points"):
        tp.ElasticDeformation(np.zeros((3, 3, 3, 3)), 1)
    with pytest.raises(ValueError, match="std"):
        tp.Noise(0, -1, 0)
    with pytest.raises(TypeError, match="seed"):
        tp.Noise(0, 1, 0.5)
