"""RandomElasticDeformation: identity, displacement bounds in mm, locked borders, annotations, 2D, errors, pickle."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.annotations import Points
from torchpatch.transforms.augmentation import ElasticDeformation, RandomElasticDeformation
from torchpatch.transforms.augmentation.affine import rotation_matrix
from torchpatch.transforms.augmentation.context import augment_patches
from torchpatch.transforms.augmentation.resample import Frame


def phantom(shape) -> torch.Tensor:
    axes = [torch.linspace(0, 1, n, dtype=torch.float64) for n in shape]
    i, j, k = torch.meshgrid(*axes, indexing="ij")
    return (torch.sin(5 * i + 0.3) * torch.cos(4 * j) * torch.sin(3 * k + 1) + 2).unsqueeze(0).float()


def make_subject(shape=(20, 18, 16), affine=None) -> Subject:
    data = phantom(shape)
    return Subject(
        t1=ScalarImage(tensor=data, affine=affine), seg=LabelMap(tensor=(data > 2).to(torch.uint8), affine=affine)
    )


def oblique(spacing=(1.2, 0.9, 1.5), degrees=(10, -20, 30)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = rotation_matrix(degrees) @ np.diag(spacing)
    affine[:3, 3] = (-5, 3, 7)
    return affine


def test_zero_displacement_gives_the_input_bit_for_bit() -> None:
    subject = make_subject()
    out = RandomElasticDeformation(max_displacement=0)(subject)
    assert torch.equal(out.t1.data, subject.t1.data) and torch.equal(out.seg.data, subject.seg.data)
    assert out["history"][0]["name"] == "RandomElasticDeformation"
    assert not np.any(out["history"][0]["displacements"])
    patch = augment_patches(RandomElasticDeformation(max_displacement=0), subject, [[3, 0, 5, 13, 8, 16]])[0]
    assert torch.equal(patch.t1.data, subject.t1.data[:, 3:13, 0:8, 5:16])


def test_apply_params_with_zero_displacements_is_the_identity() -> None:
    subject = make_subject()
    record = {"displacements": torch.zeros(5, 5, 5, 3).tolist()}
    out = RandomElasticDeformation(num_control_points=5).apply_params(subject, record)
    assert torch.equal(out.t1.data, subject.t1.data) and torch.equal(out.seg.data, subject.seg.data)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    points=st.integers(5, 7),
    largest=st.tuples(*[st.floats(0.0, 2.0)] * 3),
    locked=st.sampled_from([0, 1, 2]),
)
def test_voxels_move_at_most_max_displacement_mm_per_world_axis(seed, points, largest, locked) -> None:
    affine = oblique()
    subject = make_subject((24, 22, 20), affine)
    transform = RandomElasticDeformation(num_control_points=points, max_displacement=largest, locked_borders=locked)
    torch.manual_seed(seed)
    params = transform.get_params(subject)
    drawn = torch.tensor(params["displacements"])
    assert bool((drawn.abs() <= torch.tensor(largest, dtype=drawn.dtype) + 1e-12).all())
    frame = Frame.of(subject, ["t1", "seg"], "test")
    field_map = transform.coordinate_map(params, frame)
    voxels = field_map.field_grid((0, 0, 0), frame.shape)  # (I, J, K, 3) voxel displacements
    millimetres = voxels.reshape(-1, 3) @ torch.from_numpy(affine[:3, :3]).T
    assert bool((millimetres.abs() <= torch.tensor(largest, dtype=torch.float64) + 1e-9).all())


@pytest.mark.parametrize("locked", [1, 2])
def test_locked_borders_zero_the_outer_control_layers(locked: int) -> None:
    transform = RandomElasticDeformation(num_control_points=(6, 7, 8), max_displacement=1, locked_borders=locked)
    torch.manual_seed(0)
    field = torch.tensor(transform(make_subject())["history"][0]["displacements"])
    assert field.shape == (6, 7, 8, 3)
    for axis in range(3):
        n = field.shape[axis]
        for layer in range(locked):
            assert not field.narrow(axis, layer, 1).any() and not field.narrow(axis, n - 1 - layer, 1).any()
        inner = field.narrow(axis, locked, n - 2 * locked)
        assert inner.abs().max() > 0


def test_on_2d_images_the_deformation_stays_in_plane() -> None:
    data = phantom((40, 48, 1))
    subject = Subject(t1=ScalarImage(tensor=data), seg=LabelMap(tensor=(data > 2).to(torch.uint8)))
    torch.manual_seed(1)
    out = RandomElasticDeformation(num_control_points=5, max_displacement=4)(subject)
    field = torch.tensor(out["history"][0]["displacements"])
    assert not field[..., 2].any() and field[..., :2].abs().max() > 0
    assert out.t1.spatial_shape == (40, 48, 1) and not torch.equal(out.t1.data, data)


def blob_subject(shape=(20, 20, 20), centre=(9, 11, 8)) -> Subject:
    data = torch.zeros(1, *shape)
    data[(0, *[slice(c - 1, c + 2) for c in centre])] = 1.0
    return Subject(t1=ScalarImage(tensor=data), point=Points.from_indices([list(centre)], shape))


@pytest.mark.parametrize("seed", range(4))
def test_a_point_on_a_blob_stays_on_the_deformed_blob(seed: int) -> None:
    subject = blob_subject()
    transform = RandomElasticDeformation(num_control_points=5, max_displacement=3, image_interpolation="nearest")
    torch.manual_seed(seed)
    out = transform(subject)
    assert out.t1.data[(0, *out.point.voxel_indices()[0].tolist())] == 1
    torch.manual_seed(seed)
    patch = augment_patches(transform, subject, [[4, 5, 2, 16, 17, 14]])[0]
    assert patch.t1.data[(0, *patch.point.voxel_indices()[0].tolist())] == 1
    torch.testing.assert_close(patch.point.data, out.point.data - torch.tensor([4.0, 5.0, 2.0]), atol=1e-5, rtol=0)


def test_folding_risk_warns_naming_the_subject() -> None:
    subject = make_subject()
    with pytest.warns(Warning, match=r"max_displacement .* exceeds half the .* between control points"):
        RandomElasticDeformation(num_control_points=7, max_displacement=7.5)(subject)


def test_folding_is_checked_axis_by_axis_as_torchio_checks_it() -> None:
    # 20 voxels of 1 mm and 7 control points: 5.06 mm between them. Only the axes whose own allowed
    # displacement passes half that warn; the given displacements of ElasticDeformation are checked too.
    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 20, 20, 20)))
    with pytest.warns(RuntimeWarning, match=r"along axes \[1\] of subject") as caught:
        RandomElasticDeformation(num_control_points=7, max_displacement=(2, 3, 2))(subject)
    assert len(caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RandomElasticDeformation(num_control_points=7, max_displacement=(2.5, 2.5, 2.5))(subject)
        ElasticDeformation(np.zeros((7, 7, 7, 3)), 2.5)(subject)
    with pytest.warns(RuntimeWarning, match=r"ElasticDeformation: .* along axes \[0, 2\]"):
        ElasticDeformation(np.zeros((7, 7, 7, 3)), (3, 1, 3))(subject)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_control_points": 3}, ValueError, r"num_control_points must be at least 4 on every axis.*got 3"),
        ({"num_control_points": (5, 3, 5)}, ValueError, r"num_control_points must be at least 4.*\(5, 3, 5\)"),
        ({"num_control_points": 5.0}, TypeError, r"num_control_points must be an int or three ints, got 5.0"),
        ({"num_control_points": (5, 5)}, TypeError, r"num_control_points must be an int or three ints"),
        ({"max_displacement": -1}, ValueError, r"max_displacement must be finite and non-negative, got -1"),
        ({"max_displacement": (1, -1, 1)}, ValueError, r"max_displacement must be finite and non-negative"),
        ({"max_displacement": (1, 2)}, TypeError, r"max_displacement must be a number or three numbers"),
        ({"max_displacement": float("inf")}, ValueError, r"max_displacement must be finite"),
        ({"locked_borders": 3}, ValueError, r"locked_borders must be 0, 1 or 2, got 3"),
        ({"locked_borders": True}, ValueError, r"locked_borders must be 0, 1 or 2, got True"),
        ({"locked_borders": 2, "num_control_points": 4}, ValueError, r"locked_borders=2 with \(4, 4, 4\) control"),
        ({"image_interpolation": "cubic"}, ValueError, r"image_interpolation must be one of"),
        ({"default_pad_value": "max"}, ValueError, r"default_pad_value must be a number or one of"),
    ],
)
def test_bad_arguments_raise_errors_naming_them(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        RandomElasticDeformation(**kwargs)


def test_images_of_different_shapes_are_refused() -> None:
    subject = Subject(a=ScalarImage(tensor=torch.zeros(1, 9, 9, 9)), b=LabelMap(tensor=torch.zeros(1, 9, 8, 9)))
    with pytest.raises(ValueError, match=r"RandomElasticDeformation moves every image.*different spatial shapes"):
        RandomElasticDeformation(max_displacement=1)(subject)


def test_repr_and_pickle_round_trip() -> None:
    transform = RandomElasticDeformation(num_control_points=(5, 6, 7), max_displacement=1.5, locked_borders=1, p=0.9)
    text = repr(transform)
    assert text.startswith("RandomElasticDeformation(num_control_points=(5, 6, 7), max_displacement=1.5")
    assert "locked_borders=1" in text and "p=0.9" in text
    copy = pickle.loads(pickle.dumps(transform))
    assert repr(copy) == text
    subject = make_subject()
    torch.manual_seed(3)
    expected = transform(subject)
    torch.manual_seed(3)
    out = copy(subject)
    assert torch.equal(out.t1.data, expected.t1.data) and out["history"] == expected["history"]


def test_same_seed_same_result_and_replay_from_the_record() -> None:
    subject = make_subject(affine=oblique())
    transform = RandomElasticDeformation(num_control_points=5, max_displacement=2)
    torch.manual_seed(8)
    first = transform(subject)
    torch.manual_seed(8)
    second = transform(subject)
    assert torch.equal(first.t1.data, second.t1.data) and torch.equal(first.seg.data, second.seg.data)
    replay = transform.apply_params(subject, {"displacements": first["history"][0]["displacements"]})
    assert torch.equal(replay.t1.data, first.t1.data)
    assert not torch.equal(first.t1.data, subject.t1.data)
