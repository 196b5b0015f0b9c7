"""Subjects: named images of one patient (or one photo) plus plain metadata.

A :class:`Subject` is a mapping, not a ``dict`` subclass: ``subject['t1']``,
``subject.t1``, ``len(subject)`` and iteration over its keys work, and the
images are told apart from metadata by type, never by magic keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np

from .constants import INTENSITY
from .image import Image
from .image_plot import plot_subject
from .patches import RegionAware, SubjectCuts
from .subject_checks import InconsistentSpaceError
from .subject_members import SubjectMembers
from .typing import TypeSpacing, TypeTriplet

#: Largest difference between two affines of one subject, in millimetres.
AFFINE_TOLERANCE = 1e-4

#: What turns ``history`` records into transforms: set by :mod:`torchpatch.transforms` (above subjects).
_history_handler: Any = None


def set_history_handler(handler: Any) -> None:
    """Register what answers :meth:`Subject.get_applied_transforms` and the other history methods.

    ``handler`` has ``applied_transforms``, ``composed_history``,
    ``inverse_transform`` and ``apply_inverse_transform`` functions taking the
    subject first (:mod:`torchpatch.transforms.augmentation.history`, set on
    import).

    Example:
        >>> import torchpatch  # sets it
        >>> from torchpatch import ScalarImage
        >>> import torch
        >>> Subject(t1=ScalarImage(tensor=torch.zeros(1, 1, 1, 1))).get_applied_transforms()
        []
    """
    global _history_handler
    _history_handler = handler


class ImageNotFoundError(KeyError, ValueError):
    """A name given for an image (or an annotation) that the subject does not have.

    Both a :class:`KeyError` (a missing key of the subject) and a :class:`ValueError`
    (a bad argument value), so code catching either works; raised by :meth:`Subject.get_image`
    and :meth:`Subject.get_annotation`, the one lookup by name every part of torchpatch uses.

    Example:
        >>> issubclass(ImageNotFoundError, KeyError), issubclass(ImageNotFoundError, ValueError)
        (True, True)
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Subject(SubjectCuts, SubjectMembers, MutableMapping[str, Any]):
    """Images sharing one voxel grid, plus metadata (ids, class labels, ...).

    Args:
        *args: At most one mapping of names to images and metadata.
        **kwargs: More names: an :class:`~torchpatch.image.Image` is an
            image, anything else is metadata.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, LabelMap
        >>> subject = Subject(
        ...     t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8)),
        ...     seg=LabelMap(tensor=torch.zeros(1, 8, 8, 8, dtype=torch.uint8)),
        ...     subject_id='sub-01',
        ... )
        >>> subject.t1.spatial_shape, subject['subject_id'], sorted(subject.images)
        ((8, 8, 8), 'sub-01', ['seg', 't1'])
    """

    def __init__(self, *args: Mapping[str, Any], **kwargs: Any) -> None:
        if len(args) > 1:
            raise TypeError(f"Subject takes at most one mapping as positional argument, got {len(args)}")
        entries: dict[str, Any] = {}
        if args:
            if not isinstance(args[0], Mapping) or isinstance(args[0], Image):
                raise TypeError(f"Subject's positional argument must be a mapping, got {type(args[0]).__name__}")
            entries.update(args[0])
        entries.update(kwargs)
        self._store: dict[str, Any] = {}
        for key, value in entries.items():
            self[key] = value
        if not self.images:
            keys = sorted(self._store)
            raise ValueError(
                f"a subject needs at least one Image (ScalarImage or LabelMap); got no image among keys {keys}"
            )

    # Mapping protocol --------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        try:
            return self._store[key]
        except KeyError:
            raise KeyError(f"subject {self.name!r} has no key {key!r}; keys: {sorted(self._store)}") from None

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"subject keys must be str, got {type(key).__name__} {key!r}")
        self._store[key] = value

    def __delitem__(self, key: str) -> None:
        del self._store[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails; '_store' itself must not recurse.
        if name.startswith("__") or name == "_store":
            raise AttributeError(name)
        store = self.__dict__.get("_store", {})
        if name in store:
            return store[name]
        raise AttributeError(f"subject has no attribute or key {name!r}; keys: {sorted(store)}")

    def __getstate__(self) -> dict[str, Any]:
        return {"_store": self._store}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(Keys: {tuple(self.keys())}; images: {len(self.images)})"  # TorchIO's

    # Images and metadata -----------------------------------------------------------

    @property
    def images(self) -> dict[str, Image]:
        """The images, by name, in insertion order."""
        return {k: v for k, v in self._store.items() if isinstance(v, Image)}

    @property
    def metadata(self) -> dict[str, Any]:
        """Everything that is not an image."""
        return {k: v for k, v in self._store.items() if not isinstance(v, Image)}

    def get_images_dict(
        self,
        intensity_only: bool = True,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
    ) -> dict[str, Image]:
        """Images filtered by type and name.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage, LabelMap
            >>> s = Subject(a=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)), b=LabelMap(tensor=torch.zeros(1, 2, 2, 2)))
            >>> list(s.get_images_dict(intensity_only=True))
            ['a']
        """
        images = self.images
        for names, what in ((include, "include"), (exclude, "exclude")):
            missing = sorted(set(names or ()) - set(images))
            if missing:
                raise KeyError(f"{what} names {missing} are not images of subject {self.name!r}: {sorted(images)}")
        selected = {}
        for name, image in images.items():
            if intensity_only and image.type != INTENSITY:
                continue
            if include is not None and name not in include:
                continue
            if exclude is not None and name in exclude:
                continue
            selected[name] = image
        return selected

    def get_images(
        self,
        intensity_only: bool = True,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
    ) -> list[Image]:
        """The images of :meth:`get_images_dict`, as a list (TorchIO's arguments).

        As in TorchIO, ``intensity_only`` defaults to ``True`` (scalar images
        only); unlike TorchIO, a name in ``include``/``exclude`` that is no
        image is an error.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage, LabelMap
            >>> s = Subject(a=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)), b=LabelMap(tensor=torch.zeros(1, 2, 2, 2)))
            >>> len(s.get_images()), len(s.get_images(intensity_only=False)), len(s.get_images(False, exclude=['a']))
            (1, 2, 1)
        """
        return list(self.get_images_dict(intensity_only, include, exclude).values())

    def get_images_names(self) -> list[str]:
        """The names of every image, in insertion order (TorchIO's method).

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage, LabelMap
            >>> t1, seg = ScalarImage(tensor=torch.zeros(1, 2, 2, 2)), LabelMap(tensor=torch.zeros(1, 2, 2, 2))
            >>> Subject(t1=t1, seg=seg, age=3).get_images_names()
            ['t1', 'seg']
        """
        return list(self.images)

    def get_image(self, image_name: str, argument: str = "image_name") -> Image:
        """The image ``image_name``, or an error naming the argument, the subject and its images.

        Args:
            image_name: The image's name.
            argument: What ``image_name`` was given as, for the message (e.g.
                ``'label_name'``).

        Raises:
            ImageNotFoundError: When the subject has no image ``image_name``.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage
            >>> s = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)), subject_id='s1')
            >>> s.get_image('t1').shape
            (1, 2, 2, 2)
            >>> s.get_image('seg', 'label_name')
            Traceback (most recent call last):
            ...
            torchpatch.subject.ImageNotFoundError: label_name 'seg' is not an image of subject 's1'; images: ['t1']
        """
        image = self._store.get(image_name)
        if not isinstance(image, Image):
            raise ImageNotFoundError(
                f"{argument} {image_name!r} is not an image of subject {self.name!r}; images: {sorted(self.images)}"
            )
        return image

    def get_annotation(self, name: str, argument: str = "name", kinds: tuple[type, ...] | None = None) -> Any:
        """The annotation (boxes, points: metadata that follows crops) ``name``.

        Args:
            name: The metadata key.
            argument: What ``name`` was given as, for the message.
            kinds: The accepted types (default: any :class:`RegionAware`).

        Raises:
            ImageNotFoundError: When the subject has no ``name``.
            TypeError: When ``name`` is metadata of another type.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage
            >>> s = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)))
            >>> s.get_annotation('boxes', 'boxes_name')
            Traceback (most recent call last):
            ...
            torchpatch.subject.ImageNotFoundError: boxes_name 'boxes' is not in the metadata of subject ...
        """
        if name not in self._store or isinstance(self._store[name], Image):
            found = sorted(k for k, v in self.metadata.items() if isinstance(v, RegionAware))
            raise ImageNotFoundError(
                f"{argument} {name!r} is not in the metadata of subject {self.name!r}; annotations: {found}"
            )
        value = self._store[name]
        if not isinstance(value, kinds if kinds is not None else RegionAware):
            expected = " or ".join(k.__name__ for k in kinds) if kinds else "annotations (RegionAware)"
            raise TypeError(
                f"{argument} {name!r} of subject {self.name!r} must be {expected}, got {type(value).__name__}"
            )
        return value

    def get_first_image(self) -> Image:
        """The first image added."""
        return next(iter(self.images.values()))

    @property
    def name(self) -> str:
        """A name for messages: ``subject_id``/``id``/``name`` metadata or the first file stem."""
        store = self.__dict__.get("_store", {})
        for key in ("subject_id", "id", "name"):
            value = store.get(key)
            if isinstance(value, (str, int)):
                return str(value)
        for value in store.values():
            if isinstance(value, Image) and value.stem is not None:
                return value.stem
        return "<unnamed>"

    # Geometry ------------------------------------------------------------------------

    def check_consistent_space(self, tolerance: float = AFFINE_TOLERANCE) -> None:
        """Check every image has the spatial shape and affine of the first.

        Raises:
            InconsistentSpaceError: A ValueError (and TorchIO's RuntimeError) naming both images and grids.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage
            >>> a, b = torch.zeros(1, 2, 2, 2), torch.zeros(1, 3, 2, 2)
            >>> s = Subject(a=ScalarImage(tensor=a), b=ScalarImage(tensor=b))
            >>> s.check_consistent_space()
            Traceback (most recent call last):
            ...
            torchpatch.subject_checks.InconsistentSpaceError: images of subject '<unnamed>' have different ...
        """
        items = list(self.images.items())
        first_name, first = items[0]
        shape, exact = first.spatial_shape, np.asarray(first.affine, dtype=np.float64).tobytes()
        for name, image in items[1:]:
            if image.spatial_shape != shape:
                raise InconsistentSpaceError(
                    f"images of subject {self.name!r} have different spatial shapes: {first_name!r} is {shape} but "
                    f"{name!r} is {image.spatial_shape}; resample or crop/pad them to one grid (Resample, CropOrPad)"
                )
            same = np.asarray(image.affine, dtype=np.float64).tobytes() == exact  # no arithmetic (every plan checks)
            difference = 0.0 if same else float(np.abs(image.affine - first.affine).max())
            if difference > tolerance:
                raise InconsistentSpaceError(
                    f"images of subject {self.name!r} have different affines (max difference {difference:.3g} > "
                    f"{tolerance:g}): {first_name!r} has\n{first.affine}\nbut {name!r} has\n{image.affine}\n"
                    f"resample one onto the other, e.g. Resample({first_name!r})"
                )

    @property
    def spatial_shape(self) -> TypeTriplet:
        """``(I, J, K)`` shared by every image (checked)."""
        self.check_consistent_space()
        return self.get_first_image().spatial_shape

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(C, I, J, K)`` of the first image, after checking every image shares a grid."""
        self.check_consistent_space()
        return self.get_first_image().shape

    @property
    def spacing(self) -> TypeSpacing:
        """Voxel size in millimetres shared by every image (checked)."""
        self.check_consistent_space()
        return self.get_first_image().spacing

    def is_2d(self) -> bool:
        """Whether the images are depth one."""
        return self.spatial_shape[2] == 1

    # Data --------------------------------------------------------------------------

    def load(self) -> None:
        """Read the voxels of every image."""
        for image in self.images.values():
            image.load()

    def unload(self) -> None:
        """Free the voxels of every file-backed image."""
        for image in self.images.values():
            image.unload()

    def add_image(self, image: Image, image_name: str) -> None:
        """Add ``image`` under ``image_name`` (TorchIO's method), in place.

        Raises:
            TypeError: If ``image`` is not an :class:`~torchpatch.image.Image`.
            KeyError: If the subject already has ``image_name``.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage
            >>> s = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)))
            >>> s.add_image(ScalarImage(tensor=torch.ones(1, 2, 2, 2)), 'weights')
            >>> list(s.images)
            ['t1', 'weights']
        """
        if not isinstance(image, Image):
            raise TypeError(f"add_image needs an Image, got {type(image).__name__} for {image_name!r}")
        if image_name in self._store:
            raise KeyError(
                f"subject {self.name!r} already has {image_name!r}; use subject[{image_name!r}] = ... to replace it"
            )
        self[image_name] = image

    def remove_image(self, image_name: str) -> None:
        """Remove the image ``image_name`` (TorchIO's method), in place.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage
            >>> s = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)), age=3)
            >>> s.remove_image('t1'); list(s.keys())
            ['age']
        """
        if not isinstance(self._store.get(image_name), Image):
            raise KeyError(f"subject {self.name!r} has no image {image_name!r}; images: {sorted(self.images)}")
        del self._store[image_name]

    def with_images(self, images: Mapping[str, Image], **metadata: Any) -> Subject:
        """A new subject with some images replaced and metadata added.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage
            >>> s = Subject(a=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)), age=40)
            >>> t = s.with_images({'a': ScalarImage(tensor=torch.ones(1, 2, 2, 2))})
            >>> float(t.a.data.sum()), t['age'], float(s.a.data.sum())
            (8.0, 40, 0.0)
        """
        store = dict(self._store)
        store.update(images)
        store.update(metadata)
        new = Subject.__new__(Subject)
        new.__dict__["_store"] = store
        return new

    def crop(self, index_ini: Sequence[int], index_fin: Sequence[int], **metadata: Any) -> Subject:
        """A new subject with every image cropped to ``[index_ini, index_fin)``.

        Metadata that knows its place in the voxel grid (boxes, points: any
        :class:`RegionAware` value) is cropped too; the rest is shared.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage
            >>> s = Subject(a=ScalarImage(tensor=torch.zeros(1, 4, 4, 4)))
            >>> s.crop((0, 0, 0), (2, 2, 2)).a.shape
            (1, 2, 2, 2)
        """
        cropped: dict[str, Any] = {name: image.crop(index_ini, index_fin) for name, image in self.images.items()}
        for name, value in self.metadata.items():
            if isinstance(value, RegionAware):
                cropped[name] = value.crop_to_region(tuple(index_ini), tuple(index_fin))
        return self.with_images(cropped, **metadata)

    def plot(self, return_fig: bool = False, **kwargs: Any) -> Any:
        """Plot every image, three orthogonal slices each (TorchIO's method; needs matplotlib).

        ``return_fig=True`` returns the figure; ``kwargs`` go to
        :func:`~torchpatch.image_plot.plot_subject` (``show=False`` draws
        without displaying, ``output_path``, ``cmap_dict``, ...).

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage
            >>> s = Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 4)))
            >>> len(s.plot(show=False, return_fig=True).axes)
            3
        """
        figure = plot_subject(self, **kwargs)
        return figure if return_fig else None

    def _history(self) -> Any:
        if _history_handler is None:
            raise RuntimeError("the history methods need torchpatch.transforms: import torchpatch first")
        return _history_handler

    def get_applied_transforms(self, ignore_intensity: bool = False, image_interpolation: str | None = None) -> Any:
        """The random transforms recorded in ``history``, as transforms with their parameters (TorchIO's name)."""
        return self._history().applied_transforms(self, ignore_intensity, image_interpolation)

    def get_composed_history(self, ignore_intensity: bool = False, image_interpolation: str | None = None) -> Any:
        """:meth:`get_applied_transforms` in a ``Compose``."""
        return self._history().composed_history(self, ignore_intensity, image_interpolation)

    def get_inverse_transform(
        self, warn: bool = True, ignore_intensity: bool = False, image_interpolation: str | None = None
    ) -> Any:
        """The inverses of the invertible recorded transforms, last first, in a ``Compose``."""
        return self._history().inverse_transform(self, warn, ignore_intensity, image_interpolation)

    def apply_inverse_transform(self, **kwargs: Any) -> Subject:
        """This subject with its recorded transforms undone and its history cleared.

        Example:
            >>> import torch, torchpatch as tp
            >>> subject = tp.Subject(t1=tp.ScalarImage(tensor=torch.arange(3.0).reshape(1, 3, 1, 1)))
            >>> flipped = tp.RandomFlip(flip_probability=1)(subject)
            >>> flipped.apply_inverse_transform().t1.data.flatten().tolist()
            [0.0, 1.0, 2.0]
        """
        result: Subject = self._history().apply_inverse_transform(self, **kwargs)
        return result

    def clear_history(self) -> None:
        """Forget the recorded transforms (TorchIO's name)."""
        if "history" in self:
            self["history"] = []


__all__ = ["ImageNotFoundError", "RegionAware", "Subject", "set_history_handler"]
