"""RescaleIntensity and ZNormalization: hand-computed values, masks, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.transforms import RescaleIntensity, ZNormalization


def line(values, dtype=torch.float32, channels=1) -> ScalarImage:
    tensor = torch.tensor(values, dtype=dtype).reshape(channels, -1, 1, 1)
    return ScalarImage(tensor=tensor)


def labels(values) -> LabelMap:
    return LabelMap(tensor=torch.tensor(values, dtype=torch.uint8).reshape(1, -1, 1, 1))


def values_of(image) -> list:
    return image.data.flatten().tolist()


# RescaleIntensity ---------------------------------------------------------------------------


def test_rescale_maps_min_and_max_onto_the_output_range():
    out = RescaleIntensity((-1, 1))(Subject(t1=line([2.0, 4.0, 6.0]))).t1
    assert values_of(out) == [-1.0, 0.0, 1.0]


def test_rescale_turns_integer_images_into_float32():
    out = RescaleIntensity()(Subject(t1=line([0, 50, 100], dtype=torch.int16))).t1
    assert out.dtype == torch.float32
    assert values_of(out) == [0.0, 0.5, 1.0]


def test_rescale_float64_gives_float32():
    out = RescaleIntensity()(Subject(t1=line([0.0, 1.0], dtype=torch.float64))).t1
    assert out.dtype == torch.float32


def test_rescale_one_number_means_a_symmetric_range():
    out = RescaleIntensity(2)(Subject(t1=line([0.0, 1.0]))).t1
    assert values_of(out) == [-2.0, 2.0]


def test_rescale_percentiles_clip_outliers():
    # Percentiles 25 and 75 of 0..4 are 1 and 3 (linear interpolation).
    out = RescaleIntensity((0, 1), percentiles=(25, 75))(Subject(t1=line([0.0, 1.0, 2.0, 3.0, 4.0]))).t1
    assert values_of(out) == [0.0, 0.0, 0.5, 1.0, 1.0]


def test_rescale_one_percentile_means_both_tails():
    first = RescaleIntensity(percentiles=10)(Subject(t1=line([0.0, 1.0, 2.0, 3.0, 4.0]))).t1
    second = RescaleIntensity(percentiles=(10, 90))(Subject(t1=line([0.0, 1.0, 2.0, 3.0, 4.0]))).t1
    assert torch.equal(first.data, second.data)


def test_rescale_in_min_max_replaces_the_statistics_and_clips():
    subject = Subject(t1=line([-2000.0, -1000.0, 0.0, 1000.0, 3000.0]))
    out = RescaleIntensity((-1, 1), in_min_max=(-1000, 1000))(subject).t1
    assert values_of(out) == [-1.0, -1.0, 0.0, 1.0, 1.0]


def test_rescale_statistics_use_all_channels_together():
    out = RescaleIntensity()(Subject(t1=line([0.0, 1.0, 2.0, 4.0], channels=2))).t1
    assert values_of(out) == [0.0, 0.25, 0.5, 1.0]


def test_rescale_constant_image_gives_out_min_without_nan():
    out = RescaleIntensity((-1, 1))(Subject(t1=line([5.0, 5.0, 5.0]))).t1
    assert values_of(out) == [-1.0, -1.0, -1.0]


def test_rescale_masked_by_a_label_map_name():
    # Statistics on voxels 1 and 2 (values 10 and 20); the others are clipped.
    subject = Subject(t1=line([0.0, 10.0, 20.0, 40.0]), brain=labels([0, 1, 2, 0]))
    out = RescaleIntensity(masking_method="brain")(subject)
    assert values_of(out.t1) == [0.0, 0.0, 1.0, 1.0]
    assert out.brain is subject.brain


def test_rescale_masked_by_a_callable():
    out = RescaleIntensity(masking_method=lambda x: x > 0)(Subject(t1=line([0.0, 10.0, 20.0, 30.0]))).t1
    assert values_of(out) == [0.0, 0.0, 0.5, 1.0]


def test_rescale_leaves_label_maps_untouched():
    subject = Subject(t1=line([0.0, 2.0]), seg=labels([0, 3]))
    out = RescaleIntensity()(subject)
    assert out.seg is subject.seg
    assert values_of(out.t1) == [0.0, 1.0]


def test_rescale_does_not_modify_a_float32_input():
    image = line([0.0, 2.0])
    RescaleIntensity()(Subject(t1=image))
    assert values_of(image) == [0.0, 2.0]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"out_min_max": (1, 0)}, ValueError, r"out_min_max must be \(min, max\) with min < max, got \(1, 0\)"),
        ({"out_min_max": (0, 1, 2)}, ValueError, "out_min_max must have two values, got 3"),
        ({"out_min_max": "01"}, TypeError, "out_min_max must be two numbers, got str"),
        ({"out_min_max": (0, "1")}, TypeError, "out_min_max must hold two numbers"),
        ({"out_min_max": (0, float("inf"))}, ValueError, "out_min_max must be finite"),
        ({"percentiles": (50, 150)}, ValueError, r"0 <= low < high <= 100, got \(50, 150\)"),
        ({"percentiles": (60, 40)}, ValueError, "0 <= low < high <= 100"),
        ({"percentiles": 60}, ValueError, "0 <= low < high <= 100"),
        ({"in_min_max": (3, 3)}, ValueError, r"in_min_max must be \(min, max\) with min < max, got \(3, 3\)"),
        ({"masking_method": 3.5}, TypeError, "masking_method must be None, an image name, .* got float 3.5"),
    ],
)
def test_rescale_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        RescaleIntensity(**kwargs)


# Masks (shared by both transforms) -------------------------------------------------------------


@pytest.mark.parametrize("transform_class", [RescaleIntensity, ZNormalization])
def test_mask_selecting_nothing_is_an_error(transform_class):
    subject = Subject(t1=line([1.0, 2.0]), brain=labels([0, 0]), subject_id="sub-06")
    with pytest.raises(ValueError, match=r"mask selects no voxel of .*image 't1' of subject 'sub-06'"):
        transform_class(masking_method="brain")(subject)


@pytest.mark.parametrize("transform_class", [RescaleIntensity, ZNormalization])
def test_missing_mask_image_names_subject_and_images(transform_class):
    subject = Subject(t1=line([1.0, 2.0]), subject_id="sub-06")
    with pytest.raises(
        ValueError, match=r"masking_method 'brain' is neither an image of subject 'sub-06' \(\['t1'\]\)"
    ):
        transform_class(masking_method="brain")(subject)


def test_mask_image_of_another_shape_is_an_error():
    subject = Subject(t1=line([1.0, 2.0]), brain=labels([1, 1, 1]))
    with pytest.raises(ValueError, match=r"mask 'brain' has spatial shape \(3, 1, 1\) but image 't1'"):
        RescaleIntensity(masking_method="brain")(subject)


def test_mask_callable_returning_a_non_bool_tensor_counts_non_zero_and_anything_else_is_an_error():
    """As masking everywhere (transforms.masking): a non-bool tensor selects its non-zero voxels."""
    out = ZNormalization(masking_method=lambda x: (x > 1.5).float())(Subject(t1=line([1.0, 2.0, 3.0])))
    # Mean 2.5 and sample standard deviation sqrt(0.5) on (2, 3).
    assert out.t1.data.flatten().tolist()[1:] == pytest.approx([-(0.5**0.5), 0.5**0.5])
    with pytest.raises(TypeError, match="masking_method must give a tensor, got ndarray"):
        ZNormalization(masking_method=lambda x: x.numpy() > 0)(Subject(t1=line([1.0, 2.0])))


def test_mask_callable_returning_a_wrong_shape_is_an_error():
    with pytest.raises(ValueError, match=r"mask of shape \(2,\) for image 't1'.*expected \(1, 2, 1, 1\)"):
        ZNormalization(masking_method=lambda x: x.flatten() > 0)(Subject(t1=line([1.0, 2.0])))


def test_mask_callable_may_return_a_spatial_mask():
    out = RescaleIntensity(masking_method=lambda x: x[0] > 0)(Subject(t1=line([0.0, 10.0, 20.0]))).t1
    assert values_of(out) == [0.0, 0.0, 1.0]


# ZNormalization ---------------------------------------------------------------------------------


def test_znormalization_gives_zero_mean_and_unit_sample_std_as_torchio():
    # Mean 2, sample variance (4 + 1 + 1 + 4) / (4 - 1) = 10 / 3 (TorchIO's and torch.std's default).
    out = ZNormalization()(Subject(t1=line([0.0, 1.0, 3.0, 4.0]))).t1
    expected = [v / np.sqrt(10 / 3) for v in (-2.0, -1.0, 1.0, 2.0)]
    assert np.allclose(values_of(out), expected)
    assert torch.std_mean(out.data) == pytest.approx((1.0, 0.0), abs=1e-6)
    assert out.dtype == torch.float32


def test_znormalization_unbiased_false_divides_by_the_population_std():
    # Mean 2, population variance (4 + 1 + 1 + 4) / 4 = 2.5: the numbers of earlier versions.
    transform = ZNormalization(unbiased=False)
    out = transform(Subject(t1=line([0.0, 1.0, 3.0, 4.0]))).t1
    expected = [v / np.sqrt(2.5) for v in (-2.0, -1.0, 1.0, 2.0)]
    assert np.allclose(values_of(out), expected)
    assert repr(transform) == "ZNormalization(unbiased=False)"
    assert repr(ZNormalization()) == "ZNormalization()"


def test_znormalization_unbiased_must_be_a_bool():
    with pytest.raises(TypeError, match="unbiased must be True or False, got int 0"):
        ZNormalization(unbiased=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ZNormalization(None, None, None, False)  # type: ignore[misc]  # keyword only


def test_znormalization_works_per_channel_when_asked():
    subject = Subject(t1=line([1.0, 3.0, 10.0, 30.0], channels=2))
    out = ZNormalization(unbiased=False, per_channel=True)(subject).t1
    assert out.data.flatten().tolist() == [-1.0, 1.0, -1.0, 1.0]
    sample = ZNormalization(per_channel=True)(subject).t1
    assert sample.data.flatten().tolist() == pytest.approx([-(0.5**0.5), 0.5**0.5] * 2)


def test_znormalization_uses_all_channels_together_by_default_as_torchio():
    values = torch.tensor([1.0, 3.0, 10.0, 30.0])
    out = ZNormalization()(Subject(t1=line(values.tolist(), channels=2))).t1
    expected = (values - values.mean()) / values.std()
    assert out.data.flatten().tolist() == pytest.approx(expected.tolist())
    with pytest.raises(TypeError, match="per_channel must be True or False"):
        ZNormalization(per_channel=1)


def test_znormalization_uses_masked_statistics_for_every_voxel():
    subject = Subject(t1=line([100.0, 1.0, 3.0]), brain=labels([0, 1, 1]))
    out = ZNormalization(masking_method="brain")(subject).t1
    # Mean 2 and sample standard deviation sqrt(2) on the mask: 100 -> 98 / sqrt(2).
    assert values_of(out) == pytest.approx([v / 2**0.5 for v in (98.0, -1.0, 1.0)])
    population = ZNormalization(masking_method="brain", unbiased=False)(subject).t1
    assert values_of(population) == [98.0, -1.0, 1.0]


def test_znormalization_turns_integer_images_into_float32():
    out = ZNormalization(unbiased=False)(Subject(t1=line([1, 3], dtype=torch.int16))).t1
    assert out.dtype == torch.float32
    assert values_of(out) == [-1.0, 1.0]


def test_znormalization_of_a_constant_channel_names_subject_image_and_channel():
    subject = Subject(t1=line([1.0, 2.0, 4.0, 4.0], channels=2), subject_id="sub-08")
    with pytest.raises(ValueError, match=r"channel 1 of image 't1' of subject 'sub-08' is constant \(4\).*deviation"):
        ZNormalization(per_channel=True)(subject)
    constant = Subject(t1=line([4.0, 4.0, 4.0, 4.0], channels=2), subject_id="sub-08")
    with pytest.raises(ValueError, match=r"image 't1' of subject 'sub-08' is constant \(4\)"):
        ZNormalization()(constant)


def test_znormalization_of_nan_values_is_an_error():
    with pytest.raises(ValueError, match="holds NaN or infinite values"):
        ZNormalization()(Subject(t1=line([1.0, float("nan")])))


def test_znormalization_does_not_modify_a_float32_input():
    image = line([0.0, 2.0])
    ZNormalization()(Subject(t1=image))
    assert values_of(image) == [0.0, 2.0]


def test_znormalization_rejects_a_bad_masking_method():
    with pytest.raises(ValueError, match=r"masking_method bounds must be three or six non-negative ints, got \[1\]"):
        ZNormalization(masking_method=[1])
    with pytest.raises(TypeError, match=r"masking_method must be None, .* got float 3\.5"):
        ZNormalization(masking_method=3.5)


# Properties -------------------------------------------------------------------------------------


# Finite values, subnormal ones included (their range once overflowed the scale).
finite = arrays(
    np.float32,
    st.tuples(st.integers(1, 2), st.integers(1, 5), st.integers(1, 5), st.integers(1, 3)),
    elements=st.floats(-1e6, 1e6, width=32),
)


@settings(max_examples=50, deadline=None)
@given(data=finite, out_min=st.floats(-10, 0), width=st.floats(0.5, 10))
def test_rescale_output_stays_in_range_and_is_never_nan(data, out_min, width):
    out_max = out_min + width
    out = RescaleIntensity((out_min, out_max))(Subject(t1=ScalarImage(tensor=torch.from_numpy(data)))).t1
    assert not torch.isnan(out.data).any()
    # The bounds as float32, the dtype of the output.
    low, high = (float(np.float32(v)) for v in (out_min, out_max))
    assert float(out.data.min()) >= low and float(out.data.max()) <= high
