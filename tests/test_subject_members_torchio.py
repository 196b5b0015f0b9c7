"""TorchIO's remaining Subject members against TorchIO 1.x's own (skipped without TorchIO).

The same calls on the same subject in both libraries give the same values,
except where the history records differ by design: torchpatch's random
transforms record themselves with the parameters they drew
(``('RandomFlip', {'axes': [0]})``), TorchIO's the deterministic transform
they built (``('Flip', {'axes': (0,), ...})``); both replay to the same
voxels.
"""

from __future__ import annotations

import pytest
import torch

import torchpatch as tp

tio = pytest.importorskip("torchio")


def _subject(module):
    return module.Subject(
        t1=module.ScalarImage(tensor=torch.arange(24.0).reshape(1, 4, 3, 2)),
        seg=module.LabelMap(tensor=(torch.arange(24).reshape(1, 4, 3, 2) % 3).to(torch.uint8)),
        age=40,
    )


@pytest.fixture
def pair():
    return _subject(tp), _subject(tio)


def test_typed_lookups_as_torchio(pair) -> None:
    for subject in pair:
        assert subject.get_scalar_image("t1") is subject["t1"]
        assert subject.get_label_map("seg") is subject["seg"]
        with pytest.raises(TypeError):
            subject.get_scalar_image("seg")
        with pytest.raises(TypeError):
            subject.get_label_map("t1")
        with pytest.raises(KeyError):  # torchpatch's ImageNotFoundError is a KeyError too
            subject.get_label_map("t2")


def test_copy_as_torchio(pair) -> None:
    ours, theirs = (subject.copy() for subject in pair)
    assert type(ours) is type(theirs) is dict
    assert list(ours) == list(theirs) == ["t1", "seg", "age"]
    assert torch.equal(ours["t1"].data, theirs["t1"].data) and ours["age"] == theirs["age"]


def test_dir_lists_the_keys_as_torchio(pair) -> None:
    for subject in pair:
        names = set(dir(subject))
        assert {"t1", "seg", "age", "applied_transforms", "history", "get_label_map"} <= names


def test_update_attributes_as_torchio(pair) -> None:
    for module, subject in zip((tp, tio), pair, strict=True):
        image = module.ScalarImage(tensor=torch.ones(1, 4, 3, 2))
        subject["t2"] = image
        subject.update_attributes()
        assert subject.t2 is image


def test_a_new_subject_has_no_history_in_both(pair) -> None:
    for subject in pair:
        assert subject.applied_transforms == [] and subject.history == []


def test_add_transform_records_and_replays_as_torchio(pair) -> None:
    ours, theirs = pair
    ours.add_transform(tp.Flip(axes=(1,)), {"axes": (1,)})
    theirs.add_transform(tio.Flip(axes=(1,)), {"axes": (1,)})
    assert ours.applied_transforms == theirs.applied_transforms == [("Flip", {"axes": (1,)})]
    assert [type(replay.transform).__name__ for replay in ours.history] == [type(t).__name__ for t in theirs.history]
    our_replay, their_replay = ours.history[0](ours), theirs.history[0](theirs)
    assert torch.equal(our_replay.t1.data, their_replay.t1.data)
    assert torch.equal(our_replay.seg.data.long(), their_replay.seg.data.long())
    our_inverse, their_inverse = ours.apply_inverse_transform(), theirs.apply_inverse_transform()
    assert torch.equal(our_inverse.t1.data, their_inverse.t1.data)
    assert our_inverse.applied_transforms == their_inverse.applied_transforms == []


def test_random_transform_history_replays_to_the_same_voxels(pair) -> None:
    ours, theirs = (
        module.RandomFlip(axes=(0, 2), flip_probability=1)(subject)
        for module, subject in zip((tp, tio), pair, strict=True)
    )
    assert torch.equal(ours.t1.data, theirs.t1.data)
    # The records differ by design (see the module docstring) ...
    assert ours.applied_transforms == [("RandomFlip", {"axes": [0, 2]})]
    assert theirs.applied_transforms[0][0] == "Flip" and tuple(theirs.applied_transforms[0][1]["axes"]) == (0, 2)
    # ... and replay to the same voxels.
    original = pair
    replayed = [subject.history[0](start) for subject, start in zip((ours, theirs), original, strict=True)]
    assert torch.equal(replayed[0].t1.data, replayed[1].t1.data)
    assert torch.equal(replayed[0].t1.data, ours.t1.data)


def test_fromkeys_always_fails_in_torchio() -> None:
    with pytest.raises(TypeError):
        tio.Subject.fromkeys(["t1"])  # calls Subject() with no image
    assert not hasattr(tp.Subject, "fromkeys")
