"""The patches of one subject, stacked per image: what :meth:`Subject.cut` returns.

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

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .constants import LOCATION
from .image import Image

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
    ) -> None:
        self.template = template
        self.data = dict(data)
        self.affines = dict(affines)
        self.locations = np.asarray(locations, dtype=np.int64)
        self.metadata = None if metadata is None else [dict(m) for m in metadata]

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
        return int(self.locations.shape[0])

    def __getitem__(self, index: int) -> Subject:
        images: dict[str, Image] = {}
        for name, template in self.template.images.items():
            images[name] = template.derive(
                self.data[name][index], self.affines[name][index], checked=not template.check_nans
            )
        extra = {} if self.metadata is None else self.metadata[index]
        return self.template.with_images(images, **extra, **{LOCATION: torch.from_numpy(self.locations[index])})

    def __iter__(self) -> Iterator[Subject]:
        for index in range(len(self)):
            yield self[index]

    def __repr__(self) -> str:
        shapes = {name: tuple(data.shape[1:]) for name, data in self.data.items()}
        return f"Patches(subject: {self.template.name!r}; count: {len(self)}; shapes: {shapes})"


__all__ = ["Patches"]
