"""Planning an export: per subject, what is written, on which grid, under which names and formats.

Every subject is planned (and so checked) before anything is written: its
image and label map (looked up by :meth:`~torchpatch.subject.Subject.get_image`),
its boxes and points (:meth:`~torchpatch.subject.Subject.get_annotation`),
the grid of :func:`~torchpatch.geometry.plan_grid`, a file stem unique in the
export, and the fingerprint of its sources
(:func:`~torchpatch.cache.fingerprint.image_fingerprint`), taken before any
voxel is read so that files are known by their size and date. The file
formats need the voxels' range, so they are chosen when the subject is
written (:func:`~torchpatch.export.formats.choose_formats`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..annotations import BoundingBoxes, Points
from ..cache.fingerprint import digest, image_fingerprint, sha1, tensor_chunks
from ..constants import INTENSITY, LABEL
from ..geometry import GridPlan, parse_patch_size, plan_grid
from ..image import Image
from ..subject import Subject
from .options import ExportOptions

#: The folder a default export goes in, next to the data.
DEFAULT_FOLDER = "torchpatch-patches"


@dataclass(frozen=True)
class SubjectPlan:
    """One subject of an export, checked before anything is written.

    Attributes:
        position: Its index in the subjects given.
        name: Its name, for messages and the manifest.
        stem: The start of its patches' file names, unique in the export.
        image_name: The image written as patches.
        label_name: The label map written as masks, or ``None``.
        grid: The patches to write.
        source: Its fingerprint in the manifest: ``subject``, ``images``
            (name: fingerprint) and ``annotations`` (name: SHA-1).
        folders: The folders of the image's files (none for a tensor).

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 8, 8, 1)), subject_id='sub 1')
        >>> _, (plan,) = plan_subjects(subject, ExportOptions.from_arguments(4))
        >>> plan.stem, plan.image_name, plan.num_patches, plan.grid.locations[1].tolist()
        ('sub_1', 't1', 4, [0, 4, 0, 4, 8, 1])
    """

    position: int
    name: str
    stem: str
    image_name: str
    label_name: str | None
    grid: GridPlan
    source: dict[str, Any]
    folders: tuple[Path, ...]

    @property
    def num_patches(self) -> int:
        """Patches on the grid (before ``skip_empty``)."""
        return len(self.grid)

    def images(self, subject: Subject) -> dict[str, Image]:
        """The images of ``subject`` that are written: the image, then the label map."""
        images = {self.image_name: subject.get_image(self.image_name)}
        if self.label_name is not None:
            images[self.label_name] = subject.get_image(self.label_name, "label_name")
        return images

    def annotations(self, subject: Subject, options: ExportOptions) -> dict[str, BoundingBoxes | Points]:
        """The boxes (with ``min_visibility`` of the options) and points of ``subject`` that are written."""
        shape = self.grid.spatial_shape
        found: dict[str, BoundingBoxes | Points] = {}
        boxes = _annotation(subject, options.boxes_name, "boxes_name", BoundingBoxes, shape)
        if boxes is not None and options.boxes_name is not None:
            if options.min_visibility is not None:
                boxes = BoundingBoxes(
                    boxes.data, boxes.format, boxes.spatial_shape, boxes.class_ids, boxes.scores,
                    class_names=boxes.class_names, min_visibility=options.min_visibility,
                )  # fmt: skip
            found[options.boxes_name] = boxes
        points = _annotation(subject, options.points_name, "points_name", Points, shape)
        if points is not None and options.points_name is not None:
            found[options.points_name] = points
        return found


def plan_subjects(
    subjects: Subject | Iterable[Subject], options: ExportOptions
) -> tuple[Sequence[Subject], list[SubjectPlan]]:
    """Check and plan every subject; return them as a sequence (indexed again to write) and their plans.

    A :class:`~torchpatch.dataset.SubjectsDataset` (anything with a length
    that can be indexed) is indexed, not copied: each subject is read once
    here and once when it is written.

    Raises:
        TypeError: For something that is not a subject.
        ValueError: Naming the subject: a missing image or annotation, a
            patch larger than an image without ``padding_mode``, a padding
            value that does not fit the voxels; or no subject at all.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> subjects = [Subject(a=ScalarImage(tensor=torch.zeros(1, 4, 4, 1)), subject_id='x') for _ in range(2)]
        >>> [plan.stem for plan in plan_subjects(subjects, ExportOptions.from_arguments(2))[1]]
        ['x', 'x-1']
    """
    items = _as_sequence(subjects)
    stems: set[str] = set()
    plans = [_plan_subject(items[position], position, options, stems) for position in range(len(items))]
    if not plans:
        raise ValueError("subjects is empty: nothing to export")
    return items, plans


def _as_sequence(subjects: Any) -> Any:
    """Something indexable with a length: a list, or a map-style dataset (indexed lazily)."""
    if isinstance(subjects, Subject):
        return [subjects]
    if isinstance(subjects, (str, bytes)):
        raise TypeError(f"subjects must be a Subject or a sequence of Subject, got {type(subjects).__name__}")
    if hasattr(subjects, "__getitem__") and hasattr(subjects, "__len__"):  # a list, a SubjectsDataset
        return subjects
    if isinstance(subjects, Iterable):
        return list(subjects)
    raise TypeError(f"subjects must be a Subject or a sequence of Subject, got {type(subjects).__name__}")


def _pick_image(subject: Subject, image_name: str | None) -> str:
    if image_name is not None:
        subject.get_image(image_name)
        return image_name
    images = subject.images
    intensity = [name for name, image in images.items() if image.type == INTENSITY]
    if len(intensity) == 1:
        return intensity[0]
    raise ValueError(
        f"subject {subject.name!r} has {len(intensity)} intensity images {intensity} (images: {sorted(images)}); "
        f"pass image_name= to choose the one to export"
    )


def _annotation(
    subject: Subject,
    key: str | None,
    argument: str,
    kind: type[BoundingBoxes] | type[Points],
    shape: tuple[int, int, int],
) -> Any:
    if key is None:
        return None
    value = subject.get_annotation(key, argument, (kind,))
    if tuple(value.spatial_shape) != shape:
        raise ValueError(
            f"{kind.__name__} {key!r} of subject {subject.name!r} live on a canvas of spatial shape "
            f"{tuple(value.spatial_shape)}, but its images have spatial shape {shape}"
        )
    return value


def _plan_subject(subject: Any, position: int, options: ExportOptions, stems: set[str]) -> SubjectPlan:
    if not isinstance(subject, Subject):
        raise TypeError(f"subjects[{position}] must be a Subject, got {type(subject).__name__}")
    name = subject.name
    image_name = _pick_image(subject, options.image_name)
    images = {image_name: subject.get_image(image_name)}
    label_name = options.label_name
    if label_name is not None:
        if label_name not in subject.images or subject.get_image(label_name).type != LABEL:
            labels = [n for n, im in subject.images.items() if im.type == LABEL]
            raise ValueError(
                f"label_name {label_name!r} is not a LabelMap of subject {name!r}; its label maps: {labels}"
            )
        images[label_name] = subject.get_image(label_name)
    # Fingerprinted before anything is read, so unloaded files are known by their size and date.
    annotations: dict[str, str] = {}
    source = {
        "subject": name,
        "images": {key: image_fingerprint(image) for key, image in images.items()},
        "annotations": annotations,
    }
    loaded = {key: image.is_loaded for key, image in images.items()}
    try:
        selected = Subject(images, subject_id=name)
        shape = selected.spatial_shape  # checks the images share one grid
        patch = parse_patch_size(options.patch_size, shape)
        if options.padding_mode is None and any(p > s for p, s in zip(patch, shape)):
            raise ValueError(
                f"patch_size {patch} exceeds the spatial shape {shape} of image {image_name!r} in subject "
                f"{name!r}; choose a smaller patch, pad the image first, or pass padding_mode=0 (or another mode)"
            )
        for key, argument, kind in (
            (options.boxes_name, "boxes_name", BoundingBoxes),
            (options.points_name, "points_name", Points),
        ):
            value = _annotation(subject, key, argument, kind, shape)
            if key is not None and value is not None:
                annotations[key] = _annotation_digest(value)
        grid = plan_grid(
            shape, options.patch_size, options.patch_overlap, options.padding_mode, where=f"subject {name!r}"
        )
        selected.check_padding_value(grid.padding_mode)
    finally:
        unload_new(images, loaded)
    first = images[image_name].path
    paths = first if isinstance(first, list) else [first] if first is not None else []
    folders = tuple(Path(p).resolve().parent for p in paths)
    return SubjectPlan(
        position, name, _unique_stem(name, position, stems), image_name, label_name, grid, source, folders
    )


def unload_new(images: dict[str, Image], loaded: dict[str, bool]) -> None:
    """Free what the export read, leaving the images that were loaded before as they were.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> image = ScalarImage(tensor=torch.zeros(1, 2, 2, 1))
        >>> unload_new({'a': image}, {'a': True}); image.is_loaded
        True
    """
    for key, image in images.items():
        if not loaded[key]:
            image.unload()


def _unique_stem(name: str, position: int, stems: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") if name != "<unnamed>" else ""
    stem = stem or f"subject{position:04d}"
    candidate, count = stem, 1
    while candidate in stems:
        candidate, count = f"{stem}-{count}", count + 1
    stems.add(candidate)
    return candidate


def _annotation_digest(value: BoundingBoxes | Points) -> str:
    parts = [type(value).__name__, str(value.spatial_shape), json.dumps(value.class_names, sort_keys=True)]
    chunks: list[bytes | memoryview] = [*tensor_chunks(value.data), *tensor_chunks(value.class_ids)]
    if isinstance(value, BoundingBoxes):
        parts += [value.format, repr(value.min_visibility)]
        chunks += tensor_chunks(value.scores)
    return sha1("|".join(parts).encode(), *chunks)


def default_folder(plans: Sequence[SubjectPlan], options: ExportOptions) -> Path:
    """``<folder shared by the image files>/torchpatch-patches/patch<size>-overlap<o>-<hash>``.

    The hash covers the options and the image files, so another export of
    other files or with other options goes to another folder.

    Raises:
        ValueError: When an image was made from a tensor (it has no folder).

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> path = Path(tempfile.mkdtemp()) / 'photo.npy'
        >>> np.save(path, np.zeros((1, 8, 8, 1), np.float32))
        >>> _, plans = plan_subjects(Subject(a=ScalarImage(path)), ExportOptions.from_arguments(4, 2))
        >>> folder = default_folder(plans, ExportOptions.from_arguments(4, 2))
        >>> folder.parent == path.parent.resolve() / 'torchpatch-patches', folder.name[:16]
        (True, 'patch4-overlap2-')
    """
    folders: list[Path] = []
    for plan in plans:
        if not plan.folders:
            raise ValueError(
                f"output_dir is needed: image {plan.image_name!r} of subject {plan.name!r} has no file (it was "
                f"made from a tensor), so there is no dataset folder to write next to; pass output_dir=..."
            )
        folders += plan.folders
    try:
        common = Path(os.path.commonpath(folders))
    except ValueError:  # different drives
        common = folders[0]
    if common == Path(common.anchor):
        common = folders[0]  # files all over the disk: not the root, but next to the first
    files = [
        [entry.get("path") for entry in image.get("files", [])] for p in plans for image in p.source["images"].values()
    ]
    parameters = options.parameters()
    name = digest({"parameters": parameters, "files": files})[:10]

    def tag(value: int | float | list[int | float]) -> str:
        return "x".join(str(v) for v in value) if isinstance(value, list) else str(value)

    return (
        common
        / DEFAULT_FOLDER
        / f"patch{tag(parameters['patch_size'])}-overlap{tag(parameters['patch_overlap'])}-{name}"
    )


__all__ = [
    "DEFAULT_FOLDER",
    "SubjectPlan",
    "default_folder",
    "plan_subjects",
    "unload_new",
]
