"""Plots to check images, labels, patch grids and annotations by eye.

matplotlib is an optional dependency: ``pip install torchpatch[plot]``. It is
imported when a function is called, never with this module, and figures are
made with :class:`matplotlib.figure.Figure` directly (no pyplot, no global
state, no display needed), so plotting works in scripts, workers and
notebooks alike. Every function returns the figure and saves it when given
``path=``.

A slice shows two voxel axes, in voxel coordinates: voxel ``(a, b)`` covers
``[a, a + 1) x [b, b + 1)``, the convention of
:mod:`~torchpatch.annotations`, so boxes and points land on their voxels::

    axis=2 (2D images, axial slices)       axis=0 or 1 (across K)
    0 ---- I (x, column) ---->             K ^
    |                                        |
    J (y, row)   as a viewer shows           |   superior up in RAS+
    v            the PNG                     +---- J (axis=0) or I (axis=1) --->

Classes have fixed colours: class ``c`` takes colour ``c`` of ``label_cmap``
(``tab10``, modulo its length), in label overlays and annotations alike;
label 0 (background) is left transparent.
"""

# A little over the house's ~400 lines: one module for every plot, so the optional
# matplotlib dependency is imported in one place only.

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .annotations import BoundingBoxes, Points
from .image import Image, ScalarImage
from .sampler.grid import GridSampler
from .subject import Subject
from .typing import TypePath

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_AXIS_NAMES = ("I", "J", "K")
#: Colour of annotations without classes.
DEFAULT_COLOR = "yellow"


def _matplotlib() -> SimpleNamespace:
    """The few matplotlib pieces used here, or an ImportError saying how to install them."""
    try:
        import matplotlib
        from matplotlib.colors import ListedColormap
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle
    except ImportError as error:
        raise ImportError(
            "torchpatch.viz needs matplotlib, an optional dependency: pip install torchpatch[plot]"
        ) from error
    return SimpleNamespace(
        colormaps=matplotlib.colormaps, Figure=Figure, ListedColormap=ListedColormap, Rectangle=Rectangle
    )


# Inputs ---------------------------------------------------------------------------------------


def _as_image(source: Any, image_name: str | None, what: str = "image") -> Image:
    """An Image from a Subject (``image_name``, else its first intensity image), an Image or a tensor."""
    if isinstance(source, Subject):
        if image_name is not None:
            return source.get_image(image_name)
        intensity = source.get_images(intensity_only=True)
        return intensity[0] if intensity else source.get_first_image()
    if isinstance(source, Image):
        return source
    if isinstance(source, (torch.Tensor, np.ndarray)):
        return ScalarImage(tensor=source)
    raise TypeError(f"{what} must be a Subject, an Image or a (C, I, J, K) tensor, got {type(source).__name__}")


def _metadata(value: Any, source: Any, kind: type, name: str) -> Any:
    """Annotations given as themselves, or as a key of the subject's metadata."""
    if isinstance(value, str):
        if not isinstance(source, Subject) or value not in source.metadata:
            where = f"subject {source.name!r}" if isinstance(source, Subject) else "the image (not a Subject)"
            raise ValueError(f"{name} {value!r} is not in the metadata of {where}")
        value = source[value]
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{name} must be {kind.__name__}, a metadata key or None, got {type(value).__name__}")
    return value


def _plane(axis: Any, index: Any, shape: Sequence[int]) -> tuple[int, int, int]:
    """The slice index and the two in-plane axes ``(a, b)``, shown along x and y."""
    if isinstance(axis, bool) or axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0 (I), 1 (J) or 2 (K), got {axis!r}")
    size = int(shape[axis])
    if index is None:
        index = size // 2
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < size:
        raise ValueError(
            f"index must be an int in [0, {size}) along axis {_AXIS_NAMES[axis]} of shape {tuple(shape)}, got {index!r}"
        )
    a, b = (n for n in range(3) if n != axis)
    return int(index), a, b


def _slice(data: torch.Tensor, axis: int, index: int) -> np.ndarray:
    """``(C, A, B)``: the slice ``index`` of ``(C, I, J, K)`` along ``axis``."""
    return data.select(axis + 1, index).detach().cpu().numpy()


def _display(plane: np.ndarray, channel: int | None) -> np.ndarray:
    """What imshow takes: ``(B, A)`` (rows along ``b``), or ``(B, A, 3 or 4)`` colours."""
    channels = plane.shape[0]
    if channel is None and channels in (3, 4):
        colours = plane.transpose(2, 1, 0)
        if colours.dtype == np.uint8:
            return colours
        colours = colours.astype(np.float64)
        low, high = float(colours.min()), float(colours.max())
        return (colours - low) / (high - low) if high > low else np.zeros_like(colours)
    index = 0 if channel is None else channel
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < channels:
        raise ValueError(f"channel must be an int in [0, {channels}) or None, got {channel!r}")
    shown = plane[index].T
    return shown.astype(np.uint8) if shown.dtype == np.bool_ else shown


def _class_color(mpl: SimpleNamespace, label_cmap: str, label: int) -> Any:
    cmap = mpl.colormaps[label_cmap]
    return cmap(label % cmap.N)


# Figures --------------------------------------------------------------------------------------


def _axes(mpl: SimpleNamespace, ax: Axes | None, figsize: tuple[float, float] | None) -> tuple[Any, Any]:
    if ax is not None:
        return ax.get_figure(), ax
    figure = mpl.Figure(figsize=figsize, layout="constrained")
    return figure, figure.add_subplot()


def _show(ax: Any, array: np.ndarray, axis: int, a: int, b: int, **kwargs: Any) -> Any:
    """``imshow`` in voxel coordinates, rows along ``b``: downwards for axis 2, upwards otherwise."""
    width, height = array.shape[1], array.shape[0]
    downward = axis == 2
    extent = (0, width, height, 0) if downward else (0, width, 0, height)
    shown = ax.imshow(array, extent=extent, origin="upper" if downward else "lower", interpolation="nearest", **kwargs)
    ax.set_xlabel(_AXIS_NAMES[a] + (" (x)" if downward else ""))
    ax.set_ylabel(_AXIS_NAMES[b] + (" (y)" if downward else ""))
    return shown


def _limits(ax: Any, axis: int, low: Sequence[float], high: Sequence[float]) -> None:
    """Axes limits in voxel coordinates, the vertical axis downwards for axis 2."""
    ax.set_xlim(low[0], high[0])
    ax.set_ylim((high[1], low[1]) if axis == 2 else (low[1], high[1]))


def _finish(figure: Any, ax: Any, title: str | None, default: str, path: TypePath | None) -> Figure:
    text = default if title is None else title
    if text:
        ax.set_title(text)
    if path is not None:
        figure.savefig(path)
    return figure


def _default_title(image: Image, axis: int, index: int) -> str:
    return "" if image.is_2d() and axis == 2 else f"{_AXIS_NAMES[axis]} = {index}"


def plot_slice(
    subject_or_image: Subject | Image | torch.Tensor,
    label: str | Image | torch.Tensor | None = None,
    axis: int = 2,
    index: int | None = None,
    *,
    image_name: str | None = None,
    channel: int | None = None,
    cmap: str = "gray",
    label_cmap: str = "tab10",
    alpha: float = 0.5,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
    path: TypePath | None = None,
) -> Figure:
    """One slice of an image, with a label map over it (background transparent).

    Args:
        subject_or_image: A :class:`~torchpatch.subject.Subject` (its
            ``image_name``, else its first intensity image), an
            :class:`~torchpatch.image.Image` or a ``(C, I, J, K)`` tensor.
        label: A label map to overlay: the name of one in the subject, a
            :class:`~torchpatch.image.LabelMap` or a tensor (first channel shown).
        axis: The axis sliced across (2: the ``(I, J)`` plane of a 2D image).
        index: The slice; ``None`` for the middle one.
        image_name: The image of a subject to show.
        channel: The channel to show; ``None`` shows 3 or 4 channels as
            colours (``uint8`` as they are, others stretched to their range)
            and the first channel of other images.
        cmap: Colormap of one-channel images.
        label_cmap: Qualitative colormap; class ``c`` takes its colour ``c``.
        alpha: Opacity of the label overlay.
        ax: Draw into these axes instead of a new figure.
        figsize: Size of a new figure, in inches.
        title: The title; ``None`` names the slice of a volume.
        path: Save the figure there (PNG, or the format of its extension).

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Example:
        >>> import pathlib, tempfile, torch
        >>> from torchpatch import LabelMap, ScalarImage, Subject
        >>> seg = torch.zeros(1, 8, 6, 1, dtype=torch.uint8); seg[0, 2:4, 1:3] = 1
        >>> subject = Subject(photo=ScalarImage(tensor=torch.rand(3, 8, 6, 1)), seg=LabelMap(tensor=seg))
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     figure = plot_slice(subject, label='seg', path=pathlib.Path(folder) / 'slice.png')
        ...     (pathlib.Path(folder) / 'slice.png').stat().st_size > 0
        True
        >>> image, overlay = figure.axes[0].images
        >>> image.get_array().shape, int(overlay.get_array().mask.sum())  # (rows J, columns I, RGB); 44 of 48 hidden
        ((6, 8, 3), 44)
    """
    mpl = _matplotlib()
    image = _as_image(subject_or_image, image_name, "subject_or_image")
    index, a, b = _plane(axis, index, image.spatial_shape)
    figure, axes = _axes(mpl, ax, figsize)
    _show(axes, _display(_slice(image.data, axis, index), channel), axis, a, b, cmap=cmap)
    if label is not None:
        if isinstance(label, str):
            label_image = _as_image(subject_or_image, label, "label") if isinstance(subject_or_image, Subject) else None
            if label_image is None:
                raise ValueError(f"label {label!r} is a name, so subject_or_image must be a Subject")
        else:
            label_image = _as_image(label, None, "label")
        if label_image.spatial_shape != image.spatial_shape:
            raise ValueError(
                f"the label map has spatial shape {label_image.spatial_shape} but the image {image.spatial_shape}"
            )
        classes = _slice(label_image.data, axis, index)[0].T
        if classes.dtype.kind == "f" or classes.dtype == np.bool_:
            classes = classes.astype(np.int64)
        if classes.size and int(classes.min()) < 0:
            raise ValueError(f"label maps hold classes >= 0, got {int(classes.min())}")
        top = int(classes.max()) if classes.size else 0
        colors = mpl.ListedColormap([_class_color(mpl, label_cmap, c) for c in range(top + 1)])
        masked = np.ma.masked_equal(classes, 0)
        _show(axes, masked, axis, a, b, cmap=colors, vmin=-0.5, vmax=top + 0.5, alpha=alpha)
    return _finish(figure, axes, title, _default_title(image, axis, index), path)


def plot_grid(
    image: Subject | Image | torch.Tensor,
    patch_size: int | Sequence[int],
    patch_overlap: int | Sequence[int] = 0,
    *,
    padding_mode: str | float | None = None,
    axis: int = 2,
    index: int | None = None,
    image_name: str | None = None,
    channel: int | None = None,
    cmap: str = "gray",
    color: str | None = None,
    linewidth: float = 1.0,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
    path: TypePath | None = None,
) -> Figure:
    """The patches of a :class:`~torchpatch.sampler.grid.GridSampler` drawn over a slice.

    The rectangles are the sampler's own locations (those crossing the
    slice), so what is drawn is what the grid cuts, border shifts and
    padding included. Neighbours take the colours of ``tab10`` in turn so
    overlaps stay visible.

    Args:
        image: A Subject, an Image or a ``(C, I, J, K)`` tensor.
        patch_size: As for :class:`~torchpatch.sampler.grid.GridSampler`.
        patch_overlap: As for :class:`~torchpatch.sampler.grid.GridSampler`.
        padding_mode: As for :class:`~torchpatch.sampler.grid.GridSampler`.
        axis: The axis sliced across.
        index: The slice; ``None`` for the middle one.
        image_name: The image of a subject to show.
        channel: See :func:`plot_slice`.
        cmap: Colormap of one-channel images.
        color: One colour for every rectangle instead.
        linewidth: Width of the rectangles' edges.
        ax: Draw into these axes instead of a new figure.
        figsize: Size of a new figure, in inches.
        title: The title; ``None`` gives the number of patches.
        path: Save the figure there.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> figure = plot_grid(ScalarImage(tensor=torch.rand(1, 16, 8, 1)), 6, patch_overlap=2)
        >>> len(figure.axes[0].patches), figure.axes[0].get_title()  # I starts 0, 4, 8, 10; J starts 0, 2
        (8, '8 patches of (6, 6, 1), overlap (2, 2, 0)')
    """
    mpl = _matplotlib()
    picked = _as_image(image, image_name)
    sampler = GridSampler(Subject(image=picked), patch_size, patch_overlap, padding_mode)
    index, a, b = _plane(axis, index, picked.spatial_shape)
    figure, axes = _axes(mpl, ax, figsize)
    _show(axes, _display(_slice(picked.data, axis, index), channel), axis, a, b, cmap=cmap)
    crossing = [loc for loc in sampler.locations.tolist() if loc[axis] <= index < loc[axis + 3]]
    for number, loc in enumerate(crossing):
        edge = color if color is not None else _class_color(mpl, "tab10", number)
        corner = (loc[a], loc[b])
        size = (loc[a + 3] - loc[a], loc[b + 3] - loc[b])
        axes.add_patch(mpl.Rectangle(corner, *size, fill=False, edgecolor=edge, linewidth=linewidth))
    shape = picked.spatial_shape
    low = [min([0] + [loc[n] for loc in crossing]) for n in (a, b)]  # padded patches reach beyond the image
    high = [max([shape[n]] + [loc[n + 3] for loc in crossing]) for n in (a, b)]
    _limits(axes, axis, low, high)
    default = f"{len(sampler)} patches of {sampler.patch_size}, overlap {sampler.patch_overlap}"
    return _finish(figure, axes, title, default, path)


def plot_annotations(
    image: Subject | Image | torch.Tensor,
    boxes: BoundingBoxes | str | None = None,
    points: Points | str | None = None,
    *,
    axis: int = 2,
    index: int | None = None,
    image_name: str | None = None,
    channel: int | None = None,
    cmap: str = "gray",
    label_cmap: str = "tab10",
    color: str = DEFAULT_COLOR,
    linewidth: float = 1.5,
    marker_size: float = 40.0,
    show_classes: bool = True,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
    path: TypePath | None = None,
) -> Figure:
    """Boxes and points over a 2D image or a slice of a volume.

    On a slice, the boxes drawn are those crossing the centre of the slice
    (``low <= index + 0.5 < high`` along ``axis``) and the points those in
    it (``floor(p) == index``). Objects with classes take their class colour
    (see the module docstring) and, with ``show_classes``, their class name.

    Args:
        image: A Subject, an Image or a ``(C, I, J, K)`` tensor.
        boxes: :class:`~torchpatch.annotations.BoundingBoxes`, or their key in
            the subject's metadata.
        points: :class:`~torchpatch.annotations.Points`, or their key.
        axis: The axis sliced across.
        index: The slice; ``None`` for the middle one.
        image_name: The image of a subject to show.
        channel: See :func:`plot_slice`.
        cmap: Colormap of one-channel images.
        label_cmap: Colours of the classes.
        color: Colour of objects without class.
        linewidth: Width of the boxes' edges.
        marker_size: Size of the points' markers.
        show_classes: Write each box's class name (or id).
        ax: Draw into these axes instead of a new figure.
        figsize: Size of a new figure, in inches.
        title: The title; ``None`` names the slice of a volume.
        path: Save the figure there.

    Example:
        >>> import torch
        >>> from torchpatch import BoundingBoxes, Points, ScalarImage
        >>> image = ScalarImage(tensor=torch.rand(1, 8, 6, 1))
        >>> boxes = BoundingBoxes([[1, 1, 4, 3]], 'xyxy', (8, 6), class_ids=[2], class_names={2: 'leaf'})
        >>> figure = plot_annotations(image, boxes, Points([[5.5, 2.5]], (8, 6)))
        >>> axes = figure.axes[0]
        >>> axes.patches[0].get_xy(), axes.texts[0].get_text(), axes.collections[0].get_offsets().tolist()
        ((1.0, 1.0), 'leaf', [[5.5, 2.5]])
    """
    mpl = _matplotlib()
    picked = _as_image(image, image_name)
    found_boxes: BoundingBoxes | None = _metadata(boxes, image, BoundingBoxes, "boxes")
    found_points: Points | None = _metadata(points, image, Points, "points")
    index, a, b = _plane(axis, index, picked.spatial_shape)
    figure, axes = _axes(mpl, ax, figsize)
    _show(axes, _display(_slice(picked.data, axis, index), channel), axis, a, b, cmap=cmap)
    centre = index + 0.5
    for value, what in ((found_boxes, "boxes"), (found_points, "points")):
        if value is not None and tuple(value.spatial_shape) != picked.spatial_shape:
            raise ValueError(
                f"the {what} live on a canvas of spatial shape {tuple(value.spatial_shape)}, "
                f"but the image has spatial shape {picked.spatial_shape}"
            )

    def colour(ids: torch.Tensor | None, row: int) -> Any:
        return color if ids is None else _class_color(mpl, label_cmap, int(ids[row]))

    if found_boxes is not None:
        corners = found_boxes.to_3d().corners().to(torch.float64)
        for row in range(len(found_boxes)):
            low, high = corners[row, :3].tolist(), corners[row, 3:].tolist()
            if not low[axis] <= centre < high[axis]:
                continue
            edge = colour(found_boxes.class_ids, row)
            size = (high[a] - low[a], high[b] - low[b])
            axes.add_patch(mpl.Rectangle((low[a], low[b]), *size, fill=False, edgecolor=edge, linewidth=linewidth))
            if show_classes and found_boxes.class_ids is not None:
                label = int(found_boxes.class_ids[row])
                text = (found_boxes.class_names or {}).get(label, str(label))
                axes.text(low[a], low[b], text, color=edge, fontsize=8, va="bottom" if axis == 2 else "top")
    if found_points is not None:
        positions = found_points.to_3d().data.to(torch.float64)
        rows = [r for r in range(len(found_points)) if int(np.floor(float(positions[r, axis]))) == index]
        if rows:
            xy = positions[rows][:, [a, b]].numpy()
            colors = [colour(found_points.class_ids, r) for r in rows]
            axes.scatter(xy[:, 0], xy[:, 1], s=marker_size, c=colors, marker="+", linewidths=1.5)
    shape = picked.spatial_shape
    _limits(axes, axis, (0, 0), (shape[a], shape[b]))
    return _finish(figure, axes, title, _default_title(picked, axis, index), path)


__all__ = ["plot_annotations", "plot_grid", "plot_slice"]
