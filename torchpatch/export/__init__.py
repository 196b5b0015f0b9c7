"""Writing patched datasets: patch images with their masks, boxes, points and heatmaps.

:func:`export_patches` cuts every subject into the tiles of its grid (the
:class:`~torchpatch.sampler.grid.GridSampler`'s: :func:`~torchpatch.geometry.plan_grid`
then :meth:`Subject.cut <torchpatch.patches.SubjectCuts.cut>`) and writes each tile with its
labels moved into the tile's coordinates, so tools that want small images
(YOLO, COCO trainers, Deep Plant Phenomics) can train on them::

    output_dir/
      images/<subject>_0000.png    one file per patch (PNG, or NIfTI, see below)
      masks/<subject>_0000.png     the label map in the patch's grid (label_name)
      labels/<subject>_0000.txt    YOLO boxes normalised to the patch (2D boxes)
      heatmaps/<subject>_0000.npy  the points' density map (heatmap_sigma)
      coco.json                    every patch and its boxes (2D boxes)
      boxes.csv                    3D boxes: image,xmin,ymin,zmin,xmax,ymax,zmax,class_id,score
      points.csv                   image,x,y[,z],class_id: one row per point and patch
      manifest.json                written last: parameters, sources, patches, files

========================  ==================================================================
data                      file
========================  ==================================================================
2D image                  PNG when its voxels are ``uint8``, or integers in ``[0, 65535]``
                          (16-bit), with 1, 3 or 4 channels; else ``.nii.gz`` (floats and
                          negative values are kept exactly, never rescaled: rescale and cast
                          first, e.g. ``RescaleIntensity((0, 255))`` then ``torch.uint8``)
3D image                  ``.nii.gz`` with the patch's affine
``image_format``          overrides: ``.png``, ``.jpg`` (lossy, ``uint8``, 1 or 3
                          channels), ``.tif`` (2D, up to 32-bit), ``.nii.gz``, ``.nii``,
                          ``.npy``, ``.nrrd``, ``.mha``; a format that cannot hold the
                          voxels is an error, never a silent conversion
mask                      PNG for 2D classes in ``[0, 65535]``, else ``.nii.gz``; the
                          smallest unsigned type that holds the classes
heatmap                   ``float32``: ``.npy`` for 2D, ``.nii.gz`` for 3D, ``(1, I, J, K)``
                          as every torchpatch file (``ScalarImage(path)`` reads it back)
========================  ==================================================================

Coordinates follow :mod:`~torchpatch.annotations`: continuous voxel
coordinates of the patch, ``x`` along ``I`` (the column of a 2D image).
Boxes are clipped to each patch and kept when their visible fraction is at
least ``min_visibility``; a point belongs to the patches whose half-open box
holds it, so on a non-overlapping grid each point is written exactly once.
Heatmaps are drawn on the whole image before tiling, so the sum over the
tiles of a non-overlapping grid is the number of points.

Reuse. The manifest records every parameter and, per subject, each source
file's path, size and ``mtime_ns`` (a SHA-1 of the voxels for images held in
memory) and a SHA-1 of the annotations. A rerun finding a manifest with the
same parameters and sources (and its files intact) returns at once with
``reused=True``. Otherwise the export is written to a hidden sibling folder,
the manifest last, and renamed onto ``output_dir``, replacing the old export:
an interrupted export leaves no folder that could pass for a finished one.

By default the export goes next to the data, never into the current
directory: ``<folder of the images>/torchpatch-patches/patch<size>-overlap<o>-<hash>``,
the folder being the one all the subjects' image files share. Recursive
globs over the data folder should skip ``torchpatch-patches``.

The package follows the export's steps: :mod:`~torchpatch.export.options`
checks the arguments once into an :class:`~torchpatch.export.options.ExportOptions`;
:mod:`~torchpatch.export.plan` plans every subject (images, annotations,
grid, file stems, sources) before anything is written;
:mod:`~torchpatch.export.formats` picks each file's format from the raster
table of :mod:`torchpatch.io.raster`; :mod:`~torchpatch.export.writer` cuts
and writes the patches; :mod:`~torchpatch.export.manifest` writes the
manifest and decides reuse. Folders are written and swapped by
:mod:`torchpatch.io.atomic`, sources fingerprinted by
:mod:`torchpatch.cache.fingerprint`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..io.atomic import commit_folder, partial_folder
from ..subject import Subject
from ..typing import TypePath
from .manifest import MANIFEST_NAME, check_replaceable, is_reusable, read_manifest
from .options import IMAGE_FORMATS, ExportOptions
from .plan import default_folder, plan_subjects
from .writer import PatchWriter


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_patches` wrote (or found already written).

    Attributes:
        output_dir: The export folder.
        manifest_path: Its ``manifest.json``.
        num_patches: Patches written (those left out by ``skip_empty`` excluded).
        reused: Whether a finished export with the same parameters and
            sources was found, and nothing was written.
        manifest: The manifest's content: ``parameters``, ``sources``,
            ``patches`` (file names and ``location`` of each patch) and
            ``files`` (relative path: size in bytes).

    Example:
        >>> import tempfile, torch
        >>> from torchpatch import ScalarImage, Subject
        >>> tile = Subject(image=ScalarImage(tensor=torch.zeros(1, 4, 4, 1, dtype=torch.uint8)), subject_id='tile')
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     result = export_patches(tile, 2, output_dir=f'{folder}/out', progress=False)
        >>> result.num_patches, result.reused, result.manifest_path.name
        (4, False, 'manifest.json')
        >>> result.manifest['patches'][0]
        {'subject': 'tile', 'index': 0, 'location': [0, 0, 0, 2, 2, 1], 'image': 'images/tile_0000.png'}
    """

    output_dir: Path
    manifest_path: Path
    num_patches: int
    reused: bool
    manifest: dict[str, Any] = field(repr=False, compare=False)


def export_patches(
    subjects: Subject | Iterable[Subject],
    patch_size: int | Sequence[int],
    patch_overlap: int | float | Sequence[int] | Sequence[float] = 0,
    *,
    output_dir: TypePath | None = None,
    image_name: str | None = None,
    label_name: str | None = None,
    boxes_name: str | None = None,
    points_name: str | None = None,
    heatmap_sigma: float | Sequence[float] | None = None,
    image_format: str | None = None,
    min_visibility: float | None = None,
    skip_empty: bool = False,
    progress: bool = True,
    padding_mode: str | float | None = None,
) -> ExportResult:
    """Write the grid patches of ``subjects`` with their labels (see the module docstring).

    Args:
        subjects: A :class:`~torchpatch.subject.Subject` or a sequence of them
            (a :class:`~torchpatch.dataset.SubjectsDataset` is indexed twice:
            once to check and fingerprint, once to write).
        patch_size: An int (``(p, p, 1)`` on 2D images) or three ints.
        patch_overlap: Shared by neighbouring patches, as in
            :class:`~torchpatch.sampler.grid.GridSampler`: ints are voxels,
            floats in ``[0, 1)`` fractions of the patch.
        output_dir: The export folder, replaced as a whole when the export is
            regenerated (so it must be new, empty, or an earlier export).
            ``None``: a folder next to the images' files (an error for images
            made from tensors).
        image_name: The image written as patches; ``None`` takes the only
            intensity image of each subject.
        label_name: A :class:`~torchpatch.image.LabelMap` written as masks.
        boxes_name: Metadata key of :class:`~torchpatch.annotations.BoundingBoxes`.
        points_name: Metadata key of :class:`~torchpatch.annotations.Points`.
        heatmap_sigma: Also write the points' density map
            (:func:`~torchpatch.heatmap.points_to_heatmap`, sigma in voxels).
        image_format: Force a file format for the patch images, e.g. ``'.nii.gz'``.
        min_visibility: Replace the boxes' own ``min_visibility``.
        skip_empty: Leave out patches without mask foreground, box, point or
            heatmap mass.
        progress: Show a progress bar over patches.
        padding_mode: Pad the border as :class:`~torchpatch.sampler.grid.GridSampler`
            does; without it a patch larger than an image is an error.

    Returns:
        The folder, the manifest, the number of patches and whether they were reused.

    Raises:
        TypeError: For arguments of the wrong type.
        ValueError: For bad values, naming the subject and image: a missing
            image or annotation, a patch larger than an image without
            ``padding_mode``, a format that cannot hold the voxels,
            ``output_dir`` missing for in-memory images or holding other files.
        OSError: When the output folder cannot be written.

    Example:
        >>> import tempfile, torch
        >>> from torchpatch import BoundingBoxes, ScalarImage, Subject
        >>> photo = ScalarImage(tensor=torch.zeros(3, 8, 6, 1, dtype=torch.uint8))
        >>> subject = Subject(photo=photo, boxes=BoundingBoxes([[1, 1, 5, 3]], 'xyxy', (8, 6)), subject_id='photo')
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     result = export_patches(subject, 4, output_dir=f'{folder}/out', boxes_name='boxes', progress=False)
        ...     again = export_patches(subject, 4, output_dir=f'{folder}/out', boxes_name='boxes', progress=False)
        ...     labels = (result.output_dir / 'labels' / 'photo_0000.txt').read_text()
        >>> result.num_patches, result.reused, again.reused
        (4, False, True)
        >>> labels  # the box's part in the first 4x4 patch, normalised to it
        '0 0.625 0.5 0.75 0.5\\n'
    """
    options = ExportOptions.from_arguments(
        patch_size, patch_overlap, padding_mode, image_name, label_name, boxes_name, points_name,
        heatmap_sigma, image_format, min_visibility, skip_empty,
    )  # fmt: skip
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__} {progress!r}")
    items, plans = plan_subjects(subjects, options)
    sources = [plan.source for plan in plans]
    if output_dir is None:
        target = default_folder(plans, options)
    else:
        if isinstance(output_dir, bytes) or not isinstance(output_dir, (str, os.PathLike)):
            raise TypeError(f"output_dir must be a str or os.PathLike, got {type(output_dir).__name__}")
        target = Path(output_dir).expanduser().resolve()
    manifest = read_manifest(target)
    if manifest is not None and is_reusable(manifest, target, options.parameters(), sources):
        return ExportResult(target, target / MANIFEST_NAME, int(manifest["num_patches"]), True, manifest)
    check_replaceable(target, manifest)
    try:
        temporary = partial_folder(target)
    except OSError as error:
        raise type(error)(
            f"cannot write the export {str(target)!r}: {error.strerror or error}; pass output_dir= a writable folder"
        ) from error
    try:
        writer = PatchWriter(temporary, options)
        total = sum(plan.num_patches for plan in plans)
        with tqdm(total=total, desc="Exporting patches", unit="patch", disable=not progress) as bar:
            for plan in plans:
                writer.write_subject(items[plan.position], plan, bar)
        manifest = writer.finish(sources)
        commit_folder(temporary, target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    return ExportResult(target, target / MANIFEST_NAME, int(manifest["num_patches"]), False, manifest)


__all__ = ["IMAGE_FORMATS", "ExportResult", "export_patches"]
