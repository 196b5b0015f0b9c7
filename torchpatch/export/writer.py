"""Writing an export: each patch's image, mask and heatmap, its boxes and points, then the shared files.

:class:`PatchWriter` writes into the partial folder of an export. Each
subject is cut on its grid with :meth:`Subject.cut
<torchpatch.patches.SubjectCuts.cut>` (one patch at a time: a view of the voxels
when the patch lies inside the image), which also crops its boxes and points
to each patch; the heatmap is drawn on the whole image and each patch reads
its box of it, 0 outside the image. The shared files (``coco.json``,
``boxes.csv``, ``points.csv``) and the manifest are written last.
"""

from __future__ import annotations

import csv
import io as text_io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import annotations_io, io  # writers looked up at call time, so a patched one is the one called
from ..annotations import BoundingBoxes, Points
from ..annotations.heatmap import points_to_heatmap
from ..subject import Subject
from .formats import PatchFormats, choose_formats
from .manifest import write_manifest
from .options import ExportOptions
from .plan import SubjectPlan, unload_new


class PatchWriter:
    """Writes the patches of each subject into ``root``, then the shared files and the manifest.

    Args:
        root: The folder to write in (the partial folder of the export).
        options: The export's options.

    Example:
        >>> import tempfile
        >>> from torchpatch import ScalarImage
        >>> from torchpatch.export.plan import plan_subjects
        >>> options = ExportOptions.from_arguments(2)
        >>> tile = ScalarImage(tensor=torch.zeros(1, 4, 2, 1, dtype=torch.uint8))
        >>> subjects, plans = plan_subjects(Subject(a=tile, id='s'), options)
        >>> writer = PatchWriter(Path(tempfile.mkdtemp()), options)
        >>> writer.write_subject(subjects[0], plans[0])
        >>> manifest = writer.finish([plan.source for plan in plans])
        >>> manifest['num_patches'], sorted(manifest['files'])
        (2, ['images/s_0000.png', 'images/s_0001.png'])
    """

    def __init__(self, root: Path, options: ExportOptions) -> None:
        self.root = root
        self.options = options
        self.files: dict[str, int] = {}
        self.patches: list[dict[str, Any]] = []
        self.coco: dict[str, BoundingBoxes] = {}
        self.boxes_rows: list[list[str]] = []
        self.points_rows: list[list[str]] = []
        self.points_ndim = 0
        self.boxes_ndims: set[int] = set()

    def write_subject(self, subject: Subject, plan: SubjectPlan, bar: Any = None) -> None:
        """Write the patches of ``subject`` as ``plan`` says, updating the progress ``bar`` per patch.

        Images that were not loaded before are unloaded afterwards.
        """
        images = plan.images(subject)
        loaded = {key: value.is_loaded for key, value in images.items()}
        try:
            self._write_patches(subject, plan, bar)
        finally:
            unload_new(images, loaded)

    def _write_patches(self, subject: Subject, plan: SubjectPlan, bar: Any) -> None:
        options = self.options
        image = subject.get_image(plan.image_name)
        label = None if plan.label_name is None else subject.get_image(plan.label_name)
        formats = choose_formats(
            image, label, options.image_format, f"image {plan.image_name!r} of subject {plan.name!r}"
        )
        annotations = plan.annotations(subject, options)
        boxes_name, points_name = options.boxes_name, options.points_name
        if boxes_name is not None:
            self.boxes_ndims.add(annotations[boxes_name].ndim)
        heatmap = None
        if options.heatmap_sigma is not None and points_name is not None:
            heatmap = points_to_heatmap(annotations[points_name], image, options.heatmap_sigma)
        # Only what is written is cut: the image, the label map, the boxes and points.
        patches_of = Subject(plan.images(subject), **annotations, subject_id=plan.name)
        locations = plan.grid.locations
        width = max(4, len(str(len(locations) - 1)))
        for index in range(len(locations)):
            patch = patches_of.cut(locations[index : index + 1], padding_mode=options.padding_mode, copy=False)
            location = [int(v) for v in locations[index].tolist()]
            cropped = {} if patch.metadata is None else patch.metadata[0]
            patch_boxes = None if boxes_name is None else cropped[boxes_name]
            patch_points = None if points_name is None else cropped[points_name]
            mask = None if plan.label_name is None else patch.data[plan.label_name][0]
            heat = None if heatmap is None else heatmap.read_region(location[:3], location[3:], padding_mode=0)
            if bar is not None:
                bar.update(1)
            if options.skip_empty and _is_empty(mask, patch_boxes, patch_points, heat):
                continue
            stem = f"{plan.stem}_{index:0{width}d}"
            affine = patch.affines[plan.image_name][0]
            self._write_patch(plan, formats, index, location, stem, affine, patch.data, heat, patch_boxes, patch_points)

    def _write_patch(
        self,
        plan: SubjectPlan,
        formats: PatchFormats,
        index: int,
        location: list[int],
        stem: str,
        affine: Any,
        data: dict[str, torch.Tensor],
        heat: torch.Tensor | None,
        boxes: BoundingBoxes | None,
        points: Points | None,
    ) -> None:
        entry: dict[str, Any] = {"subject": plan.name, "index": index, "location": location}
        relative = f"images/{stem}{formats.image}"
        entry["image"] = self._write_image(relative, data[plan.image_name][0], affine, formats.image_dtype)
        if plan.label_name is not None:
            mask = data[plan.label_name][0]
            entry["mask"] = self._write_image(f"masks/{stem}{formats.mask}", mask, affine, formats.mask_dtype)
        if heat is not None:
            entry["heatmap"] = self._write_image(f"heatmaps/{stem}{formats.heatmap}", heat, affine, None)
        if boxes is not None:
            entry["boxes"] = len(boxes)
            self._add_boxes(entry, relative, stem, boxes)
        if points is not None:
            entry["points"] = len(points)
            self._add_points(relative, points)
        self.patches.append(entry)

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
        if self.options.points_name is not None:
            ndim = max(self.points_ndim, 2)
            rows = [row if len(row) == ndim + 2 else [*row[:3], "", row[3]] for row in self.points_rows]
            self._write_csv("points.csv", ["image", "x", "y", *(["z"] if ndim == 3 else []), "class_id"], rows)
            outputs["points"] = "points.csv"
        return write_manifest(self.root, self.options.parameters(), sources, self.patches, outputs, self.files)


def _number(value: float) -> str:
    return f"{value:.10g}"


def _is_empty(mask: torch.Tensor | None, boxes: Any, points: Any, heat: torch.Tensor | None) -> bool:
    if mask is not None and bool(mask.any()):
        return False
    if boxes is not None and len(boxes):
        return False
    if points is not None and len(points):
        return False
    return heat is None or not bool((heat > 0).any())


__all__ = ["PatchWriter"]
