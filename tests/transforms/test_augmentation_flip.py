"""RandomFlip: voxels reversed, labels kept, affine unchanged, boxes and points follow the voxels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.annotations import BoundingBoxes, Points
from torchpatch.transforms import RandomFlip

#: I points anterior, J left, K superior.
PERMUTED = np.array([[0.0, -1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])


def marked_subject(shape=(5, 4, 3), affine=None) -> Subject:
    """A block of ones at [1, 3) x [2, 4) x [0, 1) labelled in 'seg', a 2 at (4, 0, 2), a box and two points."""
    data = torch.zeros(1, *shape)
    data[0, 1:3, 2:4, 0:1] = 1.0
    data[0, 4, 0, 2] = 2.0
    return Subject(
        img=ScalarImage(tensor=data, affine=affine),
        seg=LabelMap(tensor=(data == 1).to(torch.uint8), affine=affine),
        boxes=BoundingBoxes([[1, 2, 0, 3, 4, 1]], "xyzxyz", shape, class_ids=[5]),
        points=Points.from_indices([[4, 0, 2], [1, 2, 0]], shape, class_ids=[2, 1]),
    )


def test_flip_reverses_the_voxels_of_every_image_and_keeps_the_affine() -> None:
    subject = marked_subject()
    out = RandomFlip(axes=(0, 2), flip_probability=1)(subject)
    assert torch.equal(out.img.data, torch.flip(subject.img.data, [1, 3]))
    assert torch.equal(out.seg.data, torch.flip(subject.seg.data, [1, 3]))
    assert out.seg.dtype == torch.uint8
    assert np.array_equal(out.img.affine, subject.img.affine)
    assert out["history"] == [{"name": "RandomFlip", "axes": [0, 2]}]


def test_flip_keeps_label_set_and_counts() -> None:
    labels = torch.randint(0, 4, (1, 7, 6, 5), generator=torch.Generator().manual_seed(0))
    subject = Subject(seg=LabelMap(tensor=labels))
    out = RandomFlip(axes=(0, 1, 2), flip_probability=1)(subject)
    assert torch.equal(torch.bincount(out.seg.data.flatten()), torch.bincount(labels.flatten()))
    assert not torch.equal(out.seg.data, labels)


def test_points_and_boxes_stay_on_their_voxels() -> None:
    out = RandomFlip(axes=(0, 1, 2), flip_probability=1)(marked_subject())
    voxels = out.points.voxel_indices().tolist()
    assert [out.img.data[0, i, j, k].item() for i, j, k in voxels] == [2.0, 1.0]
    assert out.points.class_ids.tolist() == [2, 1]
    (box,) = out.boxes.data.tolist()
    i0, j0, k0, i1, j1, k1 = (int(v) for v in box)
    assert (out.seg.data[0, i0:i1, j0:j1, k0:k1] == 1).all()
    assert int(out.seg.data.sum()) == (i1 - i0) * (j1 - j0) * (k1 - k0)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4)),
    axes=st.lists(st.integers(0, 2), min_size=1, max_size=3),
    seed=st.integers(0, 1000),
)
def test_flipping_twice_is_the_identity(shape, axes, seed) -> None:
    data = torch.rand(2, *shape, generator=torch.Generator().manual_seed(seed))
    points = Points([[0.5 + (s - 1) * 0.3 for s in shape]], shape)
    subject = Subject(img=ScalarImage(tensor=data), pts=points)
    flip = RandomFlip(axes=axes, flip_probability=1)
    twice = flip(flip(subject))
    assert torch.equal(twice.img.data, data)
    assert torch.allclose(twice.pts.data, points.data)


def test_flip_probability_zero_is_the_identity() -> None:
    subject = marked_subject()
    out = RandomFlip(axes=(0, 1, 2), flip_probability=0)(subject)
    assert torch.equal(out.img.data, subject.img.data)
    assert out.boxes is subject.boxes
    assert out["history"] == [{"name": "RandomFlip", "axes": []}]


def test_flip_probability_is_per_axis() -> None:
    torch.manual_seed(0)
    counts = [0, 0, 0]
    for _ in range(300):
        for axis in RandomFlip(axes=(0, 1, 2)).get_params(marked_subject())["axes"]:
            counts[axis] += 1
    assert all(110 < count < 190 for count in counts)


@pytest.mark.parametrize(("letters", "axis"), [("LR", 1), ("Left", 1), ("R", 1), ("AP", 0), ("p", 0), ("IS", 2)])
def test_anatomical_axes_use_the_orientation(letters, axis) -> None:
    subject = marked_subject(affine=PERMUTED)
    assert subject.img.orientation == ("A", "L", "S")
    out = RandomFlip(axes=letters, flip_probability=1)(subject)
    assert out["history"][0]["axes"] == [axis]
    assert torch.equal(out.img.data, torch.flip(subject.img.data, [1 + axis]))


def test_include_leaves_other_images_and_needs_all_images_with_annotations() -> None:
    subject = marked_subject()
    plain = Subject(img=subject.img, seg=subject.seg)
    out = RandomFlip(flip_probability=1, include="img")(plain)
    assert out.seg is plain.seg
    with pytest.raises(ValueError, match=r"leaves the images \['seg'\]"):
        RandomFlip(flip_probability=1, include="img")(subject)


def test_repr() -> None:
    assert repr(RandomFlip()) == "RandomFlip(axes=0, flip_probability=0.5)"
    assert repr(RandomFlip(axes=("LR", 2), p=0.3)) == "RandomFlip(axes=['LR', 2], flip_probability=0.5, p=0.3)"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"axes": 3}, ValueError, "axes must hold 0, 1 or 2 .* got 3"),
        ({"axes": -1}, ValueError, "axes must hold 0, 1 or 2 .* got -1"),
        ({"axes": "X"}, ValueError, "must start with one of L, R, A, P, I, S .* got 'X'"),
        ({"axes": ""}, ValueError, "must start with one of L, R, A, P, I, S .* got ''"),
        ({"axes": 1.0}, TypeError, "axes must be an axis or a sequence of axes"),
        ({"axes": (0, None)}, TypeError, "axes must hold ints 0, 1, 2 or anatomical letters, got NoneType"),
        ({"axes": (True,)}, TypeError, "axes must hold ints 0, 1, 2 or anatomical letters, got bool"),
        ({"flip_probability": 1.5}, ValueError, r"flip_probability must be a probability in \[0, 1\], got 1.5"),
        ({"flip_probability": "0.5"}, TypeError, r"flip_probability must be a number in \[0, 1\], got str"),
        ({"include": 3}, TypeError, "include must be None, an image name"),
    ],
)
def test_bad_arguments(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        RandomFlip(**kwargs)


def test_calling_on_an_image_returns_the_flipped_image() -> None:
    """As in TorchIO, a bare image goes in and comes out."""
    image = ScalarImage(tensor=torch.arange(2.0).reshape(1, 2, 1, 1))
    flipped = RandomFlip(axes=0, flip_probability=1)(image)
    assert isinstance(flipped, ScalarImage)
    assert flipped.data.flatten().tolist() == [1.0, 0.0]
    with pytest.raises(TypeError, match="RandomFlip takes a Subject, got Tensor"):
        RandomFlip()(torch.zeros(2, 2, 1))
