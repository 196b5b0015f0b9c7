"""TorchIO's consistency checks of a subject (torchpatch/subject_checks.py), against TorchIO where installed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.geometry import LPS_TO_RAS

SHIFTED = np.diag([1.0, 1.0, 1.0, 1.0])
SHIFTED[0, 3] = 1e-3

# (second image's shape, its affine, checks that must raise)
CASES = {
    "same": ((4, 4, 3), np.eye(4), []),
    "tiny affine difference": ((4, 4, 3), np.diag([1.0, 1.0, 1.0 + 1e-9, 1.0]), []),
    "shape": ((4, 5, 3), np.eye(4), ["spatial_shape"]),
    "shifted": ((4, 4, 3), SHIFTED, ["affine"]),
    "lps": ((4, 4, 3), LPS_TO_RAS, ["affine", "orientation"]),
}


def _pair(module, shape, affine):
    return module.Subject(
        t1=module.ScalarImage(tensor=torch.zeros(1, 4, 4, 3)),
        seg=module.LabelMap(tensor=torch.zeros(1, *shape, dtype=torch.uint8), affine=affine),
    )


@pytest.mark.parametrize("case", list(CASES))
def test_raise_where_torchio_raises(case) -> None:
    import torchpatch

    shape, affine, failing = CASES[case]
    subjects = [_pair(torchpatch, shape, affine)]
    try:  # the same checks on TorchIO's subjects, where it is installed
        import torchio
    except ImportError:
        torchio = None
    if torchio is not None:
        subjects.append(_pair(torchio, shape, affine))
    for subject in subjects:
        for check in ("spatial_shape", "affine", "orientation"):
            method = getattr(subject, f"check_consistent_{check}")
            if check in failing:
                with pytest.raises(RuntimeError):
                    method()
            else:
                method()


def test_the_error_names_the_subject_the_images_and_their_values() -> None:
    subject = Subject(
        t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 3)),
        seg=LabelMap(tensor=torch.zeros(1, 4, 5, 3, dtype=torch.uint8)),
        subject_id="sub-7",
    )
    with pytest.raises(RuntimeError, match=r"'spatial_shape' among the images of subject 'sub-7': 't1': \(4, 4, 3\), "):
        subject.check_consistent_spatial_shape()
    with pytest.raises(RuntimeError, match=r"^shapes differ: 't1': \(4, 4, 3\), 'seg': \(4, 5, 3\)$"):
        subject.check_consistent_attribute("spatial_shape", message="shapes differ: {}")
    subject.check_consistent_attribute("spacing")
    spaced = Subject(
        a=ScalarImage(tensor=torch.zeros(1, 2, 2, 2), affine=np.diag([0.8, 0.8, 2.50000000000001, 1])),
        b=ScalarImage(tensor=torch.zeros(1, 2, 2, 2), affine=np.diag([0.8, 0.8, 2.49999999999999, 1])),
    )
    spaced.check_consistent_attribute("spacing")  # within the default tolerances, as in TorchIO's example
    with pytest.raises(RuntimeError, match="'spacing'"):
        spaced.check_consistent_attribute("spacing", relative_tolerance=0, absolute_tolerance=0)
