"""Writing patched datasets: patch images with their masks, boxes, points and heatmaps.

:func:`export_patches` cuts every subject into the tiles of a
:class:`~torchpatch.sampler.grid.GridSampler` and writes each tile with its
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
"""

from __future__ import annotations

import csv
import hashlib
import io as text_io
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from . import annotations_io, io
from ._version import __version__
from .annotations import BoundingBoxes, Points
from .constants import INTENSITY, LABEL, LOCATION
from .geometry import is_number, parse_patch_size, to_triplet
from .heatmap import points_to_heatmap
from .image import Image
from .sampler.grid import GridSampler, parse_padding_mode
from .subject import Subject
from .typing import TypePath

_FORMAT = 1
_MANIFEST = "manifest.json"
_DEFAULT_FOLDER = "torchpatch-patches"
#: Formats ``image_format`` accepts; the first five hold 2D images only.
IMAGE_FORMATS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".nii.gz", ".nii", ".npy", ".nrrd", ".mha")
_RASTER_CHANNELS = {".png": (1, 3, 4), ".jpg": (1, 3), ".jpeg": (1, 3), ".tif": None, ".tiff": None}
_TIFF_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.float32, torch.float16, torch.bool)


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


@dataclass
class _Plan:
    """One subject, checked before anything is written."""

    position: int
    name: str
    stem: str
    image_name: str
    num_patches: int
    source: dict[str, Any]
    folders: list[Path]


def export_patches(
    subjects: Subject | Iterable[Subject],
    patch_size: int | Sequence[int],
    patch_overlap: int | Sequence[int] = 0,
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
    *,
    padding_mode: str | float | None = None,
) -> ExportResult:
    """Write the grid patches of ``subjects`` with their labels (see the module docstring).

    Args:
        subjects: A :class:`~torchpatch.subject.Subject` or a sequence of them
            (a :class:`~torchpatch.dataset.SubjectsDataset` is indexed twice:
            once to check and fingerprint, once to write).
        patch_size: An int (``(p, p, 1)`` on 2D images) or three ints.
        patch_overlap: Voxels shared by neighbouring patches, as in
            :class:`~torchpatch.sampler.grid.GridSampler`.
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
    parameters = _parse_parameters(
        patch_size, patch_overlap, padding_mode, image_name, label_name, boxes_name, points_name,
        heatmap_sigma, image_format, min_visibility, skip_empty,
    )  # fmt: skip
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__} {progress!r}")
    items = _as_sequence(subjects)
    stems: set[str] = set()
    plans = [_plan_subject(items[position], position, parameters, stems) for position in range(len(items))]
    if not plans:
        raise ValueError("subjects is empty: nothing to export")
    sources = [plan.source for plan in plans]
    if output_dir is None:
        target = _default_folder(plans, parameters)
    else:
        if isinstance(output_dir, bytes) or not isinstance(output_dir, (str, os.PathLike)):
            raise TypeError(f"output_dir must be a str or os.PathLike, got {type(output_dir).__name__}")
        target = Path(output_dir).expanduser().resolve()
    manifest = _read_manifest(target)
    if manifest is not None and _is_reusable(manifest, target, parameters, sources):
        return ExportResult(target, target / _MANIFEST, int(manifest["num_patches"]), True, manifest)
    _check_replaceable(target, manifest)
    temporary = _make_partial_folder(target)
    try:
        writer = _Writer(temporary, parameters)
        with tqdm(
            total=sum(p.num_patches for p in plans), desc="Exporting patches", unit="patch", disable=not progress
        ) as bar:
            for plan in plans:
                writer.write_subject(items[plan.position], plan, bar)
        manifest = writer.finish(sources)
        _commit(temporary, target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    return ExportResult(target, target / _MANIFEST, int(manifest["num_patches"]), False, manifest)


# Arguments ---------------------------------------------------------------------------------


def _optional_str(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, got {type(value).__name__} {value!r}")
    return value


def _parse_parameters(
    patch_size: Any,
    patch_overlap: Any,
    padding_mode: Any,
    image_name: Any,
    label_name: Any,
    boxes_name: Any,
    points_name: Any,
    heatmap_sigma: Any,
    image_format: Any,
    min_visibility: Any,
    skip_empty: Any,
) -> dict[str, Any]:
    """Every parameter that shapes the export, checked and JSON-ready (they go in the manifest)."""
    to_triplet(patch_size, "patch_size")
    to_triplet(patch_overlap, "patch_overlap", minimum=0)
    parse_padding_mode(padding_mode)
    sigma: Any = heatmap_sigma
    if heatmap_sigma is not None:
        values = [heatmap_sigma] if is_number(heatmap_sigma) else heatmap_sigma
        if isinstance(values, str) or not isinstance(values, Sequence) or len(values) not in (1, 3):
            raise TypeError(f"heatmap_sigma must be None, a number or three numbers, got {heatmap_sigma!r}")
        if not all(is_number(v) and np.isfinite(v) and v >= 0 for v in values):
            raise ValueError(f"heatmap_sigma must be finite and >= 0 (voxels), got {heatmap_sigma!r}")
        sigma = float(values[0]) if is_number(heatmap_sigma) else [float(v) for v in values]
        if points_name is None:
            raise ValueError("heatmap_sigma draws the heatmap of points: pass points_name too")
    suffix = None
    if image_format is not None:
        if not isinstance(image_format, str):
            raise TypeError(f"image_format must be a str such as '.png' or None, got {type(image_format).__name__}")
        suffix = "." + image_format.lower().lstrip(".")
        if suffix not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {list(IMAGE_FORMATS)} or None, got {image_format!r}")
    if min_visibility is not None and (not is_number(min_visibility) or not 0 <= min_visibility <= 1):
        raise ValueError(f"min_visibility must be None or a number in [0, 1], got {min_visibility!r}")
    if not isinstance(skip_empty, bool):
        raise TypeError(f"skip_empty must be a bool, got {type(skip_empty).__name__} {skip_empty!r}")
    names = {
        key: _optional_str(value, key)
        for key, value in (
            ("image_name", image_name),
            ("label_name", label_name),
            ("boxes_name", boxes_name),
            ("points_name", points_name),
        )
    }
    if skip_empty and not (label_name or boxes_name or points_name):
        raise ValueError("skip_empty needs something that can be empty: label_name, boxes_name or points_name")
    if label_name is not None and label_name == image_name:
        raise ValueError(f"label_name and image_name are both {label_name!r}; the mask must be another image")
    return {
        "patch_size": _plain(patch_size),
        "patch_overlap": _plain(patch_overlap),
        "padding_mode": float(padding_mode) if is_number(padding_mode) else padding_mode,
        **names,
        "heatmap_sigma": sigma,
        "image_format": suffix,
        "min_visibility": None if min_visibility is None else float(min_visibility),
        "skip_empty": skip_empty,
    }


def _plain(value: Any) -> int | list[int]:
    return int(value) if isinstance(value, Integral) else [int(v) for v in value]


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


# Planning ------------------------------------------------------------------------------------


def _pick_image(subject: Subject, image_name: str | None) -> str:
    images = subject.images
    if image_name is not None:
        if image_name not in images:
            raise ValueError(
                f"image_name {image_name!r} is not an image of subject {subject.name!r}; its images: {sorted(images)}"
            )
        return image_name
    intensity = [name for name, image in images.items() if image.type == INTENSITY]
    if len(intensity) == 1:
        return intensity[0]
    raise ValueError(
        f"subject {subject.name!r} has {len(intensity)} intensity images {intensity} (images: {sorted(images)}); "
        f"pass image_name= to choose the one to export"
    )


def _annotation(
    subject: Subject, key: str | None, kind: type[BoundingBoxes] | type[Points], shape: tuple[int, int, int]
) -> Any:
    if key is None:
        return None
    if key not in subject.metadata:
        raise ValueError(
            f"{key!r} is not in the metadata of subject {subject.name!r}; its metadata: {sorted(subject.metadata)}"
        )
    value: Any = subject[key]
    if not isinstance(value, kind):
        raise TypeError(f"{key!r} of subject {subject.name!r} must be {kind.__name__}, got {type(value).__name__}")
    if tuple(value.spatial_shape) != shape:
        raise ValueError(
            f"{kind.__name__} {key!r} of subject {subject.name!r} live on a canvas of spatial shape "
            f"{tuple(value.spatial_shape)}, but its images have spatial shape {shape}"
        )
    return value


def _plan_subject(subject: Any, position: int, parameters: dict[str, Any], stems: set[str]) -> _Plan:
    if not isinstance(subject, Subject):
        raise TypeError(f"subjects[{position}] must be a Subject, got {type(subject).__name__}")
    name = subject.name
    image_name = _pick_image(subject, parameters["image_name"])
    images = {image_name: subject[image_name]}
    label_name = parameters["label_name"]
    if label_name is not None:
        if label_name not in subject.images or subject[label_name].type != LABEL:
            labels = [n for n, im in subject.images.items() if im.type == LABEL]
            raise ValueError(
                f"label_name {label_name!r} is not a LabelMap of subject {name!r}; its label maps: {labels}"
            )
        images[label_name] = subject[label_name]
    # Fingerprinted before anything is read, so unloaded files are known by their size and date.
    annotations: dict[str, str] = {}
    source = {
        "subject": name,
        "images": {key: _image_source(image) for key, image in images.items()},
        "annotations": annotations,
    }
    shape = Subject(images, subject_id=name).spatial_shape  # checks the images share one grid
    patch = parse_patch_size(parameters["patch_size"], shape)
    if parameters["padding_mode"] is None and any(p > s for p, s in zip(patch, shape)):
        raise ValueError(
            f"patch_size {patch} exceeds the spatial shape {shape} of image {image_name!r} in subject {name!r}; "
            f"choose a smaller patch, pad the image first, or pass padding_mode=0 (or another mode)"
        )
    for key, kind in ((parameters["boxes_name"], BoundingBoxes), (parameters["points_name"], Points)):
        value = _annotation(subject, key, kind, shape)
        if value is not None:
            annotations[key] = _annotation_digest(value)
    loaded = {key: image.is_loaded for key, image in images.items()}
    try:
        num_patches = len(_grid(images, name, parameters))  # checks the overlap; cheap but for statistic padding
    finally:
        _unload(images, loaded)
    stem = _unique_stem(name, position, stems)
    first = images[image_name].path
    paths = first if isinstance(first, list) else [first] if first is not None else []
    return _Plan(position, name, stem, image_name, num_patches, source, [Path(p).resolve().parent for p in paths])


def _grid(images: dict[str, Image], name: str, parameters: dict[str, Any]) -> GridSampler:
    """The grid over just the exported images (the others are never read)."""
    subject = Subject(images, subject_id=name)
    return GridSampler(subject, parameters["patch_size"], parameters["patch_overlap"], parameters["padding_mode"])


def _unload(images: dict[str, Image], loaded: dict[str, bool]) -> None:
    """Free what the export read, leaving images the caller had loaded as they were."""
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


# Fingerprints ----------------------------------------------------------------------------------


def _sha1(*chunks: bytes | memoryview) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _tensor_bytes(tensor: torch.Tensor | None) -> tuple[bytes, memoryview]:
    """A header and the raw bytes of ``tensor``, hashed without a copy of the voxels."""
    if tensor is None:
        return b"none", memoryview(b"")
    data = tensor.detach().cpu().contiguous()
    header = f"{tuple(data.shape)}|{data.dtype}|".encode()
    return header, data.reshape(-1).view(torch.uint8).numpy().data if data.numel() else memoryview(b"")


def _file_entry(path: Path) -> dict[str, Any]:
    resolved = Path(path).resolve()
    status = resolved.stat()
    entry: dict[str, Any] = {"path": str(resolved), "size": status.st_size, "mtime_ns": status.st_mtime_ns}
    if resolved.is_dir():  # a DICOM series: its files, by name, size and date
        listing = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in resolved.iterdir() if p.is_file())
        entry["files_sha1"] = _sha1(json.dumps(listing).encode())
    return entry


def _image_source(image: Image) -> dict[str, Any]:
    """Where the voxels come from: files by size and date, or (once in memory) a hash of them."""
    entry: dict[str, Any] = {"class": type(image).__name__, "dtype": str(image.dtype)}
    if image.path is not None and not image.is_loaded:
        paths = image.path if isinstance(image.path, list) else [image.path]
        entry["files"] = [_file_entry(path) for path in paths]
    else:  # a tensor, or voxels that may differ from the file (transformed, cropped)
        entry["sha1"] = _sha1(*_tensor_bytes(image.data))
    entry["affine"] = np.asarray(image.affine, dtype=np.float64).tolist()
    return entry


def _annotation_digest(value: BoundingBoxes | Points) -> str:
    parts = [type(value).__name__, str(value.spatial_shape), json.dumps(value.class_names, sort_keys=True)]
    chunks: list[bytes | memoryview] = [*_tensor_bytes(value.data), *_tensor_bytes(value.class_ids)]
    if isinstance(value, BoundingBoxes):
        parts += [value.format, repr(value.min_visibility)]
        chunks += _tensor_bytes(value.scores)
    return _sha1("|".join(parts).encode(), *chunks)


# The output folder -----------------------------------------------------------------------------


def _default_folder(plans: list[_Plan], parameters: dict[str, Any]) -> Path:
    """``<folder shared by the image files>/torchpatch-patches/patch<size>-overlap<o>-<hash>``."""
    folders = []
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
    digest = _sha1(json.dumps({"parameters": parameters, "files": files}, sort_keys=True).encode())[:10]

    def tag(value: int | list[int]) -> str:
        return str(value) if isinstance(value, int) else "x".join(str(v) for v in value)

    name = f"patch{tag(parameters['patch_size'])}-overlap{tag(parameters['patch_overlap'])}-{digest}"
    return common / _DEFAULT_FOLDER / name


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a finished export in ``folder``, or ``None``."""
    try:
        content = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if isinstance(content, dict) and content.get("format") == "torchpatch-export":
        return content
    return None


def _is_reusable(manifest: dict[str, Any], folder: Path, parameters: dict[str, Any], sources: list[Any]) -> bool:
    """Same format, parameters and sources, and every file listed still there with its size."""
    expected = json.loads(json.dumps({"parameters": parameters, "sources": sources}))
    if manifest.get("format_version") != _FORMAT or not isinstance(manifest.get("num_patches"), int):
        return False
    if manifest.get("parameters") != expected["parameters"] or manifest.get("sources") != expected["sources"]:
        return False
    files = manifest.get("files")
    if not isinstance(files, dict):
        return False
    root = folder.resolve()
    for relative, size in files.items():
        path = (root / str(relative)).resolve()
        if root not in path.parents:  # the manifest is read from disk: no escaping the folder
            return False
        try:
            if path.stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def _check_replaceable(target: Path, manifest: dict[str, Any] | None) -> None:
    if not target.exists() or manifest is not None:
        return
    if not target.is_dir():
        raise ValueError(f"output_dir {str(target)!r} is a file; pass a folder")
    if any(target.iterdir()):
        raise ValueError(
            f"output_dir {str(target)!r} holds files but no torchpatch export ({_MANIFEST}); an export replaces "
            f"its whole folder, so choose a new or empty folder"
        )


def _make_partial_folder(target: Path) -> Path:
    """A hidden sibling of ``target`` to write into, after removing those of dead exports."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_partials(target)
        temporary = target.parent / f".{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        temporary.mkdir()
    except OSError as error:
        raise type(error)(
            f"cannot write the export {str(target)!r}: {error.strerror or error}; pass output_dir= a writable folder"
        ) from error
    return temporary


def _remove_dead_partials(target: Path) -> None:
    if os.name != "posix":  # os.kill(pid, 0) only probes on POSIX
        return
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(partial|old)-(\d+)-[0-9a-f]+")
    for path in target.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(2)), 0)
        except ProcessLookupError:  # its writer is gone: an interrupted export
            shutil.rmtree(path, ignore_errors=True)
        except (PermissionError, OverflowError):
            continue


def _commit(temporary: Path, target: Path) -> None:
    """Rename the finished export onto ``target``, replacing an older one."""
    if not target.exists():
        os.rename(temporary, target)
        return
    old = target.parent / f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.rename(target, old)
    try:
        os.rename(temporary, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


# Formats ---------------------------------------------------------------------------------------


def _value_range(image: Image) -> tuple[int, int]:
    data = image.data
    return int(data.min()), int(data.max())


def _raster_dtype(image: Image, suffix: str) -> tuple[np.dtype[Any] | None, str]:
    """The integer type a raster file stores ``image`` in, or ``None`` and why it cannot."""
    channels = _RASTER_CHANNELS[suffix]
    if channels is not None and image.num_channels not in channels:
        return None, f"{suffix} holds {' or '.join(map(str, channels))} channels, not {image.num_channels}"
    dtype = image.dtype
    if suffix in (".tif", ".tiff"):
        if dtype in _TIFF_DTYPES:
            return None, ""
        return None, f"{suffix} holds up to 32-bit voxels, not {dtype}"
    if dtype == torch.bool or dtype == torch.uint8:
        return np.dtype(np.uint8), ""
    if dtype.is_floating_point or dtype.is_complex:
        return None, f"{suffix} holds integers, not {dtype} voxels"
    low, high = _value_range(image)
    limit = 65535 if suffix == ".png" else 255
    if low < 0 or high > limit:
        return None, f"{suffix} holds integers from 0 to {limit}, but the voxels range from {low} to {high}"
    return np.dtype(np.uint16 if suffix == ".png" else np.uint8), ""


def _image_format(image: Image, requested: str | None, what: str) -> tuple[str, np.dtype[Any] | None]:
    """File suffix and cast of the patches of ``image``."""
    if requested is None:
        if not image.is_2d():
            return ".nii.gz", None
        dtype, _ = _raster_dtype(image, ".png")
        return (".png", dtype) if dtype is not None else (".nii.gz", None)
    if requested not in _RASTER_CHANNELS:
        return requested, None
    if not image.is_2d():
        raise ValueError(
            f"image_format {requested!r} holds 2D images, but {what} has spatial shape {image.spatial_shape}"
        )
    dtype, problem = _raster_dtype(image, requested)
    if problem:
        raise ValueError(
            f"image_format {requested!r} cannot hold {what}: {problem}; use image_format='.nii.gz' (or '.npy'), "
            f"or rescale and cast the image first (e.g. RescaleIntensity((0, 255)), then dtype=torch.uint8)"
        )
    return requested, dtype


def _mask_format(label: Image) -> tuple[str, np.dtype[Any] | None]:
    low, high = _value_range(label)
    if low < 0:
        return ".nii.gz", None
    dtype = np.dtype(np.uint8) if high <= 255 else np.dtype(np.uint16) if high <= 65535 else None
    if label.is_2d() and dtype is not None and label.num_channels in (1, 3, 4):
        return ".png", dtype
    return ".nii.gz", dtype


def _tile(volume: torch.Tensor, ini: Sequence[int], fin: Sequence[int]) -> torch.Tensor:
    """``volume[:, ini:fin]``, zero outside the volume (padded patches)."""
    size = [b - a for a, b in zip(ini, fin)]
    out = torch.zeros((volume.shape[0], *size), dtype=volume.dtype)
    low = [max(a, 0) for a in ini]
    high = [min(b, s) for b, s in zip(fin, volume.shape[1:])]
    if all(h > lo for lo, h in zip(low, high)):
        s = [lo - a for lo, a in zip(low, ini)]
        e = [h - a for h, a in zip(high, ini)]
        out[:, s[0] : e[0], s[1] : e[1], s[2] : e[2]] = volume[:, low[0] : high[0], low[1] : high[1], low[2] : high[2]]
    return out


def _number(value: float) -> str:
    return f"{value:.10g}"


# Writing ---------------------------------------------------------------------------------------


class _Writer:
    """Writes the patches of each subject into the partial folder, then the shared files and the manifest."""

    def __init__(self, root: Path, parameters: dict[str, Any]) -> None:
        self.root = root
        self.parameters = parameters
        self.files: dict[str, int] = {}
        self.patches: list[dict[str, Any]] = []
        self.coco: dict[str, BoundingBoxes] = {}
        self.boxes_rows: list[list[str]] = []
        self.points_rows: list[list[str]] = []
        self.points_ndim = 0
        self.boxes_ndims: set[int] = set()

    def _path(self, relative: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(exist_ok=True)
        return path

    def _record(self, relative: str) -> str:
        self.files[relative] = (self.root / relative).stat().st_size
        return relative

    def _write_image(self, relative: str, data: torch.Tensor, affine: Any, dtype: np.dtype[Any] | None) -> str:
        array = data.detach().cpu().numpy()
        if dtype is not None:
            array = array.astype(dtype)
        io.write_image(array, affine, self._path(relative))
        return self._record(relative)

    def write_subject(self, subject: Subject, plan: _Plan, bar: Any) -> None:
        parameters = self.parameters
        image = subject[plan.image_name]
        images = {plan.image_name: image}
        label_name = parameters["label_name"]
        if label_name is not None:
            images[label_name] = subject[label_name]
        loaded = {key: value.is_loaded for key, value in images.items()}
        try:
            self._write_patches(subject, plan, images, bar)
        finally:
            _unload(images, loaded)

    def _annotations(self, subject: Subject, shape: tuple[int, int, int]) -> tuple[Any, Any]:
        parameters = self.parameters
        boxes = _annotation(subject, parameters["boxes_name"], BoundingBoxes, shape)
        if boxes is not None and parameters["min_visibility"] is not None:
            boxes = BoundingBoxes(
                boxes.data, boxes.format, boxes.spatial_shape, boxes.class_ids, boxes.scores,
                class_names=boxes.class_names, min_visibility=parameters["min_visibility"],
            )  # fmt: skip
        points = _annotation(subject, parameters["points_name"], Points, shape)
        return boxes, points

    def _write_patches(self, subject: Subject, plan: _Plan, images: dict[str, Image], bar: Any) -> None:
        parameters = self.parameters
        label_name = parameters["label_name"]
        image = images[plan.image_name]
        sampler = _grid(images, plan.name, parameters)
        what = f"image {plan.image_name!r} of subject {plan.name!r}"
        image_suffix, image_dtype = _image_format(image, parameters["image_format"], what)
        mask_suffix, mask_dtype = _mask_format(images[label_name]) if label_name is not None else ("", None)
        boxes, points = self._annotations(subject, image.spatial_shape)
        if boxes is not None:
            self.boxes_ndims.add(boxes.ndim)
        heatmap = None
        if parameters["heatmap_sigma"] is not None:
            heatmap = points_to_heatmap(points, image, parameters["heatmap_sigma"]).data
        heatmap_suffix = ".npy" if image.is_2d() else ".nii.gz"
        width = max(4, len(str(len(sampler) - 1)))
        for index in range(len(sampler)):
            patch = sampler[index]
            location = [int(v) for v in patch[LOCATION].tolist()]
            ini, fin = tuple(location[:3]), tuple(location[3:])
            patch_boxes = None if boxes is None else boxes.crop_to_region(ini, fin)
            patch_points = None if points is None else points.crop_to_region(ini, fin)
            mask = None if label_name is None else patch[label_name].data
            heat = None if heatmap is None else _tile(heatmap, ini, fin)
            bar.update(1)
            if parameters["skip_empty"] and _is_empty(mask, patch_boxes, patch_points, heat):
                continue
            stem = f"{plan.stem}_{index:0{width}d}"
            affine = patch[plan.image_name].affine
            entry: dict[str, Any] = {"subject": plan.name, "index": index, "location": location}
            relative = f"images/{stem}{image_suffix}"
            entry["image"] = self._write_image(relative, patch[plan.image_name].data, affine, image_dtype)
            if mask is not None:
                entry["mask"] = self._write_image(f"masks/{stem}{mask_suffix}", mask, affine, mask_dtype)
            if heat is not None:
                entry["heatmap"] = self._write_image(f"heatmaps/{stem}{heatmap_suffix}", heat, affine, None)
            if patch_boxes is not None:
                entry["boxes"] = len(patch_boxes)
                self._add_boxes(entry, relative, stem, patch_boxes)
            if patch_points is not None:
                entry["points"] = len(patch_points)
                self._add_points(relative, patch_points)
            self.patches.append(entry)

    def _add_boxes(self, entry: dict[str, Any], relative: str, stem: str, boxes: BoundingBoxes) -> None:
        if boxes.ndim == 2:
            labels = f"labels/{stem}.txt"
            annotations_io.write_yolo(self._path(labels), boxes)
            entry["labels"] = self._record(labels)
            self.coco[relative] = boxes
            return
        corners = boxes.to_xyxy().data.to(torch.float64).tolist()
        for row, values in enumerate(corners):
            label = "" if boxes.class_ids is None else str(int(boxes.class_ids[row]))
            score = "" if boxes.scores is None else _number(float(boxes.scores[row]))
            self.boxes_rows.append([relative, *(_number(v) for v in values), label, score])

    def _add_points(self, relative: str, points: Points) -> None:
        self.points_ndim = max(self.points_ndim, points.ndim)
        for row, values in enumerate(points.data.to(torch.float64).tolist()):
            label = "" if points.class_ids is None else str(int(points.class_ids[row]))
            self.points_rows.append([relative, *(_number(v) for v in values), label])

    def _write_csv(self, relative: str, header: list[str], rows: list[list[str]]) -> None:
        buffer = text_io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        (self.root / relative).write_text(buffer.getvalue(), encoding="utf-8")
        self._record(relative)

    def finish(self, sources: list[Any]) -> dict[str, Any]:
        """Write the shared files, then the manifest (last); return the manifest."""
        outputs: dict[str, str] = {}
        if 2 in self.boxes_ndims:
            annotations_io.write_coco(self.root / "coco.json", self.coco)
            outputs["coco"] = self._record("coco.json")
        if 3 in self.boxes_ndims:
            header = ["image", "xmin", "ymin", "zmin", "xmax", "ymax", "zmax", "class_id", "score"]
            self._write_csv("boxes.csv", header, self.boxes_rows)
            outputs["boxes"] = "boxes.csv"
        if self.parameters["points_name"] is not None:
            ndim = max(self.points_ndim, 2)
            rows = [row if len(row) == ndim + 2 else [*row[:3], "", row[3]] for row in self.points_rows]
            self._write_csv("points.csv", ["image", "x", "y", *(["z"] if ndim == 3 else []), "class_id"], rows)
            outputs["points"] = "points.csv"
        manifest = {
            "format": "torchpatch-export",
            "format_version": _FORMAT,
            "torchpatch_version": __version__,
            "parameters": self.parameters,
            "sources": sources,
            "num_patches": len(self.patches),
            "outputs": outputs,
            "patches": self.patches,
            "files": self.files,
        }
        text = json.dumps(manifest, indent=1, allow_nan=False) + "\n"
        partial = self.root / f".{_MANIFEST}.partial"
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, self.root / _MANIFEST)
        return json.loads(text)


def _is_empty(mask: torch.Tensor | None, boxes: Any, points: Any, heat: torch.Tensor | None) -> bool:
    if mask is not None and bool(mask.any()):
        return False
    if boxes is not None and len(boxes):
        return False
    if points is not None and len(points):
        return False
    return heat is None or not bool((heat > 0).any())


__all__ = ["IMAGE_FORMATS", "ExportResult", "export_patches"]
