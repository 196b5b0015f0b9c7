"""Random samplers pad images smaller than the patch only when asked."""

from __future__ import annotations

import pytest
import torch

from torchpatch import LOCATION, LabelMap, LabelSampler, ScalarImage, Subject, UniformSampler, WeightedSampler


def _small_subject():
    data = torch.arange(5 * 10 * 3, dtype=torch.float32).reshape(1, 5, 10, 3) + 1
    return Subject(
        t1=ScalarImage(tensor=data),
        seg=LabelMap(tensor=torch.ones(1, 5, 10, 3, dtype=torch.uint8)),
        w=ScalarImage(tensor=torch.ones(1, 5, 10, 3)),
    )


@pytest.mark.parametrize(
    "sampler",
    [
        UniformSampler(8, padding_mode=0),
        WeightedSampler(8, "w", padding_mode=0),
        LabelSampler(8, "seg", padding_mode=0),
    ],
)
def test_padded_patches_keep_locations_in_the_unpadded_grid(sampler):
    subject = _small_subject()
    for patch in sampler(subject, 5, generator=0):
        i0, j0, k0, i1, j1, k1 = patch[LOCATION].tolist()
        assert (i1 - i0, j1 - j0, k1 - k0) == (8, 8, 8)
        # Axes shorter than the patch are centred: 5 -> 3 voxels of padding (1 before), 3 -> 5 (2 before).
        assert (i0, k0) == (-1, -2)
        assert 0 <= j0 <= 2
        expected = torch.zeros(1, 8, 8, 8)
        source = subject["t1"].data[:, :, j0:j1, :]
        expected[:, 1:6, :, 2:5] = source
        assert torch.equal(patch["t1"].data, expected)


def test_edge_padding_copies_border_voxels():
    subject = _small_subject()
    patch = next(UniformSampler((8, 4, 3), padding_mode="edge")(subject, 1, generator=0))
    assert patch["t1"].data[0, 0].equal(patch["t1"].data[0, 1])


def test_patch_larger_than_image_is_an_error_without_padding_mode():
    with pytest.raises(ValueError, match="CropOrPad"):
        next(UniformSampler(8)(_small_subject(), 1))


def test_unknown_padding_mode_is_rejected_when_the_sampler_is_made():
    with pytest.raises(ValueError):
        UniformSampler(8, padding_mode="sideways")
