"""Image.read_region / read_regions: boxes inside, past the border, into given buffers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import LabelMap, ScalarImage

MODES = ["constant", "edge", "reflect", "symmetric", "wrap", "mean", "median", "minimum", "maximum"]


def padded_reference(data: np.ndarray, ini: tuple[int, ...], fin: tuple[int, ...], mode: str) -> np.ndarray:
    """The box of the whole image padded by numpy, wide enough for it."""
    margin = max(max(0, -i) for i in ini) + max(max(0, f - s) for f, s in zip(fin, data.shape[1:])) + 1
    widths = ((0, 0), (margin, margin), (margin, margin), (margin, margin))
    padded = np.pad(data, widths, mode=mode) if mode != "constant" else np.pad(data, widths, constant_values=0)
    return padded[
        :, ini[0] + margin : fin[0] + margin, ini[1] + margin : fin[1] + margin, ini[2] + margin : fin[2] + margin
    ]


boxes = st.tuples(*[st.integers(-3, 6) for _ in range(3)], *[st.integers(1, 5) for _ in range(3)])


@settings(max_examples=60, deadline=None)
@given(box=boxes, mode=st.sampled_from(MODES))
def test_a_box_past_the_border_holds_what_numpy_pad_gives(box: tuple[int, ...], mode: str) -> None:
    data = np.random.default_rng(0).random((2, 5, 4, 6)).astype(np.float32)
    ini, size = box[:3], box[3:]
    fin = tuple(i + s for i, s in zip(ini, size))
    if mode == "reflect":  # numpy reflects a 4-voxel axis at most 3 voxels out per pass; keep within one period
        ini = tuple(max(i, -3) for i in ini)
    image = ScalarImage(tensor=torch.from_numpy(data))
    got = image.read_region(ini, fin, padding_mode=mode).numpy()
    np.testing.assert_allclose(got, padded_reference(data, ini, fin, mode), rtol=1e-6)


def test_label_maps_are_padded_with_zero_unless_the_mode_copies_voxels() -> None:
    labels = LabelMap(tensor=torch.full((1, 3, 3, 1), 2, dtype=torch.uint8))
    assert labels.read_region((-1, 0, 0), (1, 1, 1), padding_mode=7).flatten().tolist() == [0, 2]
    assert labels.read_region((-1, 0, 0), (1, 1, 1), padding_mode="mean").flatten().tolist() == [0, 2]
    assert labels.read_region((-1, 0, 0), (1, 1, 1), padding_mode="edge").flatten().tolist() == [2, 2]


def test_read_regions_fills_the_given_buffer_and_returns_it() -> None:
    image = ScalarImage(tensor=torch.arange(64.0).reshape(1, 4, 4, 4))
    out = torch.empty(3, 1, 2, 2, 2)
    boxes = [[0, 0, 0, 2, 2, 2], [2, 2, 2, 4, 4, 4], [-1, 0, 0, 1, 2, 2]]
    result = image.read_regions(boxes, padding_mode=0, out=out)
    assert result is out
    assert out[1].flatten().tolist() == image.data[:, 2:4, 2:4, 2:4].flatten().tolist()
    assert out[2, 0, 0].abs().sum() == 0 and torch.equal(out[2, 0, 1], image.data[0, 0, 0:2, 0:2])


def test_boxes_past_the_border_without_a_padding_mode_are_refused_naming_the_box() -> None:
    image = ScalarImage(tensor=torch.zeros(1, 4, 4, 4))
    with pytest.raises(ValueError, match=r"region \(3, 0, 0\) -> \(5, 2, 2\) is not inside the spatial shape"):
        image.read_regions([[0, 0, 0, 2, 2, 2], [3, 0, 0, 5, 2, 2]])


def test_boxes_of_different_sizes_are_refused() -> None:
    image = ScalarImage(tensor=torch.zeros(1, 4, 4, 4))
    with pytest.raises(ValueError, match=r"boxes of one size.*row 1"):
        image.read_regions([[0, 0, 0, 2, 2, 2], [0, 0, 0, 3, 2, 2]])


def test_a_box_wholly_outside_is_all_fill() -> None:
    image = ScalarImage(tensor=torch.ones(1, 2, 2, 1))
    assert image.read_region((5, 5, 0), (6, 6, 1), padding_mode=-3).item() == -3.0


def test_memory_mapped_npy_boxes_match_the_loaded_ones(tmp_path) -> None:
    data = torch.arange(2 * 6 * 5 * 4, dtype=torch.int16).reshape(2, 6, 5, 4)
    ScalarImage(tensor=data).save(tmp_path / "x.npy")
    lazy = ScalarImage(tmp_path / "x.npy")
    boxes = [[0, 0, 0, 3, 3, 3], [3, 2, 1, 6, 5, 4]]
    out = lazy.read_regions(boxes, out=torch.empty(2, 2, 3, 3, 3, dtype=torch.int16))
    assert not lazy.is_loaded
    assert torch.equal(out, ScalarImage(tensor=data).read_regions(boxes))
