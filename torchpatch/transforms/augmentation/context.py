"""Augmenting patches with context: the same transforms as on the subject, computed on the patch only.

For each patch the pipeline's random parameters are drawn first (in the order
the whole-subject pipeline draws them), then the boxes each step needs are
worked out backwards from the patch, the first one is read with
:meth:`Subject.cut <torchpatch.patches.SubjectCuts.cut>` (the same cutting
code as every patch), and the steps run forwards on ever smaller regions::

    patch box ◄─ spatial chain (one resampling) ◄─ blur (+ its radius) ◄─ ... ◄─ box read from the subject
    (target)     bounds of the composed map,         source_box(...)
                 clamped to the volume

With the same seed, a patch equals the whole-subject pipeline cropped to the
patch, up to interpolation rounding, wherever the steps know their region:

* spatial transforms (:class:`~.resample.SpatialRandomTransform`, flips) —
  consecutive ones are composed and resampled once;
* transforms with ``source_box``/``apply_region`` (blur, bias field,
  anisotropy) and pointwise ones (gamma; noise, whose voxels are drawn
  independently);
* any other callable (a user function, :class:`~.artifacts.RandomSwap`)
  runs on the region it finds at its turn: the context before the spatial
  transforms, the patch after them.

Boxes and points are moved from the whole subject's annotations and cropped
to the patch. One difference remains: a fill computed from the image
(``default_pad_value='minimum'``, ``'mean'``, ``'otsu'``) is computed on the
subject's image, while on the whole subject it is computed on the image as it
enters the spatial transform; they differ when an intensity transform comes
first (put the spatial transforms first, as usual, or give a number).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ...annotations import crop_annotations, region_aware_metadata
from ...constants import INTENSITY, LOCATION
from ...geometry import check_locations, shift_affine
from ...image import Image
from ...patches import Patches
from ...subject import Subject
from ..base import rebuild_image, skips
from ..compose import Compose, fusion_runs
from .maps import ChainMap
from .random import OneOf, RandomTransform, add_history
from .resample import (
    BSPLINE_MARGIN,
    Frame,
    SamplingGrid,
    SpatialMapMixin,
    SpatialRandomTransform,
    chain_settings,
    crop_region,
    fill_value,
    move_annotations,
    resample_region,
)

Box = tuple[tuple[int, ...], tuple[int, ...]]


@dataclass
class Step:
    """One step of a drawn pipeline: transforms with their parameters (``None``: it draws its own).

    Example:
        >>> from torchpatch.transforms.augmentation import RandomGamma
        >>> Step('point', [RandomGamma()], [{'gamma': {'t1': 1.2}}]).kind
        'point'
    """

    kind: str  # 'spatial', 'region', 'point' or 'opaque'
    transforms: list[Any]
    params: list[Mapping[str, Any] | None] = field(default_factory=list)
    #: A spatial step's composed map, made once (its boxes, resampling and annotations all use it).
    chain: ChainMap | None = field(default=None, repr=False)


def _kind(transform: Any) -> str:
    if isinstance(transform, (SpatialRandomTransform, SpatialMapMixin)) and isinstance(transform, RandomTransform):
        return "spatial"
    if isinstance(transform, RandomTransform) and hasattr(transform, "source_box"):
        return "region"
    if isinstance(transform, RandomTransform) and getattr(transform, "pointwise", False):
        return "point"
    return "opaque"


def draw_steps(transform: Callable[[Subject], Subject], subject: Subject) -> list[Step]:
    """Draw the parameters of ``transform`` for ``subject``, as the whole-subject pipeline would.

    :class:`~torchpatch.transforms.Compose` and :class:`~.random.OneOf` are
    flattened (their ``p`` and choice drawn); the spatial transforms that
    ``Compose`` resamples together (:func:`~torchpatch.transforms.compose.fusion_runs`)
    form one step.

    Example:
        >>> from torchpatch import ScalarImage
        >>> from torchpatch.transforms import Compose
        >>> from torchpatch.transforms.augmentation import RandomAffine, RandomFlip, RandomGamma
        >>> subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8)))
        >>> steps = draw_steps(Compose([RandomFlip(), RandomAffine(), RandomGamma()]), subject)
        >>> [(step.kind, len(step.transforms)) for step in steps]
        [('spatial', 2), ('point', 1)]
    """
    steps: list[Step] = []

    def visit(item: Any) -> None:
        nonlocal subject
        if isinstance(item, Compose):
            if skips(item.p):
                return
            # The runs Compose resamples together, and nothing else: a skipped
            # transform or a nested Compose still separates resamplings.
            for run in fusion_runs(item.transforms):
                if len(run) == 1:
                    visit(run[0])
                    continue
                drawn = [(m, m.get_params(subject)) for m in run if not skips(m.p)]  # type: ignore[attr-defined]
                if drawn:
                    steps.append(Step("spatial", [m for m, _ in drawn], [p for _, p in drawn]))
        elif isinstance(item, OneOf):
            if not skips(item.p):
                index = int(torch.multinomial(torch.tensor(item.weights, dtype=torch.float64), 1).item())
                visit(item.transforms[index])
        elif _kind(item) == "opaque":
            steps.append(Step("opaque", [item], [None]))
        elif not skips(item.p):
            params = item.get_params(subject)
            steps.append(Step(_kind(item), [item], [params]))
            added = item.added_images(subject, params)
            if added:  # the later transforms draw for these images too, as on the whole subject
                subject = subject.with_images(added)

    visit(transform)
    return steps


def _clamp(low: np.ndarray, high: np.ndarray, shape: Sequence[int]) -> Box:
    """The voxel box covering positions ``[low, high]`` (interpolation support included), inside the volume."""
    ini = np.clip(np.floor(low).astype(np.int64), 0, np.asarray(shape) - 1)
    fin = np.clip(np.ceil(high).astype(np.int64) + 1, ini + 1, np.asarray(shape))
    return tuple(int(v) for v in ini), tuple(int(v) for v in fin)


def _union(a: Box, b: Box) -> Box:
    return tuple(map(min, a[0], b[0])), tuple(map(max, a[1], b[1]))


class PatchAugmenter:
    """Runs drawn steps on one subject's patches (what :func:`augment_patches` does per patch).

    Example:
        >>> from torchpatch import ScalarImage
        >>> from torchpatch.transforms.augmentation import RandomGamma
        >>> subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8)))
        >>> patch = PatchAugmenter(subject, None).augment(draw_steps(RandomGamma(), subject), ((0, 0, 0), (4, 4, 4)))
        >>> patch.t1.spatial_shape, patch['location'].tolist()
        ((4, 4, 4), [0, 0, 0, 4, 4, 4])
    """

    def __init__(self, subject: Subject, padding_mode: Any) -> None:
        self.subject = subject
        self.padding_mode = padding_mode
        images = list(subject.images)
        self.frame = Frame.of(subject, images, "patch augmentation")
        self.annotations = region_aware_metadata(subject)
        self._fills: dict[tuple[str, Any, float], float] = {}

    def fill(self, name: str, pad_value: Any, pad_label: float = 0.0, region: Image | None = None) -> float:
        """The fill value of image ``name``, computed once on the whole image.

        An image the pipeline made (:meth:`RandomTransform.added_images
        <torchpatch.transforms.augmentation.random.RandomTransform.added_images>`)
        has no whole image here: its fill is computed on ``region``, its part
        at hand.
        """
        if name not in self.subject.images and region is not None:
            return fill_value(region, pad_value, pad_label)
        key = (name, pad_value, pad_label)
        if key not in self._fills:
            self._fills[key] = fill_value(self.subject[name], pad_value, pad_label)
        return self._fills[key]

    def chain(self, step: Step) -> ChainMap:
        """The composed coordinate map of a spatial step (made on first use, kept on the step)."""
        if step.chain is None:
            step.chain = ChainMap([t.coordinate_map(p, self.frame) for t, p in zip(step.transforms, step.params)])
        return step.chain

    def source(self, step: Step, box: Box) -> Box:
        """The box a step reads to produce ``box``."""
        first = step.transforms[0]
        if step.kind == "spatial":
            low, high = self.chain(step).bounds(np.asarray(box[0], float), np.asarray(box[1], float) - 1)
            if "bspline" in chain_settings(step.transforms)[:2]:
                low, high = low - BSPLINE_MARGIN, high + BSPLINE_MARGIN
            needed = _clamp(low, high, self.frame.shape)
            partial = first.include is not None or first.exclude is not None or first.intensity_only
            return _union(needed, box) if partial else needed
        if step.kind == "region":
            ini, fin = first.source_box(step.params[0], box[0], box[1], self.frame)
            clamped = _clamp(np.asarray(ini, float), np.asarray(fin, float) - 1, self.frame.shape)
            return _union(clamped, box)
        return box

    def crop(self, region: Subject, origin: Sequence[int], box: Box) -> Subject:
        """``region`` (images at ``origin``) cut down to ``box``."""
        return crop_region(region, origin, box[0], box[1], self.frame)

    def run_spatial(self, step: Step, region: Subject, origin: Sequence[int], box: Box) -> Subject:
        """One resampling of the step's composed map, from ``region`` onto ``box``."""
        chain = self.chain(step)
        selected = step.transforms[0].get_images_dict(region)
        if chain.is_identity:
            return self.crop(region, origin, box)
        image_interpolation, label_interpolation, pad_value, pad_label = chain_settings(step.transforms)
        size = region.get_first_image().spatial_shape
        grid = SamplingGrid(chain.sample_grid(*box), origin, size, self.frame.shape)
        affine = shift_affine(self.frame.affine, box[0])
        moved = {}
        for name, image in selected.items():
            interpolation = image_interpolation if image.type == INTENSITY else label_interpolation
            data = resample_region(image.data, grid, interpolation, self.fill(name, pad_value, pad_label, image))
            moved[name] = rebuild_image(image, data, affine)
        base = region if len(selected) == len(region.images) else self.crop(region, origin, box)
        return base.with_images(moved)

    def augment(self, steps: Sequence[Step], box: Box) -> Subject:
        """The patch at ``box`` through ``steps``."""
        boxes = [box]
        for step in reversed(steps):
            boxes.insert(0, self.source(step, boxes[0]))
        location = np.array([[*boxes[0][0], *boxes[0][1]]], dtype=np.int64)
        region = self.subject.cut(location, padding_mode=self.padding_mode)[0]
        origin = boxes[0][0]
        maps = []
        for step, out_box in zip(steps, boxes[1:]):
            if step.kind == "spatial":
                region = self.run_spatial(step, region, origin, out_box)
                maps.append(self.chain(step))
            elif step.kind == "region":
                region = step.transforms[0].apply_region(region, step.params[0], origin, *out_box, self.frame)
            else:
                region = self.crop(region, origin, out_box)
                if step.kind == "point":
                    region = step.transforms[0].apply_params(region, step.params[0])
                else:
                    region = step.transforms[0](region)
                    if not isinstance(region, Subject):
                        raise TypeError(
                            f"patch transform {step.transforms[0]!r} must return a Subject, got {type(region).__name__}"
                        )
            if step.kind != "opaque":
                for transform, params in zip(step.transforms, step.params):
                    region = add_history(region, transform.record(params or {}))
            origin = out_box[0]
        region = self.crop(region, origin, box)
        if self.annotations:
            name = "patch augmentation"
            moved = (
                move_annotations(self.annotations, ChainMap(maps), self.frame, *box, name)
                if maps
                else crop_annotations(self.annotations, *box)
            )
            for key, value in moved.items():
                region[key] = value
        region[LOCATION] = torch.tensor([*box[0], *box[1]], dtype=torch.int64)
        return region


def augment_patches(
    transform: Callable[[Subject], Subject],
    subject: Subject,
    locations: Any,
    *,
    padding_mode: Any = None,
    allocator: Callable[[tuple[int, ...], torch.dtype], torch.Tensor] | None = None,
) -> Patches:
    """The patches of ``subject`` at ``locations``, each augmented by ``transform`` with the context it needs.

    Each patch gets its own draws (from torch's global generator, in the
    order the whole-subject pipeline draws them), so with the same seed a
    single patch equals ``transform(subject)`` cropped to it, up to
    interpolation rounding (see :mod:`~torchpatch.transforms.augmentation.context`).

    Args:
        transform: The pipeline (:class:`~torchpatch.transforms.Compose`,
            random transforms, any ``Subject -> Subject`` callable).
        subject: The whole subject (images may be lazy or memory-mapped:
            only the boxes needed are read).
        locations: ``(N, 6)`` patch boxes ``(i0, j0, k0, i1, j1, k1)``.
        padding_mode: How boxes reaching outside the volume are read (the
            sampler's); spatial transforms fill outside the volume with
            their ``default_pad_value`` instead.
        allocator: Makes each image's stacked buffer (see :meth:`Patches.from_subjects`).

    Example:
        >>> from torchpatch import ScalarImage
        >>> from torchpatch.transforms.augmentation import RandomAffine
        >>> subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 32, 32, 32)))
        >>> _ = torch.manual_seed(0)
        >>> patches = augment_patches(RandomAffine(degrees=20), subject, [[8, 8, 8, 24, 24, 24]])
        >>> tuple(patches.data['t1'].shape), patches[0]['history'][0]['name']
        ((1, 1, 16, 16, 16), 'RandomAffine')
    """
    boxes = check_locations(locations, lambda: f"subject {subject.name!r}")
    augmenter = PatchAugmenter(subject, padding_mode)
    patches = []
    for row in boxes:
        steps = draw_steps(transform, subject)
        box = (tuple(int(v) for v in row[:3]), tuple(int(v) for v in row[3:]))
        patches.append(augmenter.augment(steps, box))
    return Patches.from_subjects(patches, allocator)


__all__ = ["PatchAugmenter", "Step", "augment_patches", "draw_steps"]
