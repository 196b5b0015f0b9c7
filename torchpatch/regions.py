"""Reading boxes of an image: the one way torchpatch cuts voxels.

:class:`RegionReads` is the part of :class:`~torchpatch.image.Image` that
reads boxes: :meth:`~RegionReads.read_region` (one box, a view when it can
be) and :meth:`~RegionReads.read_regions` (many boxes of one size, stacked
into a given buffer). Boxes may reach past the border when a padding mode
says how to fill them (:mod:`torchpatch.geometry.padding`). The fast path
of every patch copy lives here: numpy copies, one box after the other, from
the loaded voxels or from the memory map of an unloaded ``.npy`` file,
straight into the caller's buffer (in shared memory inside a loader worker).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import io
from .constants import LABEL
from .geometry import (
    GEOMETRIC_MODES,
    STATISTIC_MODES,
    check_locations,
    check_region,
    parse_padding_mode,
    source_indices,
    to_triplet,
)
from .typing import TypeTriplet

Array = np.ndarray[Any, np.dtype[Any]]

#: Voxels, in volumes, that boxes may add up to before voxels loaded in the file's order are reordered:
#: transposing a box costs more per voxel than copying it in C order (int16 0.22 against 0.14 ns, float32
#: 0.46 against 0.22 here), so past about three volumes reordering first would have paid.
FILE_ORDER_BUDGET = 1.5

#: Boxes of at least this many bytes are copied by :func:`torchpatch.io.copy_boxes` (it prefetches each plane
#: of a box while the one before is copied: 200 boxes of 64³ float32 out of a 256³ volume 11.1 against 15.6
#: ms by numpy), smaller ones by numpy (whose call costs 2.4 us less: an 8³ box 0.6 against 3.0 us).
COMPILED_BOX_BYTES = 1 << 15


def _compiled_copy(out: torch.Tensor, source: Array, corners: list[Any]) -> bool:
    """Copy the boxes at ``corners`` of ``source`` into the rows of ``out`` by :func:`torchpatch.io.copy_boxes`.

    Only boxes of :data:`COMPILED_BOX_BYTES` or more (numpy's slices copy smaller ones sooner); whether it copied.
    """
    return out[0].nbytes >= COMPILED_BOX_BYTES and io.copy_boxes(out, [(source, corner) for corner in corners])


class RegionReads:
    """Box reads of an image (mixed into :class:`~torchpatch.image.Image`, which provides the voxels).

    Example:
        >>> from torchpatch import ScalarImage
        >>> image = ScalarImage(tensor=torch.arange(8.0).reshape(1, 2, 4, 1))
        >>> image.read_region((0, 3, 0), (2, 5, 1), padding_mode='edge')[0, :, :, 0].tolist()
        [[3.0, 3.0], [7.0, 7.0]]
    """

    #: Voxels loaded in the file's order (:meth:`_load_whole`), ``_data`` still ``None``: a
    #: strided tensor, so that a loader's worker sends it in shared memory as it does ``_data``.
    _file_order: torch.Tensor | None = None
    #: Voxels that :meth:`read_regions` may still cut out of ``_file_order`` before reordering it.
    _file_order_budget = 0

    # Provided by Image.
    _data: torch.Tensor | None
    _requested_dtype: torch.dtype | None
    path: Path | list[Path] | None
    check_nans: bool
    type: str | None

    def _describe(self, what: str = "") -> str:
        raise NotImplementedError

    def _to_tensor(self, array: Array | torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def set_data(self, tensor: torch.Tensor | Array | None) -> None:
        raise NotImplementedError

    def load(self) -> None:
        raise NotImplementedError

    @property
    def data(self) -> torch.Tensor:
        raise NotImplementedError

    @property
    def spatial_shape(self) -> TypeTriplet:
        raise NotImplementedError

    @property
    def num_channels(self) -> int:
        raise NotImplementedError

    @property
    def dtype(self) -> torch.dtype:
        raise NotImplementedError

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

    def _load_whole(self) -> None:
        """Read every voxel of the file(s); where it pays, leave them in the file's order.

        That is one file read whole by a backend that decodes in the file's
        order (NIfTI, NRRD, MetaImage...: :func:`torchpatch.io.read_image_file_order`),
        with the compiled copies, no NaN check and no dtype asked for. Voxels
        left in the file's order are reordered when :attr:`data` is first
        used, and boxes are cut straight out of them until then
        (:meth:`read_regions`); voxels decoded C-ordered all the same are
        loaded as usual.
        """
        assert self.path is not None
        paths = self.path if isinstance(self.path, list) else [self.path]
        path = None if len(paths) > 1 or self.check_nans or self._requested_dtype is not None else paths[0]
        if path is None or io.reorder_backend() != "compiled" or io.backend_of(path).read_file_order is None:
            self.set_data(io.read_channels(paths))
            return
        voxels, _ = io.read_image_file_order(path)
        if not io.in_file_order(voxels) or voxels.dtype != io.numpy_dtype(self.dtype):
            # Streamed, channels interleaved, or converted when loaded (uint16 widened, float labels).
            self.set_data(io.c_order(voxels))
            return
        self._file_order = torch.from_numpy(voxels)
        self._file_order_budget = int(FILE_ORDER_BUDGET * np.prod(voxels.shape[1:]))

    def _reads_regions(self) -> bool:
        """Whether boxes are read from the file alone (:func:`torchpatch.io.supports_region_reads`)."""
        return isinstance(self.path, Path) and io.supports_region_reads(self.path)

    def _load_file_order(self) -> None:
        """Reorder voxels kept in the file's order into :attr:`data`, if there are any.

        Into a buffer of :mod:`torchpatch.io.buffers` (taken again once
        unused: no new pages), the decoded one given back, when this image
        alone holds them; into a new array when a copy of the image
        (``copy.copy``, a dataset's clone of a loaded subject) holds them too.
        """
        voxels, self._file_order = self._file_order, None
        if voxels is not None:
            alone = sys.getrefcount(voxels) <= 2  # the name voxels and getrefcount's argument
            self.set_data(io.c_order(voxels.numpy(), reuse=alone))

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
        ``out`` is given); uncompressed ``.nii`` and ``.npy`` files, and NRRD
        and MetaImage files with raw voxels, are read from disk for just the
        box; other formats are loaded whole first.

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
            >>> from torchpatch import ScalarImage
            >>> image = ScalarImage(tensor=torch.arange(16).reshape(1, 4, 4, 1))
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
            padded, first = self._statistic_padding(mode, ini, fin)
            out.copy_(
                padded[:, first[0] : first[0] + size[0], first[1] : first[1] + size[1], first[2] : first[2] + size[2]]
            )
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
            offset = [int(np.argmax(m >= 0)) for m in maps]
            out[
                :,
                offset[0] : offset[0] + high[0] - low[0],
                offset[1] : offset[1] + high[1] - low[1],
                offset[2] : offset[2] + high[2] - low[2],
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
        :meth:`Subject.cut <torchpatch.patches.SubjectCuts.cut>` calls. Boxes of
        loaded voxels or of a memory-mapped ``.npy`` are copied straight into
        ``out`` by :func:`torchpatch.io.copy_boxes` (numpy box by box without
        the extension).

        Args:
            locations: ``(N, 6)`` ints ``(i0, j0, k0, i1, j1, k1)``.
            padding_mode: As in :meth:`read_region`.
            out: A ``(N, C, *size)`` tensor of this image's dtype to fill.
            copy: ``False`` lets a single box inside the image be a view of
                the loaded voxels (the grid's patches), instead of a copy.

        Example:
            >>> from torchpatch import ScalarImage
            >>> image = ScalarImage(tensor=torch.arange(16).reshape(1, 4, 4, 1))
            >>> image.read_regions([[0, 0, 0, 1, 2, 1], [3, 2, 0, 4, 4, 1]])[:, 0, :, :, 0].tolist()
            [[[0, 1]], [[14, 15]]]
        """
        boxes = check_locations(locations, self._describe)
        rows = boxes.tolist()
        shape = self.spatial_shape
        # Plain Python: for the few boxes of a call, numpy's per-call overhead costs more than the tests.
        inside = [
            b[0] >= 0 and b[1] >= 0 and b[2] >= 0 and b[3] <= shape[0] and b[4] <= shape[1] and b[5] <= shape[2]
            for b in rows
        ]
        if padding_mode is None and not all(inside):
            box = rows[inside.index(False)]
            check_region(box[:3], box[3:], shape, self._describe())
        if not copy and out is None and len(rows) == 1:
            box = rows[0]
            if inside[0]:
                return self._read_inside((box[0], box[1], box[2]), (box[3], box[4], box[5]), None)[None]
            return self.read_region(box[:3], box[3:], padding_mode=padding_mode)[None]
        size = (rows[0][3] - rows[0][0], rows[0][4] - rows[0][1], rows[0][5] - rows[0][2]) if rows else (1, 1, 1)
        if out is None:
            out = torch.empty((len(rows), self.num_channels, *size), dtype=self.dtype, device=self._device)
        if not rows:
            return out
        source = self._region_array()
        if source is None and self._data is None and self._file_order is None and not self._reads_regions():
            self.load()  # read whole (as box by box below would), perhaps left in the file's order
            source = self._region_array()
        if self._file_order is not None:
            # Boxes transposed as they are copied, while they add up to less than the budget.
            voxels, count = self._file_order.numpy(), len(rows) * int(np.prod(size))
            fits = all(inside) and count <= self._file_order_budget and out.device.type == "cpu"
            if fits and io.copy_boxes(out, [(voxels, box[:3]) for box in rows]):
                self._file_order_budget -= count
                return out
            self._load_file_order()
            source = self._region_array()
        target = None
        if source is not None and out.device.type == "cpu" and out.dtype != torch.bfloat16:
            target = out.numpy()
            if target.dtype != source.dtype:
                target = None
            elif all(inside) and _compiled_copy(out, source, [box[:3] for box in rows]):
                return out
        for index, (box, box_inside) in enumerate(zip(rows, inside)):
            if target is not None and box_inside:
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
                    if not _compiled_copy(out[None], source, [ini]):
                        target[...] = source[:, ini[0] : fin[0], ini[1] : fin[1], ini[2] : fin[2]]
                    return out
        if self._data is None and self._reads_regions():
            assert isinstance(self.path, Path)
            region = self._to_tensor(io.read_region(self.path, ini, fin))
        else:
            region = self.data[:, ini[0] : fin[0], ini[1] : fin[1], ini[2] : fin[2]]
        if out is None:
            return region
        out.copy_(region)
        return out

    def _statistic_padding(self, mode: str, ini: TypeTriplet, fin: TypeTriplet) -> tuple[torch.Tensor, TypeTriplet]:
        """A padded slab of this image holding the box, and where the box starts in it.

        A statistic mode fills a voxel past the border from whole lines of
        the image along the axes it pads (as :func:`numpy.pad` does, axis
        after axis), so the slab spans the whole image along the axes the
        box reaches past, and only the box along the others.
        """
        shape = self.spatial_shape
        low, high, widths, start = [], [], [(0, 0)], []
        for i, f, size in zip(ini, fin, shape):
            if i < 0 or f > size:
                low.append(0)
                high.append(size)
                widths.append((max(0, -i), max(0, f - size)))
                start.append(i + max(0, -i))
            else:
                low.append(i)
                high.append(f)
                widths.append((0, 0))
                start.append(0)
        slab = self._read_inside((low[0], low[1], low[2]), (high[0], high[1], high[2]), None).detach().cpu()
        if slab.dtype in (torch.float16, torch.bfloat16):
            slab = slab.to(torch.float32)
        array = np.pad(slab.numpy(), widths, mode=mode)  # type: ignore[call-overload]
        padded = torch.from_numpy(array).to(device=self._device, dtype=self.dtype)
        return padded, (start[0], start[1], start[2])


__all__ = ["RegionReads"]
