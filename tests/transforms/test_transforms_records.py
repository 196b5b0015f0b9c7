"""Every transform records itself in the history, as TorchIO's ``applied_transforms``, and preprocessing inverts.

Each built-in transform that is not random appends the arguments that
rebuild it (``transforms.records``); those made of others record what their
parts did (CropOrPad: Crop and Pad). The records rebuild transforms that give
the same voxels, ``apply_inverse_transform`` undoes the invertible ones (a
prediction added after ``CropOrPad`` comes back to the input's grid, as in
TorchIO), and records holding lambdas still cross processes.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

import torchpatch as tp
from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.recorded import RecordedFunction, UnsentFunction
from torchpatch.transforms.augmentation import RandomTransform
from torchpatch.transforms.records import add_history, reproducing_arguments, transform_record


def _double(x: torch.Tensor) -> torch.Tensor:
    return x * 2


def _subject() -> Subject:
    generator = torch.Generator().manual_seed(0)
    data = torch.rand(1, 10, 12, 14, generator=generator) * 100
    labels = (torch.rand(1, 10, 12, 14, generator=generator) * 4).to(torch.uint8)
    return Subject(t1=ScalarImage(tensor=data), seg=LabelMap(tensor=labels))


# name -> (args, kwargs), built the same way in both libraries, and the records TorchIO 1.2.1 writes.
TRANSFORMS = {
    "CropOrPad": (((8, 16, 14),), {}, ["Pad", "Crop"]),
    "Pad": ((2,), {}, ["Pad"]),
    "Crop": ((1,), {}, ["Crop"]),
    "RescaleIntensity": ((), {"out_min_max": (-1, 1)}, ["RescaleIntensity"]),
    "ZNormalization": ((), {}, ["ZNormalization"]),
    "ToCanonical": ((), {}, ["ToCanonical"]),
    "Resample": ((2,), {}, ["Resample"]),
    "RemapLabels": (({3: 5},), {}, ["RemapLabels"]),
    "RemoveLabels": (([3],), {}, ["RemoveLabels"]),
    "SequentialLabels": ((), {}, ["RemapLabels"]),
    "OneHot": ((), {}, ["OneHot"]),
    "Clamp": ((10, 50), {}, ["Clamp"]),
    "Mask": (("seg",), {}, ["Mask"]),
    "HistogramStandardization": (({"t1": np.linspace(0, 100, 13)},), {}, ["HistogramStandardization"]),
    "Lambda": ((_double,), {}, ["Lambda"]),
    "EnsureShapeMultiple": ((8,), {}, ["Pad"]),
    "Transpose": ((), {}, ["Transpose"]),
    "ToOrientation": (("LPS",), {}, ["ToOrientation"]),
    "CopyAffine": (("t1",), {}, ["CopyAffine"]),
    "KeepLargestComponent": ((), {}, ["KeepLargestComponent"]),
    "Contour": ((), {}, ["Contour"]),
    "To": ((torch.float64,), {}, ["To"]),
    "Flip": ((0,), {}, ["Flip"]),
}
# Where torchpatch records another name than TorchIO (both not invertible).
RECORD_DIFFERENCES = {"Resize": "torchpatch records Resize; TorchIO records the Resample it runs (both not invertible)"}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_records_and_inverse_as_torchio(name: str) -> None:
    tio = pytest.importorskip("torchio")
    args, kwargs, expected = TRANSFORMS[name]
    subject = _subject()
    theirs_in = tio.Subject(t1=tio.ScalarImage(tensor=subject.t1.data), seg=tio.LabelMap(tensor=subject.seg.data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(tio, name)(*args, **kwargs)(theirs_in)
        ours = getattr(tp, name)(*args, **kwargs)(subject)
    assert [n for n, _ in theirs.applied_transforms] == expected
    assert [n for n, _ in ours.applied_transforms] == expected
    if not isinstance(getattr(tp, name)(*args, **kwargs), RandomTransform):  # Flip: the values it applied
        for (_, their_args), (_, our_args) in zip(theirs.applied_transforms, ours.applied_transforms, strict=True):
            assert set(their_args) <= set(our_args)  # ours may have more (keyword extensions)
    torch.testing.assert_close(ours.t1.data.double(), theirs.t1.data.double(), atol=1e-5, rtol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        their_back = theirs.apply_inverse_transform(warn=False)
        our_back = ours.apply_inverse_transform(warn=False)
    for key in ("t1", "seg"):
        assert our_back[key].shape == their_back[key].shape, key
        torch.testing.assert_close(our_back[key].data.double(), their_back[key].data.double(), atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(our_back[key].affine, their_back[key].affine, atol=1e-6)
    assert our_back["history"] == []


@pytest.mark.parametrize("name", [*TRANSFORMS, "Resize"])
def test_the_records_rebuild_transforms_that_give_the_same_voxels(name: str) -> None:
    if name == "Resize":
        transform = tp.Resize(8)
    else:
        args, kwargs, _ = TRANSFORMS[name]
        transform = getattr(tp, name)(*args, **kwargs)
    subject = _subject()
    out = transform(subject)
    replayed = out.get_composed_history()(subject)
    for key in ("t1", "seg"):
        assert torch.equal(replayed[key].data, out[key].data), key
        np.testing.assert_array_equal(replayed[key].affine, out[key].affine)
    assert replayed["history"] == out["history"]


def test_a_prediction_added_after_crop_or_pad_comes_back_to_the_input_grid_as_in_torchio() -> None:
    tio = pytest.importorskip("torchio")
    subject = _subject()
    preprocess = [tp.ToCanonical(), tp.CropOrPad((16, 8, 20)), tp.ZNormalization()]
    theirs_pre = tio.Compose([tio.ToCanonical(), tio.CropOrPad((16, 8, 20)), tio.ZNormalization()])
    ours = tp.Compose(preprocess)(subject)
    theirs = theirs_pre(tio.Subject(t1=tio.ScalarImage(tensor=subject.t1.data)))
    prediction = (ours.t1.data > 0).to(torch.uint8)
    ours.add_image(LabelMap(tensor=prediction, affine=ours.t1.affine), "prediction")
    theirs.add_image(tio.LabelMap(tensor=prediction, affine=theirs.t1.affine), "prediction")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        their_back = theirs.apply_inverse_transform(warn=False)
    our_back = ours.apply_inverse_transform(warn=False)
    assert our_back.prediction.shape == their_back.prediction.shape == (1, 10, 12, 14)
    assert torch.equal(our_back.prediction.data, their_back.prediction.data)
    np.testing.assert_array_equal(our_back.prediction.affine, subject.t1.affine)


def test_the_inverse_warns_about_what_it_leaves_out() -> None:
    out = tp.Compose([tp.Pad(1), tp.Lambda(_double), tp.RemapLabels({1: 2, 3: 2})])(_subject())
    with pytest.warns(RuntimeWarning) as caught:
        back = out.apply_inverse_transform()
    messages = " | ".join(str(w.message) for w in caught)
    assert "RemapLabels has no inverse" in messages and "maps several labels onto one" in messages
    assert "Lambda cannot be inverted" in messages
    assert back.t1.shape == (1, 10, 12, 14)


def test_a_transform_records_what_it_ran_not_the_transforms_it_calls_inside() -> None:
    out = tp.Transpose()(_subject())
    assert [record["name"] for record in out["history"]] == ["Transpose"]
    out = tp.EnsureShapeMultiple(8)(_subject())
    assert [record["name"] for record in out["history"]] == ["Pad"]


def test_skipped_and_composed_transforms_record_nothing_of_their_own() -> None:
    assert "history" not in tp.Pad(1, p=0)(_subject())
    out = tp.Compose([tp.Pad(1), tp.OneOf([tp.Crop(1)])])(_subject())
    assert [record["name"] for record in out["history"]] == ["Pad", "Crop"]
    assert "history" not in tp.CropOrPad((10, 12, 14))(_subject())  # nothing to crop or pad, as TorchIO


def test_crop_or_pad_of_images_on_two_grids_records_each_grid_with_its_images() -> None:
    subject = Subject(a=ScalarImage(tensor=torch.rand(1, 6, 6, 6)), b=ScalarImage(tensor=torch.rand(1, 10, 6, 6)))
    out = tp.CropOrPad(8)(subject)
    records = [(r["name"], r["include"]) for r in out["history"]]
    assert records == [("Pad", ("a",)), ("Pad", ("b",)), ("Crop", ("b",))]
    back = out.apply_inverse_transform()
    assert back.a.shape == (1, 6, 6, 6) and back.b.shape == (1, 10, 6, 6)


def test_records_are_torchio_s_arguments() -> None:
    record = transform_record(tp.Pad(2, padding_mode="edge", include=["t1"]))
    assert record == {
        "name": "Pad",
        "include": ("t1",),
        "exclude": None,
        "copy": True,
        "padding": 2,
        "padding_mode": "edge",
    }
    assert reproducing_arguments(tp.Clamp(0, 1)) == {
        "include": None,
        "exclude": None,
        "copy": True,
        "out_min": 0,
        "out_max": 1,
    }
    # p and keep are left out: a record replays what ran.
    assert "p" not in transform_record(tp.Pad(1, p=0.5))


def test_torchio_style_subclass_is_recorded_and_rebuilt() -> None:
    class Shift(tp.IntensityTransform):
        def __init__(self, shift: float, **kwargs: object) -> None:
            super().__init__(**kwargs)
            self.shift = shift
            self.args_names = ["shift"]

        def apply_transform(self, subject: Subject) -> Subject:
            for image in self.get_images(subject):
                image.set_data(image.data + self.shift)
            return subject

    out = Shift(3.0)(_subject())
    assert out.applied_transforms == [("Shift", {"include": None, "exclude": None, "copy": True, "shift": 3.0})]
    assert torch.equal(out.get_composed_history()(_subject()).t1.data, out.t1.data)


def test_add_history_after_another_subject_replaces_inner_records() -> None:
    subject = add_history(_subject(), {"name": "Pad", "padding": 1})
    inner = add_history(subject, {"name": "Crop", "cropping": 1})
    out = add_history(inner, {"name": "CropOrPad", "target_shape": 3}, after=subject)
    assert [r["name"] for r in out["history"]] == ["Pad", "CropOrPad"]


def test_a_lambda_record_crosses_processes_as_a_placeholder_that_raises_when_replayed() -> None:
    out = tp.Lambda(lambda x: x + 1)(_subject())
    record = out["history"][0]
    assert isinstance(record["function"], RecordedFunction)
    sent = pickle.loads(pickle.dumps(out))
    assert isinstance(sent["history"][0]["function"], UnsentFunction)
    with pytest.raises(RuntimeError, match="could not be pickled"):
        sent.get_composed_history()(_subject())
    # A module-level function travels as itself and replays.
    sent = pickle.loads(pickle.dumps(tp.Lambda(_double)(_subject())))
    assert torch.equal(sent.get_composed_history()(_subject()).t1.data, _subject().t1.data * 2)


def test_records_with_lambdas_travel_through_queue_workers() -> None:
    subjects = [_subject() for _ in range(2)]
    dataset = tp.SubjectsDataset(subjects, transform=tp.Compose([tp.Lambda(lambda x: x * 2), tp.Pad(1)]))
    queue = tp.Queue(dataset, max_length=4, samples_per_volume=2, sampler=tp.UniformSampler(4), num_workers=2)
    batch = next(iter(tp.SubjectsLoader(queue, batch_size=2)))
    names = [[record["name"] for record in row] for row in batch["history"]]
    assert names == [["Lambda", "Pad"], ["Lambda", "Pad"]]


def test_deep_copies_keep_the_function() -> None:
    import copy

    out = tp.Lambda(lambda x: x + 1)(_subject())
    copied = copy.deepcopy(out)
    assert copied["history"][0]["function"](1) == 2


def test_unknown_record_arguments_are_named() -> None:
    subject = add_history(_subject(), {"name": "Pad", "nonsense": 1})
    with pytest.raises(ValueError, match=r"history record 0 of subject .* \(Pad\) does not rebuild"):
        subject.get_applied_transforms()


def test_batched_augmentation_records_the_transforms_that_are_not_random_too() -> None:
    from torchpatch.transforms import BatchTransform

    subjects = [Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8) + i)) for i in range(2)]
    batch = tp.collate_subjects(subjects)
    out = BatchTransform(tp.Compose([tp.RandomFlip(), tp.ZNormalization(), tp.Clamp(-1, 1)]), patch_size=8)(batch)
    assert [[record["name"] for record in row] for row in out["history"]] == [
        ["RandomFlip", "ZNormalization", "Clamp"]
    ] * 2
