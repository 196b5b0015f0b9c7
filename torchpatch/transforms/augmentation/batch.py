"""Augmentation of a collated batch, on the batch's device: :class:`BatchTransform`.

The Queue delivers patches with a margin (a sampler of
:attr:`BatchTransform.context_size`); the batch transform draws every
sample's parameters with the same transform objects, resamples the spatial
transforms of the whole batch with one ``grid_sample`` per image (per
interpolation), applies the intensity transforms to the batch at once where
they can, and crops to ``patch_size``::

    batch (B, C, *context_size) ─ spatial maps of every sample, one grid_sample ─> (B, C, *patch_size)
                                 ─ gamma, noise, bias field: per-sample parameters, batched ──────────┘

Each sample's frame is its own context patch: rotations and scalings turn
about the patch's centre, and the elastic control points span the context
patch (on the whole subject they span the subject). The margin covers the
parameter ranges, so every sample stays inside its context, whose parts
outside the volume hold the sampler's padding (``default_pad_value`` is not
used here). Label maps are resampled by gathering the nearest voxels (no
float copy). Boxes and points in the batch (lists per sample) follow the
voxels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from ...annotations import crop_annotations
from ...constants import AFFINE, DATA, INTENSITY, LOCATION, TYPE
from ...geometry import to_triplet
from ...subject import Subject
from ...utils.batches import image_class
from .affine import RandomAffine, rotation_matrix
from .affine_elastic import AffineElasticBase
from .anisotropy import RandomAnisotropy
from .context import Step, draw_steps
from .elastic import RandomElasticDeformation
from .maps import ChainMap
from .resample import Frame, SamplingGrid, chain_settings, move_annotations
from .voxelwise import RandomBlur

#: History key of the batch (a list of lists of records, one list per sample).
HISTORY = "history"


def _affine_half_extent(transform: RandomAffine, half: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """The largest input offset from the centre, per axis (voxels), for output offsets up to ``half``.

    The sampling map is ``q - c = R^T (S^-1 (p - c) - t)``: its reach is
    evaluated at the smallest scales and largest translations, over a grid of
    angles spanning the ranges (the worst combination, not the worst entry).
    """
    angles = [np.linspace(low, high, 7) for low, high in transform.degrees]
    inverse_scale = 1 / np.array([low for low, _ in transform.scales])
    translation = np.array([max(abs(low), abs(high)) for low, high in transform.translation])
    extent = inverse_scale * half * spacing + translation
    worst = np.zeros(3)
    for ax in angles[0]:
        for ay in angles[1]:
            for az in angles[2]:
                worst = np.maximum(worst, np.abs(rotation_matrix([ax, ay, az])).T @ extent)
    return worst / spacing * 1.02 + 1


def context_margin(transform: Any, patch_size: Sequence[int], spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> Any:
    """Voxels to add on each side of a patch so that ``transform``'s spatial steps never sample outside it.

    Worst case over the transform's parameter ranges, rotating about the
    patch's centre (the batch transform's frame). Flips add nothing.

    Example:
        >>> from torchpatch.transforms import Compose
        >>> context_margin(Compose([RandomAffine(scales=0, degrees=0, translation=4)]), 32)
        (6, 6, 6)
    """
    size = np.asarray(to_triplet(patch_size, "patch_size"), dtype=np.float64)
    step = np.asarray(spacing, dtype=np.float64)
    half = (size - 1) / 2
    for item in reversed(_flatten(transform)):
        if isinstance(item, RandomAffine):
            half = np.maximum(half, _affine_half_extent(item, half, step))
        elif isinstance(item, RandomElasticDeformation):
            half = half + np.ceil(np.asarray(item.max_displacement) / step) + 1
        elif isinstance(item, RandomAnisotropy):
            half = half + np.ceil(item.downsampling[1]) + 1
        elif isinstance(item, RandomBlur):
            half = half + np.ceil(4 * max(high for _, high in item.std) / step)
    margin = np.ceil(half - (size - 1) / 2).astype(int)
    if size[2] == 1:
        margin[2] = 0
    return tuple(int(m) for m in margin)


def _flatten(transform: Any) -> list[Any]:
    if isinstance(transform, AffineElasticBase):
        return transform.parts()
    children = getattr(transform, "transforms", None)
    if children is None:
        return [transform]
    return [leaf for child in children for leaf in _flatten(child)]


class BatchTransform:
    """Random transforms over a collated batch, on its device, with per-sample parameters.

    Args:
        transform: The pipeline (the same objects as on subjects or patches).
        patch_size: The final patch size; batches hold patches of
            :attr:`context_size` (sample them that size) and come back cropped
            to ``patch_size`` around their centre.
        spacing: Voxel spacing (mm) used to size the margin.

    Raises:
        ValueError: When a batch's patches are smaller than ``patch_size``, or
            a sample's spatial transforms are separated by other transforms.

    Example:
        >>> from torchpatch import LabelMap, ScalarImage, Subject, collate_subjects
        >>> from torchpatch.transforms import Compose
        >>> from torchpatch.transforms.augmentation import RandomAffine, RandomGamma
        >>> augment = BatchTransform(Compose([RandomAffine(degrees=10), RandomGamma()]), patch_size=16)
        >>> size = augment.context_size
        >>> batch = collate_subjects([Subject(t1=ScalarImage(tensor=torch.rand(1, *size))) for _ in range(2)])
        >>> out = augment(batch)
        >>> tuple(out['t1']['data'].shape), [r['name'] for r in out['history'][0]]
        ((2, 1, 16, 16, 16), ['RandomAffine', 'RandomGamma'])
    """

    def __init__(
        self,
        transform: Callable[[Subject], Subject],
        patch_size: int | Sequence[int],
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
    ) -> None:
        if not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        self.transform = transform
        self.patch_size = to_triplet(patch_size, "patch_size")
        self.margin = context_margin(transform, self.patch_size, spacing)
        #: The patch size to sample: ``patch_size`` plus the margin on both sides.
        self.context_size = tuple(p + 2 * m for p, m in zip(self.patch_size, self.margin))

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The batch augmented and cropped to ``patch_size`` (a new dict; the input is not changed)."""
        names = [key for key, value in batch.items() if isinstance(value, Mapping) and DATA in value]
        if not names:
            raise ValueError(f"the batch holds no images (dicts with {DATA!r}); got keys {list(batch)}")
        first = batch[names[0]][DATA]
        count, shape = int(first.shape[0]), tuple(int(n) for n in first.shape[2:])
        self._context = shape
        if any(s < p for s, p in zip(shape, self.patch_size)):
            raise ValueError(
                f"the batch's patches have spatial shape {shape}, smaller than patch_size {self.patch_size}; "
                f"sample patches of context_size {self.context_size}"
            )
        ini = tuple((s - p) // 2 for s, p in zip(shape, self.patch_size))
        fin = tuple(a + p for a, p in zip(ini, self.patch_size))
        subjects = [self._subject(batch, names, index) for index in range(count)]
        plans = [self._split(draw_steps(self.transform, subject), subject) for subject in subjects]
        out: dict[str, Any] = {key: (dict(value) if key in names else value) for key, value in batch.items()}
        histories = [list(h) for h in batch.get(HISTORY, [[] for _ in range(count)])]
        self._resample(batch, out, names, subjects, plans, ini, fin, histories)
        self._intensity(out, names, subjects, plans, ini, fin, histories)
        out[HISTORY] = histories
        if LOCATION in batch and isinstance(batch[LOCATION], torch.Tensor):
            offset = torch.tensor([*ini, *ini], dtype=batch[LOCATION].dtype)
            out[LOCATION] = batch[LOCATION] + offset.to(batch[LOCATION].device)
            out[LOCATION][:, 3:] = out[LOCATION][:, :3] + torch.tensor(self.patch_size).to(out[LOCATION])
        return out

    def _subject(self, batch: Mapping[str, Any], names: Sequence[str], index: int) -> Subject:
        images: dict[str, Any] = {}
        for name in names:
            entry = batch[name]
            kind = image_class(entry.get(TYPE, [None] * (index + 1))[index])
            affine = entry[AFFINE][index].cpu().numpy() if AFFINE in entry else np.eye(4)
            images[name] = kind(tensor=entry[DATA][index], affine=affine)
        metadata = {
            key: value[index]
            for key, value in batch.items()
            if key not in names and key not in (HISTORY, LOCATION) and isinstance(value, list) and len(value) > index
        }
        return Subject(**images, **metadata)

    def _split(self, steps: list[Step], subject: Subject) -> tuple[Step | None, list[Step]]:
        spatial = [position for position, step in enumerate(steps) if step.kind == "spatial"]
        if len(spatial) > 1:
            raise ValueError(
                f"BatchTransform resamples each sample once, but the spatial transforms of {self.transform!r} are "
                f"separated by other transforms for subject {subject.name!r}; put the spatial transforms together"
            )
        if spatial and spatial[0] != 0:
            raise ValueError(
                f"BatchTransform applies the spatial transforms first; move {steps[0].transforms[0]!r} after them"
            )
        if spatial:
            return steps[0], steps[1:]
        return None, steps

    def _resample(
        self,
        batch: Mapping[str, Any],
        out: dict[str, Any],
        names: Sequence[str],
        subjects: Sequence[Subject],
        plans: Sequence[tuple[Step | None, list[Step]]],
        ini: tuple[int, ...],
        fin: tuple[int, ...],
        histories: list[list[Any]],
    ) -> None:
        first = batch[names[0]][DATA]
        shape = tuple(int(n) for n in first.shape[2:])
        planar = shape[2] == 1
        count, device = len(subjects), first.device
        crop = (slice(None), slice(None), *[slice(a, b) for a, b in zip(ini, fin)])
        moved = {name: batch[name][DATA][crop].clone() for name in names}
        labels = {name: subjects[0][name].type != INTENSITY for name in names}  # sampling maps: nearest
        # The grid_sample grid of the whole batch, (k, j, i) order, written sample by sample.
        patch = [b - a for a, b in zip(ini, fin)]
        grid = torch.empty(count, *(patch[:2] if planar else patch), 2 if planar else 3, dtype=torch.float32)
        scale = torch.tensor([2.0 / max(n - 1, 1) for n in shape], dtype=torch.float64).flip(0)
        linear: dict[str, list[int]] = {name: [] for name in names}
        chains = []
        for index, (subject, (spatial, _)) in enumerate(zip(subjects, plans)):
            affine = np.asarray(subject.get_first_image().affine, dtype=np.float64)
            frame = Frame((shape[0], shape[1], shape[2]), affine)
            steps = [] if spatial is None else list(zip(spatial.transforms, spatial.params))
            chain = ChainMap([t.coordinate_map(p, frame) for t, p in steps])
            chains.append((chain, frame))
            if chain.is_identity or spatial is None:
                continue
            settings = chain_settings(spatial.transforms)
            if "bspline" in settings[:2]:
                raise ValueError(
                    f"BatchTransform resamples with grid_sample ('linear' or 'nearest'), but {spatial.transforms[0]!r} "
                    f"asks for 'bspline'; use it per patch (Queue(patch_transform=...)) or on the subject"
                )
            points = chain.sample_grid(ini, fin)  # voxel indices in the context, float64
            flipped = points.flip(-1)
            grid[index] = ((flipped[..., 0, 1:] if planar else flipped) * (scale[1:] if planar else scale) - 1).float()
            for name in names:
                if not _selected(spatial, subject, name):
                    continue
                if settings[1 if labels[name] else 0] == "nearest":
                    # A gather of the nearest voxels: no float copy of the context (label maps).
                    sampling = SamplingGrid(points.to(device), (0, 0, 0), shape, shape)
                    moved[name][index] = sampling.nearest(batch[name][DATA][index])
                else:
                    linear[name].append(index)
        grid = grid.to(device)
        for name in names:
            group = linear[name]
            if not group:
                out[name] = {**out[name], DATA: moved[name]}
                continue
            data = batch[name][DATA]
            source = data if len(group) == count else data[group]
            source = source if source.is_floating_point() else source.float()
            sampled = functional.grid_sample(
                source[..., 0] if planar else source,
                grid if len(group) == count else grid[group],
                mode="bilinear",
                padding_mode="border",
                align_corners=True,
            )
            if planar:
                sampled = sampled.unsqueeze(-1)
            result = moved[name] if moved[name].is_floating_point() else moved[name].float()
            result[group] = sampled.to(result.dtype)
            out[name] = {**out[name], DATA: result}
        for index, (spatial, _) in enumerate(plans):
            chain, frame = chains[index]
            if spatial is not None:
                for transform, params in zip(spatial.transforms, spatial.params):
                    histories[index].append(transform.record(params or {}))
            for key, value in batch.items():
                if isinstance(value, list) and len(value) == len(subjects) and hasattr(value[index], "crop_to_region"):
                    moved_value = (
                        move_annotations({key: value[index]}, chain, frame, ini, fin, "BatchTransform")
                        if not chain.is_identity
                        else crop_annotations({key: value[index]}, ini, fin)
                    )
                    out[key] = list(out[key]) if out[key] is value else out[key]
                    out[key][index] = moved_value[key]

    def _intensity(
        self,
        out: dict[str, Any],
        names: Sequence[str],
        subjects: Sequence[Subject],
        plans: Sequence[tuple[Step | None, list[Step]]],
        ini: tuple[int, ...],
        fin: tuple[int, ...],
        histories: list[list[Any]],
    ) -> None:
        rounds = max((len(rest) for _, rest in plans), default=0)
        for position in range(rounds):
            groups: dict[int, list[int]] = {}
            for index, (_, rest) in enumerate(plans):
                if position < len(rest):
                    groups.setdefault(id(rest[position].transforms[0]), []).append(index)
            for members in groups.values():
                step = plans[members[0]][1][position]
                transform = step.transforms[0]
                batched = getattr(transform, "apply_batch", None)
                for name in names:
                    data = out[name][DATA]
                    params = [plans[b][1][position].params[0] for b in members]
                    selected = transform.get_images_dict(subjects[0]) if step.kind != "opaque" else {}
                    if batched is not None and name in selected:
                        data = data.float() if not data.is_floating_point() else data
                        result = batched(name, data[members], params, self._context, ini, fin)
                        if result is not None:
                            data = data.clone()
                            data[members] = result.to(data.dtype)
                            out[name] = {**out[name], DATA: data}
                if batched is None or step.kind == "opaque":
                    self._per_sample(out, names, subjects, plans, members, position, histories)
                for b in members:
                    record = plans[b][1][position]
                    if record.kind != "opaque":
                        histories[b].append(transform.record(record.params[0] or {}))

    def _per_sample(
        self,
        out: dict[str, Any],
        names: Sequence[str],
        subjects: Sequence[Subject],
        plans: Sequence[tuple[Step | None, list[Step]]],
        members: Sequence[int],
        position: int,
        histories: list[list[Any]],
    ) -> None:
        for b in members:
            step = plans[b][1][position]
            images = {}
            for name in names:
                kind = image_class(subjects[b][name].type)
                images[name] = kind(tensor=out[name][DATA][b], affine=subjects[b][name].affine)
            sample = Subject(**images)
            transform = step.transforms[0]
            if step.kind == "opaque":  # a transform that is not random records itself in the sample's history
                result = transform(sample)
                histories[b].extend(result.metadata.get(HISTORY, []))
            else:
                result = transform.apply_params(sample, step.params[0])
            for name in names:
                data = out[name][DATA]
                new = result[name].data.to(data.device)
                if new.dtype != data.dtype:
                    data = data.to(torch.promote_types(data.dtype, new.dtype))
                data = data.clone() if data is out[name][DATA] else data
                data[b] = new.to(data.dtype)
                out[name] = {**out[name], DATA: data}


def _selected(spatial: Step | None, subject: Subject, name: str) -> bool:
    return spatial is not None and name in spatial.transforms[0].get_images_dict(subject)


__all__ = ["BatchTransform", "context_margin"]
