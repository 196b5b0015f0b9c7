"""HistogramStandardization and its training (Nyúl and Udupa), by hand and against TorchIO 1.2.1.

The TorchIO comparisons are skipped without it (run them in the benchmark
venv: ``.bench-venv-aug/bin/python -m pytest ...``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import torchpatch as tp
from torchpatch import LabelMap, ScalarImage, Subject
from torchpatch.io import write_image
from torchpatch.transforms import HistogramStandardization, train_histogram
from torchpatch.transforms.histogram import landmark_percentiles, standardize

RAMP = torch.arange(101.0).reshape(1, 101, 1, 1)


def _volumes(count=3) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    volumes = []
    for index in range(count):
        volume = torch.rand(1, 12, 10, 8, generator=generator) ** (index + 1) * (100 + 50 * index)
        volume[:, :3] = 0  # a background
        volumes.append(volume)
    return volumes


@pytest.fixture
def files(tmp_path) -> tuple[list[Path], list[Path]]:
    images, masks = [], []
    for index, volume in enumerate(_volumes()):
        images.append(tmp_path / f"t1_{index}.nii.gz")
        masks.append(tmp_path / f"mask_{index}.nii.gz")
        write_image(volume.numpy(), np.eye(4), images[-1])
        write_image((volume > 0).to(torch.uint8).numpy(), np.eye(4), masks[-1])
    return images, masks


def test_landmark_percentiles_are_cutoffs_deciles_and_quartiles():
    assert landmark_percentiles().tolist() == [1, 10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90, 99]
    assert landmark_percentiles((0.05, 0.95)).tolist()[::12] == [5, 95]


def test_training_on_one_ramp_stretches_its_percentiles_onto_0_100():
    # A ramp 0..100 has its p-th percentile at p; [1, 99] stretched onto [0, 100].
    landmarks = train_histogram([ScalarImage(tensor=RAMP)], progress=False)
    expected = (landmark_percentiles() - 1) * 100 / 98
    np.testing.assert_allclose(landmarks, expected)


def test_training_is_scale_invariant():
    one = train_histogram([ScalarImage(tensor=RAMP)], progress=False)
    scaled = train_histogram([ScalarImage(tensor=RAMP * 7 + 3), ScalarImage(tensor=RAMP * 0.5)], progress=False)
    np.testing.assert_allclose(one, scaled, atol=1e-9)


def test_standardizing_maps_the_percentiles_onto_the_landmarks_piecewise_linearly():
    landmarks = np.array([0, 5, 10, 12, 15, 20, 40, 60, 80, 85, 90, 95, 100], dtype=float)
    values = np.arange(101.0)
    out = standardize(values, landmarks)
    breakpoints = [0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12]  # the quartiles are not breakpoints
    np.testing.assert_allclose(out[landmark_percentiles()[breakpoints].astype(int)], landmarks[breakpoints], atol=1e-4)
    # Between breakpoints it is linear: halfway between the 50th and 60th percentile -> halfway between 40 and 60.
    assert out[55] == pytest.approx(50.0)
    assert out.dtype == np.float32


def test_transform_standardizes_scalar_images_and_leaves_labels():
    landmarks = {"t1": train_histogram([ScalarImage(tensor=RAMP)], progress=False)}
    seg = LabelMap(tensor=(RAMP > 50).to(torch.uint8))
    subject = Subject(t1=ScalarImage(tensor=(RAMP * 3 + 10).to(torch.int16)), seg=seg)
    out = HistogramStandardization(landmarks)(subject)
    assert out.seg is seg
    assert out.t1.dtype == torch.float32
    np.testing.assert_allclose(out.t1.data.flatten()[[1, 50, 99]].numpy(), [0.0, 50.0, 100.0], atol=1e-4)
    assert subject.t1.dtype == torch.int16  # the input is untouched


def test_mask_chooses_the_voxels_whose_percentiles_are_matched():
    landmarks = {"t1": train_histogram([ScalarImage(tensor=RAMP)], progress=False)}
    data = torch.cat([torch.zeros(1, 100, 1, 1), RAMP + 1], dim=1)  # half background
    subject = Subject(t1=ScalarImage(tensor=data), brain=LabelMap(tensor=(data > 0).to(torch.uint8)))
    unmasked = HistogramStandardization(landmarks)(subject).t1.data.flatten()
    masked = HistogramStandardization(landmarks, masking_method="brain")(subject).t1.data.flatten()
    assert masked[100 + 50] == pytest.approx(50.0, abs=1e-3)
    assert unmasked[100 + 50] != pytest.approx(50.0, abs=1)
    by_function = HistogramStandardization(landmarks, masking_method=lambda x: x > 0)(subject).t1.data
    torch.testing.assert_close(by_function.flatten(), masked)


def test_landmarks_load_from_npy_txt_and_pt_files(tmp_path):
    landmarks = train_histogram([ScalarImage(tensor=RAMP)], progress=False, output_path=tmp_path / "t1.npy")
    train_histogram([ScalarImage(tensor=RAMP)], progress=False, output_path=tmp_path / "t1.txt")
    assert (tmp_path / "t1.txt").read_text().startswith("image ")
    torch.save({"t1": landmarks}, tmp_path / "landmarks.pth")
    subject = Subject(t1=ScalarImage(tensor=RAMP * 2))
    expected = HistogramStandardization({"t1": landmarks})(subject).t1.data
    for source in ({"t1": tmp_path / "t1.npy"}, {"t1": str(tmp_path / "t1.txt")}, tmp_path / "landmarks.pth"):
        torch.testing.assert_close(HistogramStandardization(source)(subject).t1.data, expected)


def test_training_reads_files_with_masks(files):
    images, masks = files
    all_voxels = train_histogram(images, progress=False)
    masked = train_histogram(images, mask_path=masks, progress=False)
    by_function = train_histogram(images, masking_function=lambda x: x > 0, progress=False)
    np.testing.assert_allclose(masked, by_function)
    assert not np.allclose(all_voxels, masked)
    assert tp.HistogramStandardization.train is train_histogram or callable(tp.HistogramStandardization.train)


def test_errors_name_the_culprit(tmp_path, files):
    images, masks = files
    with pytest.raises(ValueError, match="13 finite values"):
        HistogramStandardization({"t1": np.arange(5)})
    with pytest.raises(ValueError, match=r"\.pt or \.pth"):
        HistogramStandardization(tmp_path / "landmarks.npy")
    with pytest.raises(TypeError, match="dict of image name"):
        HistogramStandardization(np.arange(13))
    transform = HistogramStandardization({"t2": np.arange(13.0)})
    with pytest.raises(KeyError, match=r"'t1'.*no landmarks"):
        transform(Subject(t1=ScalarImage(tensor=RAMP)))
    with pytest.raises(ValueError, match="one mask path per image"):
        train_histogram(images, mask_path=masks[:2], progress=False)
    with pytest.raises(ValueError, match=r"\.npy or \.txt"):
        train_histogram(images, output_path=tmp_path / "landmarks.csv", progress=False)
    with pytest.raises(ValueError, match="cutoff"):
        train_histogram(images, cutoff=(0.2, 0.8), progress=False)
    with pytest.raises(ValueError, match="cannot be stretched"):
        train_histogram([ScalarImage(tensor=torch.ones(1, 4, 4, 1))], progress=False)
    with pytest.raises(TypeError, match="sequence of image paths"):
        train_histogram(images[0], progress=False)


# Against TorchIO 1.2.1 (skipped without it) -------------------------------------------------------


@pytest.mark.parametrize("training", ["all", "cutoff", "masks", "one_mask", "function"])
def test_training_and_standardizing_match_torchio(files, training):
    tio = pytest.importorskip("torchio")
    images, masks = files
    arguments = {
        "all": {},
        "cutoff": {"cutoff": (0.05, 0.95)},
        "masks": {"mask_path": masks},
        "one_mask": {"mask_path": masks[0]},
        "function": {"masking_function": lambda x: x > x.mean()},
    }[training]
    ours = train_histogram(images, progress=False, **arguments)
    theirs = tio.HistogramStandardization.train(images, progress=False, **arguments)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    data = torch.as_tensor(tp.ScalarImage(images[1]).data)
    for masking_method in (None, "seg", "Left", lambda x: x > x.mean()):
        mine = HistogramStandardization({"t1": theirs}, masking_method=masking_method)(
            Subject(t1=ScalarImage(tensor=data), seg=LabelMap(masks[1]))
        ).t1.data
        other = tio.HistogramStandardization({"t1": theirs}, masking_method=masking_method)(
            tio.Subject(t1=tio.ScalarImage(tensor=data.clone()), seg=tio.LabelMap(masks[1]))
        ).t1.data
        assert mine.dtype == other.dtype
        torch.testing.assert_close(mine, other, rtol=0, atol=1e-5)
