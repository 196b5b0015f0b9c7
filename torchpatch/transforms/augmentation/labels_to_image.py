"""Images made from label maps: a Gaussian tissue intensity per label (TorchIO's ``RandomLabelsToImage``).

Contrast-agnostic training in the manner of SynthSeg (Billot et al.) makes
its input images from the segmentations themselves: every label gets its own
intensity ``N(mean, std)``, voxel by voxel, and the new image is usually
blurred next (:class:`~.voxelwise.RandomBlur`) for partial-volume edges.

Two kinds of label map are read, as TorchIO reads them:

* **categorical**: one channel of whole numbers; the labels are the values
  found, in increasing order, and ``mean[i]``/``std[i]`` belong to the i-th;
* **partial volume** (also one-hot): several channels, or one channel of
  fractions; channel ``c`` is label ``c`` and each voxel sums its channels'
  tissues weighted by their fractions. ``discretize=True`` keeps the
  channel of highest value per voxel instead (voxels where all channels are
  zero are unlabelled, as are a categorical map's voxels of value -1).

Labels outside ``used_labels`` get no tissue; when ``image_key`` names an
image the subject has, they (and unlabelled voxels) keep its values, so a
synthetic image can be pasted into a real one. With ``ignore_background``
label 0 gets no tissue and no values from that image (0, as TorchIO gives).

Every voxel's noise comes from one normal field drawn from a recorded seed
(per channel for partial volumes), so a history record replays exactly.
TorchIO draws one whole-volume field per label from the global generator:
the same distribution, L times the work; the voxels differ for a seed, the
means and standard deviations drawn do not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ...geometry import is_number
from ...image import Image, LabelMap, ScalarImage
from ...subject import Subject
from .label_tissues import (
    categorical_tissues,
    discretized,
    is_partial_volume,
    labels_found,
    partial_volume_tissues,
)
from .random import RandomTransform, parse_range, uniform


def _parse_key(value: Any, argument: str, optional: bool) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be an image name (a string), got {type(value).__name__} {value!r}")
    return value


def _parse_used_labels(value: Any) -> list[int] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"used_labels must be a sequence of ints, got {type(value).__name__} {value!r}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            raise ValueError(f"used_labels must hold ints only, got {value!r}")
    return list(value)


def parse_gaussian_range(value: Any, argument: str, minimum: float | None = None) -> tuple[float, float]:
    """A range ``(low, high)`` of a tissue's mean or standard deviation; one number ``x`` is ``(x, x)``.

    As TorchIO's, a single number is a fixed value (not ``(-x, x)``).

    Raises:
        TypeError: When ``value`` is not one or two numbers.
        ValueError: When the range is reversed or below ``minimum``.

    Example:
        >>> parse_gaussian_range(0.5, 'mean'), parse_gaussian_range((0, 1), 'std', minimum=0)
        ((0.5, 0.5), (0.0, 1.0))
    """
    return parse_range((value, value) if is_number(value) else value, argument, minimum=minimum)


def _per_label(value: Any, argument: str, used_labels: list[int] | None, minimum: float | None) -> list[Any] | None:
    """``mean`` or ``std``: ``None`` or a list of per-label ranges (or numbers), checked."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{argument} must be a sequence with one entry per label, got {type(value).__name__} {value!r}")
    ranges = [parse_gaussian_range(item, f"{argument}[{index}]", minimum) for index, item in enumerate(value)]
    if used_labels is not None and len(ranges) != len(used_labels):
        raise ValueError(
            f"{argument} and used_labels must have the same length (as in TorchIO), got {len(ranges)} entries "
            f"for used_labels={used_labels}"
        )
    return ranges


def find_label_map(subject: Subject, label_key: str | None) -> tuple[str, Image]:
    """The label map named ``label_key`` or, for ``None``, the subject's first label map.

    Raises:
        RuntimeError: When ``label_key`` is ``None`` and the subject has no label map (TorchIO's error).
        TypeError: When ``label_key`` names an image that is not a label map.

    Example:
        >>> zeros = torch.zeros(1, 2, 2, 1)
        >>> subject = Subject(t1=ScalarImage(tensor=zeros), seg=LabelMap(tensor=zeros))
        >>> find_label_map(subject, None)[0]
        'seg'
    """
    if label_key is None:
        for name, image in subject.images.items():
            if isinstance(image, LabelMap):
                return name, image
        raise RuntimeError(
            f"no label map in subject {subject.name!r} to make an image from (images: {list(subject.images)}); "
            f"give label_key"
        )
    image = subject.get_image(label_key, "label_key")
    if not isinstance(image, LabelMap):
        raise TypeError(
            f"label_key {label_key!r} of subject {subject.name!r} must name a label map, got {type(image).__name__}"
        )
    return label_key, image


def _check_lengths(labels: list[int], values: Sequence[Any] | None, argument: str, subject: Subject, key: str) -> None:
    if values is not None and len(values) != len(labels):
        raise RuntimeError(
            f"{argument} must give a value for each label, but it has {len(values)} while label map {key!r} of "
            f"subject {subject.name!r} has {len(labels)} labels: {labels}"
        )


class RandomLabelsToImage(RandomTransform):
    """Make an image from a label map, each label a Gaussian tissue of random mean and standard deviation.

    For each label found, ``mean ~ U(mean[i])`` and ``std ~ U(std[i])`` are
    drawn (``default_mean`` and ``default_std`` when not given) in TorchIO's
    order, and a seed for the voxels' noise; the image is added to the
    subject under ``image_key`` (see the module's notes for categorical and
    partial-volume maps, ``used_labels`` and filling from an existing image).

    Args:
        label_key: Name of the label map; ``None`` takes the subject's first.
        used_labels: Labels (values, or channels of a partial-volume map)
            that get a tissue; ``None``: all.
        image_key: Name of the new image. When the subject has an image of
            that name, voxels of unused labels keep its values.
        mean: One range (or number, a fixed value) per label found.
        std: One range (or number) per label found (non-negative).
        default_mean: The mean's range of every label when ``mean`` is not given.
        default_std: The standard deviation's range when ``std`` is not given.
        discretize: Take the channel of highest value of a partial-volume map
            per voxel (no effect on categorical maps).
        ignore_background: Give label 0 no tissue.
        p: Probability of applying the transform.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords.

    Raises:
        TypeError: When a key is not a string, ranges are not numbers or
            ``used_labels`` is not a sequence.
        ValueError: When a range is reversed or a standard deviation
            negative, ``used_labels`` holds non-ints, or ``mean``/``std``
            and ``used_labels`` differ in length.
        RuntimeError: When applied, if ``mean``/``std`` do not have one entry
            per label found, or no label map is found.

    Example:
        >>> from torchpatch import LabelMap, ScalarImage
        >>> seg = LabelMap(tensor=torch.tensor([0, 1, 1, 2]).reshape(1, 4, 1, 1))
        >>> _ = torch.manual_seed(0)
        >>> out = RandomLabelsToImage(mean=[0, 0.5, 1], std=[0, 0, 0])(Subject(seg=seg))
        >>> out.image_from_labels.data.flatten().tolist(), out['history'][0]['labels']
        ([0.0, 0.5, 0.5, 1.0], [0, 1, 2])
    """

    #: Each voxel depends on its own label (and the filled image's voxel) only: a patch needs no context.
    pointwise = True

    @property
    def mean_ranges(self) -> Any:
        """``mean``, one range per label (``None``: drawn from ``default_mean``): TorchIO's name."""
        return self.mean

    @property
    def std_ranges(self) -> Any:
        """``std``, one range per label (``None``: drawn from ``default_std``): TorchIO's name."""
        return self.std

    #: The range argument (TorchIO keeps it as ``mean_ranges``; its ``mean`` is the masking function).
    mean: list[Any] | None  # type: ignore[assignment]

    def __init__(
        self,
        label_key: str | None = None,
        used_labels: Sequence[int] | None = None,
        image_key: str = "image_from_labels",
        mean: Sequence[Any] | None = None,
        std: Sequence[Any] | None = None,
        default_mean: Any = (0.1, 0.9),
        default_std: Any = (0.01, 0.1),
        discretize: bool = False,
        ignore_background: bool = False,
        p: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(p=p, **kwargs)
        self.label_key = _parse_key(label_key, "label_key", optional=True)
        self.used_labels = _parse_used_labels(used_labels)
        self.image_key = str(_parse_key(image_key, "image_key", optional=False))
        # TorchIO's random transform wants one range per used label too; its deterministic one does not.
        check_used = None if self.fixed_params else self.used_labels
        self.mean = _per_label(mean, "mean", check_used, None)
        self.std = _per_label(std, "std", check_used, 0)
        self.default_mean = parse_gaussian_range(default_mean, "default_mean")
        self.default_std = parse_gaussian_range(default_std, "default_std", minimum=0)
        for name, flag in (("discretize", discretize), ("ignore_background", ignore_background)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {type(flag).__name__} {flag!r}")
        self.discretize = discretize
        self.ignore_background = ignore_background

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """The labels found, a mean and standard deviation per label, the noise's seed and the settings."""
        key, label_map = find_label_map(subject, self.label_key)
        partial_volume = is_partial_volume(label_map.data)
        labels = labels_found(label_map.data, partial_volume, self.discretize)
        _check_lengths(labels, self.mean, "mean", subject, key)
        _check_lengths(labels, self.std, "std", subject, key)
        means, stds = self.draw_tissues(labels)
        return {
            "label_key": key,
            "labels": labels,
            "mean": means,
            "std": stds,
            "seed": int(torch.randint(0, 2**31 - 1, ()).item()),
            "partial_volume": partial_volume,
            **self.settings(),
        }

    def added_images(self, subject: Subject, params: Mapping[str, Any]) -> dict[str, Image]:
        """The new image (a stand-in of zeros sharing one value) when ``image_key`` is not in ``subject``."""
        if params["image_key"] in subject.images:
            return {}
        _, label_map = find_label_map(subject, params["label_key"])
        zeros = torch.zeros((1,) * 4).expand(1, *label_map.spatial_shape)
        return {params["image_key"]: ScalarImage(tensor=zeros, affine=label_map.affine)}

    def draw_tissues(self, labels: list[int]) -> tuple[list[float], list[float]]:
        """A mean and a standard deviation per label, drawn label after label (TorchIO's order)."""
        means, stds = [], []
        for index in range(len(labels)):
            means.append(uniform(*(self.mean[index] if self.mean is not None else self.default_mean)))
            stds.append(uniform(*(self.std[index] if self.std is not None else self.default_std)))
        return means, stds

    def settings(self) -> dict[str, Any]:
        """The arguments that say how the drawn tissues are applied (recorded, so a record replays alone)."""
        return {
            "image_key": self.image_key,
            "used_labels": self.used_labels,
            "ignore_background": self.ignore_background,
            "discretize": self.discretize,
        }

    def apply_params(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Add (or replace) image ``params['image_key']``, made from the label map as ``params`` say."""
        key, label_map = find_label_map(subject, params["label_key"])
        image_key = params["image_key"]
        original = subject.images.get(image_key)
        if original is not None:
            _check_fill_image(original, label_map, subject, image_key, key)
        data = label_map.data
        used = params["used_labels"]
        labels = [int(label) for label in params["labels"]]
        # A label is given a tissue (active), or left to the filled image (unused); an ignored background is neither.
        ignored = [label == 0 and params["ignore_background"] for label in labels]
        chosen = [used is None or label in used for label in labels]
        active = [c and not i for c, i in zip(chosen, ignored)]
        unused = [not c and not i for c, i in zip(chosen, ignored)]
        generator = torch.Generator().manual_seed(int(params["seed"]))
        source = None if original is None else original.data.to(data.device)
        if params["partial_volume"] and not params["discretize"]:
            tissues, fill = partial_volume_tissues(data, labels, params, active, unused, generator)
            if source is not None:
                tissues = torch.where(fill, source.to(torch.float32), tissues)
        else:
            values = discretized(data) if params["partial_volume"] else data
            tissues = categorical_tissues(values, labels, params, active, unused, generator, source)
        image = ScalarImage(tensor=tissues, affine=label_map.affine)
        return subject.with_images({image_key: image})

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {
            "label_key": self.label_key,
            "used_labels": self.used_labels,
            "image_key": self.image_key,
            "mean": self.mean,
            "std": self.std,
            "default_mean": self.default_mean,
            "default_std": self.default_std,
            "discretize": self.discretize,
            "ignore_background": self.ignore_background,
            **super().arguments(),
        }


def _check_fill_image(original: Image, label_map: Image, subject: Subject, image_key: str, key: str) -> None:
    if not isinstance(original, ScalarImage):
        raise TypeError(
            f"image_key {image_key!r} of subject {subject.name!r} names a {type(original).__name__}; the image made "
            f"from labels replaces a scalar image only"
        )
    if original.shape[0] != 1 or original.spatial_shape != label_map.spatial_shape:
        raise ValueError(
            f"image {image_key!r} of subject {subject.name!r} fills the voxels of unused labels, so it must have one "
            f"channel and the spatial shape of label map {key!r} {tuple(label_map.spatial_shape)}, got shape "
            f"{tuple(original.shape)}"
        )


class LabelsToImage(RandomLabelsToImage):
    """Make an image from a label map with a given mean and standard deviation per label: TorchIO's ``LabelsToImage``.

    As :class:`RandomLabelsToImage` with one number each in ``mean`` and
    ``std`` per label found; the voxels' noise seed is drawn from torch's
    global generator (``torch.manual_seed`` makes it repeatable) and
    recorded.

    Args:
        label_key: Name of the label map.
        mean: Mean of each label's tissue, one per label found.
        std: Standard deviation of each label's tissue, one per label found.
        image_key: Name of the new image (see :class:`RandomLabelsToImage`).
        used_labels: Labels that get a tissue; ``None``: all.
        ignore_background: Give label 0 no tissue.
        discretize: Take the channel of highest value of a partial-volume map.
        p: Probability of applying the transform.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords.

    Raises:
        TypeError: When ``mean`` or ``std`` is not a sequence of numbers.

    Example:
        >>> from torchpatch import LabelMap, ScalarImage
        >>> subject = Subject(
        ...     t1=ScalarImage(tensor=torch.tensor([5.0, 6, 7, 8]).reshape(1, 4, 1, 1)),
        ...     seg=LabelMap(tensor=torch.tensor([0, 1, 1, 2]).reshape(1, 4, 1, 1)),
        ... )
        >>> out = LabelsToImage('seg', mean=[0, 0.5, 1], std=[0, 0, 0], image_key='t1', used_labels=[1])(subject)
        >>> out.t1.data.flatten().tolist()  # labels 0 and 2 keep t1's values
        [5.0, 0.5, 0.5, 8.0]
    """

    fixed_params = True

    def __init__(
        self,
        label_key: str,
        mean: Sequence[float],
        std: Sequence[float],
        image_key: str = "image_from_labels",
        used_labels: Sequence[int] | None = None,
        ignore_background: bool = False,
        discretize: bool = False,
        p: float = 1.0,
        **kwargs: Any,
    ) -> None:
        for argument, values in (("mean", mean), ("std", std)):
            if values is None or isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise TypeError(f"{argument} must be a sequence of numbers, one per label, got {values!r}")
            if not all(is_number(value) for value in values):
                raise TypeError(f"{argument} must hold numbers only (one per label), got {values!r}")
        super().__init__(
            _parse_key(label_key, "label_key", optional=False),
            used_labels,
            image_key,
            mean,
            std,
            discretize=discretize,
            ignore_background=ignore_background,
            p=p,
            **kwargs,
        )

    @property
    def means(self) -> list[float] | None:
        """The mean of each label's tissue: TorchIO's name (``mean`` holds each as a range of one value)."""
        return None if self.mean is None else [float(low) for low, _ in self.mean]

    @property
    def stds(self) -> list[float] | None:
        """The standard deviation of each label's tissue: TorchIO's name."""
        return None if self.std is None else [float(low) for low, _ in self.std]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> LabelsToImage:
        """The transform that a history record of it describes."""
        return cls(
            record["label_key"],
            record["mean"],
            record["std"],
            record["image_key"],
            record["used_labels"],
            record["ignore_background"],
            record["discretize"],
        )

    def draw_tissues(self, labels: list[int]) -> tuple[list[float], list[float]]:
        """The given means and standard deviations (one per label)."""
        assert self.mean is not None and self.std is not None
        return [low for low, _ in self.mean], [low for low, _ in self.std]

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        assert self.mean is not None and self.std is not None
        return {
            "label_key": self.label_key,
            "mean": [low for low, _ in self.mean],
            "std": [low for low, _ in self.std],
            "image_key": self.image_key,
            "used_labels": self.used_labels,
            "ignore_background": self.ignore_background,
            "discretize": self.discretize,
            **RandomTransform.arguments(self),
        }
