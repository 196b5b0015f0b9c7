"""The base of every sampler: plan patch corners, then cut them.

A sampler is called on a subject and yields patch subjects. Each patch holds
the same box of every image, each image's affine shifted to the box origin,
and ``patch[LOCATION]``: the box ``(i0, j0, k0, i1, j1, k1)`` as int64, in the
voxel grid of the subject it came from.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..constants import LOCATION
from ..geometry import parse_patch_size
from ..subject import Subject
from ..transforms import Pad
from ..typing import TypeTriplet


def make_generator(generator: np.random.Generator | int | None) -> np.random.Generator:
    """A numpy generator: given, seeded from an int, or seeded from torch's RNG.

    Seeding from torch's global RNG by default means ``torch.manual_seed``
    makes sampling reproducible, as users of TorchIO expect.

    Example:
        >>> int(make_generator(0).integers(10)) == int(make_generator(0).integers(10))
        True
    """
    if isinstance(generator, np.random.Generator):
        return generator
    if generator is None:
        generator = int(torch.randint(0, 2**62, (1,)).item())
    return np.random.default_rng(generator)


class PatchSampler:
    """Base class: cuts patches of ``patch_size`` from subjects.

    Args:
        patch_size: An int (a cube, or ``(p, p, 1)`` on 2D images) or three ints.
        padding_mode: ``None`` (default): a patch larger than the image is an
            error. Otherwise the axes shorter than the patch are padded
            (centred) with this :class:`~torchpatch.transforms.Pad` mode, and
            ``LOCATION`` stays in the unpadded grid, so it may start below 0.

    Example:
        >>> from torchpatch import ScalarImage
        >>> subject = Subject(t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1)))
        >>> patch = PatchSampler(2).extract_patch(subject, (1, 2, 0))
        >>> patch['t1'].data.flatten().tolist(), patch[LOCATION].tolist()
        ([6.0, 7.0, 10.0, 11.0], [1, 2, 0, 3, 4, 1])
    """

    def __init__(self, patch_size: int | Sequence[int], *, padding_mode: float | str | None = None) -> None:
        self._patch_size_argument = patch_size
        # Validated now; the 2D rule (int -> (p, p, 1)) is applied per subject.
        self.patch_size = parse_patch_size(patch_size)
        if padding_mode is not None:
            Pad(0, padding_mode)  # validates the mode now rather than at the first subject
        self.padding_mode = padding_mode

    def __repr__(self) -> str:
        return f"{type(self).__name__}(patch_size={self._patch_size_argument!r})"

    def get_patch_size(self, spatial_shape: Sequence[int]) -> TypeTriplet:
        """Patch size on an image of ``spatial_shape`` (int on 2D -> ``(p, p, 1)``)."""
        return parse_patch_size(self._patch_size_argument, spatial_shape)

    def check_fits(self, subject: Subject) -> TypeTriplet:
        """Patch size for ``subject``, after checking it fits in the image."""
        shape = subject.spatial_shape
        patch_size = self.get_patch_size(shape)
        if any(p > s for p, s in zip(patch_size, shape)):
            raise ValueError(
                f"patch_size {patch_size} exceeds the spatial shape {shape} of subject {subject.name!r}; "
                f"pad it first (e.g. transforms.CropOrPad(...)), pass padding_mode= to the sampler to pad "
                f"on the fly, or use a smaller patch"
            )
        return patch_size

    def _pad_to_fit(self, subject: Subject) -> tuple[Subject, TypeTriplet]:
        """Pad axes shorter than the patch (when ``padding_mode`` is set); return the padding before."""
        shape = subject.spatial_shape
        patch_size = self.get_patch_size(shape)
        missing = [max(0, p - s) for p, s in zip(patch_size, shape)]
        if self.padding_mode is None or not any(missing):
            return subject, (0, 0, 0)
        before = (missing[0] // 2, missing[1] // 2, missing[2] // 2)
        bounds = [v for m, b in zip(missing, before) for v in (b, m - b)]
        return Pad(bounds, self.padding_mode)(subject), before

    def extract_patch(self, subject: Subject, index_ini: Sequence[int], **metadata: Any) -> Subject:
        """The patch of ``subject`` starting at ``index_ini``."""
        patch_size = self.get_patch_size(subject.spatial_shape)
        ini = tuple(int(i) for i in index_ini)
        fin = tuple(i + p for i, p in zip(ini, patch_size))
        location = torch.tensor((*ini, *fin), dtype=torch.int64)
        return subject.crop(ini, fin, **{LOCATION: location}, **metadata)

    def __call__(
        self,
        subject: Subject,
        num_patches: int | None = None,
        *,
        generator: np.random.Generator | int | None = None,
    ) -> Iterator[Subject]:
        """Yield ``num_patches`` patches (forever when ``None``).

        Args:
            subject: The subject to cut.
            num_patches: How many patches; ``None`` for an endless stream.
            generator: A numpy generator or seed; default seeds from torch.
        """
        if num_patches is not None and (isinstance(num_patches, bool) or int(num_patches) != num_patches):
            raise TypeError(f"num_patches must be an int or None, got {num_patches!r}")
        if num_patches is not None and num_patches < 0:
            raise ValueError(f"num_patches must be >= 0, got {num_patches}")
        padded, before, starts = self._begin(subject, generator)
        count = 0
        while num_patches is None or count < num_patches:
            patch = self.extract_patch(padded, next(starts))
            if any(before):
                # LOCATION stays in the grid of the unpadded subject (it may start below 0).
                patch[LOCATION] = patch[LOCATION] - torch.tensor(before * 2, dtype=torch.int64)
            yield patch
            count += 1

    def _begin(
        self, subject: Subject, generator: np.random.Generator | int | None
    ) -> tuple[Subject, TypeTriplet, Iterator[TypeTriplet]]:
        """Check ``subject``, pad it if asked; return it, the padding before and the patch corners."""
        subject.check_consistent_space()
        rng = make_generator(generator)
        padded, before = self._pad_to_fit(subject)
        return padded, before, self._starts(padded, rng)

    def _starts(self, subject: Subject, rng: np.random.Generator) -> Iterator[TypeTriplet]:
        raise NotImplementedError(f"{type(self).__name__} must implement _starts(subject, rng)")


class RandomSampler(PatchSampler):
    """Base of the random samplers: draws whole batches of corners at once.

    A subclass implements ``_prepare(subject, patch_size)``: it builds the
    distribution once per subject and returns ``draw(rng, n)``, which gives
    ``n`` patch corners as an ``(n, 3)`` int64 array.

    Example:
        >>> from torchpatch import ScalarImage
        >>> class DiagonalSampler(RandomSampler):  # corners on the diagonal only
        ...     def _prepare(self, subject, patch_size):
        ...         last = min(s - p for s, p in zip(subject.spatial_shape, patch_size))
        ...         return lambda rng, n: np.repeat(rng.integers(0, last + 1, size=(n, 1)), 3, axis=1)
        >>> subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 6, 6, 6)))
        >>> patches = list(DiagonalSampler(4)(subject, num_patches=3, generator=0))
        >>> all(p[LOCATION][0] == p[LOCATION][1] == p[LOCATION][2] for p in patches)
        True
    """

    #: Corners drawn per vectorised draw.
    chunk = 256

    def _starts(self, subject: Subject, rng: np.random.Generator) -> Iterator[TypeTriplet]:
        patch_size = self.check_fits(subject)
        draw = self._prepare(subject, patch_size)
        while True:
            for corner in draw(rng, self.chunk).tolist():
                yield (corner[0], corner[1], corner[2])

    def _prepare(self, subject: Subject, patch_size: TypeTriplet) -> Any:
        """Build the distribution once; return ``draw(rng, n) -> (n, 3) int64 corners``."""
        raise NotImplementedError
