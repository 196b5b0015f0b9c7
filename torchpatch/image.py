"""Lazy images: the header is read first, the voxels on first touch.

An :class:`Image` knows its shape, affine, spacing and orientation as soon as
it is created from a path, because only the file header is read. Its
``data`` (a ``(C, I, J, K)`` tensor) is read the first time it is used, and
:meth:`Image.read_region` reads just a box of voxels, from disk when the file
is uncompressed (``.nii``, ``.npy``)::

    Image('ct.nii')          header only:   shape, affine, spacing, memory
      .read_region(a, b)     bytes of one box, memory-mapped
      .data                  whole volume, cached until .unload()
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import io
from .constants import AFFINE, DATA, INTENSITY, LABEL, PATH, STEM, TYPE
from .geometry import (
    GEOMETRIC_MODES,
    STATISTIC_MODES,
    check_affine,
    check_locations,
    check_region,
    orientation_from_affine,
    origin_from_affine,
    parse_padding_mode,
    shift_affine,
    source_indices,
    spacing_from_affine,
    to_triplet,
)
from .typing import TypeAffine, TypePath, TypeSpacing, TypeTriplet

Array = np.ndarray[Any, np.dtype[Any]]

# Integer types torch cannot compute with, widened to the next type it can.
_WIDENED = {np.dtype(np.uint16): np.int32, np.dtype(np.uint32): np.int64, np.dtype(np.uint64): np.int64}


class Image:
    """A 4D image ``(C, I, J, K)`` with a RAS+ affine, read lazily from disk.

    Args:
        path: A file, a DICOM folder, or a list of files stacked as channels.
            A tensor or array given here is taken as ``tensor``.
        type: :data:`~torchpatch.constants.INTENSITY` or
            :data:`~torchpatch.constants.LABEL`.
        tensor: ``(C, I, J, K)`` voxels, instead of a path.
        affine: 4x4 voxel-to-RAS+ matrix. Identity when omitted for tensors;
            for a path it replaces the file's (needed for ``.npy``).
        check_nans: Warn when the loaded data holds NaN.
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
        if type not in (INTENSITY, LABEL):
            raise ValueError(f"image type must be {INTENSITY!r} or {LABEL!r}, got {type!r}")
        if dtype is not None and not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype must be a torch.dtype, got {dtype!r}")
        self.type = type
        self.check_nans = check_nans
        self.metadata: dict[str, Any] = dict(kwargs)
        self._requested_dtype = dtype
        self._data: torch.Tensor | None = None
        # A statistic-mode padding of the voxels, kept for the next box (see _statistic_padding).
        self._padded: tuple[Any, ...] | None = None
        self._header: io.Header | None = None
        self._detached = False  # True for crops: data is not the whole file
        self._affine: TypeAffine | None = None if affine is None else check_affine(affine, self._describe("affine"))
        self.path: Path | list[Path] | None = None
        if path is not None:
            self.path = self._parse_paths(path)
        else:
            self.set_data(tensor)
            if self._affine is None:
                self._affine = np.eye(4)

    # Construction helpers ----------------------------------------------------

    @staticmethod
    def _parse_paths(path: TypePath | Sequence[TypePath]) -> Path | list[Path]:
        if isinstance(path, (list, tuple)):
            if not path:
                raise ValueError("an image needs at least one path, got an empty list")
            paths = [io.check_path(p) for p in path]
            return paths[0] if len(paths) == 1 else paths
        return io.check_path(path)  # type: ignore[arg-type]

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
        new = copy.copy(self)
        new._requested_dtype = None
        new.metadata = dict(self.metadata)
        new._header = None
        new._detached = self.path is not None
        new._data = None
        new._padded = None
        if checked or data is None:
            new._affine = np.asarray(affine, dtype=np.float64)
            new._data = data
        else:
            new._affine = check_affine(affine, self._describe("affine"))
            new.set_data(data)
        return new

    def _region_array(self) -> Array | None:
        """A ``(C, I, J, K)`` numpy array whose boxes are this image's voxels, or ``None``.

        Loaded CPU data, or the memory map of an unloaded ``.npy`` file; the
        caller checks the map's dtype is the one :meth:`read_region` returns.
        ``None`` when crops must go through :meth:`read_region` (NaN checks,
        a requested dtype, other formats, other devices).
        """
        if self.check_nans:
            return None
        data = self._data
        if data is not None:
            if data.device.type != "cpu" or data.requires_grad or data.dtype == torch.bfloat16:
                return None
            return data.numpy()
        if self._requested_dtype is None and isinstance(self.path, Path) and io.get_suffix(self.path) == ".npy":
            return io.memory_map(self.path)
        return None

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
        fractional = array != np.round(array)
        if fractional.any():
            examples = np.unique(array[fractional])[:5].tolist()
            raise ValueError(
                f"label map {self._describe()} holds non-integer values such as {examples}; "
                f"label maps must hold integer classes (use ScalarImage for probabilities)"
            )
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
        return self._data is not None

    def load(self) -> None:
        """Read the voxels now (a no-op when already loaded).

        Example:
            >>> image = Image(tensor=torch.zeros(1, 2, 2, 2), type=INTENSITY)
            >>> image.load(); image.is_loaded
            True
        """
        if self._data is not None:
            return
        paths = self.path if isinstance(self.path, list) else [self.path]
        arrays = []
        for path in paths:
            assert path is not None
            array, _ = io.read_image(path)
            arrays.append(array)
        if len(arrays) > 1:
            self._check_paths_match()
            array = np.concatenate(arrays, axis=0)
        else:
            array = arrays[0]
        self.set_data(array)

    def unload(self) -> None:
        """Free the voxels of a file-backed image; they are read again on use.

        Images made from tensors, and crops, keep their data.

        Example:
            >>> image = Image(tensor=torch.zeros(1, 2, 2, 2), type=INTENSITY)
            >>> image.unload(); image.is_loaded
            True
        """
        if self.path is not None and not self._detached:
            self._data = None

    def read_region(
        self,
        index_ini: Sequence[int],
        index_fin: Sequence[int],
        *,
        padding_mode: float | str | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Voxels of the half-open box ``[index_ini, index_fin)``: ``(C, ...)``.

        The one way torchpatch reads a box of an image: samplers, the grid,
        the Queue, :func:`~torchpatch.infer`, detection and export all cut
        patches through it. Loaded images are sliced (a view, no copy, unless
        ``out`` is given); uncompressed ``.nii`` and ``.npy`` files are read
        from disk for just the box; other formats are loaded whole first.

        Args:
            index_ini: First voxel of the box.
            index_fin: One past the last voxel of the box.
            padding_mode: ``None``: the box must lie inside the image.
                Otherwise the box may reach past the border, and the voxels
                outside are filled as this mode of
                :mod:`~torchpatch.geometry.padding` says (label maps get 0
                unless the mode copies voxels).
            out: A ``(C, *box)`` tensor of this image's dtype to write into
                (e.g. one item of a batch in shared memory); returned.

        Example:
            >>> image = Image(tensor=torch.arange(16).reshape(1, 4, 4, 1), type=INTENSITY)
            >>> image.read_region((1, 1, 0), (3, 2, 1)).flatten().tolist()
            [5, 9]
            >>> image.read_region((-1, 0, 0), (1, 1, 1), padding_mode='edge').flatten().tolist()
            [0, 0]
        """
        if padding_mode is None:
            ini, fin = check_region(index_ini, index_fin, self.spatial_shape, self._describe())
            return self._read_inside(ini, fin, out)
        ini = to_triplet(tuple(index_ini), "index_ini", minimum=-(2**62))
        fin = to_triplet(tuple(index_fin), "index_fin", minimum=-(2**62))
        shape = self.spatial_shape
        if any(f <= i for i, f in zip(ini, fin)):
            raise ValueError(f"region {ini} -> {fin} of {self._describe()} is empty: need index_ini < index_fin")
        if all(i >= 0 and f <= s for i, f, s in zip(ini, fin, shape)):
            return self._read_inside(ini, fin, out)
        mode, fill = parse_padding_mode(padding_mode)
        if self.type == LABEL and mode not in GEOMETRIC_MODES:
            mode, fill = "constant", 0.0
        size = tuple(f - i for i, f in zip(ini, fin))
        if out is None:
            out = torch.empty((self.num_channels, *size), dtype=self.dtype, device=self._device)
        if mode in STATISTIC_MODES:
            padded, before = self._statistic_padding(mode, ini, fin)
            low = [i + b for i, b in zip(ini, before)]
            out.copy_(padded[:, low[0] : low[0] + size[0], low[1] : low[1] + size[1], low[2] : low[2] + size[2]])
            return out
        maps = [source_indices(s, i, f, mode) for s, i, f in zip(shape, ini, fin)]
        valid = [m[m >= 0] for m in maps]
        if any(v.size == 0 for v in valid):  # the box lies wholly outside the image
            out.fill_(fill)
            return out
        low = [int(v.min()) for v in valid]
        high = [int(v.max()) + 1 for v in valid]
        region = self._read_inside((low[0], low[1], low[2]), (high[0], high[1], high[2]), None)
        if mode == "constant":
            out.fill_(fill)
            first = [int(np.argmax(m >= 0)) for m in maps]
            out[
                :,
                first[0] : first[0] + high[0] - low[0],
                first[1] : first[1] + high[1] - low[1],
                first[2] : first[2] + high[2] - low[2],
            ] = region
            return out
        for axis, (indices, start) in enumerate(zip(maps, low)):
            region = region.index_select(axis + 1, torch.from_numpy(indices - start).to(region.device))
        out.copy_(region)
        return out

    def read_regions(
        self,
        locations: Any,
        *,
        padding_mode: float | str | None = None,
        out: torch.Tensor | None = None,
        copy: bool = True,
    ) -> torch.Tensor:
        """The boxes at ``locations``, stacked: ``(N, C, *size)``, every box the same size.

        :meth:`read_region` for many boxes at once, checked once: what
        :meth:`Subject.cut <torchpatch.subject.Subject.cut>` calls. Boxes of
        loaded voxels or of a memory-mapped ``.npy`` are copied straight into
        ``out`` by numpy, one box after the other.

        Args:
            locations: ``(N, 6)`` ints ``(i0, j0, k0, i1, j1, k1)``.
            padding_mode: As in :meth:`read_region`.
            out: A ``(N, C, *size)`` tensor of this image's dtype to fill.
            copy: ``False`` lets a single box inside the image be a view of
                the loaded voxels (the grid's patches), instead of a copy.

        Example:
            >>> image = Image(tensor=torch.arange(16).reshape(1, 4, 4, 1), type=INTENSITY)
            >>> image.read_regions([[0, 0, 0, 1, 2, 1], [3, 2, 0, 4, 4, 1]])[:, 0, :, :, 0].tolist()
            [[[0, 1]], [[14, 15]]]
        """
        boxes = check_locations(locations, self._describe())
        if not copy and out is None and len(boxes) == 1:
            box = boxes[0].tolist()
            return self.read_region(box[:3], box[3:], padding_mode=padding_mode)[None]
        sizes = boxes[:, 3:] - boxes[:, :3]
        size = tuple(int(v) for v in sizes[0]) if len(boxes) else (1, 1, 1)
        if out is None:
            out = torch.empty((len(boxes), self.num_channels, *size), dtype=self.dtype, device=self._device)
        if not len(boxes):
            return out
        shape = np.asarray(self.spatial_shape, dtype=np.int64)
        inside = (boxes[:, :3] >= 0).all(axis=1) & (boxes[:, 3:] <= shape).all(axis=1)
        if padding_mode is None and not inside.all():
            row = int(np.flatnonzero(~inside)[0])
            check_region(boxes[row, :3], boxes[row, 3:], self.spatial_shape, self._describe())
        source = self._region_array()
        target = None
        if source is not None and out.device.type == "cpu" and out.dtype != torch.bfloat16:
            target = out.numpy()
            if target.dtype != source.dtype:
                target = None
        for index, box in enumerate(boxes.tolist()):
            if target is not None and inside[index]:
                assert source is not None
                target[index] = source[:, box[0] : box[3], box[1] : box[4], box[2] : box[5]]
            else:
                self.read_region(box[:3], box[3:], padding_mode=padding_mode, out=out[index])
        return out

    @property
    def _device(self) -> torch.device:
        return self._data.device if self._data is not None else torch.device("cpu")

    def _read_inside(self, ini: TypeTriplet, fin: TypeTriplet, out: torch.Tensor | None) -> torch.Tensor:
        """The box ``[ini, fin)``, checked to lie inside: a view, or copied into ``out``."""
        if out is not None:
            # The fast path of every patch copy: numpy copies on one thread from
            # loaded voxels or a memory-mapped .npy (no tensor per patch, and no
            # parallel region to wait on when worker processes hold the cores).
            source = self._region_array()
            if source is not None and out.device.type == "cpu" and out.dtype != torch.bfloat16:
                target = out.numpy()
                if source.dtype == target.dtype:
                    target[...] = source[:, ini[0] : fin[0], ini[1] : fin[1], ini[2] : fin[2]]
                    return out
        if self._data is None and isinstance(self.path, Path) and io.supports_region_reads(self.path):
            region = self._to_tensor(io.read_region(self.path, ini, fin))
        else:
            region = self.data[:, ini[0] : fin[0], ini[1] : fin[1], ini[2] : fin[2]]
        if out is None:
            return region
        out.copy_(region)
        return out

    def _statistic_padding(self, mode: str, ini: TypeTriplet, fin: TypeTriplet) -> tuple[torch.Tensor, TypeTriplet]:
        """This image padded with a statistic mode, enough for the box; and the padding before each axis.

        The statistics are those of whole rows of the image, so the image is
        padded whole; the copy is kept for the next box of the same voxels
        (a grid's border patches), and widened when a box needs more.
        """
        shape = self.spatial_shape
        need_before = [max(0, -i) for i in ini]
        need_after = [max(0, f - s) for f, s in zip(fin, shape)]
        data = self.data
        cached = self._padded
        if cached is not None:
            key, source, version, before, after, padded = cached
            if (
                key == mode
                and source is data
                and version == data._version
                and all(b >= n for b, n in zip(before, need_before))
                and all(a >= n for a, n in zip(after, need_after))
            ):
                return padded, before
            need_before = [max(b, n) for b, n in zip(before, need_before)] if key == mode else need_before
            need_after = [max(a, n) for a, n in zip(after, need_after)] if key == mode else need_after
        widths = ((0, 0), *zip(need_before, need_after))
        source_array = data.detach().cpu()
        if source_array.dtype in (torch.float16, torch.bfloat16):
            source_array = source_array.to(torch.float32)
        array = np.pad(source_array.numpy(), widths, mode=mode)  # type: ignore[call-overload]
        padded = torch.from_numpy(array).to(device=data.device, dtype=data.dtype)
        before = (need_before[0], need_before[1], need_before[2])
        self._padded = (mode, data, data._version, before, tuple(need_after), padded)
        return padded, before

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

    def _check_paths_match(self) -> None:
        assert isinstance(self.path, list)
        headers = [io.read_header(p) for p in self.path]
        reference = headers[0]
        for path, header in zip(self.path[1:], headers[1:]):
            if header.spatial_shape != reference.spatial_shape or not np.allclose(
                header.affine, reference.affine, atol=1e-4
            ):
                raise ValueError(
                    f"files stacked as channels must share one grid: {str(self.path[0])!r} has shape "
                    f"{reference.spatial_shape} and affine\n{reference.affine}\nbut {str(path)!r} has shape "
                    f"{header.spatial_shape} and affine\n{header.affine}"
                )

    def _file_header(self) -> io.Header:
        if self._header is None:
            if isinstance(self.path, list):
                self._check_paths_match()
                headers = [io.read_header(p) for p in self.path]
                channels = sum(h.num_channels for h in headers)
                dtype = np.result_type(*[h.dtype for h in headers])
                self._header = io.Header(headers[0].spatial_shape, channels, headers[0].affine, dtype)
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
                numpy_dtype = torch.empty(0, dtype=self._data.dtype).numpy().dtype
            except TypeError:  # bfloat16 has no numpy twin
                numpy_dtype = np.dtype(np.float32)
            return io.Header((shape[1], shape[2], shape[3]), shape[0], self.affine, numpy_dtype)
        header = self._file_header()
        return io.Header(header.spatial_shape, header.num_channels, self.affine, header.dtype)

    @property
    def affine(self) -> TypeAffine:
        """4x4 float64 matrix from voxel indices to RAS+ millimetres."""
        if self._affine is None:
            self._affine = self._file_header().affine
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

    # Output and access -----------------------------------------------------------

    def save(self, path: TypePath) -> None:
        """Write the image; the format follows the extension.

        Example:
            >>> import tempfile, pathlib
            >>> out = pathlib.Path(tempfile.mkdtemp()) / 'x.nii.gz'
            >>> Image(tensor=torch.ones(1, 2, 2, 2), type=INTENSITY).save(out)
            >>> Image(out, type=INTENSITY).data.sum().item()
            8.0
        """
        io.write_image(self.data.detach().cpu().numpy(), self.affine, path)

    def numpy(self) -> Array:
        """The voxels as a numpy array (shares memory when possible)."""
        return self.data.detach().cpu().numpy()

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

    def __repr__(self) -> str:
        try:
            spacing = ", ".join(f"{s:.2f}" for s in self.spacing)
            details = (
                f"shape: {self.shape}; spacing: ({spacing}); orientation: {''.join(self.orientation)}+; "
                f"dtype: {self.dtype}; memory: {self.memory / 2**20:.1f} MiB"
            )
        except (ValueError, FileNotFoundError) as error:
            details = f"unreadable: {error}"
        where = f"; path: {str(self.path)!r}" if self.path is not None else ""
        return f"{type(self).__name__}({details}{where})"


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


class LabelMap(Image):
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
