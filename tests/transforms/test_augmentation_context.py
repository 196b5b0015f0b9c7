"""augment_patches: a patch augmented with its context equals the whole subject augmented, then cropped.

The property (issue 12): with the same seed, ``augment_patches(pipeline, subject, [box])[0]`` equals
``pipeline(subject)`` cropped at ``box`` — scalar images up to float32 interpolation rounding, label maps up
to a few nearest-neighbour ties, history records exactly — for any parameters and any box, including boxes
touching the border of the volume, 2D (depth-one) images and oblique, anisotropic affines.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import LOCATION, LabelMap, ScalarImage, Subject, collate_subjects
from torchpatch.transforms import Compose
from torchpatch.transforms.augmentation import (
    OneOf,
    RandomAffine,
    RandomAnisotropy,
    RandomBiasField,
    RandomBlur,
    RandomElasticDeformation,
    RandomFlip,
    RandomGamma,
)
from torchpatch.transforms.augmentation.affine import rotation_matrix
from torchpatch.transforms.augmentation.context import augment_patches, draw_steps

SHAPE_3D = (20, 18, 14)
SHAPE_2D = (40, 48, 1)


def phantom(shape) -> torch.Tensor:
    """A smooth positive volume with structure at a few scales, ``(1, *shape)`` float32."""
    axes = [torch.linspace(0, 1, n, dtype=torch.float64) for n in shape]
    i, j, k = torch.meshgrid(*axes, indexing="ij")
    data = torch.sin(6 * i + 0.2) * torch.cos(5 * j) * torch.sin(4 * k + 1) + 0.3 * torch.cos(13 * i * j) + 2
    return data.unsqueeze(0).float()


def make_subject(shape, affine) -> Subject:
    data = phantom(shape)
    return Subject(
        t1=ScalarImage(tensor=data, affine=affine),
        i16=ScalarImage(tensor=(data * 100).to(torch.int16), affine=affine),
        seg=LabelMap(tensor=((data - 1.2) * 2).clamp(0, 3).to(torch.uint8), affine=affine),
    )


def make_affine(spacing, degrees, origin=(3.0, -2.0, 5.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = rotation_matrix(degrees) @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def assert_patch_equals_whole_cropped(pipeline, subject: Subject, box, seed: int) -> None:
    torch.manual_seed(seed)
    whole = pipeline(subject)
    torch.manual_seed(seed)
    patch = augment_patches(pipeline, subject, [box])[0]
    i0, j0, k0, i1, j1, k1 = box
    index = (slice(None), slice(i0, i1), slice(j0, j1), slice(k0, k1))
    assert patch.metadata.get("history") == whole.metadata.get("history")
    assert patch[LOCATION].tolist() == list(box)
    for name in ("t1", "i16"):
        expected = whole[name].data[index]
        assert patch[name].data.dtype == expected.dtype
        # float32 sampling positions are off by ~1e-6 voxel: next to a jump (the fill's edge) that is
        # ~1e-6 of the jump, so the tolerance scales with the image's range.
        scale = float(whole[name].data.abs().max())
        torch.testing.assert_close(
            patch[name].data, expected, atol=1e-4 * max(scale, 1), rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}"
        )
        np.testing.assert_allclose(
            patch[name].affine, whole[name].affine @ np.r_[np.c_[np.eye(3), box[:3]], [[0, 0, 0, 1]]]
        )
    expected = whole.seg.data[index]
    assert patch.seg.data.dtype == expected.dtype
    mismatches = int((patch.seg.data != expected).sum())
    assert mismatches <= max(1, expected.numel() // 100), f"{mismatches} of {expected.numel()} labels differ"


@st.composite
def boxes(draw, shape):
    """A patch box anywhere in the volume (often touching its border)."""
    ini, fin = [], []
    for n in shape:
        start = draw(st.one_of(st.just(0), st.integers(0, n - 1)))
        stop = draw(st.one_of(st.just(n), st.integers(start + 1, n)))
        ini.append(start)
        fin.append(stop)
    return (*ini, *fin)


SPATIAL = ("flip", "affine", "elastic")


@st.composite
def pipelines(draw):
    """A pipeline of random transforms with drawn parameters, in a drawn order.

    Fill statistics ('minimum', 'mean', 'otsu') are only drawn for the first chain of spatial transforms
    when nothing precedes it: see the xfail test below for the case where something does. Only spatial
    transforms get p < 1.
    """
    probability = st.sampled_from([1.0, 1.0, 0.5])
    names = ["flip", "affine", "elastic", "anisotropy", "gamma", "bias", "blur"]
    chosen = [name for name in names if draw(st.booleans())]
    order = draw(st.permutations(chosen))
    items = []
    first_pad = None  # the fill of the first spatial chain, shared so that it fuses
    for position, name in enumerate(order):
        leading = all(other in SPATIAL for other in order[:position])
        if leading and first_pad is None:
            first_pad = draw(st.sampled_from(["minimum", "mean", "otsu", 0.5]))
        pads = [first_pad] if leading else [0.5, 1.0]
        if name == "flip":
            items.append(RandomFlip(axes=(0, 1, 2), p=draw(probability)))
        elif name == "affine":
            items.append(
                RandomAffine(
                    scales=draw(st.floats(0, 0.3)),
                    degrees=draw(st.floats(0, 40)),
                    translation=draw(st.floats(0, 5)),
                    isotropic=draw(st.booleans()),
                    center=draw(st.sampled_from(["image", "origin"])),
                    default_pad_value=draw(st.sampled_from(pads)),
                    p=draw(probability),
                )
            )
        elif name == "elastic":
            items.append(
                RandomElasticDeformation(
                    num_control_points=5,
                    max_displacement=draw(st.floats(0, 3)),
                    locked_borders=draw(st.sampled_from([0, 1, 2])),
                    default_pad_value=draw(st.sampled_from(pads)),
                    p=draw(probability),
                )
            )
        elif name == "anisotropy":
            items.append(RandomAnisotropy(downsampling=(1.5, 3), p=1.0))
        elif name == "gamma":
            items.append(RandomGamma(log_gamma=draw(st.floats(0, 0.4)), p=1.0))
        elif name == "bias":
            items.append(RandomBiasField(coefficients=draw(st.floats(0, 0.5)), p=1.0))
        else:
            items.append(RandomBlur(std=(0, draw(st.floats(0, 1.5))), p=1.0))
    return Compose(items)


FRAMES = st.sampled_from(
    [
        (SHAPE_3D, np.eye(4)),
        (SHAPE_3D, make_affine((1.2, 0.9, 1.5), (0, 0, 0))),
        (SHAPE_3D, make_affine((1.1, 0.8, 1.4), (12, -25, 40))),
        (SHAPE_2D, np.eye(4)),
        (SHAPE_2D, make_affine((0.7, 1.3, 1.0), (0, 0, 30))),
    ]
)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), frame=FRAMES, pipeline=pipelines(), seed=st.integers(0, 2**16))
def test_patch_with_context_equals_whole_subject_then_crop(data, frame, pipeline, seed) -> None:
    shape, affine = frame
    subject = make_subject(shape, affine)
    box = data.draw(boxes(shape))
    assert_patch_equals_whole_cropped(pipeline, subject, box, seed)


@pytest.mark.parametrize("seed", range(3))
def test_full_pipeline_on_an_oblique_volume_patch_equals_whole_then_crop(seed: int) -> None:
    subject = make_subject(SHAPE_3D, make_affine((1.2, 0.9, 1.5), (15, -10, 30)))
    pipeline = Compose(
        [
            RandomFlip(axes=(0, 1, 2)),
            RandomAffine(scales=0.15, degrees=15, translation=3),
            RandomElasticDeformation(num_control_points=5, max_displacement=2.5),
            RandomGamma(),
            RandomBiasField(),
            RandomBlur(std=(0, 1)),
        ]
    )
    for box in [(0, 0, 0, 10, 9, 7), (10, 9, 7, 20, 18, 14), (4, 3, 2, 16, 15, 12)]:
        assert_patch_equals_whole_cropped(pipeline, subject, box, seed)


@pytest.mark.parametrize("seed", range(3))
def test_2d_pipeline_patch_equals_whole_then_crop(seed: int) -> None:
    subject = make_subject(SHAPE_2D, np.eye(4))
    pipeline = Compose(
        [
            RandomFlip(axes=(0, 1)),
            RandomAffine(degrees=30, translation=4),
            RandomElasticDeformation(num_control_points=6, max_displacement=3),
            RandomBlur(),
        ]
    )
    for box in [(0, 0, 0, 16, 16, 1), (24, 32, 0, 40, 48, 1), (10, 5, 0, 26, 21, 1)]:
        assert_patch_equals_whole_cropped(pipeline, subject, box, seed)


def test_every_patch_of_a_call_draws_its_own_parameters() -> None:
    subject = make_subject(SHAPE_3D, np.eye(4))
    torch.manual_seed(0)
    patches = augment_patches(RandomAffine(degrees=30), subject, [[0, 0, 0, 8, 8, 8]] * 3)
    angles = [tuple(patches[index]["history"][0]["degrees"]) for index in range(3)]
    assert len(set(angles)) == 3
    assert tuple(patches.data["t1"].shape) == (3, 1, 8, 8, 8)


def test_draw_steps_groups_consecutive_spatial_transforms_in_draw_order() -> None:
    subject = make_subject(SHAPE_3D, np.eye(4))
    pipeline = Compose(
        [
            RandomFlip(),
            RandomAffine(),
            RandomElasticDeformation(num_control_points=5, max_displacement=1),
            RandomGamma(),
        ]
    )
    torch.manual_seed(4)
    steps = draw_steps(pipeline, subject)
    assert [step.kind for step in steps] == ["spatial", "point"]
    assert [type(t).__name__ for t in steps[0].transforms] == ["RandomFlip", "RandomAffine", "RandomElasticDeformation"]
    torch.manual_seed(4)
    whole = pipeline(subject)
    drawn = [{"name": type(t).__name__, **p} for step in steps for t, p in zip(step.transforms, step.params)]
    assert drawn == whole["history"]


def test_user_function_between_spatial_transforms_runs_on_the_patch() -> None:
    subject = make_subject(SHAPE_3D, np.eye(4))

    def double(s: Subject) -> Subject:
        return s.with_images({"t1": ScalarImage(tensor=s.t1.data * 2, affine=s.t1.affine)})

    pipeline = Compose([RandomAffine(degrees=10), double, RandomGamma()])
    assert_patch_equals_whole_cropped(pipeline, subject, (2, 3, 4, 12, 13, 14), 5)


# Nested pipelines ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_nested_compose_and_one_of_draw_like_the_whole_pipeline(seed: int) -> None:
    subject = make_subject(SHAPE_3D, np.eye(4))
    pipeline = Compose(
        [
            OneOf([RandomGamma(), RandomBlur(std=(0, 1))]),
            Compose([RandomBiasField(), RandomGamma()], p=0.5),
            RandomAffine(degrees=20, default_pad_value=0.5),
        ]
    )
    assert_patch_equals_whole_cropped(pipeline, subject, (3, 2, 1, 15, 14, 11), seed)


def test_spatial_transforms_in_nested_composes_resample_like_the_whole_pipeline() -> None:
    subject = make_subject(SHAPE_3D, np.eye(4))
    affine = RandomAffine(degrees=20, scales=0.2, default_pad_value=0.5)
    pipeline = Compose([Compose([affine]), affine])
    assert_patch_equals_whole_cropped(pipeline, subject, (3, 2, 1, 15, 14, 11), 0)


@pytest.mark.xfail(
    strict=True,
    reason="documented difference (context.py): augment_patches computes the fill statistic ('minimum', 'mean', "
    "'otsu') of a spatial step on the original image, the whole-subject pipeline on the image entering the step",
)
@pytest.mark.parametrize("first", ["gamma", "bias", "anisotropy", "elastic"])
def test_fill_statistic_after_an_intensity_transform_matches_the_whole_pipeline(first: str) -> None:
    subject = make_subject(SHAPE_3D, np.eye(4))
    before = {
        "gamma": RandomGamma(log_gamma=(0.3, 0.3)),
        "bias": RandomBiasField(),
        "anisotropy": RandomAnisotropy(downsampling=(2, 3)),
        # A spatial transform with other settings: not fused, so the affine's 'minimum' is that of its output.
        "elastic": RandomElasticDeformation(num_control_points=5, max_displacement=2, default_pad_value=0.0),
    }[first]
    pipeline = Compose([before, RandomAffine(scales=0, degrees=0, translation=(1, 1), default_pad_value="minimum")])
    assert_patch_equals_whole_cropped(pipeline, subject, (0, 0, 0, 10, 10, 10), 0)


def test_a_skipped_transform_between_spatial_ones_keeps_them_apart_like_compose() -> None:
    subject = make_subject(SHAPE_3D, np.eye(4))
    pipeline = Compose(
        [
            RandomElasticDeformation(num_control_points=5, max_displacement=1.0, default_pad_value=0.5),
            RandomGamma(p=0.0),
            RandomAffine(scales=0, degrees=10, translation=1, default_pad_value=0.5),
        ]
    )
    assert_patch_equals_whole_cropped(pipeline, subject, (2, 2, 2, 12, 12, 12), 0)


def test_bspline_patches_equal_the_whole_subject_cropped() -> None:
    """A cubic B-spline reads a wider context (its prefilter reaches far): still equal to the whole then cropped."""
    subject = make_subject(SHAPE_3D, np.eye(4))
    pipeline = RandomAffine(degrees=15, scales=0.1, image_interpolation="bspline", default_pad_value=0.5)
    for seed in range(3):
        assert_patch_equals_whole_cropped(pipeline, subject, (3, 2, 1, 15, 14, 11), seed)


def test_batch_transform_refuses_bspline() -> None:
    from torchpatch.transforms.augmentation.batch import BatchTransform

    augment = BatchTransform(RandomAffine(image_interpolation="bspline"), patch_size=4)
    batch = collate_subjects([Subject(t1=ScalarImage(tensor=torch.rand(1, *augment.context_size)))])
    with pytest.raises(ValueError, match="BatchTransform resamples with grid_sample"):
        augment(batch)
