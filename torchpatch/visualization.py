"""TorchIO's ``tio.visualization``, with its names: plots, histograms, label colours and GIF animations.

``plot_volume`` and ``plot_subject`` are :mod:`torchpatch.image_plot`'s;
this module adds TorchIO's other helpers. matplotlib (``torchpatch[plot]``)
draws; Pillow writes GIFs. ``Image.hist()``, ``Image.to_gif()`` and
``Image.show()`` call them.

============================  ===================================================
name                          what it does
============================  ===================================================
:func:`plot_histogram`        histogram of values, Freedman-Diaconis bins
:func:`get_num_bins`          that number of bins
:func:`make_gif`              one frame per slice along an axis, as a GIF
:func:`color_labels`          label slices as RGB pictures
:func:`rotate`                a slice turned as TorchIO shows it
============================  ===================================================

``make_video`` (an MP4 through the ``ffmpeg-python`` package and the
``ffmpeg`` program) is not provided.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .image_plot import plot_subject, plot_volume
from .typing import TypePath


def import_mpl_plt() -> tuple[Any, Any]:
    """``(matplotlib, matplotlib.pyplot)``, or an ``ImportError`` saying how to install them.

    Example:
        >>> mpl, plt = import_mpl_plt()
        >>> plt.__name__
        'matplotlib.pyplot'
    """
    try:
        import matplotlib
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("plotting needs matplotlib: pip install matplotlib (or torchpatch[plot])") from error
    return matplotlib, plt


def rotate(image: np.ndarray[Any, Any], *, radiological: bool = True, n: int = -1) -> np.ndarray[Any, Any]:
    """A slice turned ``n`` quarter turns in its first two axes, then mirrored left-right when ``radiological``.

    Example:
        >>> rotate(np.array([[1, 2], [3, 4]])).tolist()
        [[1, 3], [2, 4]]
    """
    turned = np.rot90(image, n, axes=(0, 1))
    return np.fliplr(turned) if radiological else turned


def get_num_bins(x: np.ndarray[Any, Any]) -> int:
    """The Freedman-Diaconis number of histogram bins of the values ``x``.

    The bin width is twice the interquartile range over the cube root of the
    number of values.

    Example:
        >>> get_num_bins(np.arange(1000.0))
        10
    """
    low, high = np.percentile(x, [25, 75])
    width = 2 * (high - low) / len(x) ** (1 / 3)
    return round((x.max() - x.min()) / width)


def plot_histogram(x: np.ndarray[Any, Any], show: bool = True, **kwargs: Any) -> None:
    """Draw the histogram of ``x`` in the current matplotlib axes (:func:`get_num_bins` bins).

    Args:
        x: The values.
        show: Call ``pyplot.show()``.
        **kwargs: ``pyplot.hist``'s arguments (``density=True`` labels the
            vertical axis "Density").

    Example:
        >>> plot_histogram(np.random.default_rng(0).normal(size=500), show=False)
        >>> import matplotlib.pyplot as plt
        >>> plt.gca().get_xlabel(), plt.gca().get_ylabel()
        ('Intensity', 'Frequency')
        >>> plt.close('all')
    """
    _, plt = import_mpl_plt()
    plt.hist(x, bins=get_num_bins(x), **kwargs)
    plt.xlabel("Intensity")
    plt.ylabel("Density" if kwargs.get("density") else "Frequency")
    if show:
        plt.show()


def color_labels(arrays: Sequence[np.ndarray[Any, Any]], cmap_dict: Mapping[int, Any]) -> list[np.ndarray[Any, Any]]:
    """Label slices ``(I, J, 1)`` as ``uint8`` RGB pictures, each label in its colour (others black).

    A colour is three numbers in ``[0, 255]`` or a matplotlib colour name.

    Example:
        >>> picture = color_labels([np.array([[[0], [1]]])], {1: (255, 0, 0), 0: 'blue'})[0]
        >>> picture.tolist()
        [[[0, 0, 255], [255, 0, 0]]]
    """
    pictures = []
    for array in arrays:
        picture = np.zeros((*array.shape[:2], 3), dtype=np.uint8)
        for label, color in cmap_dict.items():
            if isinstance(color, str):
                mpl, _ = import_mpl_plt()
                color = [255 * value for value in mpl.colors.to_rgb(color)]
            picture[array[..., 0] == label] = color
        pictures.append(picture)
    return pictures


def to_byte_range(tensor: torch.Tensor) -> torch.Tensor:
    """Voxels mapped linearly from their minimum and maximum onto ``[0, 255]`` (float32, as ``RescaleIntensity``).

    Example:
        >>> to_byte_range(torch.tensor([2.0, 3.0, 4.0])).tolist()
        [0.0, 127.5, 255.0]
    """
    values = tensor.to(torch.float32)
    low, high = (float(v) for v in torch.aminmax(values))
    if high <= low:
        return torch.zeros_like(values)
    return (values - low).div_(high - low).mul_(255.0).clamp_(0, 255)


#: The shortest frame a GIF can hold, in milliseconds (100 frames a second).
SHORTEST_FRAME_MS = 10


def make_gif(
    tensor: torch.Tensor,
    axis: int,
    duration: float,
    output_path: TypePath,
    loop: int = 0,
    optimize: bool = True,
    rescale: bool = True,
    reverse: bool = False,
) -> None:
    """Write the slices of ``(C, I, J, K)`` voxels along ``axis`` as the frames of a GIF (TorchIO's frames).

    Args:
        tensor: One channel (a palette GIF) or three (RGB).
        axis: The voxel axis the animation runs along (0, 1 or 2).
        duration: Seconds of the whole animation; a frame is at least 10 ms
            (a ``RuntimeWarning`` says when the animation gets longer).
        output_path: The GIF file.
        loop: Times to play it (0: forever).
        optimize: Let Pillow shrink the palette.
        rescale: Map the voxels to ``[0, 255]`` first (else they are cast).
        reverse: Run the slices backwards.

    Raises:
        ImportError: Without Pillow.
        ValueError: When ``axis`` is not 0, 1 or 2.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / 'slices.gif'
        >>> make_gif(torch.rand(1, 4, 5, 6), 2, 1.2, path)
        >>> from PIL import Image as PILImage
        >>> with PILImage.open(path) as animation:
        ...     animation.n_frames
        6
    """
    try:
        from PIL import Image as PILImage
    except ImportError as error:
        raise ImportError("make_gif and Image.to_gif need Pillow: pip install Pillow") from error
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
    if rescale:
        tensor = to_byte_range(tensor)
    order = [1 + (axis + step) % 3 for step in range(3)]  # the animated axis first
    frames = tensor.permute(*order, 0).byte().numpy()
    single = frames.shape[-1] == 1
    turns = 2 if axis == 1 else 1
    pictures = [
        PILImage.fromarray(np.ascontiguousarray(rotate(frame[..., 0] if single else frame, n=turns))).convert(
            "P" if single else "RGB"
        )
        for frame in frames
    ]
    if reverse:
        pictures.reverse()
    frame_ms = duration / len(pictures) * 1000
    if frame_ms < SHORTEST_FRAME_MS:
        warnings.warn(
            f"{len(pictures)} frames in {duration:.1f} s would be {1000 / frame_ms:.0f} frames a second; a GIF "
            f"holds at most 100: the animation lasts {SHORTEST_FRAME_MS * len(pictures) / 1000:.1f} s instead",
            RuntimeWarning,
            stacklevel=2,
        )
        frame_ms = SHORTEST_FRAME_MS
    pictures[0].save(
        output_path, save_all=True, append_images=pictures[1:], optimize=optimize, duration=frame_ms, loop=loop
    )


__all__ = [
    "color_labels",
    "get_num_bins",
    "import_mpl_plt",
    "make_gif",
    "plot_histogram",
    "plot_subject",
    "plot_volume",
    "rotate",
    "to_byte_range",
]
