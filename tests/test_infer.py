"""infer(): one call from an image or subject to a stitched ScalarImage."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the usual name

from torchpatch import DATA, LOCATION, LabelMap, ScalarImage, Subject, SubjectsLoader
from torchpatch.inference import GridAggregator, GridSampler, infer


@pytest.fixture
def conv() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Conv3d(1, 3, kernel_size=3, padding=1)


@pytest.fixture
def image(exact_affine: np.ndarray) -> ScalarImage:
    return ScalarImage(tensor=torch.rand(1, 11, 10, 9, generator=torch.Generator().manual_seed(1)), affine=exact_affine)


def test_infer_on_an_image_returns_a_scalar_image_with_its_affine(conv, image) -> None:
    output = infer(conv, image, patch_size=6, patch_overlap=2, batch_size=3, progress=False)
    assert isinstance(output, ScalarImage)
    assert output.shape == (3, 11, 10, 9)
    np.testing.assert_array_equal(output.affine, image.affine)
    assert output.data.device.type == "cpu"


def test_crop_mode_with_enough_overlap_equals_the_whole_image_convolution(conv, image) -> None:
    # A 3x3x3 kernel needs one voxel of context: crop mode cuts overlaps of 2 in
    # their middle, so every kept voxel saw its full neighbourhood.
    output = infer(conv, image, patch_size=6, patch_overlap=2, overlap_mode="crop", progress=False)
    with torch.no_grad():
        expected = conv(image.data[None])[0]
    torch.testing.assert_close(output.data, expected, rtol=1e-5, atol=1e-6)


def _patch_mean(x: torch.Tensor) -> torch.Tensor:
    """A model whose output differs from patch to patch: each patch's mean."""
    return x.mean(dim=(2, 3, 4), keepdim=True).expand_as(x).clone()


@pytest.mark.parametrize(
    ("overlap_mode", "options"),
    [("crop", {"crop_mode": "torchio"}), ("hann", {"hann_mode": "torchio"}), ("crop", {}), ("hann", {})],
)
def test_crop_mode_and_hann_mode_reach_the_aggregator(image, overlap_mode, options) -> None:
    # Along I (11 voxels, patches of 6 every 4) the last patch is shifted back
    # to start at 5, so the crop cuts differ; the Hann windows differ wherever
    # patches overlap.
    output = infer(_patch_mean, image, 6, 2, batch_size=3, overlap_mode=overlap_mode, progress=False, **options)
    sampler = GridSampler(Subject(t1=image), 6, 2)
    aggregator = GridAggregator(sampler, overlap_mode, **options)
    for batch in SubjectsLoader(sampler, batch_size=3):
        aggregator.add_batch(_patch_mean(batch["t1"][DATA]), batch[LOCATION])
    assert torch.equal(output.data, aggregator.get_output_tensor())
    default = infer(_patch_mean, image, 6, 2, batch_size=3, overlap_mode=overlap_mode, progress=False)
    assert torch.equal(output.data, default.data) is (not options)


def test_unknown_crop_mode_or_hann_mode_fails_before_the_model_runs(image) -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the model ran")

    with pytest.raises(ValueError, match=r"crop_mode must be one of \('middle', 'torchio'\), got 'tio'"):
        infer(model, image, 6, 2, overlap_mode="crop", crop_mode="tio", progress=False)
    with pytest.raises(ValueError, match=r"hann_mode must be one of \('centred', 'torchio'\), got 'tio'"):
        infer(model, image, 6, 2, overlap_mode="hann", hann_mode="tio", progress=False)


def test_infer_on_a_subject_feeds_its_first_intensity_image(conv, image) -> None:
    labels = LabelMap(tensor=torch.zeros(1, 11, 10, 9, dtype=torch.uint8), affine=image.affine)
    subject = Subject(seg=labels, t1=image, t2=ScalarImage(tensor=image.data * 0, affine=image.affine), subject_id="s1")
    output = infer(conv, subject, 6, 2, progress=False)
    reference = infer(conv, image, 6, 2, progress=False)
    assert torch.equal(output.data, reference.data)
    named = infer(conv, subject, 6, 2, progress=False, image_name="t2")
    assert not torch.equal(named.data, reference.data)
    np.testing.assert_array_equal(named.affine, image.affine)


def test_an_identity_model_gives_back_the_image_in_every_mode(image) -> None:
    for mode in ("crop", "average", "hann", "gaussian"):
        output = infer(lambda x: x, image, (5, 4, 3), (1, 2, 1), overlap_mode=mode, progress=False)
        assert torch.equal(output.data, image.data), mode


def test_2d_images_smaller_than_the_patch_and_padding_modes(conv) -> None:
    model = torch.nn.Conv3d(3, 2, kernel_size=(3, 3, 1), padding=(1, 1, 0))
    rgb = ScalarImage(tensor=torch.rand(3, 7, 5, 1))
    output = infer(model, rgb, patch_size=8, patch_overlap=2, padding_mode="reflect", progress=False)
    assert output.shape == (2, 7, 5, 1)


def test_integer_images_are_given_to_the_model_as_float32() -> None:
    seen = []

    def model(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.dtype)
        return x

    image = ScalarImage(tensor=torch.arange(64, dtype=torch.int16).reshape(1, 4, 4, 4))
    output = infer(model, image, 2, overlap_mode="average", progress=False)
    assert set(seen) == {torch.float32}
    assert torch.equal(output.data, image.data.float())


def test_downsampling_models_get_a_scaled_affine() -> None:
    image = ScalarImage(tensor=torch.rand(1, 8, 8, 4), affine=np.diag([1.0, 2.0, 3.0, 1.0]))
    output = infer(lambda x: F.avg_pool3d(x, 2), image, 4, 2, overlap_mode="average", progress=False)
    assert output.shape == (1, 4, 4, 2)
    assert output.spacing == (2.0, 4.0, 6.0)
    # Output voxel 0 covers input voxels 0 and 1: its centre is at 0.5 of them.
    assert output.origin == (0.5, 1.0, 1.5)
    torch.testing.assert_close(output.data, F.avg_pool3d(image.data[None], 2)[0])


def test_the_model_runs_in_inference_mode_and_the_output_is_a_plain_tensor(image) -> None:
    modes = []

    def model(x: torch.Tensor) -> torch.Tensor:
        modes.append(torch.is_inference_mode_enabled())
        return x * 2

    output = infer(model, image, 6, 2, progress=False)
    assert all(modes)
    output.data.add_(1)


def test_models_that_keep_their_inputs_see_distinct_batches(image) -> None:
    kept = []

    def model(x: torch.Tensor) -> torch.Tensor:
        kept.append(x)
        return x

    infer(model, image, 6, 2, batch_size=2, progress=False)
    assert len(kept) > 1
    assert kept[0].data_ptr() != kept[1].data_ptr()
    assert not torch.equal(kept[0], kept[1])


def test_device_and_worker_options(conv, image) -> None:
    reference = infer(conv, image, 6, 2, progress=False)
    on_cpu = infer(conv, image, 6, 2, device="cpu", progress=False)
    with_worker = infer(conv, image, 6, 2, progress=False, num_workers=1)
    assert torch.equal(on_cpu.data, reference.data)
    assert torch.equal(with_worker.data, reference.data)


@pytest.mark.parametrize("mode", ["crop", "average", "hann", "gaussian"])
def test_a_cutting_thread_gives_the_one_thread_output(conv, image, mode, two_threads) -> None:
    # With more than one torch thread, every mode on the CPU cuts the next batch in a
    # thread (blending writes of small batches run on one torch thread: write_threads).
    seen, cutters = [], []

    def model(x: torch.Tensor) -> torch.Tensor:
        seen.append(threading.current_thread().name)
        cutters.extend(t.name for t in threading.enumerate() if t.name.startswith("torchpatch-infer"))
        return conv(x)

    threaded = infer(model, image, 6, 2, batch_size=3, overlap_mode=mode, progress=False)
    torch.set_num_threads(1)
    single = infer(conv, image, 6, 2, batch_size=3, overlap_mode=mode, progress=False)
    assert torch.equal(threaded.data, single.data)
    assert set(seen) == {threading.main_thread().name}  # the model itself stays in the caller's thread
    assert cutters


def test_a_model_error_midway_leaves_no_cutting_thread_behind(image, two_threads) -> None:
    calls = []

    def model(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        if len(calls) == 3:
            raise RuntimeError("model broke on its third batch")
        return x

    started = []

    def watch(x: torch.Tensor) -> torch.Tensor:
        started.extend(t.name for t in threading.enumerate() if t.name.startswith("torchpatch-infer"))
        return model(x)

    with pytest.raises(RuntimeError, match="third batch"):
        infer(watch, image, 6, 2, batch_size=2, overlap_mode="crop", progress=False)
    assert started  # the cutting thread did run
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("torchpatch-infer")]
    output = infer(lambda x: x, image, 6, 2, batch_size=2, overlap_mode="crop", progress=False)  # still usable
    assert torch.equal(output.data, image.data)


def test_progress_bar_goes_to_stderr(image, capsys) -> None:
    infer(lambda x: x, image, 6, 2, batch_size=4, progress=True)
    assert "inference" in capsys.readouterr().err
    infer(lambda x: x, image, 6, 2, batch_size=4, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batches_move_to_the_model_device(image) -> None:
    model = torch.nn.Conv3d(1, 2, 3, padding=1).cuda()
    output = infer(model, image, 6, 2, progress=False)
    assert output.data.device.type == "cpu"
    with torch.no_grad():
        expected = infer(model.cpu(), image, 6, 2, progress=False)
    torch.testing.assert_close(output.data, expected.data, rtol=1e-4, atol=1e-5)


def test_bad_arguments_are_named(conv, image) -> None:
    with pytest.raises(TypeError, match="subject_or_image must be a Subject or an Image, got Tensor"):
        infer(conv, image.data, 4, progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        infer(conv, image, 4, batch_size=0, progress=False)
    with pytest.raises(TypeError, match="model must be callable"):
        infer(None, image, 4, progress=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"model must return a tensor .* got tuple"):
        infer(lambda x: (x,), image, 4, progress=False)  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match="image_name is for subjects"):
        infer(conv, image, 4, image_name="t1", progress=False)
    subject = Subject(t1=image, subject_id="sub-7")
    with pytest.raises(ValueError, match=r"image_name 't2' is not an image of subject 'sub-7'; images: \['t1'\]"):
        infer(conv, subject, 4, image_name="t2", progress=False)
    labels_only = Subject(seg=LabelMap(tensor=torch.zeros(1, 4, 4, 4)), subject_id="sub-8")
    with pytest.raises(ValueError, match="subject 'sub-8' has no intensity image"):
        infer(conv, labels_only, 4, progress=False)


# Test-time mirroring -----------------------------------------------------------------------------


def test_mirroring_an_equivariant_model_changes_nothing_bit_for_bit() -> None:
    image = ScalarImage(tensor=torch.rand(1, 12, 10, 8))
    plain = infer(lambda x: x * 2, image, 6, 2, progress=False)
    mirrored = infer(lambda x: x * 2, image, 6, 2, mirror_axes=(0, 1, 2), progress=False)
    assert torch.equal(plain.data, mirrored.data)


def test_mirroring_averages_the_predictions_flipped_back() -> None:
    image = ScalarImage(tensor=torch.rand(1, 12, 10, 1))
    ramp = torch.arange(6.0).reshape(1, 1, 6, 1, 1)  # not flip-equivariant along I

    def biased(x: torch.Tensor) -> torch.Tensor:
        return x + ramp

    def averaged(x: torch.Tensor) -> torch.Tensor:
        return x + (ramp + ramp.flip(2)) / 2

    calls: list[int] = []

    def counting(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return biased(x)

    mirrored = infer(counting, image, (6, 5, 1), 0, mirror_axes=0, overlap_mode="crop", progress=False)
    expected = infer(averaged, image, (6, 5, 1), 0, overlap_mode="crop", progress=False)
    torch.testing.assert_close(mirrored.data, expected.data)
    assert len(calls) == 2  # one batch of the 4 patches, predicted plain and mirrored


@pytest.mark.parametrize(
    ("axes", "error", "match"),
    [
        (3, ValueError, r"mirror_axes must be distinct spatial axes among 0, 1, 2 \(I, J, K\), got 3"),
        ((0, 0), ValueError, r"distinct spatial axes.*\(0, 0\)"),
        ("I", TypeError, "mirror_axes must be None, an int or ints"),
        (True, TypeError, "mirror_axes must be None, an int or ints"),
        ((0, 1.0), TypeError, "mirror_axes must hold ints"),
    ],
)
def test_bad_mirror_axes_are_named(axes: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        infer(lambda x: x, ScalarImage(tensor=torch.rand(1, 4, 4, 4)), 4, mirror_axes=axes, progress=False)  # type: ignore[arg-type]


def test_mirroring_needs_floating_point_outputs() -> None:
    with pytest.raises(TypeError, match=r"must return floating-point outputs, got torch\.int64"):
        infer(lambda x: x.long(), ScalarImage(tensor=torch.rand(1, 4, 4, 4)), 4, mirror_axes=0, progress=False)


@pytest.mark.parametrize("mirror_axes", [None, (0,)])
def test_a_model_returning_fewer_outputs_than_patches_is_named(image, mirror_axes) -> None:
    def drops_one(batch: torch.Tensor) -> torch.Tensor:
        return batch[:-1]

    with pytest.raises(
        ValueError, match=r"returned 3 outputs for a batch of 4 patches \(input shape \(4, 1, 6, 6, 6\)"
    ):
        infer(drops_one, image, patch_size=6, batch_size=4, mirror_axes=mirror_axes, progress=False)
