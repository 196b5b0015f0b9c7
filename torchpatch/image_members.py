"""TorchIO's remaining ``Image`` members, with its names (mixed into :class:`~torchpatch.image.Image`).

Anatomical axis names (``axis_name_to_index``, ``flip_axis``), reading a
file through the image's reader without keeping it (``read_and_check``),
``set_check_nans``, and the ``dict`` methods TorchIO's image has because it
subclasses ``dict``. A torchpatch image is not a ``dict``: its voxels,
affine, path, stem and type are fields of the image, and only its metadata
is a free dict. So the mutators change the metadata, route ``'data'`` and
``'affine'`` through the checked setters, and refuse the rest::

    image.update(data=t)       -> image.set_data(t)     (shape and dtype checked)
    image.update(affine=a)     -> image.affine = a      (4x4, finite, invertible)
    image.update(sex='F')      -> image.metadata['sex'] = 'F'
    image.pop('sex')           -> image.metadata.pop('sex')
    image.pop('data')          -> ValueError: the voxels are not a removable entry
    image.copy()               -> a plain dict of image.items(), as dict.copy gives

Not provided, because in TorchIO they only break the image or always fail:
``clear`` (it deletes the voxels, affine and type), ``popitem`` (it removes
the last key, which is always ``'type'``) and ``fromkeys`` (TorchIO's calls
``Image()``, which needs a path or a tensor, so it always raises).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .constants import AFFINE, DATA, PATH, STEM, TYPE
from .geometry import check_affine
from .image_reader import TypeReader, read_with
from .typing import TypeAffine, TypePath

#: The axis letters TorchIO knows, in opposite pairs: left/right, posterior/anterior,
#: inferior/superior, top/bottom (2D), dorsal/ventral.
AXIS_PAIRS = ("LR", "PA", "IS", "TB", "DV")

#: Keys that are fields of the image, not metadata: never removed, only ``data``/``affine`` replaced.
FIELD_KEYS = (DATA, AFFINE, PATH, STEM, TYPE)

#: Marks "no default given" for :meth:`ImageMembers.pop`.
_MISSING: Any = object()


class ImageMembers:
    """TorchIO's axis names, checked reads, NaN switch and ``dict`` mutators of an image.

    Example:
        >>> from torchpatch import ScalarImage
        >>> image = ScalarImage(tensor=torch.zeros(1, 2, 3, 4), modality='T1')
        >>> image.axis_name_to_index('superior'), image.pop('modality'), image.setdefault('site', 'A')
        (-1, 'T1', 'A')
    """

    # Provided by Image.
    metadata: dict[str, Any]
    check_nans: bool
    reader: TypeReader

    @property
    def orientation(self) -> tuple[str, str, str]:
        raise NotImplementedError

    @property
    def affine(self) -> TypeAffine:
        raise NotImplementedError

    @affine.setter
    def affine(self, affine: Any) -> None:
        raise NotImplementedError

    def _describe(self, what: str = "") -> str:
        raise NotImplementedError

    def _to_tensor(self, array: Any) -> torch.Tensor:
        raise NotImplementedError

    def set_data(self, tensor: Any) -> None:
        raise NotImplementedError

    def keys(self) -> list[str]:
        raise NotImplementedError

    def items(self) -> list[tuple[str, Any]]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        raise NotImplementedError

    # Axis names -------------------------------------------------------------------

    @staticmethod
    def flip_axis(axis: str) -> str:
        """The letter of the opposite direction of ``axis`` (TorchIO's): ``'L'`` -> ``'R'``.

        Args:
            axis: A direction name or its first letter, any case: left,
                right, posterior, anterior, inferior, superior, top, bottom,
                dorsal, ventral. Only the first letter is read.

        Raises:
            TypeError: When ``axis`` is not a string.
            ValueError: When it is empty or its first letter names no direction.

        Example:
            >>> from torchpatch import Image
            >>> Image.flip_axis('left'), Image.flip_axis('s'), Image.flip_axis('Top')
            ('R', 'I', 'B')
        """
        if not isinstance(axis, str):
            raise TypeError(f"axis must be a direction name such as 'left' or 'L', got {type(axis).__name__} {axis!r}")
        letter = axis[:1].upper()
        for pair in AXIS_PAIRS:
            if letter and letter in pair:
                return pair[1 - pair.index(letter)]
        known = ", ".join(letter for pair in AXIS_PAIRS for letter in pair)
        raise ValueError(f"axis {axis!r} names no direction: its first letter must be one of {known}")

    def axis_name_to_index(self, axis: str) -> int:
        """The (negative) tensor axis along ``axis``, a direction name (TorchIO's).

        The index counts from the end, so it fits ``data`` ``(C, I, J, K)``
        and a spatial shape alike: ``-3``, ``-2``, ``-1`` for ``I``, ``J``,
        ``K``. A direction and its opposite give the same axis (left and
        right both name the axis whose orientation code is ``L`` or ``R``);
        ``'top'``/``'bottom'`` always name ``J``, the vertical axis of a 2D
        image. Only the header is read.

        Args:
            axis: A direction name or its first letter, any case (see
                :meth:`flip_axis`). For animals, use superior/inferior and
                anterior/posterior for dorsal/ventral and rostral/caudal.

        Raises:
            TypeError: When ``axis`` is not a string.
            ValueError: When it names no direction, or one that is no axis
                of this image's orientation (``'dorsal'``).

        Example:
            >>> from torchpatch import ScalarImage
            >>> image = ScalarImage(tensor=torch.zeros(1, 2, 3, 4), affine=np.diag([-1.0, -1.0, 1.0, 1.0]))
            >>> image.orientation, image.axis_name_to_index('Right'), image.axis_name_to_index('a')
            (('L', 'P', 'S'), -3, -2)
        """
        opposite = self.flip_axis(axis)  # checks the type and the letter
        letter = axis[0].upper()
        if letter in "TB":
            return -2
        orientation = self.orientation
        for candidate in (letter, opposite):
            if candidate in orientation:
                return orientation.index(candidate) - 3
        raise ValueError(
            f"axis {axis!r} is no axis of {self._describe()}, whose orientation is {''.join(orientation)}: "
            "use left/right, anterior/posterior, inferior/superior or top/bottom "
            "(superior/inferior for dorsal/ventral)"
        )

    # Reading and checks -----------------------------------------------------------

    def read_and_check(self, path: TypePath) -> tuple[torch.Tensor, TypeAffine]:
        """Read ``path`` with this image's reader and check it as a load would; the image is left unchanged (TorchIO's).

        The voxels get the conversions of :meth:`~torchpatch.image.Image.set_data`
        (``uint16`` -> ``int32``, a label map's whole-number floats -> ``int64``,
        the ``dtype`` asked for), and a NaN warning when ``check_nans`` is set.

        Args:
            path: One file (or DICOM folder).

        Returns:
            The ``(C, I, J, K)`` voxels and the file's 4x4 affine (identity
            when the reader gives none); an affine given to the image does not
            replace it here.

        Raises:
            TypeError: When ``path`` is not one path.
            ValueError: When the voxels are not 3D or 4D, or are empty, or the
                affine is unusable.

        Example:
            >>> import tempfile
            >>> from torchpatch import ScalarImage
            >>> file = Path(tempfile.mkdtemp()) / 'x.npy'
            >>> np.save(file, np.ones((2, 3, 4), np.uint16))
            >>> image = ScalarImage(tensor=torch.zeros(1, 1, 1, 1))
            >>> voxels, affine = image.read_and_check(file)
            >>> tuple(voxels.shape), voxels.dtype, affine.shape, image.shape
            ((1, 2, 3, 4), torch.int32, (4, 4), (1, 1, 1, 1))
        """
        if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                f"read_and_check of {self._describe()} takes one path (str or os.PathLike), "
                f"got {type(path).__name__} {path!r:.80}"
            )
        voxels, affine = read_with(self.reader, Path(path))
        tensor = self._to_tensor(voxels)
        if min(tensor.shape) < 1:
            raise ValueError(f"voxels read from {str(path)!r} for {self._describe()} are empty: {tuple(tensor.shape)}")
        if self.check_nans and tensor.is_floating_point() and bool(torch.isnan(tensor).any()):
            warnings.warn(
                f"NaN values found in {str(path)!r} read for {self._describe()}", RuntimeWarning, stacklevel=2
            )
        if affine is None:
            return tensor, np.eye(4)
        return tensor, check_affine(affine, f"affine read from {str(path)!r} for {self._describe()}")

    def set_check_nans(self, check_nans: bool) -> None:
        """Warn (or stop warning) when the voxels set or read hold NaN (TorchIO's setter of ``check_nans``).

        Raises:
            TypeError: When ``check_nans`` is not a bool.

        Example:
            >>> from torchpatch import ScalarImage
            >>> image = ScalarImage(tensor=torch.zeros(1, 1, 1, 1))
            >>> image.set_check_nans(True); image.check_nans
            True
        """
        if not isinstance(check_nans, (bool, np.bool_)):
            raise TypeError(
                f"check_nans of {self._describe()} must be True or False, got {type(check_nans).__name__} "
                f"{check_nans!r}"
            )
        self.check_nans = bool(check_nans)

    # The dict methods of TorchIO's image ---------------------------------------------

    def copy(self) -> dict[str, Any]:
        """A plain ``dict`` of ``items()``, as TorchIO's ``dict.copy`` gives (loads the voxels).

        Shallow: the tensor, the affine and the metadata values are the
        image's own objects. For a new image use ``copy.copy(image)`` or
        :meth:`~torchpatch.image.Image.replica`.

        Example:
            >>> from torchpatch import ScalarImage
            >>> image = ScalarImage(tensor=torch.zeros(1, 1, 1, 1), modality='T1')
            >>> copied = image.copy()
            >>> type(copied).__name__, list(copied), copied['data'] is image.data
            ('dict', ['data', 'affine', 'modality', 'path', 'stem', 'type'], True)
        """
        return dict(self.items())

    def _check_key(self, key: Any, method: str) -> str:
        if not isinstance(key, str):
            raise TypeError(f"{method} of {self._describe()}: keys must be str, got {type(key).__name__} {key!r}")
        if key in (PATH, STEM, TYPE):
            raise ValueError(
                f"{method} of {self._describe()} cannot change {key!r}: it is fixed when the image is made "
                f"(make a new image, e.g. ScalarImage(other_path) or LabelMap(tensor=image.data))"
            )
        return key

    def update(self, other: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), /, **kwargs: Any) -> None:
        """Set entries as ``dict.update`` does: ``'data'`` and ``'affine'`` checked, other keys in the metadata.

        Every value is checked before any is set, so a bad one changes
        nothing.

        Args:
            other: A mapping, or an iterable of ``(key, value)`` pairs.
            **kwargs: More entries.

        Raises:
            TypeError: For a key that is not a string, or bad voxels.
            ValueError: For ``'path'``, ``'stem'`` or ``'type'`` (fixed when
                the image is made), bad voxels or a bad affine.

        Example:
            >>> from torchpatch import ScalarImage
            >>> image = ScalarImage(tensor=torch.zeros(1, 1, 1, 1))
            >>> image.update({'data': torch.ones(1, 2, 2, 2)}, modality='T1')
            >>> image.shape, image.metadata
            ((1, 2, 2, 2), {'modality': 'T1'})
        """
        if isinstance(other, Mapping):
            pairs = list(other.items())
        else:
            pairs = []
            for number, pair in enumerate(other):
                if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                    raise TypeError(
                        f"update of {self._describe()}: element {number} must be a (key, value) pair, got {pair!r:.80}"
                    )
                pairs.append((pair[0], pair[1]))
        pairs.extend(kwargs.items())
        entries = {self._check_key(key, "update"): value for key, value in pairs}
        affine = entries.pop(AFFINE, _MISSING)
        if affine is not _MISSING:
            affine = check_affine(affine, self._describe("affine"))
        if DATA in entries:
            self.set_data(entries.pop(DATA))  # converts and checks before it replaces anything
        if affine is not _MISSING:
            self.affine = affine
        self.metadata.update(entries)

    def setdefault(self, key: str, default: Any = None, /) -> Any:
        """``image[key]``; a key the image lacks is first set to ``default`` in the metadata (``dict.setdefault``).

        Example:
            >>> from torchpatch import ScalarImage
            >>> image = ScalarImage(tensor=torch.zeros(1, 1, 1, 1), modality='T1')
            >>> image.setdefault('modality', 'CT'), image.setdefault('site', 'Lyon'), image.metadata
            ('T1', 'Lyon', {'modality': 'T1', 'site': 'Lyon'})
        """
        if key in self.keys():
            return self[key]
        self.metadata[self._check_key(key, "setdefault")] = default
        return default

    def pop(self, key: str, default: Any = _MISSING, /) -> Any:
        """Remove the metadata entry ``key`` and return its value (``dict.pop``).

        Args:
            key: A metadata key. ``'data'``, ``'affine'``, ``'path'``,
                ``'stem'`` and ``'type'`` are fields of the image, not
                removable entries.
            default: Returned when the image has no ``key``; without it, a
                missing key is a ``KeyError``.

        Raises:
            KeyError: When ``key`` is missing and no default is given.
            ValueError: For the keys of the image's fields.

        Example:
            >>> from torchpatch import ScalarImage
            >>> image = ScalarImage(tensor=torch.zeros(1, 1, 1, 1), modality='T1')
            >>> image.pop('modality'), image.pop('modality', None), image.metadata
            ('T1', None, {})
        """
        if key in FIELD_KEYS:
            raise ValueError(
                f"cannot pop {key!r} from {self._describe()}: it is a field of the image, not a removable entry "
                f"(pop removes metadata: {sorted(self.metadata)})"
            )
        if isinstance(key, str) and key in self.metadata:
            return self.metadata.pop(key)
        if default is not _MISSING:
            return default
        raise KeyError(f"{self._describe()} has no key {key!r} to pop; keys: {self.keys()}")


__all__ = ["AXIS_PAIRS", "FIELD_KEYS", "ImageMembers"]
