"""TorchIO's ``image.plot()`` and ``subject.plot()``: orthogonal slices of a whole image.

matplotlib is an optional dependency (``pip install torchpatch[plot]``),
imported when a function is called. Each 3D image is shown as TorchIO shows
it: reoriented to RAS+ (nearest axes, no resampling), three slices through
``indices`` (the centre by default), each drawn with its voxel aspect::

    Sagittal (A across, S up)   Coronal (R across, S up)   Axial (R across, A up)

With ``radiological=True`` (the default) the patient's right is on the
screen's left in the coronal and axial views. A 2D image (depth one) is one
panel showing its picture as :meth:`~torchpatch.conversions.ImageConversions.as_pil`
makes it: rows J downwards, columns I, no reorientation (TorchIO opens the
Pillow picture in a viewer instead). Label maps get one colour per class on
black. For slices with label overlays, patch grids and boxes, see
:mod:`torchpatch.viz`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from nibabel.orientations import apply_orientation, io_orientation

from .constants import LABEL
from .typing import TypePath

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .image import Image
    from .subject import Subject

_VIEWS = (("Sagittal", "A", "S"), ("Coronal", "R", "S"), ("Axial", "R", "A"))


def _matplotlib() -> Any:
    try:
        import matplotlib
        import matplotlib.colors
        import matplotlib.figure
    except ImportError as error:
        raise ImportError("plot() needs matplotlib, an optional dependency: pip install torchpatch[plot]") from error
    return matplotlib


def _new_figure(rows: int, columns: int, show: bool, figsize: Any, **kwargs: Any) -> tuple[Any, np.ndarray]:
    """A figure and its ``(rows, columns)`` axes: through pyplot only when it will be shown."""
    mpl = _matplotlib()
    if show:
        import matplotlib.pyplot as plt

        figure = plt.figure(figsize=figsize, layout="constrained")
    else:
        figure = mpl.figure.Figure(figsize=figsize, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, **kwargs)
    return figure, axes


def _finish(figure: Any, output_path: TypePath | None, show: bool, savefig_kwargs: dict[str, Any] | None) -> None:
    if output_path is not None:
        figure.savefig(output_path, **(savefig_kwargs or {}))
    if show:
        import matplotlib.pyplot as plt

        plt.show()


def _label_colormap(top: int, cmap: Any) -> Any:
    """Class 0 black, then one colour per class: ``tab10`` cycled, or ``cmap`` as ``{class: colour}``."""
    mpl = _matplotlib()
    palette = mpl.colormaps["tab10"]
    colors = [(0.0, 0.0, 0.0, 1.0)] + [palette(c % palette.N) for c in range(top)]
    if isinstance(cmap, Mapping):
        colors = [(0.0, 0.0, 0.0, 1.0)] * (top + 1)
        for label, color in cmap.items():
            if 0 <= int(label) <= top:
                colors[int(label)] = mpl.colors.to_rgba(color)
    return mpl.colors.ListedColormap(colors)


def _voxels(image: Image, channel: int | None, rgb: bool) -> np.ndarray:
    """``(I, J, K, C)`` of what is shown: a label map's last channel, RGB, or one channel."""
    data = image.data.detach().cpu()
    channels = int(data.shape[0])
    if image.type == LABEL:
        data = data[-1:]
    elif rgb and channels == 3 and channel is None:
        pass
    elif channel is None:
        if channels > 1:
            warnings.warn(
                f"{channels} channels in the image: plotting channel 0; choose one with channel=...",
                RuntimeWarning,
                stacklevel=3,
            )
        data = data[:1]
    else:
        if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < channels:
            raise ValueError(f"channel must be an int in [0, {channels}) or None, got {channel!r}")
        data = data[channel : channel + 1]
    if data.dtype == torch.bool:
        data = data.to(torch.uint8)
    elif data.dtype in (torch.float16, torch.bfloat16):
        data = data.to(torch.float32)
    return data.permute(1, 2, 3, 0).numpy()


def _style(planes: list[np.ndarray], is_label: bool, cmap: Any, percentiles: Sequence[float], **kwargs: Any) -> Any:
    """The planes ready for imshow and imshow's arguments."""
    if is_label:
        top = max(int(plane.max()) for plane in planes)
        kwargs.update(cmap=_label_colormap(top, cmap), vmin=-0.5, vmax=top + 0.5, interpolation="none")
        return [plane[..., 0] for plane in planes], kwargs
    values = np.concatenate([plane.ravel() for plane in planes]).astype(np.float64)
    low, high = np.percentile(values, percentiles)
    if planes[0].shape[-1] == 3:  # colour: stretched to [0, 1] unless uint8
        if planes[0].dtype != np.uint8:
            scale = high - low if high > low else 1.0
            planes = [np.clip((plane - low) / scale, 0, 1) for plane in planes]
    else:
        planes = [plane[..., 0] for plane in planes]
        kwargs.setdefault("vmin", low)
        kwargs.setdefault("vmax", high)
        kwargs["cmap"] = "gray" if cmap is None else cmap
    kwargs.setdefault("interpolation", "bicubic")
    return planes, kwargs


def plot_volume(
    image: Image,
    radiological: bool = True,
    channel: int | None = None,
    axes: Sequence[Any] | None = None,
    cmap: Any = None,
    output_path: TypePath | None = None,
    show: bool = True,
    xlabels: bool = True,
    percentiles: tuple[float, float] = (0, 100),
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
    reorient: bool = True,
    indices: Sequence[int] | None = None,
    rgb: bool = True,
    savefig_kwargs: dict[str, Any] | None = None,
    **imshow_kwargs: Any,
) -> Figure:
    """Three orthogonal slices of a 3D image, or the picture of a 2D one (TorchIO's arguments).

    Args:
        image: The image.
        radiological: Show the patient's right on the screen's left.
        channel: The channel to show; ``None``: the first (with a warning
            when there are more), or all three as colours when ``rgb``.
        axes: Draw into these three matplotlib axes (one for a 2D image).
        cmap: Colormap; for a label map also ``{class: colour}``.
        output_path: Save the figure there.
        show: Show it with ``pyplot.show()``; ``False`` draws it off screen.
        xlabels: Name the horizontal axes.
        percentiles: Intensity percentiles mapped to black and white.
        figsize: Figure size in inches.
        title: A title over the figure.
        reorient: Reorient to RAS+ first (3D images only).
        indices: The voxel ``(i, j, k)`` the slices go through (after
            reorienting); default: the centre.
        rgb: Show three channels as colours.
        savefig_kwargs: Arguments of ``Figure.savefig``.
        **imshow_kwargs: Arguments of ``Axes.imshow``.

    Returns:
        The figure.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> figure = plot_volume(ScalarImage(tensor=torch.rand(1, 8, 6, 4)), show=False)
        >>> [image.get_array().shape for ax in figure.axes for image in ax.images]  # (S, A), (S, R), (A, R)
        [(4, 6), (4, 8), (6, 8)]
    """
    is_label = image.type == LABEL
    voxels = _voxels(image, channel, rgb)
    spacing = np.linalg.norm(np.asarray(image.affine)[:3, :3], axis=0)
    two_d = image.is_2d() and (axes is None or len(axes) == 1)
    if not two_d and reorient:
        orientation = io_orientation(image.affine)
        voxels = apply_orientation(voxels, orientation)
        spacing = spacing[np.argsort(orientation[:, 0])]
    if axes is None:
        figure, grid = _new_figure(1, 1 if two_d else 3, show, figsize)
        axes = list(grid[0])
    else:
        figure = axes[0].get_figure()
    if len(axes) != (1 if two_d else 3):
        raise ValueError(f"axes must hold {'one' if two_d else 'three'} matplotlib axes, got {len(axes)}")
    if two_d:
        planes, kwargs = _style([voxels[:, :, 0].transpose(1, 0, 2)], is_label, cmap, percentiles, **imshow_kwargs)
        axes[0].imshow(planes[0], origin="upper", **kwargs)
        if xlabels:
            axes[0].set_xlabel("I")
        axes[0].set_ylabel("J")
    else:
        shape = voxels.shape[:3]
        i, j, k = (np.asarray(shape) // 2).tolist() if indices is None else [int(n) for n in indices]
        if not all(0 <= n < s for n, s in zip((i, j, k), shape)):
            raise ValueError(f"indices must lie in the spatial shape {tuple(shape)}, got {(i, j, k)}")
        slices = [voxels[i], voxels[:, j], voxels[:, :, k]]
        # Rows up the second axis, columns along the first (mirrored when not radiological, as the
        # horizontal axis is inverted below either way).
        slices = [s.transpose(1, 0, 2) if radiological else s.transpose(1, 0, 2)[:, ::-1] for s in slices]
        planes, kwargs = _style(slices, is_label, cmap, percentiles, **imshow_kwargs)
        r, a, s = spacing
        aspects = (s / a, s / r, a / r)
        for ax, plane, aspect, (name, across, up) in zip(axes, planes, aspects, _VIEWS):
            ax.imshow(plane, aspect=aspect, origin="lower", **kwargs)
            if xlabels:
                ax.set_xlabel(across)
            ax.set_ylabel(up)
            ax.invert_xaxis()
            ax.set_title(name)
    if title is not None:
        figure.suptitle(title)
    _finish(figure, output_path, show, savefig_kwargs)
    return figure


def plot_subject(
    subject: Subject,
    cmap_dict: Mapping[str, Any] | None = None,
    show: bool = True,
    output_path: TypePath | None = None,
    figsize: tuple[float, float] | None = None,
    clear_axes: bool = True,
    savefig_kwargs: dict[str, Any] | None = None,
    **plot_volume_kwargs: Any,
) -> Figure:
    """Every image of a subject, with :func:`plot_volume` (TorchIO's arguments).

    One row of three views per image (one column per image when there are
    more than two); a subject of 2D images is one row of pictures.

    Args:
        subject: The subject.
        cmap_dict: A colormap per image name.
        show: Show it with ``pyplot.show()``.
        output_path: Save the figure there.
        figsize: Figure size in inches.
        clear_axes: Share the axes of images of one grid.
        savefig_kwargs: Arguments of ``Figure.savefig``.
        **plot_volume_kwargs: More arguments of :func:`plot_volume`.

    Returns:
        The figure.

    Example:
        >>> import torch
        >>> from torchpatch import LabelMap, ScalarImage, Subject
        >>> volume = torch.rand(1, 6, 6, 6)
        >>> subject = Subject(t1=ScalarImage(tensor=volume), seg=LabelMap(tensor=volume > 0.5))
        >>> [ax.get_title() for ax in plot_subject(subject, show=False).axes][:4]
        ['t1 (sagittal)', 't1 (coronal)', 't1 (axial)', 'seg (sagittal)']
    """
    images = subject.get_images_dict(intensity_only=False)
    count = len(images)
    two_d = all(image.is_2d() for image in images.values())
    many = count > 2
    shared: dict[str, Any] = {}
    if clear_axes:
        try:
            subject.check_consistent_space()
            shared = {"sharex": "row" if many else "col", "sharey": "row" if many else "col"}
        except ValueError:
            pass
    if two_d:
        figure, grid = _new_figure(1, count, show, figsize, **shared)
        rows = [[ax] for ax in grid[0]]
    else:
        figure, grid = _new_figure(3 if many else count, count if many else 3, show, figsize, **shared)
        rows = list(grid.T if many else grid)
    for number, (name, image) in enumerate(images.items()):
        cmap = cmap_dict.get(name) if cmap_dict is not None else None
        last = number == count - 1 or two_d
        plot_volume(image, axes=rows[number], show=False, cmap=cmap, xlabels=last, **plot_volume_kwargs)
        views = ("",) if two_d else (" (sagittal)", " (coronal)", " (axial)")
        for ax, view in zip(rows[number], views):
            ax.set_title(f"{name}{view}")
    _finish(figure, output_path, show, savefig_kwargs)
    return figure


__all__ = ["plot_subject", "plot_volume"]
