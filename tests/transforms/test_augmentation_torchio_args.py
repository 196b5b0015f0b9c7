"""TorchIO's keywords on augmentation transforms, ``default_pad_label``, the combined affine + elastic transforms.

The comparisons with TorchIO 1.2.1 are skipped without it.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

import torchpatch as tp
from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.transforms import Compose
from torchpatch.transforms.augmentation import (
    Affine,
    AffineElasticDeformation,
    ElasticDeformation,
    RandomAffine,
    RandomAffineElasticDeformation,
)

INTENSITY_NAMES = [
    "RandomNoise", "RandomGamma", "RandomBlur", "RandomBiasField", "RandomSwap", "RandomMotion", "RandomGhosting",
    "RandomSpike", "Noise", "Gamma", "Blur", "BiasField", "Swap", "Motion", "Ghosting", "Spike",
]  # fmt: skip

DEFAULTS = {
    "Noise": {"mean": 0, "std": 0.1, "seed": 0},
    "Gamma": {"gamma": 1.0},
    "Blur": {"std": 1.0},
    "BiasField": {"coefficients": [0.0] * 20, "order": 3},
    "Swap": {"patch_size": 2, "locations": []},
    "Motion": {"degrees": [[0, 0, 0]], "translation": [[0, 0, 0]], "times": [0.5], "image_interpolation": "linear"},
    "Ghosting": {"num_ghosts": 2, "axis": 0, "intensity": 0.5, "restore": None},
    "Spike": {"spikes_positions": [[0.1, 0.1, 0.1]], "intensity": 1.0},
    "Affine": {"scales": 1, "degrees": 0, "translation": 0},
    "Flip": {"axes": 0},
    "ElasticDeformation": {"control_points": np.zeros((5, 5, 5, 3)), "max_displacement": 1},
    "AffineElasticDeformation": {
        "affine_first": True,
        "affine_params": {"scales": 1, "degrees": 0, "translation": 0},
        "elastic_params": {"control_points": np.zeros((5, 5, 5, 3)), "max_displacement": 1},
    },
}

ALL_NAMES = [
    *INTENSITY_NAMES, "RandomFlip", "RandomAffine", "RandomElasticDeformation", "RandomAnisotropy", "Affine", "Flip",
    "ElasticDeformation", "RandomAffineElasticDeformation", "AffineElasticDeformation",
]  # fmt: skip


def test_the_intensity_module_offers_torchio_names() -> None:
    module = importlib.import_module("torchpatch.transforms.augmentation.intensity")
    for name in INTENSITY_NAMES:
        assert getattr(module, name) is getattr(tp.transforms, name)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_transform_takes_torchio_common_keywords(name: str) -> None:
    kind = getattr(tp.transforms, name)
    transform = kind(**DEFAULTS.get(name, {}), copy=False, keep={"t1": "t1_orig"}, parse_input=True, label_keys=None)
    assert transform.copy is False and transform.keep == {"t1": "t1_orig"}
    assert kind(**DEFAULTS.get(name, {}), p=0.5).p == 0.5
    with pytest.warns(FutureWarning, match="keys"):
        assert list(kind(**DEFAULTS.get(name, {}), keys=["t1"]).include) == ["t1"]
    with pytest.raises(TypeError, match="copy"):
        kind(**DEFAULTS.get(name, {}), copy="yes")


def _label_subject() -> Subject:
    seg = torch.ones(1, 6, 6, 6, dtype=torch.int64)
    return Subject(t1=ScalarImage(tensor=torch.rand(1, 6, 6, 6)), seg=LabelMap(tensor=seg))


def test_default_pad_label_fills_label_maps_moved_out_of_the_field_of_view() -> None:
    subject = _label_subject()
    out = Affine(1, 0, (3, 0, 0), default_pad_label=7, default_pad_value=-1)(subject)
    values = set(out.seg.data.unique().tolist())
    assert values == {1, 7}
    assert set(out.t1.data[out.seg.data == 7].tolist()) == {-1.0}
    assert set(Affine(1, 0, (3, 0, 0))(subject).seg.data.unique().tolist()) == {0, 1}
    torch.manual_seed(0)
    moved = RandomAffine(scales=0, degrees=0, translation=(3, 3, 0, 0, 0, 0), default_pad_label=5)(subject)
    assert set(moved.seg.data.unique().tolist()) == {1, 5}
    assert "default_pad_label=5" in repr(RandomAffine(default_pad_label=5))


def test_default_pad_label_keeps_fused_chains_apart_and_reaches_patches() -> None:
    assert not RandomAffine(default_pad_label=1).fuses(RandomAffine())
    assert RandomAffine(default_pad_label=1).fuses(RandomAffine(default_pad_label=1))
    subject = _label_subject()
    whole = Compose([Affine(1, 0, (3, 0, 0), default_pad_label=4)])(subject)
    from torchpatch.transforms.augmentation.context import augment_patches

    patches = augment_patches(Compose([Affine(1, 0, (3, 0, 0), default_pad_label=4)]), subject, [[0, 0, 0, 6, 6, 6]])
    assert torch.equal(patches.data["seg"][0], whole.seg.data)


@pytest.mark.parametrize(("value", "error"), [("a", TypeError), (float("nan"), ValueError)])
def test_bad_default_pad_label(value: object, error: type) -> None:
    with pytest.raises(error, match="default_pad_label"):
        RandomAffine(default_pad_label=value)  # type: ignore[arg-type]


def test_combined_transform_equals_the_fused_compose() -> None:
    torch.manual_seed(0)
    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 12, 12, 12)))
    affine = {"scales": [1.1, 0.9, 1.0], "degrees": [5.0, 0.0, -5.0], "translation": [1.0, 0.0, 0.0]}
    field = (torch.rand(5, 5, 5, 3, generator=torch.Generator().manual_seed(1)) - 0.5).double().numpy()
    combined = AffineElasticDeformation(True, affine, {"control_points": field, "max_displacement": 0.5})
    fused = Compose([Affine(**affine), ElasticDeformation(field, 0.5)])
    np.testing.assert_allclose(combined(subject).t1.data.numpy(), fused(subject).t1.data.numpy(), atol=1e-5)
    out = RandomAffineElasticDeformation(elastic_kwargs={"num_control_points": 5, "max_displacement": 0.5})(subject)
    record = out["history"][0]
    replay = AffineElasticDeformation.from_record(record)(subject)
    np.testing.assert_allclose(replay.t1.data.numpy(), out.t1.data.numpy(), atol=1e-5)
    with pytest.raises(TypeError, match="affine_kwargs"):
        RandomAffineElasticDeformation(affine_kwargs=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="affine_first"):
        RandomAffineElasticDeformation(affine_first="yes")  # type: ignore[arg-type]


def _volume() -> torch.Tensor:
    i, j, k = torch.meshgrid(
        torch.linspace(-1, 1, 30), torch.linspace(-1, 1, 34), torch.linspace(-1, 1, 26), indexing="ij"
    )
    return (torch.exp(-(i**2 + j**2 + k**2) * 3) + 0.3 * torch.sin(3 * i + 2 * j) + 0.2 * k).unsqueeze(0).float()


OBLIQUE = np.array([[1.2, 0.1, 0, -20], [0, 0.9, 0.05, 10], [0.02, 0, 1.5, 3], [0, 0, 0, 1]])


@pytest.mark.parametrize("affine_first", [True, False])
def test_affine_elastic_deformation_gives_torchio_numbers(affine_first: bool) -> None:
    tio = pytest.importorskip("torchio")
    volume = _volume()
    field = ((torch.rand(7, 7, 7, 3, generator=torch.Generator().manual_seed(0)) - 0.5) * 4).double().numpy()
    affine = {"scales": [1.1, 0.9, 1.05], "degrees": [10.0, -7.0, 12.0], "translation": [3.0, -2.0, 1.0]}
    affine["default_pad_value"] = 0
    elastic = {"control_points": field, "max_displacement": (2, 2, 2)}
    theirs = tio.AffineElasticDeformation(affine_first, affine, elastic)(tio.ScalarImage(tensor=volume, affine=OBLIQUE))
    subject = Subject(t1=ScalarImage(tensor=volume, affine=OBLIQUE))
    ours = AffineElasticDeformation(affine_first, affine, elastic)(subject)
    np.testing.assert_allclose(ours.t1.data.numpy(), theirs.data.numpy(), atol=1e-5)


@pytest.mark.parametrize("affine_first", [True, False])
def test_a_seed_draws_torchio_affine_elastic_parameters(affine_first: bool) -> None:
    tio = pytest.importorskip("torchio")
    volume = _volume()
    # locked_borders=0: TorchIO locks the borders of the first two axes only, torchpatch of all three.
    kwargs = {
        "affine_first": affine_first,
        "affine_kwargs": {"degrees": 10, "translation": 3, "default_pad_value": 0},
        "elastic_kwargs": {"max_displacement": 3, "locked_borders": 0},
    }
    torch.manual_seed(3)
    theirs = tio.RandomAffineElasticDeformation(**kwargs)(
        tio.Subject(t1=tio.ScalarImage(tensor=volume, affine=OBLIQUE))
    )
    torch.manual_seed(3)
    ours = RandomAffineElasticDeformation(**kwargs)(Subject(t1=ScalarImage(tensor=volume, affine=OBLIQUE)))
    np.testing.assert_allclose(ours.t1.data.numpy(), theirs.t1.data.numpy(), atol=1e-5)
