"""Lazy images: the header is read first, the voxels on first touch.

An :class:`Image` knows its shape, affine, spacing and orientation as soon as
it is created from a path, because only the file header is read. Its
``data`` (a ``(C, I, J, K)`` tensor) is read the first time it is used, and
:meth:`Image.read_region <torchpatch.regions.RegionReads.read_region>`
reads just a box of voxels, from disk when the file is uncompressed
(``.nii``, ``.npy``, NRRD and MetaImage with raw voxels)::

    Image('ct.nii')          header only:   shape, affine, spacing, memory
      .read_region(a, b)     bytes of one box, memory-mapped
      .data                  whole volume, cached until .unload()
"""

# Longer than the house's ~400 lines on purpose: Image carries TorchIO's whole
# image surface (construction, lazy loading, header properties, output and
# key access) in one class users read top to bottom; box reads live in
# regions.py, SimpleITK/Pillow/matplotlib views in conversions.py, file reading in io.

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from . import image_members, io
from .constants import AFFINE, DATA, IMAGE_TYPES, INTENSITY, LABEL, PATH, STEM, TYPE
from .copying import shallow_copy
from .geometry import (
    check_affine,
    orientation_from_affine,
    origin_from_affine,
    shift_affine,
    spacing_from_affine,
)
from .image_info import ImageInfo, LabelCounts, natural_size
from .image_reader import CustomReads, TypeReader, check_reader, is_custom_reader, parse_image_paths
from .typing import TypeAffine, TypePath, TypeSpacing, TypeTriplet

Array = np.ndarray[Any, np.dtype[Any]]

# Integer types torch cannot compute with, widened to the next type it can.
_WIDENED = {**io.tensors.WIDER_DTYPES, np.dtype(np.uint64): np.dtype(np.int64)}


class Image(CustomReads, ImageInfo, image_members.ImageMembers):
    """A 4D image ``(C, I, J, K)`` with a RAS+ affine, read lazily from disk.

    Args:
        path: A file, a DICOM folder, or a list of files stacked as channels.
            A tensor or array given here is taken as ``tensor``.
        type: :data:`~torchpatch.constants.INTENSITY`,
            :data:`~torchpatch.constants.LABEL` or TorchIO's
            :data:`~torchpatch.constants.SAMPLING_MAP` (resampled nearest, left
            out by intensity and label transforms).
        tensor: ``(C, I, J, K)`` voxels, instead of a path.
        affine: 4x4 voxel-to-RAS+ matrix. Identity when omitted for tensors;
            for a path it replaces the file's (needed for ``.npy``).
        check_nans: Warn when the loaded data holds NaN.
        reader: ``path -> (voxels, affine)`` reading the file: :mod:`~torchpatch.image_reader`.
        verify_path: Check at construction that the file exists.
        dtype: Cast the loaded data to this torch dtype.
        **kwargs: Plain metadata kept in the ``metadata`` dict.

    Example:
        >>> image = Image(tensor=torch.zeros(1, 4, 4, 1), type=INTENSITY)
        >>> image.spatial_shape, image.is_2d()
        ((4, 4, 1), True)
    """

    def __init__(
        self,
        path: TypePath | Sequence[TypePath] | torch.Tensor | Array | None = None,
        type: str | None = None,  # noqa: A002 - TorchIO's argument name
        tensor: torch.Tensor | Array | None = None,
        affine: Any = None,
        check_nans: bool = False,
        reader: TypeReader = io.read_image,
        verify_path: bool = True,
        *,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(path, (torch.Tensor, np.ndarray)):
            if tensor is not None:
                raise TypeError("give the voxels either as path or as tensor, not both")
            path, tensor = None, path
        if path is None and tensor is None:
            raise ValueError("an image needs a path or a tensor; got neither")
        if path is not None and tensor is not None:
            raise ValueError("an image takes a path or a tensor, not both")
        if type not in IMAGE_TYPES:
            raise ValueError(f"image type must be one of {IMAGE_TYPES}, got {type!r}")
        if dtype is not None and not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype must be a torch.dtype, got {dtype!r}")
        self.type = type
        self.check_nans = check_nans
        self.reader = check_reader(reader)
        self.metadata: dict[str, Any] = dict(kwargs)
        self._requested_dtype = dtype
        self._data: torch.Tensor | None = None
        self._header: io.Header | None = None
        self._detached = False  # True for crops: data is not the whole file
        self._affine: TypeAffine | None = None if affine is None else check_affine(affine, self._describe("affine"))
        self.path: Path | list[Path] | None = None
        if path is not None:
            self.path = parse_image_paths(path, is_custom_reader(reader), verify_path)
        else:
            self.set_data(tensor)
            if self._affine is None:
                self._affine = np.eye(4)

    # Construction helpers ----------------------------------------------------

    def _describe(self, what: str = "") -> str:
        name = f"{type(self).__name__}"
        path = getattr(self, "path", None)
        if path is not None:
            name += f" {str(path)!r}" if not isinstance(path, list) else f" {[str(p) for p in path]}"
        return f"{what} of {name}" if what else name

    def derive(self, data: torch.Tensor | None, affine: Any, *, checked: bool = False) -> Image:
        """A new image of the same class, type, path and metadata holding ``data`` and ``affine``.

        What every crop, patch and transform uses to make its output. The
        new image forgets what described the old voxels (the dtype asked for
        when reading; subclasses drop their own derived state too).

        Args:
            data: ``(C, I, J, K)`` voxels, or ``None`` for a voxel-less
                template (the Queue's patches share one per image).
            affine: The new voxel-to-RAS+ matrix.
            checked: ``data`` and ``affine`` come from an image of this class
                (a crop, a patch): skip the conversion and checks and keep
                the tensor as it is. Default: convert and check, as
                :meth:`set_data` does, and warn on NaN when ``check_nans``.

        Example:
            >>> image = ScalarImage(tensor=torch.zeros(1, 4, 4, 1), subject_part='brain')
            >>> patch = image.derive(torch.ones(1, 2, 2, 1), np.eye(4))
            >>> type(patch).__name__, patch.shape, patch.metadata
            ('ScalarImage', (1, 2, 2, 1), {'subject_part': 'brain'})
        """
        new = shallow_copy(self)
        new._requested_dtype = None
        new.metadata = dict(self.metadata)
        new._header = None
        new._detached = self.path is not None
        new._data = new._file_order = None
        if checked or data is None:
            new._affine = np.asarray(affine, dtype=np.float64)
            new._data = data
        else:
            new._affine = check_affine(affine, self._describe("affine"))
            new.set_data(data)
        return new

    def replica(self) -> Image:
        """A new object for this image: voxels (or file) shared, metadata dict and affine its own; nothing re-checked.

        Example:
            >>> image = ScalarImage(tensor=torch.zeros(1, 2, 2, 1))
            >>> copy = image.replica()
            >>> copy.affine[0, 0] = 2.0
            >>> float(image.affine[0, 0]), copy.data is image.data
            (1.0, True)
        """
        new = shallow_copy(self)
        new.metadata = dict(self.metadata)
        if self._affine is not None:
            new._affine = self._affine.copy()  # an affine edited in place stays in that copy
        return new

    # Voxels ----------------------------------------------------------------------

    def _to_tensor(self, array: Array | torch.Tensor) -> torch.Tensor:
        if isinstance(array, np.ndarray):
            if array.dtype in _WIDENED:
                array = array.astype(_WIDENED[array.dtype])
            if array.dtype == np.bool_ and self.type == LABEL:
                array = array.astype(np.uint8)
            if array.dtype.kind == "f" and self.type == LABEL:
                array = self._float_labels_to_int(array)
            if array.dtype.kind not in "biuf":
                raise TypeError(f"unsupported voxel dtype {array.dtype} in {self._describe()}")
            if not array.flags.writeable or not array.flags.c_contiguous:
                array = np.ascontiguousarray(array).copy()
            tensor = torch.from_numpy(array)
        elif isinstance(array, torch.Tensor):
            tensor = array
            if tensor.dtype.is_floating_point and self.type == LABEL:
                tensor = torch.from_numpy(self._float_labels_to_int(tensor.detach().cpu().numpy()))
            elif tensor.dtype == torch.bool and self.type == LABEL:
                tensor = tensor.to(torch.uint8)
        else:
            raise TypeError(f"image data must be a torch.Tensor or numpy array, got {type(array).__name__}")
        if self._requested_dtype is not None:
            tensor = tensor.to(self._requested_dtype)
        return tensor

    def _float_labels_to_int(self, array: Array) -> Array:
        finite = np.isfinite(array)
        if not finite.all():
            raise ValueError(f"label map {self._describe()} holds NaN or infinite values")
        if (array != np.round(array)).any():
            return array.astype(np.float32)  # partial-volume fractions, as TorchIO's LabelSampler takes them
        return array.astype(np.int64)

    def set_data(self, tensor: torch.Tensor | Array | None) -> None:
        """Replace the voxels; ``tensor`` must be ``(C, I, J, K)``.

        Example:
            >>> image = Image(tensor=torch.zeros(1, 2, 2, 2), type=INTENSITY)
            >>> image.set_data(torch.ones(2, 3, 3, 3)); image.shape
            (2, 3, 3, 3)
        """
        if tensor is None:
            raise TypeError(f"data of {self._describe()} must be a tensor, got None")
        converted = self._to_tensor(tensor)
        if converted.ndim != 4:
            hint = ""
            if converted.ndim == 3:
                hint = "; for one channel use tensor[None], for a 2D multi-channel image use tensor[..., None]"
            elif converted.ndim == 2:
                hint = "; for a 2D image use tensor[None, ..., None]"
            raise ValueError(
                f"data of {self._describe()} must be 4D (C, I, J, K), got {converted.ndim}D "
                f"of shape {tuple(converted.shape)}{hint}"
            )
        if min(converted.shape) < 1:
            raise ValueError(f"data of {self._describe()} is empty: shape {tuple(converted.shape)}")
        if self.check_nans and converted.is_floating_point() and torch.isnan(converted).any():
            warnings.warn(f"NaN values found in {self._describe()}", RuntimeWarning, stacklevel=2)
        self._data = converted

    @property
    def data(self) -> torch.Tensor:
        """The voxels, ``(C, I, J, K)``, read from disk on first access."""
        if self._data is None:
            self.load()
            self._load_file_order()
        assert self._data is not None
        return self._data

    @data.setter
    def data(self, tensor: torch.Tensor) -> None:
        self.set_data(tensor)

    tensor = data

    @property
    def requested_dtype(self) -> torch.dtype | None:
        """The dtype the voxels are cast to when read (the ``dtype`` argument), or ``None``.

        Example:
            >>> Image(tensor=torch.zeros(1, 2, 2, 1), type=INTENSITY, dtype=torch.float16).requested_dtype
            torch.float16
        """
        return self._requested_dtype

    @property
    def is_loaded(self) -> bool:
        """Whether the voxels are in memory."""
        return self._data is not None or self._file_order is not None

    def load(self) -> None:
        """Read the voxels now (a no-op when already loaded).

        Example:
            >>> image = Image(tensor=torch.zeros(1, 2, 2, 2), type=INTENSITY)
            >>> image.load(); image.is_loaded
            True
        """
        if self.is_loaded:
            return
        assert self.path is not None
        if is_custom_reader(self.reader):
            return self.load_with_reader()
        self._load_whole()

    def unload(self) -> None:
        """Free the voxels of a file-backed image; they are read again on use.

        Images made from tensors, and crops, keep their data.

        Example:
            >>> image = Image(tensor=torch.zeros(1, 2, 2, 2), type=INTENSITY)
            >>> image.unload(); image.is_loaded
            True
        """
        if self.path is not None and not self._detached:
            self._data = self._file_order = None

    def crop(self, index_ini: Sequence[int], index_fin: Sequence[int], *, copy: bool = True) -> Image:
        """A new image holding ``[index_ini, index_fin)``, its affine shifted.

        Args:
            index_ini: First voxel of the box.
            index_fin: One past the last voxel of the box.
            copy: Copy the voxels (default), so the crop does not keep the
                whole volume alive.

        Example:
            >>> image = Image(tensor=torch.zeros(1, 4, 4, 4), type=INTENSITY)
            >>> patch = image.crop((1, 1, 1), (3, 3, 3))
            >>> patch.shape, patch.origin
            ((1, 2, 2, 2), (1.0, 1.0, 1.0))
        """
        region = self.read_region(index_ini, index_fin)
        if copy and self._data is not None:
            region = region.clone()
        affine = shift_affine(self.affine, index_ini)
        # The region is already in this image's dtype and layout, and a
        # shifted valid affine is valid: nothing to convert or check (but NaN
        # checks, when asked for, run on the crop).
        return self.derive(region, affine, checked=not self.check_nans)

    # Header ----------------------------------------------------------------------

    def _file_header(self) -> io.Header:
        if is_custom_reader(self.reader):
            return self.header_from_reader()
        if self._header is None:
            if isinstance(self.path, list):
                self._header = io.read_channels_header(self.path)
            else:
                assert self.path is not None
                self._header = io.read_header(self.path)
        return self._header

    @property
    def header(self) -> io.Header:
        """Shape, channels, affine and dtype, from the data when loaded, else the file."""
        if self._data is not None:
            shape = tuple(int(s) for s in self._data.shape)
            try:
                numpy_dtype = io.numpy_dtype(self._data.dtype)
            except TypeError:  # bfloat16 has no numpy twin
                numpy_dtype = np.dtype(np.float32)
            return io.Header((shape[1], shape[2], shape[3]), shape[0], self.affine, numpy_dtype)
        header = self._file_header()
        return io.Header(header.spatial_shape, header.num_channels, self.affine, header.dtype)

    @property
    def affine(self) -> TypeAffine:
        """4x4 float64 matrix from voxel indices to RAS+ millimetres."""
        if self._affine is None:
            self._affine = self._file_header().affine.copy()  # its own: the header may be shared by copies
        return self._affine

    @affine.setter
    def affine(self, affine: Any) -> None:
        self._affine = check_affine(affine, self._describe("affine"))

    @property
    def spatial_shape(self) -> TypeTriplet:
        """``(I, J, K)``."""
        if self._data is not None:
            shape = self._data.shape
            return (int(shape[1]), int(shape[2]), int(shape[3]))
        return self._file_header().spatial_shape

    @property
    def num_channels(self) -> int:
        """Number of channels ``C``."""
        if self._data is not None:
            return int(self._data.shape[0])
        return self._file_header().num_channels

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(C, I, J, K)``."""
        return (self.num_channels, *self.spatial_shape)

    @property
    def dtype(self) -> torch.dtype:
        """Torch dtype of :attr:`data`, known before loading."""
        if self._data is not None:
            return self._data.dtype
        if self._requested_dtype is not None:
            return self._requested_dtype
        numpy_dtype = self._file_header().dtype
        if numpy_dtype in _WIDENED:
            numpy_dtype = np.dtype(_WIDENED[numpy_dtype])
        if self.type == LABEL and numpy_dtype.kind in "fb":
            return torch.uint8 if numpy_dtype.kind == "b" else torch.int64
        return torch.from_numpy(np.zeros(0, dtype=numpy_dtype)).dtype

    @property
    def memory(self) -> int:
        """Bytes the voxels take (or will take) in memory."""
        itemsize = torch.empty(0, dtype=self.dtype).element_size()
        return int(np.prod(self.shape, dtype=np.int64)) * itemsize

    @property
    def spacing(self) -> TypeSpacing:
        """Voxel size in millimetres along I, J, K."""
        return spacing_from_affine(self.affine)

    @property
    def origin(self) -> TypeSpacing:
        """RAS+ position of the centre of the first voxel."""
        return origin_from_affine(self.affine)

    @property
    def orientation(self) -> tuple[str, str, str]:
        """Axis codes, e.g. ``('R', 'A', 'S')``."""
        return orientation_from_affine(self.affine)

    def is_2d(self) -> bool:
        """Whether the image is depth one (``K == 1``)."""
        return self.spatial_shape[2] == 1

    @property
    def stem(self) -> str | None:
        """File name without suffix of the (first) path, if any."""
        if self.path is None:
            return None
        first = self.path[0] if isinstance(self.path, list) else self.path
        return io.get_stem(first)

    # Access ----------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        if key == DATA:
            return self.data
        if key == AFFINE:
            return self.affine
        if key == PATH:
            return self.path
        if key == STEM:
            return self.stem
        if key == TYPE:
            return self.type
        if key in self.metadata:
            return self.metadata[key]
        keys = [DATA, AFFINE, PATH, STEM, TYPE, *self.metadata]
        raise KeyError(f"{self._describe()} has no key {key!r}; keys: {keys}")

    def __iter__(self) -> NoReturn:
        # Reached from a plain DataLoader's default_collate (Image is a registered Mapping, below).
        use = "torchpatch.SubjectsLoader (or collate_fn=torchpatch.collate_subjects)"
        raise TypeError(f"{self._describe()} cannot be iterated; to batch subjects or patches, use {use}")

    def __repr__(self) -> str:
        # TorchIO's: shape, spacing, orientation, then the dtype and memory once loaded, else the path.
        try:
            details = f"shape: {self.shape}; spacing: {self.get_spacing_string()}; orientation: {self.orientation_str}+"
        except (ValueError, FileNotFoundError) as error:
            details = f"unreadable: {error}"
        if self.is_loaded:
            return f"{type(self).__name__}({details}; dtype: {self.data.type()}; memory: {natural_size(self.memory)})"
        return f'{type(self).__name__}({details}; path: "{self.path}")'


Mapping.register(Image)  # as TorchIO's dict Image: default_collate then calls __iter__


class ScalarImage(Image):
    """An intensity image (MRI, CT, photo), keeping the file's dtype.

    ``uint16`` and ``uint32`` become ``int32`` and ``int64`` because torch
    cannot compute with them; pass ``dtype=torch.float32`` to cast.

    Example:
        >>> ScalarImage(tensor=torch.rand(3, 8, 8, 1)).num_channels
        3
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "type" in kwargs and kwargs["type"] != INTENSITY:
            raise ValueError(f"ScalarImage has type {INTENSITY!r}; use LabelMap for labels")
        kwargs["type"] = INTENSITY
        super().__init__(*args, **kwargs)


class LabelMap(Image, LabelCounts):
    """A segmentation: integer classes, resampled with nearest neighbours.

    Integer dtypes are kept (``uint16`` -> ``int32``, ``uint32`` -> ``int64``);
    floats holding whole numbers become ``int64`` (known before loading, so
    ``memory`` is exact), and any other float is an error.

    Example:
        >>> LabelMap(tensor=torch.tensor([[[[0.0], [2.0]]]])).dtype
        torch.int64
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "type" in kwargs and kwargs["type"] != LABEL:
            raise ValueError(f"LabelMap has type {LABEL!r}; use ScalarImage for intensities")
        kwargs["type"] = LABEL
        super().__init__(*args, **kwargs)


__all__ = ["Image", "LabelMap", "ScalarImage"]
