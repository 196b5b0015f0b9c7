"""Random intensity transforms: identity parameters, statistics with a fixed seed, label maps untouched, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.transforms import RandomBiasField, RandomBlur, RandomGamma, RandomNoise, RandomSwap
from torchpatch.transforms.augmentation.artifacts import bias_field


def make_subject(shape=(1, 16, 16, 8), spacing=(1.0, 1.0, 1.0)) -> Subject:
    data = torch.rand(*shape, generator=torch.Generator().manual_seed(2)) + 0.5
    affine = np.diag([*spacing, 1.0])
    return Subject(
        t1=ScalarImage(tensor=data, affine=affine),
        t2=ScalarImage(tensor=data * 2, affine=affine),
        seg=LabelMap(tensor=(data > 1).to(torch.int64), affine=affine),
    )


@pytest.mark.parametrize(
    "transform",
    [
        RandomNoise(mean=0, std=0),
        RandomGamma(log_gamma=0),
        RandomBlur(std=0),
        RandomSwap(num_iterations=0),
        RandomBiasField(coefficients=0),
    ],
    ids=lambda t: type(t).__name__,
)
def test_identity_parameters_give_the_input_bit_for_bit(transform) -> None:
    subject = make_subject()
    subject = subject.with_images({"i16": ScalarImage(tensor=torch.ones(1, 16, 16, 8, dtype=torch.int16))})
    out = transform(subject)
    for name in subject.images:
        assert out[name].dtype == subject[name].dtype
        assert torch.equal(out[name].data, subject[name].data)
    assert out["history"][0]["name"] == type(transform).__name__


@pytest.mark.parametrize(
    "transform",
    [RandomNoise(), RandomGamma(), RandomBlur(), RandomSwap(patch_size=(4, 4, 2), num_iterations=3), RandomBiasField()],
    ids=lambda t: type(t).__name__,
)
def test_label_maps_are_untouched_and_integers_become_float32(transform) -> None:
    subject = make_subject().with_images(
        {"i16": ScalarImage(tensor=torch.arange(2048, dtype=torch.int16).reshape(1, 16, 16, 8))}
    )
    torch.manual_seed(0)
    out = transform(subject)
    assert out.seg is subject.seg
    assert out.i16.dtype == torch.float32
    assert out.t1.dtype == torch.float32
    assert not torch.equal(out.t1.data, subject.t1.data)


def test_include_a_label_map_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"RandomNoise applies to intensity images .* label maps \['seg'\]"):
        RandomNoise(include="seg")(make_subject())


def test_noise_statistics_and_per_image_parameters() -> None:
    subject = make_subject(shape=(1, 32, 32, 32))
    torch.manual_seed(0)
    out = RandomNoise(mean=(1.0, 1.0), std=(0.5, 0.5))(subject)
    noise = out.t1.data - subject.t1.data
    assert abs(noise.mean().item() - 1.0) < 0.02
    assert abs(noise.std().item() - 0.5) < 0.02
    record = out["history"][0]
    assert set(record["seed"]) == {"t1", "t2"} and record["seed"]["t1"] != record["seed"]["t2"]
    assert record["std"] == {"t1": 0.5, "t2": 0.5}


def test_noise_std_range_is_respected() -> None:
    torch.manual_seed(1)
    stds = [RandomNoise(std=0.25).get_params(make_subject())["std"]["t1"] for _ in range(200)]
    assert 0 <= min(stds) < 0.03 and 0.22 < max(stds) <= 0.25


def test_gamma_formula_and_range() -> None:
    data = torch.tensor([0.0, 0.25, 0.5, 1.0, -0.5]).reshape(1, 5, 1, 1)
    subject = Subject(t1=ScalarImage(tensor=data))
    torch.manual_seed(0)
    out = RandomGamma()(subject)
    gamma = out["history"][0]["gamma"]["t1"]
    assert np.exp(-0.3) <= gamma <= np.exp(0.3)
    expected = data.sign() * data.abs() ** gamma
    assert torch.allclose(out.t1.data, expected)
    assert out.t1.data[0, 3, 0, 0].item() == 1.0


def test_blur_converts_millimetres_to_voxels() -> None:
    impulse = torch.zeros(1, 21, 21, 1)
    impulse[0, 10, 10, 0] = 1
    subject = Subject(t1=ScalarImage(tensor=impulse, affine=np.diag([1.0, 2.0, 1.0, 1.0])))
    out = RandomBlur(std=(2, 2))(subject)
    profile_i, profile_j = out.t1.data[0, :, 10, 0], out.t1.data[0, 10, :, 0]
    positions = torch.arange(21.0) - 10
    std_i = (profile_i / profile_i.sum() * positions**2).sum().sqrt().item()
    std_j = (profile_j / profile_j.sum() * positions**2).sum().sqrt().item()
    assert abs(std_i - 2.0) < 0.05 and abs(std_j - 1.0) < 0.05
    assert abs(out.t1.data.sum().item() - 1.0) < 1e-5


def test_blur_six_values_give_a_range_per_axis() -> None:
    torch.manual_seed(0)
    std = RandomBlur(std=(0, 0, 1, 1, 2, 3)).get_params(make_subject())["std"]["t1"]
    assert std[0] == 0 and std[1] == 1 and 2 <= std[2] <= 3


def test_swap_moves_voxels_without_changing_them_and_same_for_all_images() -> None:
    subject = make_subject()
    torch.manual_seed(0)
    out = RandomSwap(patch_size=(4, 4, 2), num_iterations=10)(subject)
    assert torch.equal(out.t1.data.flatten().sort().values, subject.t1.data.flatten().sort().values)
    assert torch.equal(out.t2.data, out.t1.data * 2)
    locations = out["history"][0]["locations"]
    assert len(locations) == 10
    for first, second in locations:
        assert any(abs(a - b) >= p for a, b, p in zip(first, second, (4, 4, 2)))
        assert all(0 <= a <= s - p for a, s, p in zip(first + second, (16, 16, 8) * 2, (4, 4, 2) * 2))


def test_swap_that_does_not_fit_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"patch_size \(15, 15, 15\) does not fit .* spatial shape \(16, 16, 8\)"):
        RandomSwap()(make_subject())
    with pytest.raises(ValueError, match="different spatial shapes"):
        RandomSwap(patch_size=1)(
            Subject(a=ScalarImage(tensor=torch.zeros(1, 4, 4, 1)), b=ScalarImage(tensor=torch.zeros(1, 2, 4, 1)))
        )


def test_bias_field_is_smooth_positive_and_multiplicative() -> None:
    subject = make_subject()
    torch.manual_seed(0)
    out = RandomBiasField(coefficients=0.5, order=3)(subject)
    coefficients = out["history"][0]["coefficients"]
    assert len(coefficients) == 20 and all(-0.5 <= c <= 0.5 for c in coefficients)
    field = out.t1.data / subject.t1.data
    assert torch.allclose(field, out.t2.data / subject.t2.data)
    assert torch.allclose(field[0], bias_field(coefficients, 3, (16, 16, 8)).float(), rtol=1e-5)
    assert (field > np.exp(-10)).all()


def test_bias_field_of_order_zero_is_a_constant_gain() -> None:
    field = bias_field([np.log(2.0)], 0, (3, 3, 1))
    assert torch.allclose(field, torch.full((3, 3, 1), 2.0, dtype=torch.float64))


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: RandomNoise(std=-1), ValueError, "std given as one number must be non-negative, got -1"),
        (lambda: RandomNoise(std=(-1, 1)), ValueError, "std must be at least 0"),
        (lambda: RandomNoise(mean="0"), TypeError, "mean must be a number or two numbers"),
        (lambda: RandomGamma(log_gamma=(0.3, -0.3)), ValueError, r"log_gamma must be a range \(low, high\)"),
        (lambda: RandomBlur(std=(1, 2, 3)), TypeError, "std must be a number or two numbers"),
        (lambda: RandomBlur(std=(0, 1, 0, 1, 0, "x")), TypeError, "std must hold numbers"),
        (lambda: RandomBlur(std=(1, 0, 0, 1, 0, 1)), ValueError, "std must be a range"),
        (lambda: RandomSwap(patch_size=0), ValueError, "patch_size must be at least 1"),
        (lambda: RandomSwap(num_iterations=-1), ValueError, "num_iterations must be non-negative, got -1"),
        (lambda: RandomSwap(num_iterations=2.0), TypeError, "num_iterations must be an int, got float"),
        (lambda: RandomBiasField(order=-1), ValueError, "order must be non-negative, got -1"),
        (lambda: RandomBiasField(order=1.5), TypeError, "order must be an int, got float"),
        (lambda: RandomBiasField(coefficients=(1, 0)), ValueError, "coefficients must be a range"),
    ],
)
def test_bad_arguments(make, error, message) -> None:
    with pytest.raises(error, match=message):
        make()


def test_bias_field_replay_with_wrong_number_of_coefficients() -> None:
    with pytest.raises(ValueError, match="order 3 needs 20 coefficients, got 2"):
        RandomBiasField().apply_params(make_subject(), {"coefficients": [0.1, 0.2]})


def test_reprs() -> None:
    assert repr(RandomNoise()) == "RandomNoise(mean=(0.0, 0.0), std=(0.0, 0.25))"
    assert repr(RandomGamma(p=0.5)) == "RandomGamma(log_gamma=(-0.3, 0.3), p=0.5)"
    assert repr(RandomBlur()) == "RandomBlur(std=[0.0, 2.0, 0.0, 2.0, 0.0, 2.0])"
    assert repr(RandomSwap()) == "RandomSwap(patch_size=(15, 15, 15), num_iterations=100)"
    assert repr(RandomBiasField()) == "RandomBiasField(coefficients=(-0.5, 0.5), order=3)"
