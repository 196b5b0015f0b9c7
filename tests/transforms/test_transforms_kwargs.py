"""TorchIO's common keywords (p, copy, keep, ...) on the preprocessing transforms, one class per module."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.transforms import (
    Clamp,
    Contour,
    HistogramStandardization,
    KeepLargestComponent,
    OneHot,
    RemoveLabels,
    To,
    ToCanonical,
    ToOrientation,
    ToReferenceSpace,
    Transform,
    Transpose,
)


def _subject() -> Subject:
    seg = torch.zeros(1, 5, 5, 5, dtype=torch.uint8)
    seg[0, :3, :3, :3] = 1  # a block with an inside (Contour) ...
    seg[0, 4, 4, 4] = 1  # ... and a smaller component (KeepLargestComponent)
    seg[0, 4, 0, 0] = 2  # a label to remove (RemoveLabels)
    return Subject(
        t1=ScalarImage(tensor=torch.arange(125.0).reshape(1, 5, 5, 5), affine=np.diag([-1.0, -1.0, 1.0, 1.0])),
        seg=LabelMap(tensor=seg),
    )


_LANDMARKS = np.linspace(0.0, 100.0, 13)

# One transform per module, each changing the image it is applied to.
FACTORIES: dict[str, Callable[..., Transform]] = {
    "label.OneHot": lambda **kw: OneHot(include="seg", **kw),
    "label.KeepLargestComponent": lambda **kw: KeepLargestComponent(include="seg", **kw),
    "misc.Clamp": lambda **kw: Clamp(0, 20, **kw),
    "histogram.HistogramStandardization": lambda **kw: HistogramStandardization({"t1": _LANDMARKS}, **kw),
    "orientation.ToOrientation": lambda **kw: ToOrientation("LAS", **kw),
    "orientation.ToCanonical": lambda **kw: ToCanonical(**kw),
    "label_extra.RemoveLabels": lambda **kw: RemoveLabels([2], include="seg", **kw),
    "label_extra.Contour": lambda **kw: Contour(include="seg", **kw),
    "reference.To": lambda **kw: To(torch.float64, **kw),
    "reference.Transpose": lambda **kw: Transpose(**kw),
    "reference.ToReferenceSpace": lambda **kw: ToReferenceSpace(
        ScalarImage(tensor=torch.zeros(1, 2, 2, 2), affine=np.diag([2.0, 2.0, 2.0, 1.0])), **kw
    ),
}


def _same(a: Subject, b: Subject) -> bool:
    return all(
        a[name].data.dtype == b[name].data.dtype
        and torch.equal(a[name].data, b[name].data)
        and np.array_equal(a[name].affine, b[name].affine)
        for name in b
    )


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_p_zero_leaves_the_input_unchanged(name: str) -> None:
    subject = _subject()
    assert not _same(FACTORIES[name]()(subject), subject), "the test transform must change the subject"
    assert _same(FACTORIES[name](p=0)(subject), subject)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_keep_adds_the_original_image(name: str) -> None:
    subject = _subject()
    out = FACTORIES[name](keep={"t1": "t1_orig"})(subject)
    assert torch.equal(out.t1_orig.data, subject.t1.data)
    assert isinstance(out.t1_orig, ScalarImage)
    skipped = FACTORIES[name](p=0, keep={"t1": "t1_orig"})(subject)
    assert torch.equal(skipped.t1_orig.data, subject.t1.data)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_other_torchio_keywords_are_taken(name: str) -> None:
    transform = FACTORIES[name](copy=True, parse_input=True, label_keys=("seg",))
    assert (transform.copy, transform.parse_input, transform.label_keys) == (True, True, ("seg",))


def test_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="probability"):
        Clamp(0, 1, probability=0.5)  # type: ignore[call-arg]


def test_bad_p_names_it() -> None:
    with pytest.raises(ValueError, match="p"):
        OneHot(p=2.0)


def test_to_canonical_takes_torchio_orientation() -> None:
    subject = _subject()
    assert ToCanonical()(subject).t1.orientation == ("R", "A", "S")
    lps = ToCanonical(orientation="LPS")(subject).t1
    assert lps.orientation == ("L", "P", "S")
    assert torch.equal(lps.data, ToOrientation("LPS")(subject).t1.data)
    assert ToCanonical("las")(subject).t1.orientation == ("L", "A", "S")
    assert repr(ToCanonical()) == "ToCanonical()"
    assert repr(ToCanonical("LPS")) == "ToCanonical(orientation='LPS')"
    with pytest.raises(ValueError, match=r"orientation.*'RA'"):
        ToCanonical("RA")
