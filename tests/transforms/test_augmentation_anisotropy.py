"""RandomAnisotropy: the definition on hand-checked examples, identity, region == whole-then-crop, labels, errors."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.annotations import Points
from torchpatch.transforms.augmentation import RandomAnisotropy
from torchpatch.transforms.augmentation.anisotropy import anisotropy_region, source_range

factors = st.one_of(
    st.integers(1, 12).map(float), st.sampled_from([1.1, 1.5, 2.5, 3.3, 7.7]), st.floats(min_value=1.0, max_value=12.0)
)
interpolations = st.sampled_from(["linear", "nearest"])


def reference(values: list[float], f: float, interpolation: str) -> list[float]:
    """The definition of the docstring, one voxel at a time, in float64."""
    n = len(values)
    last = math.floor((n - 1) / f)
    samples = [values[min(math.floor(k * f + 0.5), n - 1)] for k in range(last + 1)]
    out = []
    for x in range(n):
        u = x / f
        if interpolation == "nearest":
            out.append(samples[min(max(math.floor(u + 0.5), 0), last)])
            continue
        k0 = min(math.floor(u), last)
        k1 = min(math.floor(u) + 1, last)
        w = u - math.floor(u) if k1 > k0 else 0.0
        out.append(samples[k0] + (samples[k1] - samples[k0]) * w)
    return out


def make_subject(shape=(1, 9, 8, 7), affine=None) -> Subject:
    generator = torch.Generator().manual_seed(0)
    data = torch.rand(*shape, generator=generator)
    return Subject(
        t1=ScalarImage(tensor=data, affine=affine),
        i16=ScalarImage(tensor=(data * 1000).to(torch.int16), affine=affine),
        seg=LabelMap(tensor=(data * 4).to(torch.uint8), affine=affine),
    )


def test_hand_computed_example_with_f_2_5() -> None:
    # n = 10, f = 2.5: K = 3, samples at 0, 2.5, 5, 7.5 hold inputs 0, 3, 5, 8.
    values = torch.tensor([0.0, 10, 20, 30, 40, 50, 60, 70, 80, 90]).reshape(1, 10)
    linear = anisotropy_region(values, 1, 2.5, 10)
    assert linear[0].tolist() == pytest.approx([0, 12, 24, 34, 42, 50, 62, 74, 80, 80])
    nearest = anisotropy_region(values, 1, 2.5, 10, interpolation="nearest")
    assert nearest[0].tolist() == [0, 0, 30, 30, 50, 50, 50, 80, 80, 80]


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 40), f=factors, interpolation=interpolations, seed=st.integers(0, 2**16))
def test_matches_the_definition_voxel_by_voxel(n: int, f: float, interpolation: str, seed: int) -> None:
    values = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    out = anisotropy_region(values.reshape(1, n), 1, f, n, interpolation=interpolation)[0]
    expected = reference(values.tolist(), f, interpolation)
    if interpolation == "nearest":
        assert out.tolist() == expected
    else:
        assert out.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 30), f=factors, axis=st.integers(0, 2))
def test_values_lie_on_segments_between_samples(n: int, f: float, axis: int) -> None:
    shape = [3, 3, 3]
    shape[axis] = n
    data = torch.rand(2, *shape, generator=torch.Generator().manual_seed(n))
    out = anisotropy_region(data, 1 + axis, f, n)
    moved, result = data.movedim(1 + axis, -1), out.movedim(1 + axis, -1)
    last = math.floor((n - 1) / f)
    inputs = [min(math.floor(k * f + 0.5), n - 1) for k in range(last + 1)]
    for x in range(n):
        k0 = min(math.floor(x / f), last)
        k1 = min(k0 + 1, last)
        a, b = moved[..., inputs[k0]], moved[..., inputs[k1]]
        assert (result[..., x] >= torch.minimum(a, b) - 1e-6).all()
        assert (result[..., x] <= torch.maximum(a, b) + 1e-6).all()
        if x == k0 * f:  # a sample position: the sample itself
            assert torch.equal(result[..., x], a)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 30), f=factors, value=st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_constant_image_is_unchanged(n: int, f: float, value: float) -> None:
    data = torch.full((1, n, 2, 1), value)
    assert torch.equal(anisotropy_region(data, 1, f, n), data)


def test_ramp_becomes_its_piecewise_linear_version_and_stays_monotone() -> None:
    ramp = torch.arange(50.0).reshape(1, 50, 1, 1) ** 2
    out = anisotropy_region(ramp, 1, 3.7, 50).flatten()
    assert (out.diff() >= 0).all()
    assert torch.equal(out[0], ramp.flatten()[0])
    assert out.tolist() == pytest.approx(reference(ramp.flatten().tolist(), 3.7, "linear"), rel=1e-6)


def test_factor_one_gives_the_input_bit_for_bit() -> None:
    subject = make_subject()
    special = torch.tensor([-0.0, float("inf"), float("nan"), 1.0]).reshape(1, 4, 1, 1).expand(1, 4, 8, 7)
    subject = subject.with_images({"special": ScalarImage(tensor=special.clone())})
    transform = RandomAnisotropy(downsampling=(1, 1), scalars_only=False)
    torch.manual_seed(0)
    out = transform(subject)
    for name in subject.images:
        assert out[name] is subject[name]
    assert out["history"][0]["downsampling"] == 1.0


def test_labels_untouched_by_default_and_integers_become_float32() -> None:
    subject = make_subject()
    torch.manual_seed(0)
    out = RandomAnisotropy(downsampling=(3, 4))(subject)
    assert out.seg is subject.seg
    assert out.i16.dtype == torch.float32 and out.t1.dtype == torch.float32
    assert not torch.equal(out.t1.data, subject.t1.data)
    for name in subject.images:
        assert out[name].shape == subject[name].shape
        assert np.array_equal(out[name].affine, subject[name].affine)


def test_nearest_keeps_the_dtype_and_labels_keep_their_set() -> None:
    subject = make_subject()
    torch.manual_seed(0)
    out = RandomAnisotropy(downsampling=(2, 3), image_interpolation="nearest", scalars_only=False)(subject)
    assert out.i16.dtype == torch.int16 and out.seg.dtype == torch.uint8
    assert set(out.seg.data.unique().tolist()) <= set(subject.seg.data.unique().tolist())
    assert set(out.i16.data.unique().tolist()) <= set(subject.i16.data.unique().tolist())
    assert not torch.equal(out.seg.data, subject.seg.data)


def test_label_maps_use_nearest_even_with_linear_images() -> None:
    subject = make_subject()
    record = {"axis": 1, "downsampling": 2.5}
    out = RandomAnisotropy(scalars_only=False).apply_params(subject, record)
    expected = anisotropy_region(subject.seg.data, 2, 2.5, 8, interpolation="nearest")
    assert torch.equal(out.seg.data, expected)


@settings(max_examples=500, deadline=None)
@given(data=st.data(), n=st.integers(1, 40), f=factors, interpolation=interpolations)
def test_region_equals_whole_then_crop_bit_for_bit(data, n: int, f: float, interpolation: str) -> None:
    start = data.draw(st.integers(0, n))
    stop = data.draw(st.integers(start, n))
    lo, hi = source_range(f, start, stop, n)
    assert 0 <= lo <= hi <= n
    origin = data.draw(st.integers(0, min(lo, start)))
    end = data.draw(st.integers(max(hi, stop), n))
    values = torch.randn(2, n, 3, generator=torch.Generator().manual_seed(n)) * 100
    whole = anisotropy_region(values, 1, f, n, interpolation=interpolation)
    part = anisotropy_region(
        values[:, origin:end], 1, f, n, origin=origin, start=start, stop=stop, interpolation=interpolation
    )
    assert torch.equal(part, whole[:, start:stop])
    if lo < hi:  # the source range is needed: one voxel less is an error
        with pytest.raises(ValueError, match="need input indices"):
            anisotropy_region(values[:, lo + 1 : hi], 1, f, n, origin=lo + 1, start=start, stop=stop)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), axis=st.integers(0, 2), f=factors)
def test_apply_region_on_a_subject_equals_apply_params_cropped(data, axis: int, f: float) -> None:
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    subject = make_subject(affine=affine)
    params = {"axis": axis, "downsampling": f}
    transform = RandomAnisotropy(scalars_only=data.draw(st.booleans()))
    n = subject.spatial_shape[axis]
    start = data.draw(st.integers(0, n - 1))
    stop = data.draw(st.integers(start + 1, n))
    lo, hi = transform.source_range(params, start, stop, n)
    origin, end = min(lo, start), max(hi, stop)
    ini, fin = [0, 0, 0], list(subject.spatial_shape)
    ini[axis], fin[axis] = origin, end
    part = transform.apply_axis_region(subject.crop(ini, fin), params, origin, start, stop, n)
    whole = transform.apply_params(subject, params)
    ini[axis], fin[axis] = start, stop
    expected = whole.crop(ini, fin)
    for name in subject.images:
        assert torch.equal(part[name].data, expected[name].data), name
        assert part[name].dtype == expected[name].dtype
        assert np.allclose(part[name].affine, expected[name].affine)


def test_apply_region_crops_points_with_the_images() -> None:
    subject = make_subject().with_images({}, pts=Points.from_indices([[1, 1, 1], [6, 2, 2]], (9, 8, 7)))
    out = RandomAnisotropy().apply_axis_region(subject, {"axis": 0, "downsampling": 2.0}, 0, 4, 9, 9)
    assert out.t1.spatial_shape == out.seg.spatial_shape == (5, 8, 7)
    assert out.pts.voxel_indices().tolist() == [[2, 2, 2]]


def test_apply_region_rejects_an_output_range_outside_the_subject() -> None:
    subject = make_subject()
    with pytest.raises(ValueError, match=r"output indices \[3, 13\) are not inside the indices \[3, 12\)"):
        RandomAnisotropy().apply_axis_region(subject, {"axis": 0, "downsampling": 1.0}, 3, 3, 13, 20)


def test_source_range_examples() -> None:
    assert source_range(2.5, 4, 7, 10) == (3, 9)
    assert source_range(2.5, 0, 10, 10) == (0, 9)  # input 9 is never a sample
    assert source_range(1, 2, 5, 10) == (2, 5)
    assert source_range(20, 0, 10, 10) == (0, 1)  # one sample: everything copies input 0
    assert RandomAnisotropy().source_range({"axis": 0, "downsampling": 2.5}, 4, 7, 10) == (3, 9)


def test_seeded_runs_are_identical_and_draws_cover_the_ranges() -> None:
    subject = make_subject()
    transform = RandomAnisotropy(axes=(0, 2), downsampling=(2, 3))
    torch.manual_seed(3)
    first = transform(subject)
    torch.manual_seed(3)
    second = transform(subject)
    assert torch.equal(first.t1.data, second.t1.data)
    assert first["history"] == second["history"]
    records = [transform.get_params(subject) for _ in range(200)]
    assert {record["axis"] for record in records} == {0, 2}
    assert all(2 <= record["downsampling"] < 3 for record in records)
    assert RandomAnisotropy(downsampling=4).downsampling == (1.0, 4.0)


def test_history_record_replays_the_transform() -> None:
    subject = make_subject()
    transform = RandomAnisotropy()
    torch.manual_seed(5)
    out = transform(subject)
    (record,) = out["history"]
    assert record["name"] == "RandomAnisotropy" and set(record) == {"name", "axis", "downsampling"}
    assert isinstance(record["axis"], int) and isinstance(record["downsampling"], float)
    replayed = transform.apply_params(subject, record)
    assert torch.equal(replayed.t1.data, out.t1.data)
    assert pickle.loads(pickle.dumps(record)) == record


def test_probability_zero_records_nothing() -> None:
    subject = make_subject()
    out = RandomAnisotropy(p=0)(subject)
    assert "history" not in out and out.t1 is subject.t1


def test_transform_pickles_and_repr() -> None:
    transform = RandomAnisotropy(axes=1, downsampling=(2, 3), image_interpolation="Nearest", p=0.5, exclude="i16")
    restored = pickle.loads(pickle.dumps(transform))
    assert repr(restored) == repr(transform)
    assert repr(transform) == (
        "RandomAnisotropy(axes=(1,), downsampling=(2.0, 3.0), image_interpolation='nearest', "
        "scalars_only=True, exclude=['i16'], p=0.5)"
    )


def test_2d_images_are_degraded_in_plane_and_never_along_the_depth() -> None:
    image = torch.rand(3, 20, 16, 1, generator=torch.Generator().manual_seed(0))
    subject = Subject(rgb=ScalarImage(tensor=image))
    torch.manual_seed(0)
    out = RandomAnisotropy(axes=(0, 1), downsampling=(3, 3))(subject)
    assert out.rgb.shape == (3, 20, 16, 1)
    assert not torch.equal(out.rgb.data, image)
    axes = {RandomAnisotropy().get_params(subject)["axis"] for _ in range(100)}
    assert axes == {0, 1}
    # A depth-one axis has one sample: degrading it changes nothing.
    same = RandomAnisotropy().apply_params(subject, {"axis": 2, "downsampling": 4.0})
    assert torch.equal(same.rgb.data, image)


def test_other_axes_and_channels_are_independent() -> None:
    data = torch.rand(2, 5, 6, 7, generator=torch.Generator().manual_seed(1))
    out = anisotropy_region(data, 2, 2.2, 6)
    for c in range(2):
        for i in range(5):
            for k in range(7):
                expected = reference(data[c, i, :, k].tolist(), 2.2, "linear")
                assert out[c, i, :, k].tolist() == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"axes": 3}, ValueError, r"axes must hold 0, 1 or 2 .* got 3 in 3"),
        ({"axes": (0, -1)}, ValueError, r"got -1 in \(0, -1\)"),
        ({"axes": ()}, ValueError, "at least one axis"),
        ({"axes": "LR"}, TypeError, "axes must be an axis or a sequence"),
        ({"axes": (0, 1.0)}, TypeError, "axes must hold ints .* float 1.0"),
        ({"axes": True}, TypeError, "axes must be an axis or a sequence"),
        ({"downsampling": 0.5}, ValueError, r"means \(1, x\) and must be at least 1, got 0.5"),
        ({"downsampling": (0.5, 2)}, ValueError, r"downsampling must be at least 1, got \(0.5, 2\)"),
        ({"downsampling": (3, 2)}, ValueError, r"low <= high, got \(3, 2\)"),
        ({"downsampling": float("inf")}, ValueError, "at least 1, got inf"),
        ({"downsampling": "2"}, TypeError, "downsampling must be a number or two numbers"),
        ({"image_interpolation": "bspline"}, ValueError, r"'bspline' is not supported .* \('linear', 'nearest'\)"),
        ({"image_interpolation": "cubic"}, ValueError, "'cubic' is not supported"),
        ({"image_interpolation": 1}, TypeError, "image_interpolation must be a string"),
        ({"scalars_only": 1}, TypeError, "scalars_only must be a bool, got int 1"),
        ({"p": 2}, ValueError, "p must be a probability"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        RandomAnisotropy(**kwargs)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"axis": 3, "downsampling": 2.0}, r"params\['axis'\] must be 0, 1 or 2, got 3"),
        ({"axis": 0, "downsampling": 0.5}, r"params\['downsampling'\] must be a finite number at least 1, got 0.5"),
    ],
)
def test_bad_params_are_value_errors(params, match) -> None:
    with pytest.raises(ValueError, match=match):
        RandomAnisotropy().apply_params(make_subject(), params)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dim": 4}, ValueError, r"dim must be a dimension of data \(of shape \(1, 6, 2, 1\)\), got 4"),
        ({"dim": 1.0}, TypeError, "dim must be an int, got float"),
        ({"start": 4, "stop": 2}, ValueError, "start=4, stop=2, length=6"),
        ({"stop": 7}, ValueError, "0 <= start <= stop <= length"),
        ({"length": 0}, ValueError, "length must be at least 1, got 0"),
        ({"origin": 1}, ValueError, r"need input indices \[0, 5\), but data holds \[1, 7\)"),
        ({"origin": 0.0}, TypeError, "origin must be an int"),
        ({"start": 1.5}, TypeError, "start must be an int, got float"),
        ({"interpolation": "cubic"}, ValueError, "interpolation must be one of"),
        ({"downsampling": 0}, ValueError, "downsampling must be a finite number at least 1, got 0"),
    ],
)
def test_anisotropy_region_errors(kwargs, error, match) -> None:
    arguments = {"dim": 1, "downsampling": 2.0, "length": 6, **kwargs}
    with pytest.raises(error, match=match):
        anisotropy_region(torch.zeros(1, 6, 2, 1), **arguments)


def test_include_a_label_map_with_scalars_only_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"RandomAnisotropy applies to intensity images .* \['seg'\]"):
        RandomAnisotropy(include="seg")(make_subject())
    out = RandomAnisotropy(include="seg", scalars_only=False, downsampling=(3, 3))(make_subject())
    assert out["history"][0]["name"] == "RandomAnisotropy"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_bit_for_bit() -> None:
    data = torch.rand(2, 33, 20, 17, generator=torch.Generator().manual_seed(0))
    for interpolation in ("linear", "nearest"):
        cpu = anisotropy_region(data, 1, 3.3, 33, interpolation=interpolation)
        cuda = anisotropy_region(data.cuda(), 1, 3.3, 33, interpolation=interpolation)
        assert torch.equal(cuda.cpu(), cpu)
