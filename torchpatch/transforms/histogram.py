"""Histogram standardization of MR intensities (Nyúl and Udupa, 1999/2000), with TorchIO's numbers.

MR intensities have no fixed unit: the same tissue gets different values
from scan to scan. The method learns, from training images, where a set of
percentile *landmarks* fall on a standard scale, then maps every image
piecewise-linearly so that its own landmarks land there::

    train:   percentiles (1, 10, 20, 25, ..., 75, 80, 90, 99) of each image,
             each image's [p1, p99] stretched onto [0, 100],
             averaged over the images          -> 13 landmarks
    apply:   the image's 13 percentiles  ──piecewise linear──>  the landmarks
             (the 25th and 75th are skipped as breakpoints, as in TorchIO)

Values below the 1st or above the 99th percentile follow the first or last
segment's line, so the output is not clipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from ..image import Image
from ..io import load_npy, read_array
from ..subject import Subject
from ..typing import TypePath
from .base import Transform, rebuild_image
from .masking import TypeMaskingMethod, check_masking_method, get_mask

#: Default lower and upper quantiles (``pc1``, ``pc2`` in the paper).
DEFAULT_CUTOFF = (0.01, 0.99)
#: The standard scale the training images are stretched onto.
STANDARD_RANGE = (0.0, 100.0)
#: The number of landmarks :meth:`HistogramStandardization.train` returns.
NUM_LANDMARKS = 13
#: Positions, among the 13 percentiles, used as breakpoints (all but the 25th and 75th).
_BREAKPOINTS = [0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12]
#: Percentile gaps narrower than this (two landmarks on one value, e.g. a
#: large background of zeros) get a flat segment rather than a division by 0.
_EPSILON = 1e-5

TypeLandmarks = Union[TypePath, Mapping[str, Any]]


def landmark_percentiles(cutoff: Sequence[float] = DEFAULT_CUTOFF) -> np.ndarray[Any, Any]:
    """The percentiles (0-100) the landmarks are taken at: the cutoffs, the deciles and the quartiles.

    Example:
        >>> landmark_percentiles().tolist()
        [1.0, 10.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 90.0, 99.0]
    """
    values = {100 * float(cutoff[0]), 100 * float(cutoff[1]), *range(10, 100, 10), 25.0, 50.0, 75.0}
    return np.array(sorted(float(value) for value in values))


def _parse_cutoff(cutoff: Any) -> tuple[float, float]:
    if cutoff is None:
        return DEFAULT_CUTOFF
    if isinstance(cutoff, str) or not isinstance(cutoff, (Sequence, np.ndarray)) or len(cutoff) != 2:
        raise TypeError(f"cutoff must be two quantiles (low, high) in [0, 1], got {cutoff!r}")
    low, high = (float(value) for value in cutoff)
    if not 0 <= low < 0.1 or not 0.9 < high <= 1:
        # Other values would merge with a decile and change the number of landmarks.
        raise ValueError(f"cutoff must be (low, high) with 0 <= low < 0.1 and 0.9 < high <= 1, got {cutoff!r}")
    return low, high


def _load_landmarks_file(path: Path, key: str) -> np.ndarray[Any, Any]:
    if path.suffix == ".txt":  # as train(output_path='....txt') writes it: a word, then the values
        return np.array([float(value) for value in path.read_text().split()[1:]])
    return load_npy(path)


def _check_landmarks(key: str, value: Any) -> np.ndarray[Any, Any]:
    if isinstance(value, (str, Path)):
        value = _load_landmarks_file(Path(value).expanduser(), key)
    elif isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (NUM_LANDMARKS,) or not np.isfinite(array).all():
        raise ValueError(
            f"landmarks[{key!r}] must be {NUM_LANDMARKS} finite values, as HistogramStandardization.train "
            f"returns, got shape {array.shape}: {array.tolist()}"
        )
    return array


def parse_landmarks(landmarks: TypeLandmarks) -> dict[str, np.ndarray[Any, Any]]:
    """``landmarks`` as a dict of image name -> 13 float64 landmarks.

    Accepts a mapping whose values are arrays (or tensors, or sequences) or
    paths to ``.npy`` (or ``.txt``, as written by ``train``) files, or the
    path of a ``.pt``/``.pth`` file holding such a dict (``torch.save``).

    Raises:
        TypeError: When ``landmarks`` is neither a mapping nor a path.
        ValueError: When a file has another suffix or a value is not 13
            finite numbers.

    Example:
        >>> parse_landmarks({'t1': range(13)})['t1'][:3].tolist()
        [0.0, 1.0, 2.0]
    """
    if isinstance(landmarks, (str, Path)):
        path = Path(landmarks).expanduser()
        if path.suffix not in (".pt", ".pth"):
            raise ValueError(
                f"a landmarks file must be a dict saved with torch.save, with suffix .pt or .pth, got {str(path)!r}"
            )
        # The file is pickled numpy arrays, which weights_only loading refuses.
        loaded = torch.load(path, weights_only=False)
        if not isinstance(loaded, Mapping):
            raise TypeError(f"{str(path)!r} must hold a dict of image name -> landmarks, got {type(loaded).__name__}")
        landmarks = loaded
    if not isinstance(landmarks, Mapping):
        raise TypeError(
            "landmarks must be a dict of image name -> landmarks (an array or a .npy path) or the path of a .pt/.pth "
            f"file holding one, got {type(landmarks).__name__}"
        )
    return {str(key): _check_landmarks(str(key), value) for key, value in landmarks.items()}


def standardize(
    values: np.ndarray[Any, Any], landmarks: np.ndarray[Any, Any], mask: np.ndarray[Any, Any] | None = None
) -> np.ndarray[Any, Any]:
    """Map ``values`` piecewise-linearly so that its percentiles (on ``mask``) land on ``landmarks``.

    Args:
        values: Voxels, any shape; computed in float32 as TorchIO does.
        landmarks: The 13 landmarks of :meth:`HistogramStandardization.train`.
        mask: Booleans of the shape of ``values``: the voxels whose
            percentiles are matched (all of them when ``None``).

    Returns:
        A float32 array of the shape of ``values``.

    Example:
        >>> identity = landmark_percentiles()  # landmarks at the percentiles of 0..100
        >>> standardize(np.arange(101.0), identity)[[0, 50, 100]].tolist()
        [0.0, 50.0, 100.0]
    """
    data = np.asarray(values).reshape(-1).astype(np.float32)
    selected = data if mask is None else data[np.asarray(mask).reshape(-1)]
    # Images are always measured at 1% and 99% (TorchIO's default cutoff),
    # whatever cutoff the landmarks were trained with.
    percentiles = np.percentile(selected, landmark_percentiles(DEFAULT_CUTOFF))
    targets = landmarks[_BREAKPOINTS]
    sources = percentiles[_BREAKPOINTS]
    gaps = np.diff(sources)
    gaps[gaps < _EPSILON] = np.inf
    slopes = np.diff(targets) / gaps
    intercepts = targets[:-1] - slopes * sources[:-1]
    segment = np.digitize(data, sources[1:-1], right=False)
    result = slopes[segment] * data + intercepts[segment]
    return result.reshape(np.shape(values)).astype(np.float32)


def _read_for_training(source: TypePath | Image) -> np.ndarray[Any, Any]:
    if isinstance(source, Image):
        return source.data.detach().cpu().numpy()
    data, _ = read_array(source)
    return np.asarray(data)


def _broadcast_mask(mask: Any, shape: tuple[int, ...], what: str) -> np.ndarray[Any, Any]:
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    array = array.astype(bool)
    if array.shape == shape[1:]:
        array = array[None]
    if array.ndim != len(shape) or array.shape[1:] != shape[1:] or array.shape[0] not in (1, shape[0]):
        raise ValueError(f"the mask of {what} has shape {array.shape}, but the image has shape {shape}")
    return np.broadcast_to(array, shape)


def train_histogram(
    images_paths: Sequence[TypePath | Image],
    cutoff: tuple[float, float] | None = None,
    mask_path: Sequence[TypePath] | TypePath | None = None,
    masking_function: Callable[[torch.Tensor], Any] | None = None,
    output_path: TypePath | None = None,
    *,
    progress: bool = True,
) -> np.ndarray[Any, Any]:
    """The average landmarks of the training images (:meth:`HistogramStandardization.train`).

    Args:
        images_paths: Paths of the training images of one modality (an
            :class:`~torchpatch.image.Image` is accepted too).
        cutoff: Lower and upper quantiles ``(pc1, pc2)`` stretched onto the
            standard range [0, 100]; default ``(0.01, 0.99)``. Must stay
            below 0.1 and above 0.9 (each is a landmark of its own).
        mask_path: Path of a mask (its positive voxels are used), or one path
            per image; all voxels when ``None``.
        masking_function: Called with each image's voxels (a tensor, as
            read) and returning the boolean mask; wins over ``mask_path``.
        output_path: Where to save the landmarks: ``.npy`` (``np.save``) or
            ``.txt`` (``image v1 v2 ...``, as TorchIO writes it).
        progress: Show a progress bar (tqdm).

    Returns:
        The 13 landmarks (float64), for :class:`HistogramStandardization`.

    Raises:
        ValueError: When mask and image counts differ, ``output_path`` has
            another suffix, a mask selects no voxel, or an image's ``pc1``
            and ``pc2`` percentiles are equal (it cannot be stretched).

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> images = [ScalarImage(tensor=torch.arange(101.0).reshape(1, 101, 1, 1) * s) for s in (1, 3)]
        >>> train_histogram(images, progress=False).round(6).tolist()[:4]
        [0.0, 9.183673, 19.387755, 24.489796]
    """
    if isinstance(images_paths, (str, Path, Image)) or not isinstance(images_paths, Sequence):
        raise TypeError(f"images_paths must be a sequence of image paths, got {type(images_paths).__name__}")
    low, high = _parse_cutoff(cutoff)
    per_image_masks = isinstance(mask_path, Sequence) and not isinstance(mask_path, (str, Path))
    if per_image_masks and len(mask_path) != len(images_paths):  # type: ignore[arg-type]
        raise ValueError(
            f"got {len(images_paths)} images but {len(mask_path)} mask paths; give one mask path per image "  # type: ignore[arg-type]
            "or a single one for all"
        )
    output = None if output_path is None else Path(output_path).expanduser()
    if output is not None and output.suffix not in (".npy", ".txt"):
        raise ValueError(f"output_path must end with .npy or .txt, got {str(output_path)!r}")
    percentiles = landmark_percentiles((low, high))
    sources: Any = images_paths
    if progress:
        from tqdm.auto import tqdm

        sources = tqdm(images_paths, desc="histogram landmarks")
    rows = []
    for index, source in enumerate(sources):
        what = repr(str(source)) if not isinstance(source, Image) else f"image {index}"
        array = _read_for_training(source)
        if masking_function is not None:
            mask = _broadcast_mask(masking_function(torch.as_tensor(array)), array.shape, what)
        elif mask_path is not None:
            path: Any = mask_path[index] if per_image_masks else mask_path  # type: ignore[index]
            mask_voxels: np.ndarray[Any, Any] = np.asarray(read_array(path)[0])
            mask = _broadcast_mask(mask_voxels > 0, array.shape, what)
        else:
            mask = None
        selected = array.reshape(-1) if mask is None else array[mask]
        if selected.size == 0:
            raise ValueError(f"the mask of {what} selects no voxel")
        row = np.percentile(selected, percentiles)
        if not row[-1] > row[0]:
            raise ValueError(
                f"{what} has equal {100 * low:g}th and {100 * high:g}th percentiles ({row[0]:g}): its intensities "
                "cannot be stretched; give a mask (mask_path or masking_function) of the tissue"
            )
        rows.append(row)
    if not rows:
        raise ValueError("images_paths is empty; give at least one training image")
    table = np.vstack(rows)
    start, stop = STANDARD_RANGE
    slopes = (stop - start) / (table[:, -1] - table[:, 0])
    intercept = np.mean(start - slopes * table[:, 0])
    landmarks: np.ndarray[Any, Any] = slopes @ table / len(table) + intercept
    if output is not None:
        if output.suffix == ".npy":
            np.save(output, landmarks)
        else:
            output.write_text("image " + " ".join(str(value) for value in landmarks))
    return landmarks


class HistogramStandardization(Transform):
    """Map intensities onto a standard scale learnt from training images (Nyúl and Udupa).

    Learn the landmarks once per modality with :meth:`train`, then apply them
    to every image: the image's percentiles (1, 10, 20, 30, ..., 90, 99,
    computed on the mask) are mapped piecewise-linearly onto the landmarks;
    see the module docstring. Output voxels are ``float32``. Label maps pass
    through.

    Args:
        landmarks: A dict of image name -> landmarks (arrays, or paths of
            ``.npy`` files), or the path of a ``.pt``/``.pth`` file holding
            such a dict (``torch.save``). Every selected scalar image must
            have an entry.
        masking_method: The voxels whose percentiles are matched: ``None``
            (all), the name of a label map of the subject, an anatomical
            label (``'Left'``...), a callable (given the float32 voxels,
            returning a bool tensor) or bounds; see
            :mod:`torchpatch.transforms.masking`.
        include: Names of the only scalar images to standardize.
        exclude: Names of scalar images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        TypeError: When an argument has the wrong type.
        ValueError: When landmarks are not 13 finite numbers, or a file has
            the wrong suffix.
        KeyError: When called, if a selected image has no landmarks.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject
        >>> train = [ScalarImage(tensor=torch.arange(101.0).reshape(1, 101, 1, 1) * s) for s in (1, 3)]
        >>> landmarks = {'t1': HistogramStandardization.train(train, progress=False)}
        >>> subject = Subject(t1=ScalarImage(tensor=torch.arange(101.0).reshape(1, 101, 1, 1) * 7 + 5))
        >>> out = HistogramStandardization(landmarks)(subject).t1.data.flatten()
        >>> out[[1, 50, 99]].tolist()
        [0.0, 50.0, 100.0]
    """

    intensity_only = True

    def __init__(
        self,
        landmarks: TypeLandmarks,
        masking_method: TypeMaskingMethod = None,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        self.landmarks = landmarks
        self.landmarks_dict = parse_landmarks(landmarks)
        self.masking_method = check_masking_method(masking_method)

    train = staticmethod(train_histogram)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        shown = self.landmarks if isinstance(self.landmarks, (str, Path)) else sorted(self.landmarks_dict)
        arguments: dict[str, Any] = {"landmarks": shown}
        if self.masking_method is not None:
            arguments["masking_method"] = self.masking_method
        return {**arguments, **super().arguments()}

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Standardize one scalar image."""
        if name not in self.landmarks_dict:
            raise KeyError(
                f"image {name!r} of subject {subject.name!r} has no landmarks: the landmarks dict has "
                f"{sorted(self.landmarks_dict)}; train them or exclude the image"
            )
        values = image.data.to(torch.float32)
        mask = get_mask(self.masking_method, subject, rebuild_image(image, values), name)
        voxels = values.detach().cpu().numpy()
        mask_array = np.broadcast_to(mask.detach().cpu().numpy(), voxels.shape)
        if not mask_array.any():
            raise ValueError(f"masking_method selects no voxel of image {name!r} of subject {subject.name!r}")
        result = standardize(voxels, self.landmarks_dict[name], mask_array)
        return rebuild_image(image, torch.from_numpy(result).to(image.data.device))


__all__ = [
    "DEFAULT_CUTOFF",
    "NUM_LANDMARKS",
    "STANDARD_RANGE",
    "HistogramStandardization",
    "landmark_percentiles",
    "parse_landmarks",
    "standardize",
    "train_histogram",
]
