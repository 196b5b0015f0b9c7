"""The base of every sampler: plan the patches, then cut them.

A sampler plans where its patches lie and the subject cuts them::

    sampler.plan(subject, n, rng)      ->  PatchPlan: n locations (i0, j0, k0, i1, j1, k1)
    subject.cut(plan.locations, ...)   ->  Patches: every image's boxes, stacked

Calling a sampler on a subject does both and yields patch subjects; the
Queue's workers, the grid, inference, detection and export call the same two
steps. Each patch holds the same box of every image, each image's affine
shifted to the box origin, and ``patch[LOCATION]``: the box as int64, in the
voxel grid of the subject it came from.

Writing a sampler: subclass :class:`RandomSampler` and implement
:meth:`RandomSampler.prepare` (build the distribution once per subject, return
a function drawing corners), or subclass :class:`PatchSampler` and implement
:meth:`PatchSampler.corners`. :meth:`PatchSampler.extract_patch` or
:meth:`PatchSampler.crop` may be overridden to change each patch;
:func:`torchpatch.testing.check_sampler` checks the result.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..geometry import parse_patch_size
from ..patches import Patches
from ..subject import Subject
from ..transforms import Pad
from ..typing import TypeTriplet

#: The methods that make a patch: a subclass overriding one has its patches made by them, one by one.
PATCH_HOOKS = ("extract_patch", "crop", "__call__")


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


@dataclass(frozen=True)
class PatchPlan:
    """Where the patches of one subject lie: what :meth:`PatchSampler.plan` returns.

    Attributes:
        locations: ``(N, 6)`` int64 boxes ``(i0, j0, k0, i1, j1, k1)`` in the
            subject's voxel grid (below 0 or past the shape where the patch
            is padded).
        padding_mode: How :meth:`Subject.cut <torchpatch.patches.SubjectCuts.cut>`
            fills the voxels of a box outside the image (``None``: boxes lie
            inside).

    Example:
        >>> plan = PatchPlan(np.array([[0, 0, 0, 2, 2, 1]]), None)
        >>> plan.patch_size, len(plan)
        ((2, 2, 1), 1)
    """

    locations: np.ndarray
    padding_mode: float | str | None = None

    def __len__(self) -> int:
        return int(self.locations.shape[0])

    @property
    def patch_size(self) -> TypeTriplet:
        """The size of every box."""
        size = self.locations[0, 3:] - self.locations[0, :3]
        return (int(size[0]), int(size[1]), int(size[2]))


class PatchSampler:
    """Base class: cuts patches of ``patch_size`` from subjects.

    Args:
        patch_size: An int (a cube, or ``(p, p, 1)`` on 2D images) or three ints.
        padding_mode: ``None`` (default): a patch larger than the image is an
            error. Otherwise the axes shorter than the patch are padded
            (centred) with this :class:`~torchpatch.transforms.Pad` mode, and
            ``LOCATION`` stays in the unpadded grid, so it may start below 0.

    Attributes:
        thread_safe: Whether sampling draws only from the generator it is
            given and changes no shared state (torch's global RNG, the
            subject), so the :class:`~torchpatch.Queue` may cut subjects of
            its decode-once cache in threads of the training process instead
            of worker processes. ``False`` unless a sampler says otherwise;
            a subclass overriding ``extract_patch``, ``crop`` or
            ``__call__`` is not thread-safe unless it sets
            ``thread_safe = True`` itself.

    Example:
        >>> from torchpatch import ScalarImage, LOCATION
        >>> subject = Subject(t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1)))
        >>> patch = PatchSampler(2).extract_patch(subject, (1, 2, 0))
        >>> patch['t1'].data.flatten().tolist(), patch[LOCATION].tolist()
        ([6.0, 7.0, 10.0, 11.0], [1, 2, 0, 3, 4, 1])
    """

    thread_safe: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A subclass that changes how patches are made (extract_patch, crop,
        # __call__) may use shared state there: it is thread-safe only if it
        # says so itself, not by inheriting its parent's word.
        super().__init_subclass__(**kwargs)
        if "thread_safe" not in cls.__dict__ and any(name in cls.__dict__ for name in PATCH_HOOKS):
            cls.thread_safe = False

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

    def check_fits(self, subject: Subject, shape: TypeTriplet | None = None) -> TypeTriplet:
        """Patch size for ``subject``, after checking it fits in the image (``shape``: its spatial shape, if known)."""
        shape = subject.spatial_shape if shape is None else shape
        patch_size = self.get_patch_size(shape)
        if any(p > s for p, s in zip(patch_size, shape)):
            raise ValueError(
                f"patch_size {patch_size} exceeds the spatial shape {shape} of subject {subject.name!r}; "
                f"pad it first (e.g. transforms.CropOrPad(...)), pass padding_mode= to the sampler to pad "
                f"on the fly, or use a smaller patch"
            )
        return patch_size

    # Planning -------------------------------------------------------------------------

    def plan(self, subject: Subject, num_patches: int, generator: np.random.Generator | int | None = None) -> PatchPlan:
        """Where ``num_patches`` patches of ``subject`` lie; nothing is cut.

        Args:
            subject: The subject to sample.
            num_patches: How many patches.
            generator: A numpy generator or seed; default seeds from torch.

        Example:
            >>> from torchpatch import ScalarImage, UniformSampler
            >>> subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 6, 6, 1)))
            >>> plan = UniformSampler(4).plan(subject, 2, generator=0)
            >>> plan.locations.shape, plan.patch_size
            ((2, 6), (4, 4, 1))
        """
        _check_count(num_patches, allow_none=False)
        corners, before, patch_size = self._planned(subject, generator)
        starts = np.array([next(corners) for _ in range(num_patches)], dtype=np.int64).reshape(num_patches, 3)
        return self._plan_from(starts, before, patch_size)

    def corners(self, subject: Subject, rng: np.random.Generator) -> Iterator[TypeTriplet]:
        """Subclass hook: an endless stream of patch corners ``(i, j, k)`` in ``subject``'s grid.

        ``subject`` already has room for the patch (padded when
        ``padding_mode`` asks). :class:`RandomSampler` implements it from
        :meth:`RandomSampler.prepare`; the grid lists its own.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement corners(subject, rng)")

    def _planned(
        self, subject: Subject, generator: np.random.Generator | int | None
    ) -> tuple[Iterator[TypeTriplet], TypeTriplet, TypeTriplet]:
        """The corner stream (in the padded grid), the padding before each axis, and the patch size."""
        shape = subject.spatial_shape  # checks every image shares the grid
        rng = make_generator(generator)
        padded, before = self._pad_to_fit(subject, shape)
        return self.corners(padded, rng), before, self.get_patch_size(padded.spatial_shape)

    def _plan_from(self, starts: np.ndarray, before: TypeTriplet, patch_size: TypeTriplet) -> PatchPlan:
        starts = starts - np.asarray(before, dtype=np.int64)
        locations = np.concatenate([starts, starts + np.asarray(patch_size, dtype=np.int64)], axis=1)
        return PatchPlan(locations, self.padding_mode if any(before) else None)

    def _pad_to_fit(self, subject: Subject, shape: TypeTriplet) -> tuple[Subject, TypeTriplet]:
        """Pad axes shorter than the patch (when ``padding_mode`` is set), for planning; return the padding before.

        ``shape``: the subject's spatial shape (checked by the caller).
        """
        patch_size = self.get_patch_size(shape)
        missing = [max(0, p - s) for p, s in zip(patch_size, shape)]
        if self.padding_mode is None or not any(missing):
            return subject, (0, 0, 0)
        before = (missing[0] // 2, missing[1] // 2, missing[2] // 2)
        bounds = [v for m, b in zip(missing, before) for v in (b, m - b)]
        return Pad(bounds, self.padding_mode)(subject), before

    def _fitted(self, subject: Subject, shape: TypeTriplet) -> tuple[Subject, TypeTriplet, TypeTriplet]:
        """:meth:`_pad_to_fit` and the patch size checked to fit the result (``shape``: the subject's, checked)."""
        padded, before = self._pad_to_fit(subject, shape)
        return padded, before, self.check_fits(padded, shape if padded is subject else None)

    # Cutting --------------------------------------------------------------------------

    def extract_patch(self, subject: Subject, index_ini: Sequence[int], **metadata: Any) -> Subject:
        """The patch of ``subject`` starting at ``index_ini`` (may be overridden to change each patch).

        :meth:`crop` with the sampler's patch size; a corner below 0 or a
        patch past the shape is padded with ``padding_mode``.
        """
        patch = self.crop(subject, index_ini, self.get_patch_size(subject.spatial_shape))
        for key, value in metadata.items():
            patch[key] = value
        return patch

    def crop(self, subject: Subject, index_ini: Sequence[int], patch_size: Sequence[int]) -> Subject:
        """The box of ``patch_size`` voxels from ``index_ini`` of every image of ``subject`` (TorchIO's name).

        The patch's images are copies of the box, their affines shifted to
        its origin, and ``patch[LOCATION]`` is the box ``(i0, j0, k0, i1,
        j1, k1)`` (int64). Voxels outside the image are filled per
        ``padding_mode``; without one, a box reaching outside is an error.
        :meth:`extract_patch` makes every patch a sampler yields through
        here, so a subclass may override it (such a sampler's patches are
        then cut one by one).

        Args:
            subject: The subject to crop.
            index_ini: The box's first voxel ``(i0, j0, k0)``.
            patch_size: The box's size: three ints >= 1.

        Raises:
            TypeError: If ``subject`` is not a Subject or an argument is not three ints.
            ValueError: If ``patch_size`` is below 1, or the box reaches outside
                the image without ``padding_mode``.

        Example:
            >>> from torchpatch import ScalarImage, LOCATION
            >>> subject = Subject(t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1)))
            >>> patch = PatchSampler(2).crop(subject, (1, 2, 0), (3, 2, 1))
            >>> patch['t1'].data[0, :, :, 0].tolist(), patch[LOCATION].tolist()
            ([[6.0, 7.0], [10.0, 11.0], [14.0, 15.0]], [1, 2, 0, 4, 4, 1])
        """
        if not isinstance(subject, Subject):
            raise TypeError(f"subject must be a torchpatch Subject, got {type(subject).__name__}")
        ini = _triplet(index_ini, "index_ini", subject)
        size = _triplet(patch_size, "patch_size", subject)
        if min(size) < 1:
            raise ValueError(f"patch_size must be three ints >= 1, got {size} (cropping subject {subject.name!r})")
        fin = (ini[0] + size[0], ini[1] + size[1], ini[2] + size[2])
        mode = self._crop_padding_mode()
        shape = subject.spatial_shape
        if mode is None and any(a < 0 or b > s for a, b, s in zip(ini, fin, shape)):
            raise ValueError(
                f"the crop {ini} -> {fin} (index_ini {ini}, patch_size {size}) is not inside the spatial shape "
                f"{shape} of subject {subject.name!r}; pass padding_mode= to the sampler to pad outside the image"
            )
        return subject.cut([[*ini, *fin]], padding_mode=mode)[0]

    def _crop_padding_mode(self) -> float | str | None:
        """What :meth:`crop` fills voxels outside the image with (``None``: cropping outside is an error)."""
        return self.padding_mode

    @property
    def cuts_by_plan(self) -> bool:
        """Whether the patches are exactly the boxes of :meth:`plan` (none of :data:`PATCH_HOOKS` overridden).

        Example:
            >>> from torchpatch import UniformSampler
            >>> UniformSampler(4).cuts_by_plan
            True
        """
        kind = type(self)
        return all(getattr(kind, name) is getattr(PatchSampler, name) for name in PATCH_HOOKS)

    def patches(
        self,
        subject: Subject,
        num_patches: int,
        *,
        generator: np.random.Generator | int | None = None,
        allocator: Callable[[tuple[int, ...], torch.dtype], torch.Tensor] | None = None,
    ) -> Patches:
        """``num_patches`` patches of ``subject``, stacked per image: what the Queue's workers send.

        :meth:`plan` then :meth:`Subject.cut <torchpatch.patches.SubjectCuts.cut>`,
        every box copied once straight into the stacked buffers. A sampler
        whose :meth:`extract_patch`, :meth:`crop` or ``__call__`` is
        overridden has its patches made by those and stacked.

        Args:
            subject: The subject to sample.
            num_patches: How many patches.
            generator: A numpy generator or seed; default seeds from torch.
            allocator: Makes each image's stacked buffer (see
                :meth:`Subject.cut <torchpatch.patches.SubjectCuts.cut>`).

        Example:
            >>> from torchpatch import ScalarImage, UniformSampler
            >>> subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8)))
            >>> tuple(UniformSampler(4).patches(subject, 3, generator=0).data['t1'].shape)
            (3, 1, 4, 4, 4)
        """
        if num_patches and not self.cuts_by_plan:
            return Patches.from_subjects(list(self(subject, num_patches, generator=generator)), allocator)
        plan = self.plan(subject, num_patches, generator)
        return subject.cut(plan.locations, padding_mode=plan.padding_mode, allocator=allocator)

    def __call__(
        self,
        subject: Subject,
        num_patches: int | None = None,
        *,
        generator: np.random.Generator | int | None = None,
    ) -> Iterator[Subject]:
        """Yield ``num_patches`` patches (forever when ``None``), one at a time.

        Args:
            subject: The subject to cut.
            num_patches: How many patches; ``None`` for an endless stream.
            generator: A numpy generator or seed; default seeds from torch.
        """
        _check_count(num_patches, allow_none=True)
        corners, before, _ = self._planned(subject, generator)
        count = 0
        while num_patches is None or count < num_patches:
            corner = next(corners)
            yield self.extract_patch(subject, [c - b for c, b in zip(corner, before)])
            count += 1


def _triplet(value: Any, argument: str, subject: Subject) -> TypeTriplet:
    """Three ints (numpy and 0-d tensor ints too) from ``value``, or an error naming ``argument`` and ``subject``."""
    try:
        items = list(value)
        if len(items) != 3 or any(isinstance(item, bool) for item in items):
            raise TypeError
        first, second, third = (operator.index(item) for item in items)
    except TypeError:
        raise TypeError(f"{argument} must be three ints, got {value!r} (cropping subject {subject.name!r})") from None
    return (first, second, third)


def _check_count(num_patches: Any, *, allow_none: bool) -> None:
    if num_patches is None and allow_none:
        return
    if num_patches is None or isinstance(num_patches, bool) or int(num_patches) != num_patches:
        raise TypeError(f"num_patches must be an int{' or None' if allow_none else ''}, got {num_patches!r}")
    if num_patches < 0:
        raise ValueError(f"num_patches must be >= 0, got {num_patches}")


class RandomSampler(PatchSampler):
    """Base of the random samplers: draws whole batches of corners at once.

    A subclass implements :meth:`prepare`: it builds the distribution once
    per subject and returns ``draw(rng, n)``, which gives ``n`` patch corners
    as an ``(n, 3)`` int64 array.

    Example:
        >>> from torchpatch import ScalarImage, LOCATION
        >>> class DiagonalSampler(RandomSampler):  # corners on the diagonal only
        ...     def prepare(self, subject, patch_size):
        ...         last = min(s - p for s, p in zip(subject.spatial_shape, patch_size))
        ...         return lambda rng, n: np.repeat(rng.integers(0, last + 1, size=(n, 1)), 3, axis=1)
        >>> subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 6, 6, 6)))
        >>> patches = list(DiagonalSampler(4)(subject, num_patches=3, generator=0))
        >>> all(p[LOCATION][0] == p[LOCATION][1] == p[LOCATION][2] for p in patches)
        True
    """

    #: Corners drawn per vectorised draw.
    chunk = 256

    def corners(self, subject: Subject, rng: np.random.Generator) -> Iterator[TypeTriplet]:
        patch_size = self.check_fits(subject)
        draw = self.prepare(subject, patch_size)
        while True:
            for corner in draw(rng, self.chunk).tolist():
                yield (corner[0], corner[1], corner[2])

    def plan(self, subject: Subject, num_patches: int, generator: np.random.Generator | int | None = None) -> PatchPlan:
        # One vectorised draw of num_patches corners, from the same stream as __call__'s.
        _check_count(num_patches, allow_none=False)
        shape = subject.spatial_shape  # checks every image shares the grid
        rng = make_generator(generator)
        padded, before, patch_size = self._fitted(subject, shape)
        draw = self.prepare(padded, patch_size)
        chunks = [draw(rng, self.chunk) for _ in range(-(-num_patches // self.chunk))]
        starts = np.concatenate(chunks)[:num_patches] if chunks else np.zeros((0, 3), dtype=np.int64)
        return self._plan_from(starts.astype(np.int64), before, patch_size)

    def get_probability_map(self, subject: Subject) -> torch.Tensor:
        """The probability of each voxel of ``subject`` being a patch centre, as TorchIO's samplers give it.

        A ``(1, I, J, K)`` float32 map that sums to one and is zero where no
        patch of ``patch_size`` can be centred (the border, see
        :func:`~torchpatch.sampler.weighted.valid_centres`). TorchIO returns
        the map before normalising and clearing the border (a boolean mask
        for a ``LabelSampler`` without ``label_probabilities``); after
        both, its map and this one are equal. Samplers implement it through
        :meth:`centre_weights`.

        Example:
            >>> from torchpatch import ScalarImage, WeightedSampler
            >>> weights = torch.tensor([5.0, 1.0, 3.0, 8.0]).reshape(1, 4, 1, 1)
            >>> subject = Subject(w=ScalarImage(tensor=weights))
            >>> WeightedSampler((3, 1, 1), 'w').get_probability_map(subject).flatten().tolist()
            [0.0, 0.25, 0.75, 0.0]
        """
        padded, before, patch_size = self._fitted(subject, subject.spatial_shape)
        region = self.centre_weights(padded, patch_size).to(torch.float64)
        full = torch.zeros((1, *padded.spatial_shape), dtype=torch.float64)
        slices = tuple(slice(p // 2, p // 2 + r) for p, r in zip(patch_size, region.shape))
        full[0][slices] = region / region.sum()
        inside = tuple(slice(b, b + s) for b, s in zip(before, subject.spatial_shape))
        return full[(slice(None), *inside)].to(torch.float32)

    def centre_weights(self, subject: Subject, patch_size: TypeTriplet) -> torch.Tensor:
        """Subclass hook for :meth:`get_probability_map`: the weight of each valid centre.

        Returns a tensor shaped like ``valid_centres(data, patch_size)`` (one
        weight per patch corner, any positive total); ``subject`` already
        has room for the patch.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement centre_weights(subject, patch_size)")

    def prepare(self, subject: Subject, patch_size: TypeTriplet) -> Callable[[np.random.Generator, int], np.ndarray]:
        """Subclass hook: build the distribution once; return ``draw(rng, n) -> (n, 3) int64 corners``.

        ``subject`` already has room for ``patch_size`` (padded when
        ``padding_mode`` asks); corners are in its grid.
        """
        hint = ""
        if type(self).get_probability_map is not RandomSampler.get_probability_map:
            hint = "; to draw patch centres from get_probability_map(subject), subclass WeightedSampler instead"
        raise NotImplementedError(f"{type(self).__name__} must implement prepare(subject, patch_size){hint}")
