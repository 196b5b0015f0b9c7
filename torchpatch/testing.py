"""Contract checks for samplers, for the tests of torchpatch and of its users.

Every sampler promises the same things, so they are checked once, here, and
each sampler's tests call :func:`check_sampler`::

    sampler(subject, num_patches, generator=seed)
      -> patches:  each image cut to the patch size (int on 2D -> (p, p, 1))
                   patch[LOCATION] = (i0, j0, k0, i1, j1, k1), int64, in bounds
                   data == subject data at the location, for every image
                   affine == subject affine shifted to (i0, j0, k0)
                   same seed -> same locations (also after a pickle round trip)

The checks raise :class:`AssertionError` with the sampler, the subject and the
values that differ, so a failing test reads as a sentence.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence, Sized
from numbers import Integral
from typing import Any

import numpy as np
import torch

from .constants import LOCATION, LOCATION_LENGTH
from .geometry import shift_affine
from .sampler.sampler import PatchSampler, RandomSampler
from .subject import Subject
from .typing import TypeTriplet

#: Largest accepted difference between a patch affine and the expected one, in millimetres.
AFFINE_TOLERANCE = 1e-6

#: Other seeds tried before concluding that the seed has no effect.
_OTHER_SEEDS = 3


def expected_patch_size(sampler: PatchSampler, spatial_shape: Sequence[int]) -> TypeTriplet:
    """The patch size a sampler must cut from an image of ``spatial_shape``.

    Derived from the argument given to the sampler, independently of the
    sampler's own parsing: an int ``p`` means ``(p, p, p)``, or ``(p, p, 1)``
    on a depth-one (2D) image; three ints are used as they are.

    Example:
        >>> from torchpatch import UniformSampler
        >>> expected_patch_size(UniformSampler(4), (16, 16, 1)), expected_patch_size(UniformSampler(4), (8, 8, 8))
        ((4, 4, 1), (4, 4, 4))
    """
    argument: Any = getattr(sampler, "_patch_size_argument", sampler.patch_size)
    if isinstance(argument, Integral) and not isinstance(argument, bool):
        size = int(argument)
        return (size, size, 1 if int(spatial_shape[2]) == 1 else size)
    values = [int(v) for v in argument]
    return (values[0], values[1], values[2])


def _expected_count(sampler: PatchSampler, num_patches: int) -> int:
    """``num_patches``, or all the patches of a finite sampler (a grid) that has fewer."""
    return min(num_patches, len(sampler)) if isinstance(sampler, Sized) else num_patches


def _draw(sampler: PatchSampler, subject: Subject, num_patches: int, seed: int) -> list[Subject]:
    patches = list(sampler(subject, num_patches, generator=seed))
    expected = _expected_count(sampler, num_patches)
    if len(patches) != expected:
        raise AssertionError(
            f"{sampler!r} yielded {len(patches)} patches of subject {subject.name!r}, expected {expected}"
        )
    return patches


def _check_stacked(sampler: PatchSampler, subject: Subject, patches: list[Subject], seed: int, where: str) -> None:
    """``sampler.patches`` (what the Queue's workers send) must hold the patches ``sampler(...)`` yields."""
    stacked = sampler.patches(subject, len(patches), generator=seed)
    if len(stacked) != len(patches):
        raise AssertionError(f"{where}: patches() gave {len(stacked)} patches, the sampler {len(patches)}")
    for index, patch in enumerate(patches):
        other = stacked[index]
        if other[LOCATION].tolist() != patch[LOCATION].tolist():
            raise AssertionError(
                f"{where}: patches() gave location {other[LOCATION].tolist()} for patch {index}, the sampler "
                f"{patch[LOCATION].tolist()}; plan -> cut must give what calling the sampler gives"
            )
        for name, image in patch.images.items():
            if not _same_voxels(other[name].data, image.data):
                raise AssertionError(f"{where}: patches() gave other voxels of image {name!r} for patch {index}")


def _location(patch: Subject, where: str) -> tuple[int, ...]:
    if LOCATION not in patch:
        raise AssertionError(f"{where} has no {LOCATION!r} entry; keys: {sorted(patch)}")
    location = patch[LOCATION]
    if not isinstance(location, torch.Tensor):
        raise AssertionError(f"{where}: {LOCATION} must be a torch.Tensor, got {type(location).__name__} {location!r}")
    if location.dtype != torch.int64:
        raise AssertionError(f"{where}: {LOCATION} must be int64, got {location.dtype}")
    if tuple(location.shape) != (LOCATION_LENGTH,):
        raise AssertionError(f"{where}: {LOCATION} must have shape ({LOCATION_LENGTH},), got {tuple(location.shape)}")
    return tuple(int(v) for v in location.tolist())


def _locations(patches: Sequence[Subject], where: str) -> list[tuple[int, ...]]:
    return [_location(patch, f"{where}, patch {index}") for index, patch in enumerate(patches)]


def _check_box(
    location: tuple[int, ...], shape: TypeTriplet, patch_size: TypeTriplet, padded: bool, where: str
) -> None:
    ini, fin = location[:3], location[3:]
    for axis in range(3):
        if padded and not (ini[axis] < shape[axis] and fin[axis] > 0):
            raise AssertionError(
                f"{where}: location {location} does not overlap the spatial shape {shape} "
                f"(need i0 < shape and i1 > 0 on axis {axis})"
            )
        if not padded and not 0 <= ini[axis] < fin[axis] <= shape[axis]:
            raise AssertionError(
                f"{where}: location {location} is not inside the spatial shape {shape} "
                f"(need 0 <= i0 < i1 <= shape on axis {axis})"
            )
        if fin[axis] - ini[axis] != patch_size[axis]:
            raise AssertionError(
                f"{where}: location {location} spans {tuple(b - a for a, b in zip(ini, fin))} voxels, "
                f"expected the patch size {patch_size}"
            )


def _same_voxels(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a.nan_to_num(0), b.nan_to_num(0)))
    return bool(torch.equal(a, b))


def _check_patch(
    patch: Subject, subject: Subject, patch_size: TypeTriplet, padded: bool, where: str
) -> tuple[int, ...]:
    if not isinstance(patch, Subject):
        raise AssertionError(f"{where} is a {type(patch).__name__}, expected a Subject")
    shape = subject.spatial_shape
    location = _location(patch, where)
    _check_box(location, shape, patch_size, padded, where)
    ini, fin = location[:3], location[3:]
    # The part of the patch inside the image (all of it unless padded), in both grids.
    low = [max(a, 0) for a in ini]
    high = [min(b, s) for b, s in zip(fin, shape)]
    inner = tuple(slice(a - i, b - i) for a, b, i in zip(low, high, ini))
    missing = sorted(set(subject.images) - set(patch.images))
    if missing:
        raise AssertionError(f"{where} lacks the images {missing}; it has {sorted(patch.images)}")
    for key in subject.metadata:
        if key not in patch:
            raise AssertionError(f"{where} lost the metadata {key!r} of its subject; keys: {sorted(patch)}")
    for name, image in subject.images.items():
        cut = patch.images[name]
        expected_shape = (image.num_channels, *patch_size)
        if tuple(cut.shape) != expected_shape:
            raise AssertionError(f"{where}: image {name!r} has shape {tuple(cut.shape)}, expected {expected_shape}")
        if cut.type != image.type:
            raise AssertionError(f"{where}: image {name!r} has type {cut.type!r}, expected {image.type!r}")
        region = image.data[:, low[0] : high[0], low[1] : high[1], low[2] : high[2]]
        if not _same_voxels(cut.data[(slice(None), *inner)], region):
            raise AssertionError(
                f"{where}: the voxels of image {name!r} ({cut.data.dtype}) differ from those of the subject "
                f"({region.dtype}) at location {location}"
            )
        expected_affine = shift_affine(image.affine, ini)
        difference = float(np.abs(np.asarray(cut.affine) - expected_affine).max())
        if difference > AFFINE_TOLERANCE:
            raise AssertionError(
                f"{where}: the affine of image {name!r} is not the subject's shifted by {ini} "
                f"(max difference {difference:.3g}):\n{cut.affine}\nexpected\n{expected_affine}"
            )
    try:
        patch.check_consistent_space()
    except ValueError as error:
        raise AssertionError(f"{where} is not consistent: {error}") from error
    return location


def check_sampler(sampler: PatchSampler, subject: Subject, num_patches: int = 8, seed: int = 0) -> list[Subject]:
    """Check the contract every sampler keeps, on ``num_patches`` patches.

    The patches of ``sampler(subject, num_patches, generator=seed)`` must:

    - hold every image of ``subject``, each of shape ``(C, *patch_size)``
      (an int patch size ``p`` on a 2D image means ``(p, p, 1)``), with the
      subject's metadata;
    - carry ``patch[LOCATION]``, an int64 tensor ``(i0, j0, k0, i1, j1, k1)``
      with ``0 <= i0 < i1 <= shape`` and ``i1 - i0`` the patch size;
      a finite sampler (a :class:`~torchpatch.sampler.GridSampler`) may
      yield all its patches when it has fewer than ``num_patches``;
    - hold, for every image, the voxels of the subject at that location, and
      the subject's affine shifted by ``(i0, j0, k0)``;
    - pass :meth:`~torchpatch.subject.Subject.check_consistent_space`.

    The same seed must give the same locations, also from a pickled and
    unpickled copy of the sampler, and :meth:`~torchpatch.sampler.PatchSampler.patches`
    (plan then cut, what the Queue's workers send) the same patches; for a random sampler whose first draw
    holds two distinct locations, another seed must give other locations.
    The subject must be left unchanged.

    A sampler with a ``padding_mode`` other than ``None`` may cut patches
    that reach beyond the image: their location must then overlap it, and
    only the voxels inside the image are compared (padding values depend on
    the mode).

    Args:
        sampler: The sampler under test.
        subject: A small subject (its images are compared voxel by voxel).
        num_patches: Patches drawn per call.
        seed: The seed passed as ``generator``.

    Returns:
        The patches of the first draw, for further checks.

    Raises:
        AssertionError: Naming the sampler, subject, patch and values at fault.

    Example:
        >>> from torchpatch import LabelMap, ScalarImage, Subject, UniformSampler
        >>> subject = Subject(
        ...     t1=ScalarImage(tensor=torch.rand(1, 8, 8, 1)),
        ...     seg=LabelMap(tensor=torch.randint(0, 3, (1, 8, 8, 1))),
        ...     subject_id='tiny',
        ... )
        >>> patches = check_sampler(UniformSampler(4), subject)
        >>> len(patches), patches[0]['t1'].shape
        (8, (1, 4, 4, 1))
    """
    if not isinstance(sampler, PatchSampler):
        raise TypeError(f"sampler must be a PatchSampler, got {type(sampler).__name__}")
    if not isinstance(subject, Subject):
        raise TypeError(f"subject must be a Subject, got {type(subject).__name__}")
    if isinstance(num_patches, bool) or not isinstance(num_patches, int) or num_patches < 1:
        raise ValueError(f"num_patches must be an int >= 1, got {num_patches!r}")
    before = {name: image.data.clone() for name, image in subject.images.items()}
    where = f"{sampler!r} on subject {subject.name!r}"
    patch_size = expected_patch_size(sampler, subject.spatial_shape)
    # A grid pads images smaller than its patch even without a padding_mode.
    padded = getattr(sampler, "padding_mode", None) is not None or any(getattr(sampler, "padding", ()))

    patches = _draw(sampler, subject, num_patches, seed)
    locations = [
        _check_patch(patch, subject, patch_size, padded, f"{where}, patch {index}")
        for index, patch in enumerate(patches)
    ]

    again = _locations(_draw(sampler, subject, num_patches, seed), where)
    if again != locations:
        raise AssertionError(
            f"{where}: seed {seed} gave {locations} then {again}; the same seed must give the same patches"
        )

    try:
        clone = pickle.loads(pickle.dumps(sampler))  # noqa: S301 - our own bytes, made one line above
    except Exception as error:
        raise AssertionError(f"{sampler!r} cannot be pickled (needed by worker processes): {error}") from error
    unpickled = _locations(_draw(clone, subject, num_patches, seed), f"unpickled {where}")
    if unpickled != locations:
        raise AssertionError(f"{where}: after a pickle round trip seed {seed} gave {unpickled} instead of {locations}")

    if isinstance(sampler, RandomSampler) and len(set(locations)) > 1:
        others = [_locations(_draw(sampler, subject, num_patches, seed + k), where) for k in range(1, 1 + _OTHER_SEEDS)]
        if all(other == locations for other in others):
            raise AssertionError(
                f"{where}: seeds {seed} to {seed + _OTHER_SEEDS} all gave {locations}; the seed is ignored"
            )

    _check_stacked(sampler, subject, patches, seed, where)
    for name, image in subject.images.items():
        if not _same_voxels(image.data, before[name]):
            raise AssertionError(f"{where}: sampling changed the voxels of image {name!r} of the subject")
    return patches


__all__ = ["check_sampler", "expected_patch_size"]
