"""TorchIO's ``Transform`` helper methods on every torchpatch transform: TorchIO's results, and their errors."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk
import torch

import torchpatch
from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.transforms import (
    Flip,
    IntensityTransform,
    OneOf,
    Pad,
    RandomAffine,
    RandomBlur,
    RandomFlip,
    RescaleIntensity,
    SpatialTransform,
    Transform,
    ZNormalization,
)
from torchpatch.transforms.torchio_methods import RandomMethods, TorchIOMethods, check_range

PARAMS = [
    (10, None, "degrees", {}),
    ((0.9, 1.1), None, "scales", {}),
    ((1, 2, 3), None, "translation", {}),
    ((1, 2, 3), 1.0, "scales", {}),
    ((0, 1, 2, 3, 4, 5), None, "x", {}),
    (np.array([1.0, 2.0]), None, "x", {}),
    (torch.tensor([0.5]), 0, "x", {}),
    ((1, 2), None, "x", {"make_ranges": False}),
    (3, None, "x", {"make_ranges": False}),
    ((1, 2, 3, 4), None, "x", {"make_ranges": False}),
]

BAD_PARAMS = [
    ((1, 2, 3, 4), None, "x", {}),
    ((2, 1), None, "x", {}),
    ("ab", None, "x", {}),
    ((0, 5), None, "x", {"max_constraint": 4}),
    ((-1, 5), None, "x", {"min_constraint": 0}),
    ((0.5, 1), None, "x", {"type_constraint": int}),
]


@pytest.mark.parametrize(("params", "around", "name", "kwargs"), PARAMS)
def test_parse_params_gives_torchio_numbers(params: Any, around: Any, name: str, kwargs: dict[str, Any]) -> None:
    tio = pytest.importorskip("torchio")
    theirs = tio.RandomAffine().parse_params(params, around, name, **kwargs)
    ours = RandomAffine().parse_params(params, around, name, **kwargs)
    assert ours == pytest.approx(theirs)
    assert len(ours) == len(theirs)


@pytest.mark.parametrize(("params", "around", "name", "kwargs"), BAD_PARAMS)
def test_parse_params_rejects_what_torchio_rejects(params: Any, around: Any, name: str, kwargs: dict[str, Any]) -> None:
    tio = pytest.importorskip("torchio")
    with pytest.raises(ValueError):
        tio.RandomAffine().parse_params(params, around, name, **kwargs)
    with pytest.raises(ValueError, match=name):
        RandomAffine().parse_params(params, around, name, **kwargs)


def test_check_range_names_the_argument() -> None:
    with pytest.raises(ValueError, match=r"scales: the range \(1.0, 3.0\) goes above 2"):
        check_range(1.0, 3.0, "scales", max_constraint=2)


@pytest.mark.parametrize("bounds", [None, 0, 2, (1, 2, 3), (1, 2, 3, 4, 5, 6), np.array([1, 2, 3])])
def test_parse_bounds_gives_torchio_bounds(bounds: Any) -> None:
    tio = pytest.importorskip("torchio")
    assert TorchIOMethods.parse_bounds(bounds) == tio.Transform.parse_bounds(bounds)


@pytest.mark.parametrize("bounds", [-1, (1, 2), (1.5, 2, 3), "a"])
def test_parse_bounds_rejects_bad_bounds(bounds: Any) -> None:
    with pytest.raises(ValueError, match="bounds"):
        TorchIOMethods.parse_bounds(bounds)


def test_small_parsers_give_torchio_results() -> None:
    tio = pytest.importorskip("torchio")
    for n, around in ((2, None), (0.1, 1.0), (3, -1)):
        assert TorchIOMethods.to_range(n, around) == tio.Transform.to_range(n, around)
    for probability in (0, 0.5, 1):
        assert TorchIOMethods.parse_probability(probability) == tio.Transform.parse_probability(probability)
    for bad in (-0.1, 2, "x"):
        with pytest.raises(ValueError, match="probability"):
            TorchIOMethods.parse_probability(bad)
    for name in ("Linear", "nearest", "BSPLINE", "lanczos", "label_gaussian"):
        assert TorchIOMethods.parse_interpolation(name) == tio.Transform.parse_interpolation(name)
        assert TorchIOMethods.get_sitk_interpolator(name) == tio.Transform.get_sitk_interpolator(name)
    with pytest.raises(ValueError, match="interpolation must be one of"):
        TorchIOMethods.parse_interpolation("cubic")
    with pytest.raises(TypeError, match="interpolation must be a string"):
        TorchIOMethods.parse_interpolation(1)  # type: ignore[arg-type]
    for include, exclude in ((["a"], None), (None, ("b",)), (None, None)):
        assert TorchIOMethods.parse_include_and_exclude_keys(include, exclude, None) == (include, exclude)
    for include, exclude, label_keys in ((["a"], ["b"], None), ("a", None, None), (None, None, "seg"), (3, None, None)):
        with pytest.raises(ValueError):
            tio.Transform.parse_include_and_exclude_keys(include, exclude, label_keys)
        with pytest.raises(ValueError):
            TorchIOMethods.parse_include_and_exclude_keys(include, exclude, label_keys)


def test_sitk_conversions_give_torchio_images() -> None:
    tio = pytest.importorskip("torchio")
    rotated = np.array([[0, 2.0, 0, 4], [-1.5, 0, 0, 5], [0, 0, 3, 6], [0, 0, 0, 1]])
    flat = np.diag([2.0, 1.5, 1.0, 1.0])  # TorchIO writes 2D directions its own way: plain axes here
    for data, affine in ((torch.rand(1, 5, 4, 3), rotated), (torch.rand(3, 5, 4, 1), flat)):
        ours = TorchIOMethods.nib_to_sitk(data, affine)
        theirs = tio.Transform.nib_to_sitk(data, affine)
        assert ours.GetSize() == theirs.GetSize()
        assert np.allclose(ours.GetDirection(), theirs.GetDirection())
        assert np.allclose(ours.GetOrigin(), theirs.GetOrigin())
        assert np.array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(theirs))
        our_data, our_affine = TorchIOMethods.sitk_to_nib(theirs)
        their_data, their_affine = tio.Transform.sitk_to_nib(theirs)
        assert np.array_equal(our_data, their_data)
        assert np.allclose(our_affine, their_affine)
    with pytest.raises(ValueError, match=r"\(C, I, J, K\)"):
        TorchIOMethods.nib_to_sitk(torch.zeros(4, 4), np.eye(4))


@pytest.mark.parametrize("word", ["Left", "right", "Anterior", "posterior", "Superior", "inferior"])
def test_anatomical_masks_are_torchio_masks(word: str) -> None:
    tio = pytest.importorskip("torchio")
    tensor = torch.rand(2, 5, 4, 3)
    ours = TorchIOMethods.get_mask_from_anatomical_label(word, tensor)
    assert torch.equal(ours, tio.Transform.get_mask_from_anatomical_label(word, tensor))
    assert ours.shape == tensor.shape


def test_bad_anatomical_label_is_named() -> None:
    with pytest.raises(ValueError, match="'Front'"):
        TorchIOMethods.get_mask_from_anatomical_label("Front", torch.zeros(1, 2, 2, 2))


@pytest.mark.parametrize("bounds", [0, 1, (1, 0, 2), (0, 1, 1, 0, 2, 0)])
def test_bounds_masks_are_torchio_masks(bounds: Any) -> None:
    tio = pytest.importorskip("torchio")
    tensor = torch.rand(2, 6, 5, 4)
    ours = RandomFlip().get_mask_from_bounds(bounds, tensor)
    assert torch.equal(ours, tio.RandomFlip().get_mask_from_bounds(bounds, tensor))


def test_masking_functions_and_label_masks() -> None:
    tio = pytest.importorskip("torchio")
    tensor = torch.rand(1, 6, 5, 4) * 10
    labels = torch.randint(0, 3, (1, 6, 5, 4))
    theirs_subject = tio.Subject(t1=tio.ScalarImage(tensor=tensor), seg=tio.LabelMap(tensor=labels))
    ours_subject = Subject(t1=ScalarImage(tensor=tensor), seg=LabelMap(tensor=labels))
    assert torch.equal(TorchIOMethods.mean(tensor), tio.Transform.mean(tensor))
    assert torch.equal(TorchIOMethods.ones(tensor), tio.Transform.ones(tensor))
    for labels_wanted in (None, [2], [1, 2]):
        ours = Flip(0).get_mask_from_masking_method("seg", ours_subject, tensor, labels_wanted)
        theirs = tio.Flip(0).get_mask_from_masking_method("seg", theirs_subject, tensor, labels_wanted)
        assert torch.equal(ours, theirs)
    with pytest.raises(ValueError, match="'nowhere'"):
        Flip(0).get_mask_from_masking_method("nowhere", ours_subject, tensor)


def test_images_and_per_image_values() -> None:
    zero = torch.zeros(1, 2, 2, 2)
    subject = Subject(t1=ScalarImage(tensor=zero), seg=LabelMap(tensor=zero.long()))
    assert [image.type for image in RandomBlur().get_images(subject)] == ["intensity"]
    assert len(RandomFlip().get_images(subject)) == 2
    assert RandomBlur.get_parameter({"t1": 3}, "t1") == 3
    transform = Flip(0)
    transform.args_names = ["axes"]
    transform.axes = {"t1": (0,)}  # type: ignore[assignment]
    assert transform.arguments_are_dict()
    transform.args_names = ["axes", "p"]
    with pytest.raises(ValueError, match="all dicts or none"):
        transform.arguments_are_dict()
    with pytest.raises(TypeError, match="args_names"):
        transform.args_names = "axes"  # type: ignore[assignment]


def _deterministic_names() -> list[str]:
    tio = pytest.importorskip("torchio")
    names = []
    for name in tio.transforms.__all__:
        cls = getattr(tio.transforms, name)
        if inspect.isclass(cls) and issubclass(cls, tio.Transform) and not name.startswith("Random"):
            names.append(name)
    return names


def test_args_names_are_torchio_args_names() -> None:
    tio = pytest.importorskip("torchio")
    built = {
        "Flip": {"axes": 0},
        "Pad": {"padding": 1},
        "Crop": {"cropping": 1},
        "CropOrPad": {"target_shape": 4},
        "Resize": {"target_shape": 4},
        "RemapLabels": {"remapping": {1: 2}},
        "RemoveLabels": {"labels": [1]},
        "Resample": {},
        "ZNormalization": {},
        "RescaleIntensity": {},
        "Clamp": {},
        "EnsureShapeMultiple": {"target_multiple": 2},
        "OneHot": {},
        "SequentialLabels": {},
        "KeepLargestComponent": {},
        "Contour": {},
        "ToCanonical": {},
    }
    compared = 0
    for name, kwargs in built.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = getattr(tio, name)(**kwargs).args_names
        ours = getattr(torchpatch, name)(**kwargs).args_names
        assert set(theirs) <= set(ours), name
        compared += 1
    assert compared == len(built)


def test_probability_is_p() -> None:
    transform = RandomFlip(p=0.3)
    assert transform.probability == 0.3
    transform.probability = 0.7
    assert transform.p == 0.7
    with pytest.raises(ValueError, match="probability"):
        transform.probability = 2


def _built_with_defaults() -> list[Transform]:
    transforms = []
    for name in sorted(torchpatch.transforms.__all__):
        cls = getattr(torchpatch.transforms, name)
        if not (inspect.isclass(cls) and issubclass(cls, Transform)) or inspect.isabstract(cls):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                transforms.append(cls())
        except (TypeError, ValueError):
            continue  # needs arguments
    return transforms


def test_hydra_config_rebuilds_every_transform() -> None:
    import importlib

    transforms = _built_with_defaults()
    assert len(transforms) >= 30
    for transform in [*transforms, RandomAffine(degrees=(1, 2), p=0.5, include=["t1"]), Pad(2, padding_mode="edge")]:
        config = transform.to_hydra_config()
        module, _, name = config.pop("_target_").rpartition(".")
        assert getattr(importlib.import_module(module), name) is type(transform)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rebuilt = type(transform)(**config)
        assert repr(rebuilt) == repr(transform), type(transform).__name__
        assert all(not isinstance(value, tuple) for value in config.values())


def test_random_helpers_draw_torchio_numbers() -> None:
    tio = pytest.importorskip("torchio")
    torch.manual_seed(3)
    theirs = [tio.RandomAffine().sample_uniform(-2, 5) for _ in range(5)]
    theirs_sextet = tio.RandomAffine().sample_uniform_sextet((0, 1, 2, 3, 4, 5))
    torch.manual_seed(3)
    ours = [RandomAffine().sample_uniform(-2, 5) for _ in range(5)]
    ours_sextet = RandomAffine().sample_uniform_sextet((0, 1, 2, 3, 4, 5))
    assert ours == pytest.approx(theirs)
    assert ours_sextet == pytest.approx(theirs_sextet)
    assert RandomAffine().parse_degrees(5) == pytest.approx(tio.RandomAffine().parse_degrees(5))
    assert RandomAffine().parse_translation((1, 2)) == pytest.approx(tio.RandomAffine().parse_translation((1, 2)))
    for bad in (-1, (2, 1), (1, 2, 3)):
        with pytest.raises(ValueError):
            tio.RandomAffine().parse_degrees(bad)
        with pytest.raises(ValueError, match="degrees"):
            RandomAffine().parse_degrees(bad)
    assert OneOf([RandomFlip()]).sample_uniform(1, 1) == 1.0
    with pytest.raises(ValueError, match="six numbers"):
        RandomMethods.sample_uniform_sextet((1, 2))


ALIASES = [
    ("RandomBlur", {"std": (1, 2, 3, 4, 5, 6)}, ["std_ranges"]),
    ("RandomNoise", {"mean": 0.5, "std": (0.1, 0.2)}, ["mean_range", "std_range"]),
    ("RandomSpike", {"num_spikes": 3, "intensity": (1, 2)}, ["intensity_range", "num_spikes_range"]),
    ("RandomGamma", {"log_gamma": 0.2}, ["log_gamma_range"]),
    ("RandomMotion", {"degrees": 5, "translation": (1, 3)}, ["degrees_range", "translation_range"]),
    ("RandomGhosting", {"num_ghosts": 3, "intensity": 0.7}, ["num_ghosts_range", "intensity_range"]),
    ("RandomBiasField", {"coefficients": 0.3}, ["coefficients_range"]),
    ("RandomLabelsToImage", {"mean": [(0, 1), 2], "std": [0.1, (0.2, 0.3)]}, ["mean_ranges", "std_ranges"]),
    ("RandomLabelsToImage", {}, ["mean_ranges", "std_ranges"]),
    ("RandomAnisotropy", {"downsampling": (2, 4)}, ["downsampling_range"]),
    ("RandomElasticDeformation", {"locked_borders": 1}, ["num_locked_borders"]),
    ("RescaleIntensity", {"out_min_max": (-1, 2)}, ["out_min", "out_max"]),
]


@pytest.mark.parametrize(("name", "kwargs", "attributes"), ALIASES)
def test_parsed_ranges_have_torchio_names_and_values(name: str, kwargs: dict[str, Any], attributes: list[str]) -> None:
    tio = pytest.importorskip("torchio")
    theirs = getattr(tio, name)(**kwargs)
    ours = getattr(torchpatch, name)(**kwargs)
    for attribute in attributes:
        their_value, our_value = getattr(theirs, attribute), getattr(ours, attribute)
        if their_value is None:
            assert our_value is None
        else:
            assert np.array(our_value, dtype=float).tolist() == np.array(their_value, dtype=float).tolist()


def test_affine_elastic_parts_have_torchio_names() -> None:
    transform = torchpatch.RandomAffineElasticDeformation(affine_kwargs={"degrees": 3})
    assert isinstance(transform.random_affine, RandomAffine)
    assert transform.random_affine.degrees == RandomAffine(degrees=3).degrees
    assert isinstance(transform.random_elastic, torchpatch.RandomElasticDeformation)


def test_one_of_transforms_dict_is_torchio_dict() -> None:
    tio = pytest.importorskip("torchio")
    theirs = tio.OneOf({tio.RandomFlip(): 1, tio.RandomBlur(): 3}).transforms_dict
    ours = OneOf({RandomFlip(): 1, RandomBlur(): 3}).transforms_dict
    assert [type(t).__name__ for t in ours] == [type(t).__name__ for t in theirs]
    assert list(ours.values()) == pytest.approx([float(v) for v in theirs.values()])


def test_znorm_and_padding_modes_are_torchio_steps() -> None:
    tio = pytest.importorskip("torchio")
    tensor = torch.rand(1, 5, 4, 3) * 7
    mask = tensor > 2
    ours = ZNormalization.znorm(tensor, mask)
    theirs = tio.ZNormalization.znorm(tensor, mask)
    assert ours is not None and theirs is not None
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert ZNormalization.znorm(torch.ones(1, 2, 2, 2), torch.ones(1, 2, 2, 2, dtype=torch.bool)) is None
    assert set(Pad.PADDING_MODES) - {"replicate", "circular"} <= set(tio.Pad.PADDING_MODES)
    for mode in ("edge", 3, "mean"):
        Pad.check_padding_mode(mode)
    with pytest.raises(ValueError, match="padding_mode"):
        Pad.check_padding_mode("bogus")


def test_kinds_answer_isinstance_without_taking_code() -> None:
    assert isinstance(RandomBlur(), IntensityTransform)
    assert isinstance(ZNormalization(), IntensityTransform)
    assert isinstance(RandomFlip(), SpatialTransform)
    assert not isinstance(RandomFlip(), IntensityTransform)
    assert not hasattr(RandomBlur, "changes_its_input")  # registered, not derived: no copy of the input
    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 4)))
    from torchpatch.copying import input_for_apply

    assert input_for_apply(RandomBlur(), subject) is subject
    assert input_for_apply(RescaleIntensity(), subject) is subject


def test_deterministic_attributes_have_torchio_names_and_values() -> None:
    tio = pytest.importorskip("torchio")
    pairs = [
        (lambda lib: lib.Crop(1), "bounds_parameters"),
        (lambda lib: lib.Crop((1, 2, 3)), "bounds_parameters"),
        (lambda lib: lib.Pad((1, 2, 3, 4, 5, 6)), "bounds_parameters"),
        (lambda lib: lib.Affine((1, 1, 1), (0, 0, 5), (0, 0, 0)), "use_image_center"),
        (lambda lib: lib.Affine((1, 1, 1), (0, 0, 5), (0, 0, 0), center="origin"), "use_image_center"),
        (lambda lib: lib.LabelsToImage(label_key="seg", mean=[0.1, 0.9], std=[0.01, 0.02]), "means"),
        (lambda lib: lib.LabelsToImage(label_key="seg", mean=[0.1, 0.9], std=[0.01, 0.02]), "stds"),
        (lambda lib: lib.Mask("seg", labels=[1, 2]), "masking_labels"),
        (lambda lib: lib.Mask("seg"), "masking_labels"),
    ]
    for build, attribute in pairs:
        theirs, ours = getattr(build(tio), attribute), getattr(build(torchpatch), attribute)
        assert (None if theirs is None else np.asarray(theirs).tolist()) == (
            None if ours is None else np.asarray(ours).tolist()
        ), attribute


def test_invert_transform_marks_invertible_transforms_as_in_torchio() -> None:
    tio = pytest.importorskip("torchio")
    builders = [
        lambda lib: lib.Affine((1, 1, 1), (0, 0, 5), (0, 0, 0)),
        lambda lib: lib.Gamma(1.2),
        lambda lib: lib.Noise(0, 1, 0),
        lambda lib: lib.RandomFlip(),
        lambda lib: lib.RescaleIntensity(),
        lambda lib: lib.OneHot(),
    ]
    for build in builders:
        theirs, ours = build(tio), build(torchpatch)
        assert hasattr(ours, "invert_transform") == hasattr(theirs, "invert_transform"), type(ours).__name__
        if hasattr(theirs, "invert_transform"):
            assert ours.invert_transform == theirs.invert_transform
            assert ours.inverse().invert_transform == theirs.inverse().invert_transform
    flag = Flip(0)
    flag.invert_transform = True
    assert flag.invert_transform is True
