"""Plots: figures returned and saved, 2D orientation as the PNG, overlays, grid rectangles, annotations."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk
import torch

import torchpatch.viz as viz
from torchpatch import BoundingBoxes, LabelMap, Points, ScalarImage, Subject
from torchpatch.sampler.grid import GridSampler


@pytest.fixture
def mpl() -> Any:
    return pytest.importorskip("matplotlib")


def _bright_pixel_image() -> ScalarImage:
    """8 columns (I, x) by 6 rows (J, y); one bright pixel at column 5, row 2."""
    data = torch.zeros(1, 8, 6, 1)
    data[0, 5, 2, 0] = 1.0
    return ScalarImage(tensor=data)


def test_each_function_returns_a_figure_and_saves_a_png(mpl: Any, tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    image = _bright_pixel_image()
    boxes = BoundingBoxes([[1, 1, 4, 3]], "xyxy", (8, 6))
    figures = {
        "slice": viz.plot_slice(image, path=tmp_path / "slice.png"),
        "grid": viz.plot_grid(image, 4, path=tmp_path / "grid.png"),
        "annotations": viz.plot_annotations(image, boxes, path=tmp_path / "annotations.png"),
    }
    for name, figure in figures.items():
        assert isinstance(figure, Figure)
        saved = tmp_path / f"{name}.png"
        assert saved.stat().st_size > 0 and saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_2d_image_is_shown_as_its_png_column_along_x_row_down(mpl: Any, tmp_path: Path) -> None:
    rows = np.zeros((6, 8), np.uint8)  # numpy/PNG layout: (rows, columns)
    rows[2, 5] = 255
    sitk.WriteImage(sitk.GetImageFromArray(rows), str(tmp_path / "dot.png"))
    image = ScalarImage(tmp_path / "dot.png")
    assert image.data[0, 5, 2, 0] == 255  # I = column (x), J = row (y)
    axes = viz.plot_slice(image).axes[0]
    shown = axes.images[0]
    array = np.asarray(shown.get_array())
    assert array.shape == (6, 8) and array[2, 5] == 255 and int((array > 0).sum()) == 1
    assert tuple(shown.get_extent()) == (0, 8, 6, 0)  # pixel (5, 2) covers x in [5, 6), y in [2, 3)
    assert axes.get_xlim() == (0, 8) and axes.get_ylim() == (6, 0)  # y grows downwards


def test_rgb_image_is_shown_in_colour(mpl: Any) -> None:
    data = torch.zeros(3, 8, 6, 1, dtype=torch.uint8)
    data[0, 5, 2, 0] = 200  # red at column 5, row 2
    array = np.asarray(viz.plot_slice(ScalarImage(tensor=data)).axes[0].images[0].get_array())
    assert array.shape == (6, 8, 3) and array[2, 5].tolist() == [200, 0, 0]
    one = np.asarray(viz.plot_slice(ScalarImage(tensor=data), channel=0).axes[0].images[0].get_array())
    assert one.shape == (6, 8) and one[2, 5] == 200


def test_slices_across_k_show_k_upwards(mpl: Any) -> None:
    data = torch.zeros(1, 4, 5, 6)
    data[0, 1, 3, 4] = 1.0
    shown = viz.plot_slice(ScalarImage(tensor=data), axis=0, index=1).axes[0].images[0]
    array = np.asarray(shown.get_array())
    assert array.shape == (6, 5) and array[4, 3] == 1.0  # rows along K, columns along J
    assert shown.origin == "lower" and tuple(shown.get_extent()) == (0, 5, 0, 6)
    assert viz.plot_slice(ScalarImage(tensor=data), axis=1, index=3).axes[0].get_title() == "J = 3"


def test_label_overlay_is_masked_on_background_and_coloured_per_class(mpl: Any) -> None:
    labels = torch.zeros(1, 8, 6, 1, dtype=torch.uint8)
    labels[0, 1:3, 0:2] = 1
    labels[0, 6, 5] = 2
    subject = Subject(photo=ScalarImage(tensor=torch.rand(1, 8, 6, 1)), seg=LabelMap(tensor=labels))
    _, overlay = viz.plot_slice(subject, label="seg", alpha=0.4).axes[0].images
    array = overlay.get_array()
    np.testing.assert_array_equal(np.ma.getmaskarray(array), (labels[0, :, :, 0] == 0).numpy().T)
    assert overlay.get_alpha() == 0.4
    tab10 = mpl.colormaps["tab10"]
    assert overlay.to_rgba(2)[:3] == tab10(2)[:3] and overlay.to_rgba(1)[:3] == tab10(1)[:3]
    same = viz.plot_slice(subject["photo"], label=subject["seg"]).axes[0].images[1].get_array()
    np.testing.assert_array_equal(np.ma.getmaskarray(same), np.ma.getmaskarray(array))


def test_plot_grid_draws_the_grid_sampler_locations(mpl: Any) -> None:
    image = ScalarImage(tensor=torch.rand(1, 11, 8, 1))
    sampler = GridSampler(Subject(image=image), 4, 1)
    axes = viz.plot_grid(image, 4, patch_overlap=1).axes[0]
    drawn = sorted((p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in axes.patches)
    expected = sorted((i0, j0, i1 - i0, j1 - j0) for i0, j0, _, i1, j1, _ in sampler.locations.tolist())
    assert drawn == expected and len(drawn) == 4 * 3  # I starts 0, 3, 6, 7; J starts 0, 3, 4
    padded = viz.plot_grid(image, 4, patch_overlap=2, padding_mode=0).axes[0]
    assert min(p.get_x() for p in padded.patches) == -1 and padded.get_xlim()[0] == -1


def test_plot_grid_on_a_volume_draws_the_patches_crossing_the_slice(mpl: Any) -> None:
    image = ScalarImage(tensor=torch.rand(1, 8, 8, 8))
    axes = viz.plot_grid(image, (4, 4, 3), index=2).axes[0]  # K starts 0, 3, 5: only the first crosses k = 2
    assert len(axes.patches) == 4
    assert len(viz.plot_grid(image, (4, 4, 3), index=5).axes[0].patches) == 8  # k = 5 is in [3, 6) and [5, 8)


def test_plot_annotations_draws_boxes_and_points_where_they_are(mpl: Any, tmp_path: Path) -> None:
    image = _bright_pixel_image()
    boxes = BoundingBoxes(
        [[1, 1, 4, 3], [5, 2, 6, 3]], "xyxy", (8, 6), class_ids=[0, 3], class_names={0: "leaf", 3: "bud"}
    )
    points = Points([[5.5, 2.5], [0.5, 0.5]], (8, 6))
    subject = Subject(photo=image, boxes=boxes, points=points)
    axes = viz.plot_annotations(subject, "boxes", "points", path=tmp_path / "a.png").axes[0]
    rectangles = [(p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in axes.patches]
    assert rectangles == [(1.0, 1.0, 3.0, 2.0), (5.0, 2.0, 1.0, 1.0)]  # the second one frames the bright pixel
    assert [t.get_text() for t in axes.texts] == ["leaf", "bud"]
    tab10 = mpl.colormaps["tab10"]
    assert axes.patches[1].get_edgecolor()[:3] == tab10(3)[:3]
    assert axes.collections[0].get_offsets().tolist() == [[5.5, 2.5], [0.5, 0.5]]
    assert axes.get_xlim() == (0, 8) and axes.get_ylim() == (6, 0)


def test_plot_annotations_on_a_volume_shows_the_objects_of_the_slice(mpl: Any) -> None:
    image = ScalarImage(tensor=torch.rand(1, 8, 8, 8))
    boxes = BoundingBoxes([[0, 0, 0, 2, 2, 3], [4, 4, 3, 8, 8, 8]], "xyzxyz", (8, 8, 8))
    points = Points([[1.0, 1.0, 2.5], [6.0, 6.0, 6.9]], (8, 8, 8))
    axes = viz.plot_annotations(image, boxes, points, index=2).axes[0]
    assert len(axes.patches) == 1 and axes.collections[0].get_offsets().tolist() == [[1.0, 1.0]]
    across = viz.plot_annotations(image, boxes, points, axis=0, index=5).axes[0]
    assert [(p.get_x(), p.get_y()) for p in across.patches] == [(4.0, 3.0)]  # (J, K) corner, K upwards


def test_draws_into_given_axes(mpl: Any) -> None:
    from matplotlib.figure import Figure

    figure = Figure()
    left, right = figure.subplots(1, 2)
    assert viz.plot_slice(_bright_pixel_image(), ax=right) is figure
    assert len(right.images) == 1 and len(left.images) == 0


def test_bad_arguments_raise_clear_errors(mpl: Any) -> None:
    image = _bright_pixel_image()
    with pytest.raises(ValueError, match=r"index must be an int in \[0, 1\) along axis K"):
        viz.plot_slice(image, index=3)
    with pytest.raises(ValueError, match="axis must be 0"):
        viz.plot_slice(image, axis=3)
    with pytest.raises(ValueError, match=r"label map has spatial shape \(4, 6, 1\)"):
        viz.plot_slice(image, label=LabelMap(tensor=torch.zeros(1, 4, 6, 1)))
    with pytest.raises(ValueError, match="subject_or_image must be a Subject"):
        viz.plot_slice(image, label="seg")
    with pytest.raises(ValueError, match=r"boxes live on a canvas of spatial shape \(4, 4, 1\)"):
        viz.plot_annotations(image, BoundingBoxes([[0, 0, 1, 1]], "xyxy", (4, 4)))
    with pytest.raises(TypeError, match="must be a Subject, an Image or a"):
        viz.plot_grid([1, 2], 4)


def test_missing_matplotlib_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    module = importlib.reload(viz)  # importing torchpatch.viz itself never needs matplotlib
    image = _bright_pixel_image()
    calls = (
        lambda: module.plot_slice(image),
        lambda: module.plot_grid(image, 4),
        lambda: module.plot_annotations(image),
    )
    for call in calls:
        with pytest.raises(ImportError, match=r"needs matplotlib.*pip install torchpatch\[plot\]"):
            call()
