"""GridAggregator against TorchIO 1.x's, voxel for voxel (skipped without TorchIO).

Run with TorchIO installed (``pip install torchio==1.2.1``), e.g. in the
benchmark venv: ``.bench-venv-aug/bin/python -m pytest tests/test_aggregator_torchio.py``.
Both libraries cut the same grid from the same image and stitch the outputs of
the same model, which adds a code of the patch's location to every voxel of
its input, an image of voxel indices: every output voxel then names the input
voxel and the patch it came from. Crop mode with ``crop_mode='torchio'``,
average mode and hann mode with ``hann_mode='torchio'`` equal TorchIO's; the
default crop mode differs from it only next to a last patch shifted back to
the border, the default Hann window everywhere patches overlap (see
``docs/migration.rst``).
TorchIO refuses odd overlaps, so those are tested in ``test_aggregator.py``
only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchpatch as tp

tio = pytest.importorskip("torchio")

CASES = [
    # (shape, patch, overlap): shapes that are and are not multiples of the step.
    ((12, 9, 7), (8, 4, 4), (2, 2, 2)),
    ((11, 9, 7), 4, 2),
    ((13, 10, 9), 6, 4),
    ((31, 17, 13), (10, 6, 8), (6, 2, 4)),
    ((30, 20, 1), (8, 8, 1), (4, 4, 0)),
    ((24, 16, 8), 8, 0),
]
PADDINGS = [None, 0, "edge", "reflect"]


def _triplet(value) -> np.ndarray:
    return np.array(value if isinstance(value, tuple) else (value, value, value), dtype=np.int64)


def _model(inputs: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
    """The input plus a code of the patch's start (in the unpadded image's grid)."""
    starts = locations[:, :3].to(torch.float64) + 1
    code = starts[:, 0] * 1e9 + starts[:, 1] * 1e6 + starts[:, 2] * 1e3
    return inputs.to(torch.float64) + code.view(-1, 1, 1, 1, 1)


def _volume(shape) -> torch.Tensor:
    return torch.arange(int(np.prod(shape)), dtype=torch.float64).reshape(1, *shape)


def _torchio(shape, patch, overlap, padding, mode: str, dtype=torch.float64, model=_model) -> torch.Tensor:
    image = tio.ScalarImage(tensor=_volume(shape).to(dtype))
    sampler = tio.GridSampler(tio.Subject(t=image), patch, overlap, padding)
    aggregator = tio.inference.GridAggregator(sampler, overlap_mode=mode)
    # TorchIO's locations are in the padded image's grid; the model sees the unpadded one.
    border = 0 if padding is None else np.tile(_triplet(overlap) // 2, 2)
    for batch in tio.SubjectsLoader(sampler, batch_size=4):
        locations = batch[tio.LOCATION]
        aggregator.add_batch(model(batch["t"][tio.DATA], locations - torch.as_tensor(border)), locations)
    return aggregator.get_output_tensor().to(torch.float64)


def _torchpatch(shape, patch, overlap, padding, mode: str, dtype=torch.float64, model=_model, **kwargs) -> torch.Tensor:
    image = tp.ScalarImage(tensor=_volume(shape).to(dtype))
    sampler = tp.GridSampler(tp.Subject(t=image), patch, overlap, padding)
    aggregator = tp.GridAggregator(sampler, overlap_mode=mode, **kwargs)
    for batch in tp.SubjectsLoader(sampler, batch_size=4):
        aggregator.add_batch(model(batch["t"][tp.DATA], batch[tp.LOCATION]), batch[tp.LOCATION])
    return aggregator.get_output_tensor().to(torch.float64)


def _float32_model(inputs: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
    """A float32 output that differs from patch to patch (TorchIO blends Hann windows in float32)."""
    starts = locations[:, :3].to(torch.float32)
    code = 1 + 0.1 * starts[:, 0] + 0.01 * starts[:, 1] + 0.001 * starts[:, 2]
    return inputs.to(torch.float32) * code.view(-1, 1, 1, 1, 1)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize(("shape", "patch", "overlap"), CASES)
def test_crop_mode_torchio_equals_torchio(shape, patch, overlap, padding) -> None:
    expected = _torchio(shape, patch, overlap, padding, "crop")
    assert torch.equal(_torchpatch(shape, patch, overlap, padding, "crop", crop_mode="torchio"), expected)


@pytest.mark.parametrize(("shape", "patch", "overlap"), CASES)
def test_default_crop_mode_differs_exactly_next_to_a_shifted_last_patch(shape, patch, overlap) -> None:
    # Along an axis whose last patch starts at s, shifted back from the regular
    # step to end on the border, TorchIO cuts at s + overlap // 2 and
    # torchpatch's default at the middle of what it shares with the patch
    # before: the voxels in between are the only ones that differ.
    expected = _torchio(shape, patch, overlap, None, "crop")
    differs = (_torchpatch(shape, patch, overlap, None, "crop") != expected)[0].numpy()
    band = np.zeros(shape, dtype=bool)
    for axis, (size, p, o) in enumerate(zip(shape, _triplet(patch), _triplet(overlap))):
        start = size - p
        previous = start // (p - o) * (p - o)
        if previous == start:
            continue  # no shifted patch on this axis
        index = [slice(None)] * 3
        index[axis] = slice(start + o // 2, start + (previous + p - start) // 2)
        band[tuple(index)] = True
    np.testing.assert_array_equal(differs, band)


@pytest.mark.parametrize("padding", [None, "edge"])
@pytest.mark.parametrize(("shape", "patch", "overlap"), CASES)
def test_average_mode_equals_torchio(shape, patch, overlap, padding) -> None:
    # Equal up to float64 rounding: TorchIO divides a sum, torchpatch keeps a running mean.
    expected = _torchio(shape, patch, overlap, padding, "average")
    torch.testing.assert_close(_torchpatch(shape, patch, overlap, padding, "average"), expected, rtol=1e-10, atol=0)


@pytest.mark.parametrize("padding", [None, "edge"])
@pytest.mark.parametrize(("shape", "patch", "overlap"), CASES)
def test_hann_mode_torchio_equals_torchio(shape, patch, overlap, padding) -> None:
    # Equal up to float32 rounding: TorchIO divides summed weighted patches
    # by summed windows, torchpatch keeps a running weighted mean.
    args = (shape, patch, overlap, padding, "hann", torch.float32, _float32_model)
    expected = _torchio(*args)
    output = _torchpatch(*args, hann_mode="torchio")
    torch.testing.assert_close(output, expected, rtol=2e-6, atol=2e-6 * float(expected.abs().max()))


def test_default_hann_window_differs_from_torchio() -> None:
    # The default window is sampled at voxel centres: the blend differs from
    # TorchIO's wherever patches overlap (by far more than float rounding).
    args = ((31, 17, 13), (10, 6, 8), (6, 2, 4), None, "hann", torch.float32, _float32_model)
    expected = _torchio(*args)
    difference = (_torchpatch(*args) - expected).abs().max() / expected.abs().max()
    assert difference > 1e-3


def test_torchio_refuses_odd_overlaps() -> None:
    subject = tio.Subject(t=tio.ScalarImage(tensor=torch.zeros(1, 8, 8, 8)))
    with pytest.raises(ValueError, match="even"):
        tio.GridSampler(subject, 4, 1)
