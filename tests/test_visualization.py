"""TorchIO's visualization helpers: GIF frames, histogram bins, label colours, rotations, the external viewer."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, ScalarImage, visualization

pytest.importorskip("matplotlib")
PIL = pytest.importorskip("PIL.Image")


def _frames(path: Path) -> list[np.ndarray]:
    frames = []
    with PIL.open(path) as animation:
        for index in range(animation.n_frames):
            animation.seek(index)
            frames.append(np.asarray(animation.convert("RGB")))
        durations = animation.info.get("duration")
    assert durations is not None
    return frames


def _volume(channels: int = 1) -> torch.Tensor:
    i, j, k = torch.meshgrid(torch.arange(9.0), torch.arange(7.0), torch.arange(5.0), indexing="ij")
    volume = (i * 3 + j * 2 - k) + 4 * torch.sin(i * j / 5)
    return volume.expand(channels, -1, -1, -1) * torch.arange(1.0, channels + 1).reshape(-1, 1, 1, 1)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("rescale", "reverse"), [(True, False), (False, True)])
def test_gif_frames_are_torchio_frames(tmp_path: Path, axis: int, channels: int, rescale: bool, reverse: bool) -> None:
    tio = pytest.importorskip("torchio")
    data = _volume(channels) if rescale else _volume(channels).clamp(0, 255)
    arguments = {"rescale": rescale, "reverse": reverse}
    ScalarImage(tensor=data).to_gif(axis, 1.0, tmp_path / "ours.gif", **arguments)
    tio.ScalarImage(tensor=data).to_gif(axis, 1.0, tmp_path / "theirs.gif", **arguments)
    ours, theirs = _frames(tmp_path / "ours.gif"), _frames(tmp_path / "theirs.gif")
    assert len(ours) == len(theirs) == data.shape[1 + axis]
    for mine, peer in zip(ours, theirs):
        np.testing.assert_array_equal(mine, peer)


def test_gif_frame_rate_is_capped_with_a_warning(tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning, match="at most 100"):
        visualization.make_gif(_volume(), 0, 0.01, tmp_path / "fast.gif")
    with PIL.open(tmp_path / "fast.gif") as animation:
        assert animation.info["duration"] == visualization.SHORTEST_FRAME_MS
    with pytest.raises(ValueError, match="axis must be 0, 1 or 2"):
        visualization.make_gif(_volume(), 3, 1.0, tmp_path / "bad.gif")


def test_bins_colours_and_rotations_are_torchio_ones() -> None:
    tio_visualization = pytest.importorskip("torchio.visualization")
    rng = np.random.default_rng(0)
    for values in (rng.normal(size=1000), rng.gamma(2.0, size=333), np.arange(50.0)):
        assert visualization.get_num_bins(values) == tio_visualization.get_num_bins(values)
    slices = [rng.integers(0, 4, size=(5, 6, 1)) for _ in range(3)]
    colours = {1: (255, 0, 0), 2: "green", 3: "#0000ff"}
    for mine, peer in zip(visualization.color_labels(slices, colours), tio_visualization.color_labels(slices, colours)):
        np.testing.assert_array_equal(mine, peer)
    picture = rng.random((4, 6, 3))
    for n in (-1, 1, 2):
        for radiological in (True, False):
            np.testing.assert_array_equal(
                visualization.rotate(picture, n=n, radiological=radiological),
                tio_visualization.rotate(picture, n=n, radiological=radiological),
            )


def test_hist_draws_the_voxels_histogram() -> None:
    import matplotlib.pyplot as plt

    plt.close("all")
    image = ScalarImage(tensor=torch.arange(1000.0).reshape(1, 10, 10, 10))
    image.hist(show=False, density=True)
    axes = plt.gca()
    assert axes.get_xlabel() == "Intensity" and axes.get_ylabel() == "Density"
    assert len(axes.patches) == visualization.get_num_bins(np.arange(1000.0))
    plt.close("all")


def test_show_opens_the_viewer_with_the_image(tmp_path: Path) -> None:
    record = tmp_path / "opened.txt"
    viewer = tmp_path / "viewer.sh"
    viewer.write_text(f'#!/bin/sh\necho "$@" > {record}\n')
    viewer.chmod(viewer.stat().st_mode | stat.S_IEXEC)
    LabelMap(tensor=torch.ones(1, 3, 3, 3, dtype=torch.uint8)).show(viewer)
    for _ in range(100):  # the viewer runs in its own process
        if record.exists() and record.read_text().strip():
            break
        time.sleep(0.05)
    assert record.read_text().strip().endswith(".seg.nrrd")
    with pytest.raises(RuntimeError, match="give viewer_path or set SITK_SHOW_COMMAND"):
        ScalarImage(tensor=torch.zeros(1, 2, 2, 2)).show(tmp_path / "no-such-viewer")


def test_plot_functions_are_the_image_plot_ones() -> None:
    from torchpatch import image_plot

    assert visualization.plot_volume is image_plot.plot_volume
    assert visualization.plot_subject is image_plot.plot_subject
    mpl, plt = visualization.import_mpl_plt()
    assert mpl.__name__ == "matplotlib" and plt.__name__ == "matplotlib.pyplot"
