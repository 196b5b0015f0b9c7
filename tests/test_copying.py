"""shallow_copy: copy.copy's result, without the pickle protocol for classes that define no hooks."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, ScalarImage
from torchpatch.copying import shallow_copy


class Plain:
    def __init__(self) -> None:
        self.values = [1, 2]
        self.name = "a"


class WithState(Plain):
    def __getstate__(self) -> dict[str, object]:
        return {"name": self.name}  # drops ``values`` from copies


class WithCopy(Plain):
    def __copy__(self) -> WithCopy:
        new = WithCopy()
        new.name = "copied"
        return new


class Slotted:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 3


def test_plain_object_gets_a_new_object_sharing_attributes():
    original = Plain()
    clone = shallow_copy(original)
    assert type(clone) is Plain and clone is not original
    assert clone.__dict__ == original.__dict__ and clone.values is original.values
    clone.name = "b"
    assert original.name == "a"


@pytest.mark.parametrize("cls", [WithState, WithCopy])
def test_classes_with_hooks_get_copy_copy(cls):
    original = cls()
    assert vars(shallow_copy(original)) == vars(copy.copy(original))


def test_objects_without_a_dict_get_copy_copy():
    clone = shallow_copy(Slotted())
    assert isinstance(clone, Slotted) and clone.value == 3


@pytest.mark.parametrize("cls", [ScalarImage, LabelMap])
def test_image_copies_as_copy_copy_does(cls):
    image = cls(tensor=torch.zeros(1, 2, 3, 4), affine=np.diag([2.0, 2.0, 2.0, 1.0]), modality="x")
    clone, reference = shallow_copy(image), copy.copy(image)
    assert type(clone) is cls and clone is not image
    assert vars(clone).keys() == vars(reference).keys()
    assert all(vars(clone)[key] is vars(reference)[key] for key in vars(reference))


def test_derived_image_is_independent_of_its_template():
    image = ScalarImage(tensor=torch.zeros(1, 2, 2, 2), modality="t1")
    patch = image.derive(torch.ones(1, 1, 1, 1), np.eye(4), checked=True)
    patch.metadata["modality"] = "changed"
    assert image.metadata["modality"] == "t1" and float(image.data.sum()) == 0.0
