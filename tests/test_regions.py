"""Image.read_region / read_regions: boxes inside, past the border, into given buffers."""

from __future__ import annotations

import weakref

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import LabelMap, ScalarImage, io

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


# Compressed NIfTI images loaded in the file's order ---------------------------------------------


def _nifti_gz(tmp_path, data: torch.Tensor, name: str = "x.nii.gz"):
    path = tmp_path / name
    ScalarImage(tensor=data).save(path)
    return path


def _decoded_in_file_order(image) -> bool:
    return image._file_order is not None


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.float32, torch.float64])
@pytest.mark.parametrize(("suffix", "channels"), [(".nii.gz", 1), (".nii.gz", 2), (".nrrd", 1), (".mha", 1)])
def test_boxes_of_a_compressed_file_are_cut_before_its_voxels_are_reordered(tmp_path, dtype, suffix, channels) -> None:
    data = (torch.rand(channels, 21, 13, 17) * 200).to(dtype)
    path = _nifti_gz(tmp_path, data, f"x{suffix}")
    image = ScalarImage(path)
    image.load()
    assert image.is_loaded and _decoded_in_file_order(image)  # decoded, no pass to reorder yet
    boxes = [[0, 0, 0, 8, 5, 9], [13, 8, 8, 21, 13, 17], [4, 2, 3, 12, 7, 12]]
    assert torch.equal(image.read_regions(boxes), ScalarImage(tensor=data).read_regions(boxes))
    assert _decoded_in_file_order(image)  # the boxes came straight out of the file's order
    decoded = weakref.ref(image._file_order)  # a reference would keep it
    assert torch.equal(image.data, data) and image.data.is_contiguous()  # reordered when the data is used
    assert not _decoded_in_file_order(image)
    assert decoded() is None  # dropped once reordered


def test_a_vector_image_of_simpleitk_loads_in_c_order(tmp_path) -> None:
    data = torch.rand(3, 5, 4, 3)  # components interleaved on disk: no channel is a block of its own
    image = ScalarImage(_nifti_gz(tmp_path, data, "rgb.nrrd"))
    image.load()
    assert image._data is not None and image._data.is_contiguous() and not _decoded_in_file_order(image)
    assert torch.equal(image.data, data)


def test_cutting_an_unloaded_compressed_nifti_loads_it_in_the_files_order(tmp_path) -> None:
    data = torch.arange(2 * 9 * 8 * 7, dtype=torch.int16).reshape(2, 9, 8, 7)
    image = ScalarImage(_nifti_gz(tmp_path, data))
    assert not image.is_loaded
    out = image.read_regions([[1, 2, 3, 5, 6, 7]], out=torch.empty(1, 2, 4, 4, 4, dtype=torch.int16))
    assert torch.equal(out[0], data[:, 1:5, 2:6, 3:7])
    assert image.is_loaded and _decoded_in_file_order(image)


def test_boxes_past_the_budget_reorder_the_voxels_first(tmp_path) -> None:
    data = torch.rand(1, 8, 8, 8)
    image = ScalarImage(_nifti_gz(tmp_path, data))
    image.load()
    whole = [[0, 0, 0, 8, 8, 8]]
    image.read_regions(whole)  # one volume: within the budget of 1.5
    assert _decoded_in_file_order(image)
    assert torch.equal(image.read_regions(whole), data[None])  # two volumes in all: reordered first
    assert not _decoded_in_file_order(image) and image._data is not None


def test_boxes_past_the_border_reorder_the_voxels_first(tmp_path) -> None:
    data = torch.rand(1, 6, 6, 6)
    image = ScalarImage(_nifti_gz(tmp_path, data))
    image.load()
    out = image.read_regions([[-1, 0, 0, 3, 3, 3]], padding_mode="edge")
    assert torch.equal(out[0], ScalarImage(tensor=data).read_region((-1, 0, 0), (3, 3, 3), padding_mode="edge"))
    assert not _decoded_in_file_order(image)


@pytest.mark.parametrize(
    "options",
    [{"check_nans": True}, {"dtype": torch.float64}],
    ids=["NaN check", "dtype asked for"],
)
def test_images_that_convert_or_check_their_voxels_load_in_c_order(tmp_path, options) -> None:
    image = ScalarImage(_nifti_gz(tmp_path, torch.rand(1, 5, 4, 3)), **options)
    image.load()
    assert image._data is not None and not _decoded_in_file_order(image)


@pytest.mark.parametrize("stored", [np.float32, np.uint16], ids=["float label", "uint16"])
def test_voxels_converted_when_loaded_are_loaded_in_c_order(tmp_path, stored) -> None:
    data = np.random.default_rng(0).integers(0, 4, (1, 7, 6, 5)).astype(stored)
    path = tmp_path / "x.nii.gz"
    io.write_image(data, np.eye(4), path)
    image = LabelMap(path) if stored == np.float32 else ScalarImage(path)  # int64 labels; uint16 widened
    image.load()
    assert image._data is not None and not _decoded_in_file_order(image)
    boxes = [[0, 0, 0, 4, 4, 4], [3, 2, 1, 7, 6, 5]]
    out = image.read_regions(boxes)
    assert out.dtype == image.dtype != torch.from_numpy(data).dtype
    expected = torch.from_numpy(data.astype(np.int64))
    assert torch.equal(out.long(), torch.stack([expected[:, 0:4, 0:4, 0:4], expected[:, 3:7, 2:6, 1:5]]))


def test_without_the_compiled_copies_images_load_in_c_order(tmp_path, monkeypatch) -> None:
    from torchpatch.io import order

    monkeypatch.setattr(order, "compiled", None)
    data = torch.rand(1, 5, 4, 3)
    image = ScalarImage(_nifti_gz(tmp_path, data))
    image.load()
    assert not _decoded_in_file_order(image)
    assert torch.equal(image.read_regions([[1, 1, 1, 4, 3, 2]])[0], data[:, 1:4, 1:3, 1:2])


def test_unload_and_derived_images_drop_the_files_order(tmp_path) -> None:
    data = torch.rand(1, 5, 4, 3)
    image = ScalarImage(_nifti_gz(tmp_path, data))
    image.load()
    derived = image.derive(torch.zeros(1, 2, 2, 2), np.eye(4))
    assert not _decoded_in_file_order(derived) and torch.equal(derived.data, torch.zeros(1, 2, 2, 2))
    image.unload()
    assert not image.is_loaded and not _decoded_in_file_order(image)
    assert torch.equal(image.data, data)


def test_copies_share_the_files_order_without_changing_it(tmp_path) -> None:
    import copy

    data = torch.rand(1, 6, 5, 4)
    image = ScalarImage(_nifti_gz(tmp_path, data))
    image.load()
    twin = copy.copy(image)
    decoded = image._file_order
    assert torch.equal(twin.data, data)  # the twin reorders into its own array
    assert _decoded_in_file_order(image) and not np.shares_memory(twin.data.numpy(), decoded.numpy())
    assert torch.equal(image.read_regions([[0, 0, 0, 6, 5, 4]])[0], data)
    assert torch.equal(image.data, data)


@settings(max_examples=30, deadline=None)
@given(
    reads=st.lists(
        st.tuples(st.integers(1, 3), st.integers(0, 10**6), st.booleans()),
        min_size=1,
        max_size=5,
    ),
    size=st.tuples(st.integers(1, 9), st.integers(1, 7), st.integers(1, 5)),
)
def test_any_reads_of_a_compressed_image_give_the_tensors_boxes(tmp_path_factory, reads, size) -> None:
    data = torch.arange(2 * 9 * 7 * 5, dtype=torch.int16).reshape(2, 9, 7, 5)
    folder = tmp_path_factory.mktemp("reads")
    image, reference = ScalarImage(_nifti_gz(folder, data)), ScalarImage(tensor=data)
    for count, seed, use_data in reads:
        rng = np.random.default_rng(seed)
        corners = [[int(rng.integers(0, s - w + 1)) for s, w in zip((9, 7, 5), size)] for _ in range(count)]
        boxes = [[*corner, *(c + w for c, w in zip(corner, size))] for corner in corners]
        assert torch.equal(image.read_regions(boxes), reference.read_regions(boxes))
        if use_data:
            assert torch.equal(image.data, data)


def test_an_image_in_the_files_order_pickles_its_voxels_as_they_are(tmp_path) -> None:
    import pickle

    data = torch.rand(2, 6, 5, 4)
    image = ScalarImage(_nifti_gz(tmp_path, data))
    image.load()
    again = pickle.loads(pickle.dumps(image))  # a tensor: a loader's worker sends it in shared memory
    assert isinstance(again._file_order, torch.Tensor) and io.in_file_order(again._file_order.numpy())
    assert torch.equal(again.read_regions([[1, 1, 1, 5, 4, 3]])[0], data[:, 1:5, 1:4, 1:3])
    assert torch.equal(again.data, data)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.float32])
def test_large_boxes_go_through_the_compiled_copies_small_ones_through_numpy(monkeypatch, dtype):
    from torchpatch import regions

    voxels = (torch.rand(2, 40, 36, 33) * 100).to(dtype)
    image = ScalarImage(tensor=voxels)
    calls: list[int] = []
    copy_boxes = io.copy_boxes
    monkeypatch.setattr(io, "copy_boxes", lambda out, boxes: calls.append(len(boxes)) or copy_boxes(out, boxes))
    large = [[0, 0, 0, 32, 32, 32], [8, 4, 1, 40, 36, 33], [3, 2, 0, 35, 34, 32]]
    expected = torch.stack([voxels[:, b[0] : b[3], b[1] : b[4], b[2] : b[5]] for b in large])
    assert expected[0].nbytes >= regions.COMPILED_BOX_BYTES > expected[0, :, :4, :4, :4].nbytes
    assert torch.equal(image.read_regions(large), expected) and calls == [3]
    out = torch.empty(2, 32, 32, 32, dtype=dtype)  # one box into a given buffer: the same copies
    assert torch.equal(image.read_region((8, 4, 1), (40, 36, 33), out=out), expected[1]) and calls == [3, 1]
    small = [[1, 2, 3, 5, 6, 7], [36, 32, 29, 40, 36, 33]]
    got = image.read_regions(small)
    assert torch.equal(got, torch.stack([voxels[:, b[0] : b[3], b[1] : b[4], b[2] : b[5]] for b in small]))
    assert calls == [3, 1]  # numpy's slices: cheaper to call for boxes this small
