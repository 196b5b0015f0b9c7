"""The patches of one subject, stacked per image: what :meth:`Subject.cut <torchpatch.patches.SubjectCuts.cut>` returns.

Cutting many patches of a subject at once lets every image's boxes be copied
straight into one ``(N, C, *patch)`` buffer (in shared memory inside a
loader worker, so the whole stack crosses to the training process in one
transfer), with no tensor, image or subject made per patch. A patch subject
is made only when one is asked for, as views of the stack::

    subject.cut(locations)   ->  Patches: data[name] (N, C, *patch), affines,
                                 locations (N, 6), per-patch metadata
    patches[n]               ->  Subject: the n-th patch, views of the stack
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch

from . import io
from .constants import LABEL, LOCATION
from .geometry import check_locations, parse_padding_mode, shift_affines
from .geometry.padding import fill_fits
from .image import Image
from .image_reader import is_custom_reader

if TYPE_CHECKING:
    from .subject import Subject

Array = np.ndarray[Any, np.dtype[Any]]


class Patches:
    """Patches of one subject, their voxels stacked per image.

    Attributes:
        template: The subject without voxels: what every patch shares
            (image classes, paths, metadata).
        data: Per image name, ``(N, C, *patch)`` voxels.
        affines: Per image name, ``(N, 4, 4)`` float64 affines.
        locations: ``(N, 6)`` int64 locations, in the subject's voxel grid.
        metadata: Per patch, the metadata that differs between patches
            (cropped boxes and points), or ``None`` when none does.
        sources: ``None`` for stacked voxels; else the patches are *deferred*
            (``data`` is empty): per image name, the image and the numpy
            array (a memory map) its boxes are copied from, when a patch is
            asked for or :meth:`read_into` a batch.
        padding_mode: How deferred boxes past the border are filled.

    Example:
        >>> from torchpatch import ScalarImage, Subject, LOCATION
        >>> subject = Subject(t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1)), age=3)
        >>> patches = subject.cut([[0, 0, 0, 2, 2, 1], [2, 2, 0, 4, 4, 1]])
        >>> len(patches), tuple(patches.data['t1'].shape)
        (2, (2, 1, 2, 2, 1))
        >>> patches[1]['t1'].data.flatten().tolist(), patches[1][LOCATION].tolist(), patches[1]['age']
        ([10.0, 11.0, 14.0, 15.0], [2, 2, 0, 4, 4, 1], 3)
    """

    def __init__(
        self,
        template: Subject,
        data: Mapping[str, torch.Tensor],
        affines: Mapping[str, Array],
        locations: Array,
        metadata: Sequence[Mapping[str, Any]] | None = None,
        sources: Mapping[str, tuple[Image, Array]] | None = None,
        padding_mode: float | str | None = None,
    ) -> None:
        self.template = template
        self.data = dict(data)
        self.affines = dict(affines)
        self.locations = np.asarray(locations, dtype=np.int64)
        self.metadata = None if metadata is None else [dict(m) for m in metadata]
        self.sources = None if sources is None else dict(sources)
        self.padding_mode = padding_mode
        #: ``locations`` as lists of ints (what the copies and the batches read, row by row).
        self.rows: list[list[int]] = self.locations.tolist()
        self._layout: dict[str, tuple[tuple[int, ...], torch.dtype]] | None = None
        self._tensors: dict[str, torch.Tensor] = {}

    @classmethod
    def from_subjects(
        cls,
        patches: Sequence[Subject],
        allocator: Callable[[tuple[int, ...], torch.dtype], torch.Tensor] | None = None,
    ) -> Patches:
        """Stack patch subjects (made by a sampler's own code or a patch transform).

        Args:
            patches: Patches with the same images and shapes, each with a
                ``LOCATION``.
            allocator: Makes each image's stacked buffer from a shape and a
                dtype (e.g. in shared memory); default :func:`torch.empty`.

        Example:
            >>> from torchpatch import ScalarImage, Subject
            >>> subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 1)))
            >>> again = Patches.from_subjects([subject.cut([[0, 0, 0, 2, 2, 1]])[0]])
            >>> tuple(again.data['t1'].shape), again.locations.tolist()
            ((1, 1, 2, 2, 1), [[0, 0, 0, 2, 2, 1]])
        """
        first = patches[0]
        allocate = allocator if allocator is not None else (lambda shape, dtype: torch.empty(shape, dtype=dtype))
        data = {}
        for name, image in first.images.items():
            out = allocate((len(patches), *image.shape), image.dtype)
            numpy_out = out.numpy() if out.device.type == "cpu" and out.dtype != torch.bfloat16 else None
            for index, patch in enumerate(patches):
                source = patch[name].data
                if numpy_out is not None and source.device.type == "cpu" and not source.requires_grad:
                    # numpy copies on one thread: torch's copy_ would wait on busy intra-op threads.
                    numpy_out[index] = source.numpy()
                else:
                    out[index].copy_(source)
            data[name] = out
        affines = {name: np.stack([patch[name].affine for patch in patches]) for name in first.images}
        locations = np.stack([np.asarray(patch[LOCATION], dtype=np.int64) for patch in patches])
        metadata = [{k: v for k, v in patch.metadata.items() if k != LOCATION} for patch in patches]
        templates = {name: image.derive(None, image.affine, checked=True) for name, image in first.images.items()}
        return cls(first.with_images(templates), data, affines, locations, metadata)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def deferred(self) -> bool:
        """Whether the voxels are still in their sources, copied only when a patch is asked for."""
        return self.sources is not None

    def read_into(self, name: str, index: int, out: torch.Tensor, *, parallel: bool = False) -> None:
        """Copy the voxels of patch ``index`` of image ``name`` into ``out`` (``(C, *patch)``, same dtype).

        One copy, from the stack or straight from a deferred patch's memory map: by numpy on this
        thread, or with ``parallel`` a deferred box on torch's intra-op threads (the step's own).

        Example:
            >>> from torchpatch import ScalarImage, Subject
            >>> s = Subject(t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1)))
            >>> out = torch.empty(1, 2, 2, 1)
            >>> s.cut([[2, 2, 0, 4, 4, 1]]).read_into('t1', 0, out)
            >>> out.flatten().tolist()
            [10.0, 11.0, 14.0, 15.0]
        """
        numpy_out = out.numpy() if out.device.type == "cpu" and out.dtype != torch.bfloat16 else None
        view = self.box_view(name, index)
        if view is None and self.sources is not None:
            image, _ = self.sources[name]
            image.read_regions([self.rows[index]], padding_mode=self.padding_mode, out=out[None])
        elif view is None:
            out.copy_(self.data[name][index])
        elif numpy_out is None or (self.sources is not None and (parallel or torch.get_num_threads() == 1)):
            # torch's copy of a deferred box (on its intra-op threads, or inline with one): a third faster.
            out.copy_(view)
        else:
            numpy_out[...] = view.numpy()

    def box_view(self, name: str, index: int) -> torch.Tensor | None:
        """The voxels of patch ``index`` of image ``name`` where they are, without a copy (read them, never write).

        A view of the stack, or for deferred patches of the memory map; ``None`` for a deferred
        box past its source (padded when read), or voxels off the CPU or in an autograd graph.

        Example:
            >>> from torchpatch import ScalarImage, Subject
            >>> s = Subject(t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1)))
            >>> stack = s.cut([[2, 2, 0, 4, 4, 1]])
            >>> stack.box_view('t1', 0).flatten().tolist()
            [10.0, 11.0, 14.0, 15.0]
            >>> stack.box_view('t1', 0).data_ptr() == stack.data['t1'].data_ptr()  # no copy
            True
        """
        if self.sources is None:
            source = self.data[name][index]
            usable = source.device.type == "cpu" and not source.requires_grad and source.dtype != torch.bfloat16
            return source if usable else None
        if self.box_origin(name, index) is None:
            return None
        source, box = self._tensor(name), self.rows[index]  # one as_strided, not 4 slices: 1.9 against 3.4 us
        stride, size = source.stride(), (source.shape[0], box[3] - box[0], box[4] - box[1], box[5] - box[2])
        offset = source.storage_offset() + box[0] * stride[1] + box[1] * stride[2] + box[2] * stride[3]
        return source.as_strided(size, stride, offset)

    def box_origin(self, name: str, index: int) -> tuple[Array, tuple[int, int, int]] | None:
        """Patch ``index`` of image ``name`` for :func:`.io.copy_boxes`: an array and the box's first voxel there.

        The map of :attr:`deferred` patches, else the patch at ``(0, 0, 0)``; ``None`` past the source or with no view.
        """
        if self.sources is None:
            view = self.box_view(name, index)
            return None if view is None else (view.numpy(), (0, 0, 0))
        (_, array), box = self.sources[name], self.rows[index]
        shape = array.shape
        if min(box[:3]) < 0 or box[3] > shape[1] or box[4] > shape[2] or box[5] > shape[3]:
            return None
        return array, (box[0], box[1], box[2])

    def _tensor(self, name: str) -> torch.Tensor:
        """The source of image ``name`` as a tensor (shares the read-only map, only ever read)."""
        if name not in self._tensors:
            assert self.sources is not None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # torch warns that the map is read-only
                self._tensors[name] = torch.from_numpy(self.sources[name][1])
        return self._tensors[name]

    def layout(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Per image name, the ``(C, *patch)`` shape and the dtype of every patch.

        Example:
            >>> from torchpatch import ScalarImage, Subject
            >>> Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 1))).cut([[0, 0, 0, 2, 2, 1]]).layout()
            {'t1': ((1, 2, 2, 1), torch.float32)}
        """
        if self.sources is None:
            return {name: (tuple(data.shape[1:]), data.dtype) for name, data in self.data.items()}
        if self._layout is None:  # an image's dtype may read its header: once per stack
            size = self.patch_size
            self._layout = {
                name: ((image.num_channels, *size), image.dtype) for name, (image, _) in self.sources.items()
            }
        return dict(self._layout)

    def patch(self, index: int, voxels: Mapping[str, torch.Tensor] | None = None) -> Subject:
        """Patch ``index`` as a subject; its images hold ``voxels`` (by name) when given, else its own voxels.

        Example:
            >>> from torchpatch import ScalarImage, Subject
            >>> stack = Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 1))).cut([[0, 0, 0, 2, 2, 1]])
            >>> stack.patch(0, {'t1': torch.ones(1, 2, 2, 1)})['t1'].data.sum().item()
            4.0
        """
        images: dict[str, Image] = {}
        layout = self.layout() if voxels is None and self.sources is not None else {}
        for name, template in self.template.images.items():
            if voxels is not None:
                data = voxels[name]
            elif self.sources is None:
                data = self.data[name][index]
            else:
                shape, dtype = layout[name]
                data = torch.empty(shape, dtype=dtype)
                self.read_into(name, index, data)
            images[name] = template.derive(data, self.affines[name][index], checked=not template.check_nans)
        extra = {} if self.metadata is None else self.metadata[index]
        return self.template.with_images(images, **extra, **{LOCATION: torch.from_numpy(self.locations[index])})

    def __getitem__(self, index: int) -> Subject:
        return self.patch(index)

    @property
    def patch_size(self) -> tuple[int, int, int]:
        """The spatial size of every patch.

        Example:
            >>> from torchpatch import ScalarImage, Subject
            >>> Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 1))).cut([[0, 0, 0, 2, 3, 1]]).patch_size
            (2, 3, 1)
        """
        if not self.rows:
            return (1, 1, 1)
        box = self.rows[0]
        return (box[3] - box[0], box[4] - box[1], box[5] - box[2])

    def __iter__(self) -> Iterator[Subject]:
        for index in range(len(self)):
            yield self[index]

    def __repr__(self) -> str:
        shapes = {name: tuple(data.shape[1:]) for name, data in self.data.items()}
        return f"Patches(subject: {self.template.name!r}; count: {len(self)}; shapes: {shapes})"


class SubjectCuts:
    """Cutting boxes of every image of a subject (mixed into :class:`~torchpatch.subject.Subject`).

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject
        >>> s = Subject(t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1)))
        >>> tuple(s.cut([[0, 0, 0, 2, 2, 1]]).data['t1'].shape)
        (1, 1, 2, 2, 1)
    """

    # Provided by Subject.
    _store: dict[str, Any]

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def images(self) -> dict[str, Image]:
        raise NotImplementedError

    @property
    def metadata(self) -> dict[str, Any]:
        raise NotImplementedError

    def get_images_dict(
        self,
        intensity_only: bool = False,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
    ) -> dict[str, Image]:
        raise NotImplementedError

    def with_images(self, images: Mapping[str, Image], **metadata: Any) -> Subject:
        raise NotImplementedError

    def check_padding_value(self, padding_mode: Any, include: Sequence[str] | None = None) -> None:
        """Check a constant ``padding_mode`` fits the integer voxels it would pad.

        Label maps are padded with 0 and float images take any value, so only
        integer intensity images are checked (a grid or an export refuses
        what would wrap around or be truncated).

        Raises:
            ValueError: Naming the image, its dtype and range.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage, Subject
            >>> s = Subject(ct=ScalarImage(tensor=torch.zeros(1, 2, 2, 2, dtype=torch.uint8)), subject_id='s1')
            >>> s.check_padding_value(255)
            >>> s.check_padding_value(-1)
            Traceback (most recent call last):
            ...
            ValueError: padding_mode -1 does not fit the torch.uint8 voxels of image 'ct' in subject 's1' (range 0 ...
        """
        mode, fill = parse_padding_mode(padding_mode, allow_none=True)
        if mode != "constant" or fill == 0:
            return
        images = self.get_images_dict(False, include=include) if include is not None else self.images
        for name, image in images.items():
            dtype = image.dtype
            if image.type != LABEL and not fill_fits(fill, dtype):
                info = torch.iinfo(dtype)
                raise ValueError(
                    f"padding_mode {padding_mode!r} does not fit the {dtype} voxels of image {name!r} in "
                    f"subject {self.name!r} (range {info.min} to {info.max}); cast the image "
                    f"(dtype=torch.float32) or choose another padding_mode"
                )

    def cut(
        self,
        locations: Any,
        *,
        padding_mode: float | str | None = None,
        include: Sequence[str] | None = None,
        allocator: Callable[[tuple[int, ...], torch.dtype], torch.Tensor] | None = None,
        copy: bool = True,
        defer: bool = False,
    ) -> Patches:
        """The boxes at ``locations`` of every image, stacked per image.

        The one way torchpatch cuts patches: samplers, the grid, the Queue's
        workers, :func:`~torchpatch.infer`, detection and export all go
        through here and :meth:`Image.read_regions
        <torchpatch.regions.RegionReads.read_regions>`. Metadata that knows its place
        in the voxel grid (:class:`RegionAware`: boxes, points) is cropped
        per patch; the rest is shared.

        Args:
            locations: ``(N, 6)`` ints ``(i0, j0, k0, i1, j1, k1)``, boxes of
                one size, in this subject's voxel grid.
            padding_mode: ``None``: boxes must lie inside the images.
                Otherwise boxes may reach past the border, filled per this
                mode (see :mod:`~torchpatch.geometry.padding`).
            include: Cut only these images (default: all).
            allocator: Makes each image's ``(N, C, *size)`` buffer from a
                shape and a dtype (e.g. in shared memory); default
                :func:`torch.empty`.
            copy: ``False`` lets a single box inside a loaded image be a view
                of its voxels instead of a copy (ignored with ``allocator``).
            defer: Copy nothing yet when every image is a memory-mapped
                ``.npy`` (the decode-once cache): the patches are
                :attr:`~Patches.deferred`, each box copied when a patch is
                asked for or :meth:`~Patches.read_into` a batch buffer (one
                copy instead of two). Otherwise the boxes are cut now.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage, Subject, LOCATION
            >>> s = Subject(t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1)))
            >>> patches = s.cut([[-1, 0, 0, 1, 2, 1]], padding_mode=0)
            >>> patches[0]['t1'].data[0, :, :, 0].tolist(), patches[0][LOCATION].tolist()
            ([[0.0, 0.0], [0.0, 1.0]], [-1, 0, 0, 1, 2, 1])
        """
        every = self.images
        images = self.get_images_dict(False, include=include) if include is not None else every
        boxes = check_locations(locations, lambda: f"subject {self.name!r}")
        rows = boxes.tolist()
        sizes = (rows[0][3] - rows[0][0], rows[0][4] - rows[0][1], rows[0][5] - rows[0][2]) if rows else (1, 1, 1)
        allocate = allocator if allocator is not None else (lambda shape, dtype: torch.empty(shape, dtype=dtype))
        data: dict[str, torch.Tensor] = {}
        affines: dict[str, np.ndarray] = {}
        templates: dict[str, Any] = {}
        sources = _mapped_sources(images) if defer and rows else None
        shifted: dict[bytes, np.ndarray] = {}
        for name, image in images.items():
            if sources is not None:
                pass
            elif not copy and allocator is None and len(boxes) == 1:
                data[name] = image.read_regions(boxes, padding_mode=padding_mode, copy=False)
            else:
                out = allocate((len(boxes), image.num_channels, *sizes), image.dtype)
                data[name] = image.read_regions(boxes, padding_mode=padding_mode, out=out)
            key = np.asarray(image.affine, dtype=np.float64).tobytes()
            if key not in shifted:  # images on one grid (most subjects): shifted once, each its own copy
                shifted[key] = shift_affines(image.affine, boxes[:, :3])
            affines[name] = shifted[key].copy()
            templates[name] = image.derive(None, image.affine, checked=True)
        store = {key: value for key, value in self._store.items() if key not in every or key in images}
        template = type(self).__new__(type(self))
        template.__dict__["_store"] = store
        template = template.with_images(templates)
        aware = {
            name: value
            for name, value in self._store.items()
            if name not in every and hasattr(value, "crop_to_region") and isinstance(value, RegionAware)
        }
        metadata = None
        if aware:
            metadata = [
                {name: value.crop_to_region(tuple(box[:3]), tuple(box[3:])) for name, value in aware.items()}
                for box in rows
            ]
        return Patches(template, data, affines, boxes, metadata, sources, padding_mode)


def _mapped_sources(images: Mapping[str, Image]) -> dict[str, tuple[Image, Array]] | None:
    """Each image with the memory map its boxes are copied from, or ``None`` unless every image has one.

    Only unloaded ``.npy`` images read as they are stored (no NaN check, no
    dtype asked for, no custom reader, the map's dtype the image's): then a
    box of the map holds exactly the voxels :meth:`Image.read_regions
    <torchpatch.regions.RegionReads.read_regions>` would copy.
    """
    sources = {}
    for name, image in images.items():
        path = image.path
        if (
            image.is_loaded
            or image.check_nans
            or image.requested_dtype is not None
            or image.dtype == torch.bfloat16
            or is_custom_reader(image.reader)
            or not isinstance(path, Path)
            or io.get_suffix(path) != ".npy"
        ):
            return None
        array = io.memory_map(path)
        if array.dtype != io.numpy_dtype(image.dtype) or array.shape != image.shape:
            return None
        sources[name] = (image, array)
    return sources


@runtime_checkable
class RegionAware(Protocol):
    """Metadata living in the voxel grid, cropped along with the images.

    ``crop_to_region(index_ini, index_fin)`` returns the value in the
    coordinates of the box ``[index_ini, index_fin)`` of the current grid;
    ``index_ini`` may be negative (padding) and ``index_fin`` beyond the shape.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject
        >>> class Marker:  # a position along I that follows crops
        ...     def __init__(self, i):
        ...         self.i = i
        ...     def crop_to_region(self, index_ini, index_fin):
        ...         return Marker(self.i - index_ini[0])
        >>> isinstance(Marker(3), RegionAware)
        True
        >>> s = Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 1)), marker=Marker(3), note='shared')
        >>> patch = s.crop((2, 0, 0), (4, 4, 1))
        >>> patch['marker'].i, patch['note']
        (1, 'shared')
    """

    def crop_to_region(self, index_ini: tuple[int, ...], index_fin: tuple[int, ...]) -> Any:
        """The value in the coordinates of the box ``[index_ini, index_fin)``."""
        ...


__all__ = ["Patches", "RegionAware", "SubjectCuts", "fill_fits"]
