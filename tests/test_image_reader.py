"""Image(reader=..., verify_path=...): TorchIO's custom readers and unchecked paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, ScalarImage


def _numpy_reader(path: Path) -> tuple[np.ndarray, np.ndarray]:
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    return np.load(path), affine


@pytest.fixture
def raw_file(tmp_path: Path) -> Path:
    path = tmp_path / "volume.raw"  # a suffix the built-in readers do not know
    with path.open("wb") as file:
        np.save(file, np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4))
    return path


def test_custom_reader_gives_voxels_and_affine(raw_file: Path) -> None:
    image = ScalarImage(raw_file, reader=_numpy_reader)
    assert not image.is_loaded
    assert image.shape == (1, 2, 3, 4)
    assert image.spacing == (2.0, 3.0, 4.0)
    assert image.data.flatten().tolist() == list(range(24))


def test_custom_reader_boxes_come_from_the_reader(raw_file: Path) -> None:
    image = ScalarImage(raw_file, reader=_numpy_reader)
    region = image.read_region((1, 0, 0), (2, 1, 2))
    assert region.flatten().tolist() == [12.0, 13.0]


def test_custom_reader_npy_file_is_not_memory_mapped(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((1, 2, 2, 2), np.float32))
    image = ScalarImage(path, reader=lambda p: (np.load(p) + 1, None))
    assert image.read_region((0, 0, 0), (1, 1, 1)).item() == 1.0
    assert np.array_equal(image.affine, np.eye(4))


def test_custom_reader_3d_output_gets_a_channel_and_given_affine_wins(raw_file: Path) -> None:
    image = LabelMap(raw_file, affine=np.eye(4), reader=lambda p: (torch.zeros(2, 3, 4), np.diag([5, 5, 5, 1])))
    assert image.shape == (1, 2, 3, 4)
    assert image.spacing == (1.0, 1.0, 1.0)


def test_custom_reader_several_paths_stack_channels(raw_file: Path) -> None:
    image = ScalarImage([raw_file, raw_file], reader=_numpy_reader)
    assert image.shape == (2, 2, 3, 4)


def test_custom_reader_bad_output_names_the_reader(raw_file: Path) -> None:
    with pytest.raises(TypeError, match=r"must return \(voxels, affine\)"):
        _ = ScalarImage(raw_file, reader=lambda p: np.zeros((1, 1, 1, 1))).data
    with pytest.raises(ValueError, match=r"got shape \(2, 2\)"):
        _ = ScalarImage(raw_file, reader=lambda p: (np.zeros((2, 2)), None)).data


def test_reader_must_be_callable(raw_file: Path) -> None:
    with pytest.raises(TypeError, match="reader must be a callable"):
        ScalarImage(raw_file, reader="numpy")


def test_verify_path_false_defers_the_missing_file_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.nii.gz"
    with pytest.raises(FileNotFoundError, match=r"missing\.nii\.gz"):
        ScalarImage(missing)
    image = ScalarImage(missing, verify_path=False)
    assert image.path == missing
    with pytest.raises(FileNotFoundError):
        image.load()


def test_custom_reader_still_verifies_existence(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.raw"):
        ScalarImage(tmp_path / "missing.raw", reader=_numpy_reader)


def test_reader_and_verify_path_are_not_metadata(raw_file: Path) -> None:
    image = ScalarImage(raw_file, reader=_numpy_reader, verify_path=True)
    assert image.metadata == {}
    assert image.crop((0, 0, 0), (1, 1, 1)).reader is _numpy_reader
