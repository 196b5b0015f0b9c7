"""TorchIO's descriptive image properties (torchpatch/image_info.py), against TorchIO where it is installed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, ScalarImage
from torchpatch.geometry import LPS_TO_RAS


def _oblique() -> np.ndarray:
    angle = np.deg2rad(20.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.8, 1.5, 3.0])
    affine[:3, 3] = (-10.0, 4.0, 7.5)
    return affine


AFFINES = {
    "identity": np.eye(4),
    "lps-anisotropic": LPS_TO_RAS @ np.diag([0.5, 0.75, 2.0, 1.0]),
    "permuted": np.array([[0, 0, -2.0, 5], [1.0, 0, 0, -3], [0, 1.5, 0, 1], [0, 0, 0, 1]]),
    "oblique": _oblique(),
}


@pytest.mark.parametrize("name", list(AFFINES))
@pytest.mark.parametrize("shape", [(5, 4, 3), (6, 4, 1)])
def test_same_properties_as_torchio(name, shape) -> None:
    tio = pytest.importorskip("torchio")
    affine = AFFINES[name]
    data = torch.arange(np.prod(shape), dtype=torch.int16).reshape(1, *shape)
    ours, theirs = ScalarImage(tensor=data, affine=affine), tio.ScalarImage(tensor=data, affine=affine)
    assert ours.orientation_str == theirs.orientation_str
    np.testing.assert_allclose(ours.direction, theirs.direction, atol=1e-12)
    assert ours.itemsize == theirs.itemsize == 2
    np.testing.assert_allclose(ours.bounds, theirs.bounds, atol=1e-9)
    np.testing.assert_allclose(ours.get_bounds(), theirs.get_bounds(), atol=1e-9)
    assert ours.get_spacing_string() == theirs.get_spacing_string()
    if shape[2] == 1:
        assert (ours.height, ours.width) == (theirs.height, theirs.width) == (4, 6)
    else:
        for image in (ours, theirs):
            with pytest.raises(RuntimeError, match="not 2D"):
                image.check_is_2d()
        with pytest.raises(RuntimeError, match=r"is not 2D: its spatial shape is \(5, 4, 3\)"):
            _ = ours.height
    mine_ras, their_ras = ours.to_ras(), theirs.to_ras()
    assert type(mine_ras) is ScalarImage and mine_ras.orientation_str == "RAS"
    assert torch.equal(mine_ras.data, their_ras.data)
    np.testing.assert_allclose(mine_ras.affine, their_ras.affine, atol=1e-9)


def test_to_ras_keeps_every_voxel_at_its_world_position() -> None:
    affine = AFFINES["permuted"]
    image = LabelMap(tensor=torch.randint(0, 9, (2, 5, 4, 3)), affine=affine)
    ras = image.to_ras()
    assert type(ras) is LabelMap and ras.to_ras() is ras and ras.spatial_shape == (3, 5, 4)
    for index in [(0, 0, 0), (4, 3, 2), (1, 2, 0)]:
        world = affine @ np.array([*index, 1.0])
        new = np.linalg.solve(ras.affine, world)[:3].round().astype(int)
        assert torch.equal(ras.data[:, new[0], new[1], new[2]], image.data[:, index[0], index[1], index[2]])


def test_label_counts_as_torchio() -> None:
    tio = pytest.importorskip("torchio")
    data = torch.tensor([0, 3, 3, 1, 0, 7, 3, 0], dtype=torch.uint8).reshape(2, 2, 2, 1)
    ours, theirs = LabelMap(tensor=data), tio.LabelMap(tensor=data)
    assert ours.count_nonzero() == theirs.count_nonzero() == 5
    assert ours.count_labels() == theirs.count_labels() == {0: 3, 1: 1, 3: 3, 7: 1}


def test_header_properties_read_no_voxels(tmp_path) -> None:
    path = tmp_path / "ct.nii.gz"
    ScalarImage(tensor=torch.zeros(1, 6, 5, 4, dtype=torch.int16), affine=AFFINES["lps-anisotropic"]).save(path)
    image = ScalarImage(path)
    assert (image.orientation_str, image.itemsize, image.get_spacing_string()) == ("LPS", 2, "(0.50, 0.75, 2.00)")
    assert image.get_bounds()[0] == pytest.approx((0.25, -2.75)) and image.bounds.shape == (2, 3)
    assert not image.is_loaded


def test_an_image_reads_as_torchio_s_dict_does() -> None:
    tio = pytest.importorskip("torchio")
    data = torch.rand(1, 3, 2, 2)
    ours = ScalarImage(tensor=data, site="north")
    theirs = tio.ScalarImage(tensor=data, site="north")
    assert list(ours.keys()) == list(theirs.keys()) == ["data", "affine", "site", "path", "stem", "type"]
    for key in list(ours.keys()):  # an image is not iterable (see Image.__iter__)
        assert key in ours and key in theirs
    assert "spacing" not in ours and "spacing" not in theirs
    assert ours.get("site") == theirs.get("site") == "north" and ours.get("nope", 7) == theirs.get("nope", 7) == 7
    assert torch.equal(ours["data"], theirs["data"]) and dict(ours.items())["type"] == theirs["type"] == "intensity"
    assert len(ours.values()) == 6


def test_dict_access_says_what_is_there() -> None:
    image = LabelMap(tensor=torch.zeros(1, 2, 2, 2, dtype=torch.uint8))
    assert image.get("stem") is None and image["type"] == "label"
    with pytest.raises(KeyError, match=r"has no key 'nope'; keys: \['data', 'affine', 'path', 'stem', 'type'\]"):
        image["nope"]
    with pytest.raises(TypeError, match="cannot be iterated"):
        list(image)
