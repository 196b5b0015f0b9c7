"""The same voxels as TorchIO 1.x for the preprocessing transforms of misc.py and label.py (skipped without it).

Run with TorchIO installed (``pip install torchio==1.2.1``), e.g. in the
benchmark venv: ``.bench-venv-aug/bin/python -m pytest tests/transforms/test_transforms_torchio_parity.py``.
Each case builds the same subject in both libraries, applies the transform
with the same arguments, and compares shapes, dtypes, affines and voxels.
Deliberate differences (an int multiple on a 2D image) are tested in
test_transforms_misc.py instead.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchpatch as tp

tio = pytest.importorskip("torchio")


def _label_tensor(shape=(1, 9, 8, 7), seed=0, classes=4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, classes, shape, generator=generator, dtype=torch.int16)


def _scalar_tensor(shape=(1, 9, 8, 7), seed=1, dtype=torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=generator) * 200 - 100).to(dtype)


AFFINE = np.array([[1.5, 0, 0, -10], [0, 0.8, 0, 5], [0, 0, 2.0, 1], [0, 0, 0, 1]])


def _pair(scalar: torch.Tensor, label: torch.Tensor):
    ours = tp.Subject(t1=tp.ScalarImage(tensor=scalar, affine=AFFINE), seg=tp.LabelMap(tensor=label, affine=AFFINE))
    theirs = tio.Subject(
        t1=tio.ScalarImage(tensor=scalar.clone(), affine=AFFINE), seg=tio.LabelMap(tensor=label.clone(), affine=AFFINE)
    )
    return ours, theirs


def _assert_same(ours, theirs, names=("t1", "seg")) -> None:
    for name in names:
        mine, other = ours[name], theirs[name]
        assert mine.shape == tuple(other.shape), name
        assert mine.data.dtype == other.data.dtype, name
        np.testing.assert_allclose(mine.affine, other.affine, err_msg=name)
        torch.testing.assert_close(mine.data, other.data, rtol=0, atol=1e-6, msg=name)


def _double(tensor):
    return 2 * tensor


CASES = {
    "lambda": lambda lib: lib.Lambda(_double),
    "lambda_label": lambda lib: lib.Lambda(lambda x: 1 - x, types_to_apply=[lib.LABEL]),
    "clamp": lambda lib: lib.Clamp(-20, 30),
    "clamp_min": lambda lib: lib.Clamp(out_min=0),
    "mask_label": lambda lib: lib.Mask("seg"),
    "mask_labels": lambda lib: lib.Mask("seg", outside_value=-5, labels=[1, 3]),
    "mask_left": lambda lib: lib.Mask("Left"),
    "mask_posterior": lambda lib: lib.Mask("posterior"),
    "mask_superior": lambda lib: lib.Mask("Superior"),
    "mask_bounds": lambda lib: lib.Mask((1, 2, 0, 3, 2, 1)),
    "mask_callable": lambda lib: lib.Mask(lambda x: x > 0),
    "one_hot": lambda lib: lib.OneHot(),
    "one_hot_6": lambda lib: lib.OneHot(num_classes=6),
    "remap": lambda lib: lib.RemapLabels({1: 2, 2: 1, 3: 7}),
    "remap_right": lambda lib: lib.RemapLabels({1: 3, 3: 1}, masking_method="Right"),
    "remap_by_image_bounds": lambda lib: lib.RemapLabels({0: 9}, masking_method=(2, 2, 1, 1, 0, 3)),
    "sequential": lambda lib: lib.SequentialLabels(),
    "ensure_pad": lambda lib: lib.EnsureShapeMultiple(4),
    "ensure_crop": lambda lib: lib.EnsureShapeMultiple(4, method="crop"),
    "ensure_anisotropic": lambda lib: lib.EnsureShapeMultiple((2, 3, 5)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_voxels_as_torchio(case):
    ours, theirs = _pair(_scalar_tensor(), _label_tensor())
    _assert_same(CASES[case](tp)(ours), CASES[case](tio)(theirs))


@pytest.mark.parametrize("seed", range(6))
def test_sequential_labels_sparse_values_as_torchio(seed):
    label = torch.tensor([0, 3, 17, 250])[_label_tensor(seed=seed).long()].to(torch.int64)
    ours, theirs = _pair(_scalar_tensor(), label)
    _assert_same(tp.SequentialLabels()(ours), tio.SequentialLabels()(theirs))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("shape", [(1, 12, 10, 1), (1, 7, 6, 5)])
def test_keep_largest_component_as_torchio(seed, shape):
    # Sparse random foreground: many components, ties included.
    generator = torch.Generator().manual_seed(seed)
    label = (torch.rand(shape, generator=generator) > 0.6).to(torch.int16)
    ours, theirs = _pair(_scalar_tensor(shape), label)
    _assert_same(tp.KeepLargestComponent()(ours), tio.KeepLargestComponent()(theirs), names=("seg",))


def test_keep_largest_component_ties_as_torchio():
    label = torch.zeros(1, 4, 4, 3, dtype=torch.int16)
    label[0, 3, 0, 0] = label[0, 0, 3, 0] = label[0, 0, 0, 2] = label[0, 2, 2, 1] = 1
    ours, theirs = _pair(_scalar_tensor(label.shape), label)
    _assert_same(tp.KeepLargestComponent()(ours), tio.KeepLargestComponent()(theirs), names=("seg",))


def test_copy_affine_as_torchio():
    ours, theirs = _pair(_scalar_tensor(), _label_tensor())
    other = AFFINE.astype(np.float16).astype(np.float64) + 1e-3
    ours = tp.Subject(t1=ours.t1, seg=tp.LabelMap(tensor=ours.seg.data, affine=other))
    theirs = tio.Subject(t1=theirs.t1, seg=tio.LabelMap(tensor=theirs.seg.data, affine=other))
    _assert_same(tp.CopyAffine("t1")(ours), tio.CopyAffine("t1")(theirs))


def test_integer_clamp_and_mask_as_torchio():
    scalar = _scalar_tensor(dtype=torch.int16)
    ours, theirs = _pair(scalar, _label_tensor())
    _assert_same(tp.Clamp(-10.5, 20)(ours), tio.Clamp(-10.5, 20)(theirs))
    _assert_same(tp.Mask("seg", outside_value=-3)(ours), tio.Mask("seg", outside_value=-3)(theirs))
