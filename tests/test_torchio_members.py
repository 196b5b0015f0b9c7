"""Every public member of TorchIO 1.x's classes (methods, properties, attributes), checked against torchpatch.

``tests/test_torchio_names.py`` checks the names a script imports; this
checks what it calls on them: for each TorchIO class torchpatch provides,
every public member of TorchIO's class, and of an instance built the same
way in both libraries, is a member of torchpatch's class or instance, or is
listed in ``MEMBERS_NOT_PROVIDED`` with the reason. Where both have a
method, its parameters (names, order, defaults) are TorchIO's unless
``MEMBER_SIGNATURE_DIFFERENCES`` says why not. ``isinstance`` against
TorchIO's base classes of transforms answers as in TorchIO unless
``KIND_DIFFERENCES`` says why not. Every table is checked both ways, so an
entry that is no longer true fails too.

Skipped when TorchIO is not installed (never a runtime dependency).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

tio = pytest.importorskip("torchio")

from test_torchio_names import _all_names, _get, _parameters, _provided, _same_default  # noqa: E402

import torchpatch  # noqa: E402

_INTERNAL_SITK = "TorchIO's SimpleITK step; torchpatch resamples with torch, so no SimpleITK transform object exists"
_INTERNAL = "an internal step of TorchIO's implementation; torchpatch computes the same result another way"

# "Class.member" (Class: TorchIO's class that defines the member, or a subclass) or "member" -> reason.
MEMBERS_NOT_PROVIDED: dict[str, str] = {
    "Image.clear": "in TorchIO it deletes the voxels, affine and type, after which the image no longer works",
    "Image.popitem": "in TorchIO it removes the last key, always 'type', after which the image no longer works",
    "Image.fromkeys": "TorchIO's calls Image() without voxels or a path, which always raises",
    "Subject.fromkeys": "TorchIO's calls Subject() without images, which always raises",
    "Queue.subjects_iterable": (
        "torchpatch's Queue holds no iterator of whole subjects in the training process: workers load each "
        "subject and send back its patches, in the order of a seeded epoch plan"
    ),
    "RemapLabels.kwargs": (
        "TorchIO keeps the keyword arguments to rebuild the transform's inverse; torchpatch builds it from the "
        "transform's own arguments"
    ),
    "RemoveLabels.kwargs": "see RemapLabels.kwargs",
    "Image.to_video": "needs the ffmpeg-python package and the ffmpeg program (see make_video)",
    # transforms: TorchIO's implementation steps
    "Affine.apply_affine_transform": _INTERNAL_SITK,
    "Affine.get_affine_transform": _INTERNAL_SITK,
    "Affine.get_default_pad_value": _INTERNAL,
    "ElasticDeformation.apply_bspline_transform": _INTERNAL_SITK,
    "ElasticDeformation.get_bspline_transform": _INTERNAL_SITK,
    "ElasticDeformation.parse_free_form_transform": _INTERNAL_SITK,
    "AffineElasticDeformation.apply_composite_transform": _INTERNAL_SITK,
    "Motion.get_rigid_transforms": _INTERNAL_SITK,
    "Motion.matrix_to_transform": _INTERNAL_SITK,
    "Motion.transform_to_matrix": _INTERNAL_SITK,
    "Motion.resample_images": _INTERNAL_SITK,
    "Motion.sort_spectra": _INTERNAL,
    "Motion.add_artifact": _INTERNAL,
    "Spike.add_artifact": _INTERNAL,
    "Ghosting.add_artifact": _INTERNAL,
    "RandomMotion.get_params_array": _INTERNAL,
    "RandomAnisotropy.parse_axes": _INTERNAL,
    "BiasField.generate_bias_field": _INTERNAL,
    "LabelsToImage.generate_tissue": _INTERNAL,
    "RandomLabelsToImage.parse_gaussian_parameter": _INTERNAL,
    "RandomLabelsToImage.parse_gaussian_parameters": _INTERNAL,
    "RandomLabelsToImage.parse_mean_and_std": _INTERNAL,
    "Resample.check_affine": _INTERNAL,
    "Resample.check_affine_key_presence": _INTERNAL,
    "Resample.get_reference_image": _INTERNAL,
    "RescaleIntensity.rescale": _INTERNAL,
    "Clamp.apply_clamp": _INTERNAL,
    "Clamp.clamp": _INTERNAL,
    "Mask.apply_masking": _INTERNAL,
    "OneHot.one_hot": _INTERNAL,
    "OneHot.argmax": _INTERNAL,
    "ZNormalization.apply_normalization": (
        "torchpatch's normalizations compute masks and statistics in one step; apply_normalization is the hook "
        "of NormalizationTransform subclasses of one's own"
    ),
    "HistogramStandardization.apply_normalization": "see ZNormalization.apply_normalization",
    "RescaleIntensity.apply_normalization": "see ZNormalization.apply_normalization",
}

_GET_PARAMS = (
    "TorchIO's random transforms take their parsed ranges as arguments of get_params; torchpatch's draw from "
    "their own arguments (the draw is the same for a seed)"
)

# "Class.member" -> reason (Class as above).
MEMBER_SIGNATURE_DIFFERENCES: dict[str, str] = {
    "WeightedSampler.extract_patch": (
        "TorchIO's third parameter serves its deprecated call (subject, probability_map, cdf); "
        "torchpatch takes (subject, index_ini)"
    ),
    **{
        f"{name}.get_params": _GET_PARAMS
        for name in (
            "RandomAffine",
            "RandomAnisotropy",
            "RandomBiasField",
            "RandomBlur",
            "RandomElasticDeformation",
            "RandomFlip",
            "RandomGamma",
            "RandomGhosting",
            "RandomLabelsToImage",
            "RandomMotion",
            "RandomNoise",
            "RandomSpike",
            "RandomSwap",
        )
    },
}

# TorchIO transform name -> reason, where isinstance against a TorchIO base class answers otherwise.
KIND_DIFFERENCES: dict[str, str] = {
    "OneOf": (
        "torchpatch's OneOf is no RandomTransform (it draws no parameters of its own; the transform it picks "
        "does): it has RandomTransform's helper methods"
    ),
    **dict.fromkeys(
        (
            "Affine",
            "AffineElasticDeformation",
            "BiasField",
            "Blur",
            "ElasticDeformation",
            "Flip",
            "Gamma",
            "LabelsToImage",
            "Noise",
            "Swap",
        ),
        "torchpatch's deterministic transforms are RandomTransforms whose parameters are given, so patches "
        "and whole subjects share one code path; TorchIO's are not RandomTransforms",
    ),
}


def _build(lib: Any, name: str) -> Any:
    """An instance of ``lib.<name>`` built the same way in both libraries, or ``None``."""
    tensor = torch.rand(1, 8, 8, 8)
    labels = (tensor > 0.5).to(torch.int64)

    def subject() -> Any:
        return lib.Subject(t1=lib.ScalarImage(tensor=tensor), seg=lib.LabelMap(tensor=labels))

    builders: dict[str, Callable[[], Any]] = {
        "Subject": subject,
        "Image": lambda: lib.ScalarImage(tensor=tensor),
        "ScalarImage": lambda: lib.ScalarImage(tensor=tensor),
        "LabelMap": lambda: lib.LabelMap(tensor=labels),
        "SubjectsDataset": lambda: lib.SubjectsDataset([subject()]),
        "Queue": lambda: lib.Queue(lib.SubjectsDataset([subject()]), 4, 2, lib.UniformSampler(4), num_workers=0),
        "UniformSampler": lambda: lib.UniformSampler(4),
        "WeightedSampler": lambda: lib.WeightedSampler(4, "seg"),
        "LabelSampler": lambda: lib.LabelSampler(4, "seg"),
        "GridSampler": lambda: lib.GridSampler(subject(), 4),
        "GridAggregator": lambda: lib.GridAggregator(lib.GridSampler(subject(), 4)),
        "SubjectsLoader": lambda: lib.SubjectsLoader(lib.SubjectsDataset([subject()])),
        "OneOf": lambda: lib.OneOf([lib.RandomFlip()]),
        "Compose": lambda: lib.Compose([lib.RandomFlip()]),
        "Lambda": lambda: lib.Lambda(lambda x: x),
        # Deterministic transforms, built with the same arguments in both libraries.
        "Flip": lambda: lib.Flip(0),
        "Pad": lambda: lib.Pad(1),
        "Crop": lambda: lib.Crop(1),
        "CropOrPad": lambda: lib.CropOrPad(4),
        "Resize": lambda: lib.Resize(4),
        "EnsureShapeMultiple": lambda: lib.EnsureShapeMultiple(2),
        "RemapLabels": lambda: lib.RemapLabels({1: 2}),
        "RemoveLabels": lambda: lib.RemoveLabels([1]),
        "CopyAffine": lambda: lib.CopyAffine("t1"),
        "Mask": lambda: lib.Mask("seg"),
        "To": lambda: lib.To(torch.float64),
        "ToReferenceSpace": lambda: lib.ToReferenceSpace(lib.ScalarImage(tensor=tensor)),
        "HistogramStandardization": lambda: lib.HistogramStandardization({"t1": np.linspace(0, 100, 13)}),
        "Affine": lambda: lib.Affine(scales=(1, 1, 1), degrees=(0, 0, 5), translation=(0, 0, 0)),
        "Blur": lambda: lib.Blur(std=(1, 1, 1)),
        "Gamma": lambda: lib.Gamma(gamma=1.2),
        "Noise": lambda: lib.Noise(mean=0, std=1, seed=0),
        "BiasField": lambda: lib.BiasField(coefficients=[0.1] * 10, order=2),
        "Ghosting": lambda: lib.Ghosting(num_ghosts=2, axis=0, intensity=0.5, restore=0.02),
        "Spike": lambda: lib.Spike(spikes_positions=np.array([[0.1, 0.2, 0.3]]), intensity=1.0),
        "Swap": lambda: lib.Swap(patch_size=(2, 2, 2), locations=[((0, 0, 0), (4, 4, 4))]),
        "LabelsToImage": lambda: lib.LabelsToImage(label_key="seg", mean=[0.1, 0.9], std=[0.01, 0.01]),
        "ElasticDeformation": lambda: lib.ElasticDeformation(
            control_points=np.zeros((7, 7, 7, 3)), max_displacement=(1.0, 1.0, 1.0)
        ),
        "Motion": lambda: lib.Motion(
            degrees=np.zeros((2, 3)),
            translation=np.zeros((2, 3)),
            times=np.array([0.5, 0.7]),
            image_interpolation="linear",
        ),
    }
    builder = builders.get(name)
    if builder is None:
        cls = getattr(lib, name, None)
        if cls is None or not inspect.isclass(cls):
            return None
        builder = cls
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return builder()
    except Exception:  # noqa: BLE001 - a class that needs arguments is checked on the class alone
        return None


def _pairs() -> list[tuple[str, type, type, Any, Any]]:
    """``(name, TorchIO class, torchpatch class, TorchIO instance, torchpatch instance)`` per provided class."""
    pairs = []
    seen: set[int] = set()
    for qualified in _all_names():
        theirs = _get(tio, qualified.removeprefix("tio."))
        if not inspect.isclass(theirs) or id(theirs) in seen or not theirs.__module__.startswith("torchio"):
            continue
        seen.add(id(theirs))
        if not _provided(qualified):
            continue
        ours = _get(torchpatch, qualified.removeprefix("tio."))
        if not inspect.isclass(ours):
            continue
        name = qualified.split(".")[-1]
        their_instance, our_instance = _build(tio, name), _build(torchpatch, name)
        if their_instance is None or our_instance is None:
            their_instance = our_instance = None
        pairs.append((name, theirs, ours, their_instance, our_instance))
    return pairs


def _public(cls: type, instance: Any) -> set[str]:
    names = {name for name in dir(cls) if not name.startswith("_")}
    if instance is not None:
        names |= {name for name in dir(instance) if not name.startswith("_")}
    return names


def _key(theirs: type, member: str, table: dict[str, str]) -> str | None:
    """The table's key covering ``member`` of TorchIO's class ``theirs`` (its own name or a base's)."""
    for cls in theirs.__mro__:
        if f"{cls.__name__}.{member}" in table:
            return f"{cls.__name__}.{member}"
    return member if member in table else None


def _missing() -> dict[str, list[str]]:
    """``{TorchIO class name: [its public members torchpatch's lacks]}``."""
    found = {}
    for name, theirs, ours, their_instance, our_instance in _pairs():
        lacking = sorted(_public(theirs, their_instance) - _public(ours, our_instance))
        if lacking:
            found[name] = lacking
    return found


def test_every_torchio_member_is_provided_or_listed() -> None:
    unlisted = {}
    for name, members in _missing().items():
        theirs = next(pair[1] for pair in _pairs() if pair[0] == name)
        left = [member for member in members if _key(theirs, member, MEMBERS_NOT_PROVIDED) is None]
        if left:
            unlisted[name] = left
    assert not unlisted, f"TorchIO members torchpatch lacks, not in MEMBERS_NOT_PROVIDED: {unlisted}"


def test_members_not_provided_entries_are_true() -> None:
    used = set()
    pairs = {pair[0]: pair for pair in _pairs()}
    for name, members in _missing().items():
        for member in members:
            key = _key(pairs[name][1], member, MEMBERS_NOT_PROVIDED)
            if key is not None:
                used.add(key)
    stale = sorted(set(MEMBERS_NOT_PROVIDED) - used)
    assert not stale, f"MEMBERS_NOT_PROVIDED entries that are provided now or name no TorchIO member: {stale}"


def _member_signature_differences() -> dict[str, str]:
    found: dict[str, str] = {}
    for _, theirs, ours, _, _ in _pairs():
        for member in sorted(_public(theirs, None) & _public(ours, None)):
            their_member = inspect.getattr_static(theirs, member)
            our_member = inspect.getattr_static(ours, member)
            if isinstance(their_member, (staticmethod, classmethod)):
                their_member = their_member.__func__
            if isinstance(our_member, (staticmethod, classmethod)):
                our_member = our_member.__func__
            if not (inspect.isfunction(their_member) and inspect.isfunction(our_member)):
                continue
            if their_member is our_member:
                continue
            owner = next(cls for cls in theirs.__mro__ if member in vars(cls))
            if not owner.__module__.startswith("torchio"):
                continue  # dict's, object's, torch's Dataset's
            key = f"{owner.__name__}.{member}"
            if key in found:
                continue
            their_params = {k: p for k, p in _parameters(their_member).items() if k not in ("self", "cls")}
            our_params = {k: p for k, p in _parameters(our_member).items() if k not in ("self", "cls")}
            var = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
            our_takes_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in our_params.values())
            what = []
            for parameter_name, parameter in their_params.items():
                if parameter.kind in var:
                    continue
                if parameter_name not in our_params:
                    if not our_takes_any:
                        what.append(f"no {parameter_name}")
                elif not _same_default(parameter.default, our_params[parameter_name].default):
                    ours_default = our_params[parameter_name].default
                    what.append(f"{parameter_name}={ours_default!r}, TorchIO's {parameter.default!r}")
            positional = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.POSITIONAL_ONLY)
            their_order = [k for k, p in their_params.items() if p.kind in positional]
            our_order = [k for k, p in our_params.items() if p.kind in positional]
            if our_order[: len(their_order)] != their_order and not what:
                what.append(f"positional order {our_order}, TorchIO's {their_order}")
            if what:
                found[key] = "; ".join(what)
    return found


def test_member_signatures_match_or_are_listed() -> None:
    found = _member_signature_differences()
    unlisted = {key: what for key, what in found.items() if key not in MEMBER_SIGNATURE_DIFFERENCES}
    assert not unlisted, f"member signature differences not in MEMBER_SIGNATURE_DIFFERENCES: {unlisted}"


def test_member_signature_differences_entries_are_true() -> None:
    stale = sorted(set(MEMBER_SIGNATURE_DIFFERENCES) - set(_member_signature_differences()))
    assert not stale, f"MEMBER_SIGNATURE_DIFFERENCES entries that no longer differ: {stale}"


_KINDS = (
    "IntensityTransform",
    "SpatialTransform",
    "LabelTransform",
    "NormalizationTransform",
    "FourierTransform",
    "RandomTransform",
)


def _kind_differences() -> dict[str, list[str]]:
    from torchio.transforms.fourier import FourierTransform
    from torchio.transforms.preprocessing.intensity.normalization_transform import NormalizationTransform

    theirs_by_kind = {
        "IntensityTransform": tio.IntensityTransform,
        "SpatialTransform": tio.SpatialTransform,
        "LabelTransform": tio.LabelTransform,
        "NormalizationTransform": NormalizationTransform,
        "FourierTransform": FourierTransform,
        "RandomTransform": tio.transforms.augmentation.RandomTransform,
    }
    ours_by_kind = {
        "IntensityTransform": torchpatch.transforms.IntensityTransform,
        "SpatialTransform": torchpatch.transforms.SpatialTransform,
        "LabelTransform": torchpatch.transforms.LabelTransform,
        "NormalizationTransform": torchpatch.transforms.preprocessing.intensity.NormalizationTransform,
        "FourierTransform": torchpatch.transforms.FourierTransform,
        "RandomTransform": torchpatch.transforms.augmentation.RandomTransform,
    }
    found: dict[str, list[str]] = {}
    for name in tio.transforms.__all__:
        theirs = getattr(tio.transforms, name)
        ours = getattr(torchpatch.transforms, name, None)
        if not inspect.isclass(theirs) or ours is None:
            continue
        for kind in _KINDS:
            if issubclass(theirs, theirs_by_kind[kind]) != issubclass(ours, ours_by_kind[kind]):
                found.setdefault(name, []).append(kind)
    return found


def test_transforms_are_instances_of_torchio_kinds() -> None:
    found = _kind_differences()
    unlisted = {name: kinds for name, kinds in found.items() if name not in KIND_DIFFERENCES}
    assert not unlisted, f"transforms whose isinstance against TorchIO's base classes differs: {unlisted}"
    assert sorted(KIND_DIFFERENCES) == sorted(found), "KIND_DIFFERENCES entries that no longer differ"


def test_the_walk_sees_the_classes_scripts_use() -> None:
    names = {pair[0] for pair in _pairs() if pair[3] is not None}
    assert {"Subject", "ScalarImage", "LabelMap", "Queue", "GridAggregator", "RandomAffine", "WeightedSampler"} <= names
    assert {"Flip", "Affine", "Blur", "Noise", "Spike", "Motion", "Ghosting", "LabelsToImage", "Pad"} <= names
