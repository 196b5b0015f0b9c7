"""The Queue's worker side (queue/cutting.py): compressed volumes cut without a pass to reorder them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, LabelSampler, ScalarImage, Subject, SubjectsDataset, UniformSampler, io
from torchpatch.queue.cutting import SubjectPatches
from torchpatch.queue.plan import Task


def _subjects(folder, shape=(40, 36, 30)):
    """One subject written as ``.nii.gz`` files, and the same subject made from its tensors."""
    rng = np.random.default_rng(1)
    image = rng.integers(-500, 500, (1, *shape), dtype=np.int16)
    label = rng.integers(0, 3, (1, *shape), dtype=np.uint8)
    io.write_image(image, np.eye(4), folder / "t1.nii.gz")
    io.write_image(label, np.eye(4), folder / "seg.nii.gz")
    files = Subject(t1=ScalarImage(folder / "t1.nii.gz"), seg=LabelMap(folder / "seg.nii.gz"), subject_id="a")
    tensors = Subject(
        t1=ScalarImage(tensor=torch.from_numpy(image)), seg=LabelMap(tensor=torch.from_numpy(label)), subject_id="a"
    )
    return files, tensors


@pytest.mark.parametrize("sampler", [UniformSampler(16), LabelSampler(16, "seg")], ids=["uniform", "label"])
def test_a_worker_cuts_compressed_volumes_without_reordering_them(tmp_path, monkeypatch, sampler):
    files, tensors = _subjects(tmp_path)
    reordered = []
    c_order = io.c_order
    monkeypatch.setattr(io, "c_order", lambda array, *a, **k: reordered.append(array.shape) or c_order(array, *a, **k))
    task = Task(0, seed=5, num_patches=6)
    cut = SubjectPatches(SubjectsDataset([files]), sampler, None)[task]
    expected = SubjectPatches(SubjectsDataset([tensors]), sampler, None)[task]
    for name in ("t1", "seg"):
        assert torch.equal(cut.data[name], expected.data[name])
    # Uniform patches come straight out of the decoded bytes; the label sampler reads the label map whole.
    assert reordered == ([] if isinstance(sampler, UniformSampler) else [(1, 40, 36, 30)])
