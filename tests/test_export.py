"""export_patches: files, labels moved into each patch, reuse, atomicity, default folder, errors."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import torchpatch.annotations_io as annotations_io
import torchpatch.io as tp_io
from torchpatch import BoundingBoxes, LabelMap, Points, ScalarImage, Subject
from torchpatch.dataset import SubjectsDataset
from torchpatch.export import ExportResult, export_patches

BOXES_2D = [[2, 3, 10, 12], [12, 10, 22, 20], [30, 30, 50, 46], [40, 2, 63, 9], [5, 20, 28, 44]]


def _write_scene_2d(folder: Path) -> Subject:
    """A 64x48 RGB photo (PNG), its mask (PNG), 5 boxes and 10 points."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, size=(3, 64, 48, 1), dtype=np.uint8)
    mask = np.zeros((1, 64, 48, 1), np.uint8)
    mask[0, 10:30, 5:20] = 1
    mask[0, 40:60, 30:45] = 2
    tp_io.write_image(photo, np.eye(4), folder / "photo.png")
    tp_io.write_image(mask, np.eye(4), folder / "photo_mask.png")
    points = np.column_stack([rng.uniform(0, 64, 10), rng.uniform(0, 48, 10)])
    points[0] = (16.0, 8.0)  # on a tile border: belongs to the tile that starts there
    return Subject(
        photo=ScalarImage(folder / "photo.png"),
        mask=LabelMap(folder / "photo_mask.png"),
        boxes=BoundingBoxes(BOXES_2D, "xyxy", (64, 48), class_ids=[0, 1, 2, 1, 0], class_names=["leaf", "bud", "stem"]),
        points=Points(points, (64, 48), class_ids=[i % 2 for i in range(10)]),
    )


@pytest.fixture
def scene_2d(tmp_path: Path) -> Subject:
    return _write_scene_2d(tmp_path / "data")


@pytest.fixture
def scene_3d(tmp_path: Path) -> Subject:
    folder = tmp_path / "data3d"
    folder.mkdir()
    generator = torch.Generator().manual_seed(0)
    volume = torch.rand(1, 24, 16, 8, generator=generator)
    labels = torch.zeros(1, 24, 16, 8, dtype=torch.uint8)
    labels[0, 2:10, 3:12, 1:6] = 3
    ScalarImage(tensor=volume).save(folder / "ct.nii.gz")
    LabelMap(tensor=labels).save(folder / "seg.nii.gz")
    boxes = BoundingBoxes([[1, 1, 1, 6, 6, 3], [5, 6, 2, 20, 14, 7], [17, 0, 0, 24, 3, 8]], "xyzxyz", (24, 16, 8))
    points = Points(torch.rand(6, 3, generator=generator) * torch.tensor([24.0, 16.0, 8.0]), (24, 16, 8))
    return Subject(ct=ScalarImage(folder / "ct.nii.gz"), seg=LabelMap(folder / "seg.nii.gz"), boxes=boxes, pts=points)


def _export(subject: Subject, output_dir: Path | None, **kwargs: object) -> ExportResult:
    arguments: dict[str, object] = {
        "label_name": "mask",
        "boxes_name": "boxes",
        "points_name": "points",
        "heatmap_sigma": 2.0,
        "progress": False,
    }
    arguments.update(kwargs)
    return export_patches(subject, 16, output_dir=output_dir, **arguments)  # type: ignore[arg-type]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# 2D ------------------------------------------------------------------------------------------


def test_2d_export_writes_one_image_and_mask_per_grid_tile(scene_2d: Subject, tmp_path: Path) -> None:
    result = _export(scene_2d, tmp_path / "out")
    assert result.num_patches == 12 and not result.reused  # 64x48 in tiles of 16: 4 x 3
    assert result.manifest_path == result.output_dir / "manifest.json" and result.manifest_path.is_file()
    photo, mask = scene_2d["photo"].data, scene_2d["mask"].data
    for entry in result.manifest["patches"]:
        i0, j0, k0, i1, j1, k1 = entry["location"]
        image, _ = tp_io.read_array(result.output_dir / entry["image"])
        assert entry["image"].endswith(".png") and image.dtype == np.uint8
        np.testing.assert_array_equal(image, photo[:, i0:i1, j0:j1, k0:k1].numpy())
        written_mask, _ = tp_io.read_array(result.output_dir / entry["mask"])
        np.testing.assert_array_equal(written_mask, mask[:, i0:i1, j0:j1, k0:k1].numpy())
    for relative, size in result.manifest["files"].items():
        assert (result.output_dir / relative).stat().st_size == size
    assert result.manifest["parameters"]["patch_size"] == 16
    assert result.manifest["sources"][0]["images"]["photo"]["files"][0]["path"].endswith("photo.png")


@pytest.mark.parametrize("min_visibility", [None, 0.5])
def test_yolo_lines_of_each_tile_are_the_boxes_it_sees(
    scene_2d: Subject, tmp_path: Path, min_visibility: float | None
) -> None:
    result = _export(scene_2d, tmp_path / "out", min_visibility=min_visibility, heatmap_sigma=None)
    boxes = scene_2d["boxes"]
    if min_visibility is not None:
        boxes = BoundingBoxes(boxes.data, "xyxy", (64, 48), boxes.class_ids, min_visibility=min_visibility)
    total = 0
    for entry in result.manifest["patches"]:
        location = entry["location"]
        expected = boxes.crop_to_region(location[:3], location[3:])
        written = annotations_io.read_yolo(result.output_dir / entry["labels"], (16, 16))
        assert len(written) == len(expected) == entry["boxes"]
        torch.testing.assert_close(written.data, expected.data, atol=1e-4, rtol=0)
        assert written.class_ids is not None and expected.class_ids is not None
        assert written.class_ids.tolist() == expected.class_ids.tolist()
        total += len(expected)
    if min_visibility is None:
        assert total > len(BOXES_2D)  # boxes crossing tile borders are written in every tile they touch
    else:
        assert total < len(BOXES_2D)  # slivers below half of their box are left out
    coco = json.loads((result.output_dir / "coco.json").read_text())
    assert len(coco["annotations"]) == total


def test_coco_json_lists_every_patch_and_its_boxes(scene_2d: Subject, tmp_path: Path) -> None:
    result = _export(scene_2d, tmp_path / "out")
    coco = json.loads((result.output_dir / "coco.json").read_text())
    images = {image["id"]: image for image in coco["images"]}
    assert sorted(image["file_name"] for image in images.values()) == sorted(
        entry["image"] for entry in result.manifest["patches"]
    )
    assert {(image["width"], image["height"]) for image in images.values()} == {(16, 16)}
    assert {c["id"]: c["name"] for c in coco["categories"]} == {0: "leaf", 1: "bud", 2: "stem"}
    for annotation in coco["annotations"]:
        x, y, w, h = annotation["bbox"]
        assert annotation["image_id"] in images and w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= 16 + 1e-6 and y + h <= 16 + 1e-6
    for entry in result.manifest["patches"]:
        boxes = annotations_io.read_coco(result.output_dir / "coco.json", file_name=entry["image"])
        yolo = annotations_io.read_yolo(result.output_dir / entry["labels"], (16, 16))
        torch.testing.assert_close(boxes.data, yolo.data, atol=1e-4, rtol=0)


def test_points_csv_holds_every_point_once_on_a_non_overlapping_grid(scene_2d: Subject, tmp_path: Path) -> None:
    result = _export(scene_2d, tmp_path / "out")
    rows = _read_csv(result.output_dir / "points.csv")
    assert len(rows) == 10 and list(rows[0]) == ["image", "x", "y", "class_id"]
    origin = {entry["image"]: entry["location"] for entry in result.manifest["patches"]}
    recovered = sorted(
        (
            round(float(r["x"]) + origin[r["image"]][0], 4),
            round(float(r["y"]) + origin[r["image"]][1], 4),
            r["class_id"],
        )
        for r in rows
    )
    points = scene_2d["points"]
    expected = sorted(
        (round(x, 4), round(y, 4), str(c)) for (x, y), c in zip(points.data.tolist(), points.class_ids.tolist())
    )
    assert recovered == expected
    border = [r for r in rows if origin[r["image"]][:2] == [16, 0] and float(r["x"]) == 0.0]
    assert len(border) == 1  # the point at x = 16 is in the tile starting at 16


def test_heatmap_tiles_sum_to_the_number_of_points(scene_2d: Subject, tmp_path: Path) -> None:
    result = _export(scene_2d, tmp_path / "out", heatmap_sigma=3.0)
    tiles = [np.load(result.output_dir / entry["heatmap"]) for entry in result.manifest["patches"]]
    assert tiles[0].shape == (1, 16, 16, 1) and tiles[0].dtype == np.float32
    assert abs(sum(float(tile.sum(dtype=np.float64)) for tile in tiles) - 10) < 1e-4
    heatmap = ScalarImage(result.output_dir / result.manifest["patches"][0]["heatmap"])
    assert heatmap.shape == (1, 16, 16, 1)


def test_overlapping_grid_repeats_points_in_every_tile_holding_them(scene_2d: Subject, tmp_path: Path) -> None:
    result = _export(scene_2d, tmp_path / "out", patch_overlap=8, heatmap_sigma=None)
    rows = _read_csv(result.output_dir / "points.csv")
    assert result.num_patches == 7 * 5 and len(rows) > 10
    assert sum(entry["points"] for entry in result.manifest["patches"]) == len(rows)


def test_skip_empty_leaves_out_tiles_without_annotations(scene_2d: Subject, tmp_path: Path) -> None:
    subject = scene_2d.with_images({}, boxes=BoundingBoxes([[1, 1, 5, 5]], "xyxy", (64, 48)))
    result = export_patches(
        subject, 16, output_dir=tmp_path / "out", boxes_name="boxes", skip_empty=True, progress=False
    )
    assert result.num_patches == 1 and result.manifest["patches"][0]["location"] == [0, 0, 0, 16, 16, 1]
    assert len(list((result.output_dir / "images").iterdir())) == 1


def test_float_and_16_bit_images_get_exact_formats(tmp_path: Path) -> None:
    floats = Subject(a=ScalarImage(tensor=torch.rand(1, 8, 8, 1)), subject_id="f")
    result = export_patches(floats, 4, output_dir=tmp_path / "f", progress=False)
    assert result.manifest["patches"][0]["image"].endswith(".nii.gz")
    with pytest.raises(ValueError, match=r"'\.png' cannot hold image 'a' of subject 'f'.*float32"):
        export_patches(floats, 4, output_dir=tmp_path / "g", image_format="png", progress=False)
    deep = Subject(a=ScalarImage(tensor=torch.full((1, 8, 8, 1), 4000, dtype=torch.int32)), subject_id="d")
    entry = export_patches(deep, 4, output_dir=tmp_path / "d", progress=False).manifest["patches"][0]
    data, _ = tp_io.read_array(tmp_path / "d" / entry["image"])
    assert entry["image"].endswith(".png") and data.dtype == np.uint16 and int(data.max()) == 4000


# 3D ------------------------------------------------------------------------------------------


def test_3d_export_writes_nifti_patches_boxes_csv_and_points(scene_3d: Subject, tmp_path: Path) -> None:
    result = export_patches(
        scene_3d, (8, 8, 4), output_dir=tmp_path / "out", label_name="seg", boxes_name="boxes",
        points_name="pts", heatmap_sigma=1.0, progress=False,
    )  # fmt: skip
    assert result.num_patches == 3 * 2 * 2
    volume, labels = scene_3d["ct"].data, scene_3d["seg"].data
    boxes = _read_csv(result.output_dir / "boxes.csv")
    assert not (result.output_dir / "coco.json").exists() and not (result.output_dir / "labels").exists()
    heat = 0.0
    for entry in result.manifest["patches"]:
        i0, j0, k0, i1, j1, k1 = entry["location"]
        patch = ScalarImage(result.output_dir / entry["image"])
        torch.testing.assert_close(patch.data, volume[:, i0:i1, j0:j1, k0:k1])
        np.testing.assert_allclose(patch.affine[:3, 3], [i0, j0, k0])
        mask = LabelMap(result.output_dir / entry["mask"])
        torch.testing.assert_close(mask.data.to(torch.uint8), labels[:, i0:i1, j0:j1, k0:k1])
        expected = scene_3d["boxes"].crop_to_region((i0, j0, k0), (i1, j1, k1))
        rows = [r for r in boxes if r["image"] == entry["image"]]
        written = torch.tensor([[float(r[c]) for c in ("xmin", "ymin", "zmin", "xmax", "ymax", "zmax")] for r in rows])
        torch.testing.assert_close(written.reshape(-1, 6), expected.data, atol=1e-5, rtol=0)
        heat += float(ScalarImage(result.output_dir / entry["heatmap"]).data.sum())
    assert abs(heat - 6) < 1e-4
    points = _read_csv(result.output_dir / "points.csv")
    assert len(points) == 6 and list(points[0]) == ["image", "x", "y", "z", "class_id"]


# Reuse and atomicity ------------------------------------------------------------------------


def _forbid_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a reused export must not write")

    for name in ("write_yolo", "write_coco"):
        monkeypatch.setattr(annotations_io, name, fail)
    monkeypatch.setattr(tp_io, "write_image", fail)


def test_rerun_with_the_same_parameters_reuses_without_writing(
    scene_2d: Subject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _export(scene_2d, tmp_path / "out")
    _forbid_writes(monkeypatch)
    second = _export(scene_2d, tmp_path / "out")
    assert second.reused and second.num_patches == first.num_patches and second.output_dir == first.output_dir
    assert not scene_2d["photo"].is_loaded  # the export read the file and let it go


def test_changed_parameter_regenerates_in_place(scene_2d: Subject, tmp_path: Path) -> None:
    _export(scene_2d, tmp_path / "out")
    result = _export(scene_2d, tmp_path / "out", heatmap_sigma=None, points_name=None)
    assert not result.reused and result.num_patches == 12
    assert not (result.output_dir / "heatmaps").exists() and not (result.output_dir / "points.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out"]  # no partial or old folder left


def test_changed_boxes_regenerate(scene_2d: Subject, tmp_path: Path) -> None:
    _export(scene_2d, tmp_path / "out")
    scene_2d["boxes"] = scene_2d["boxes"][:2]
    assert not _export(scene_2d, tmp_path / "out").reused


def test_touched_source_file_regenerates_the_default_folder(scene_2d: Subject, tmp_path: Path) -> None:
    first = _export(scene_2d, None)
    path = tmp_path / "data" / "photo_mask.png"
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
    second = _export(scene_2d, None)
    assert not second.reused and second.output_dir == first.output_dir
    assert _export(scene_2d, None).reused


def test_interrupted_export_leaves_no_manifest_and_the_next_run_regenerates(
    scene_2d: Subject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tp_io.write_image
    calls = []

    def flaky(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 7:
            raise OSError("disk full")
        original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tp_io, "write_image", flaky)
    with pytest.raises(OSError, match="disk full"):
        _export(scene_2d, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # neither the export nor its partial folder
    monkeypatch.setattr(tp_io, "write_image", original)
    result = _export(scene_2d, tmp_path / "out")
    assert not result.reused and result.num_patches == 12 and result.manifest_path.is_file()


def test_interrupted_regeneration_keeps_the_previous_export(
    scene_2d: Subject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _export(scene_2d, tmp_path / "out")

    def fail(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(annotations_io, "write_coco", fail)
    with pytest.raises(KeyboardInterrupt):
        _export(scene_2d, tmp_path / "out", min_visibility=0.9)
    _forbid_writes(monkeypatch)
    assert _export(scene_2d, tmp_path / "out").reused


def test_partial_folder_of_a_killed_export_is_removed(scene_2d: Subject, tmp_path: Path) -> None:
    dead = tmp_path / ".out.partial-999999999-0123abcd"  # no such process: a SIGKILLed export
    (dead / "images").mkdir(parents=True)
    result = _export(scene_2d, tmp_path / "out", heatmap_sigma=None)
    assert not dead.exists() and result.manifest_path.is_file()


def test_empty_existing_output_dir_is_used(scene_2d: Subject, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    assert _export(scene_2d, tmp_path / "out", heatmap_sigma=None).num_patches == 12


def test_deleted_patch_file_is_not_reused(scene_2d: Subject, tmp_path: Path) -> None:
    result = _export(scene_2d, tmp_path / "out")
    (result.output_dir / result.manifest["patches"][3]["image"]).unlink()
    assert not _export(scene_2d, tmp_path / "out").reused


# Where the export goes ---------------------------------------------------------------------------


def test_default_output_is_next_to_the_data_not_the_current_directory(
    scene_2d: Subject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = _export(scene_2d, None, progress=True)
    assert result.output_dir.parent == (tmp_path / "data" / "torchpatch-patches").resolve()
    assert result.output_dir.name.startswith("patch16-overlap0-")
    assert list(elsewhere.iterdir()) == []
    changed = _export(scene_2d, None, patch_overlap=4)
    assert changed.output_dir != result.output_dir and result.manifest_path.is_file()


def test_default_output_of_several_subjects_is_their_common_folder(tmp_path: Path) -> None:
    subjects = [_write_scene_2d(tmp_path / "data" / name) for name in ("a", "b")]
    dataset = SubjectsDataset(subjects)
    result = export_patches(dataset, 16, image_name="photo", label_name="mask", progress=False)
    assert result.output_dir.parent == (tmp_path / "data" / "torchpatch-patches").resolve()
    assert result.num_patches == 24
    stems = {Path(entry["image"]).name.rsplit("_", 1)[0] for entry in result.manifest["patches"]}
    assert stems == {"photo", "photo-1"}  # two subjects named 'photo': file names kept apart


def test_in_memory_subject_needs_output_dir(tmp_path: Path) -> None:
    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8)), subject_id="sub-01")
    with pytest.raises(ValueError, match=r"output_dir is needed: image 't1' of subject 'sub-01' has no file"):
        export_patches(subject, 4, progress=False)


# Bad input -------------------------------------------------------------------------------------


def test_missing_image_name_is_named(scene_2d: Subject, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"image_name 'rgb' is not an image of subject 'photo'.*\['mask', 'photo'\]"):
        export_patches(scene_2d, 16, output_dir=tmp_path / "out", image_name="rgb", progress=False)
    two = Subject(a=ScalarImage(tensor=torch.rand(1, 8, 8, 1)), b=ScalarImage(tensor=torch.rand(1, 8, 8, 1)))
    with pytest.raises(ValueError, match=r"2 intensity images \['a', 'b'\].*pass image_name="):
        export_patches(two, 4, output_dir=tmp_path / "two", progress=False)
    with pytest.raises(ValueError, match=r"'pts' is not in the metadata of subject 'photo'"):
        export_patches(scene_2d, 16, output_dir=tmp_path / "out", points_name="pts", progress=False)
    assert not (tmp_path / "out").exists()


def test_patch_larger_than_image_needs_padding(tmp_path: Path) -> None:
    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 10, 6, 1)), subject_id="small")
    with pytest.raises(ValueError, match=r"patch_size \(8, 8, 1\) exceeds .* \(10, 6, 1\) of image 't1' in .*'small'"):
        export_patches(subject, 8, output_dir=tmp_path / "out", progress=False)
    result = export_patches(subject, 8, output_dir=tmp_path / "out", padding_mode=0, progress=False)
    assert result.num_patches == 2 and ScalarImage(
        result.output_dir / result.manifest["patches"][0]["image"]
    ).shape == (
        1,
        8,
        8,
        1,
    )


def test_unwritable_or_foreign_output_folder_is_refused(scene_2d: Subject, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="cannot write the export"):
        _export(scene_2d, blocker / "out")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="holds files but no torchpatch export"):
        _export(scene_2d, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_bad_arguments_raise_clear_errors(scene_2d: Subject, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pass points_name too"):
        export_patches(scene_2d, 16, output_dir=tmp_path, heatmap_sigma=2.0, progress=False)
    with pytest.raises(ValueError, match="image_format must be one of"):
        export_patches(scene_2d, 16, output_dir=tmp_path, image_format="gif", progress=False)
    with pytest.raises(ValueError, match=r"min_visibility must be None or a number in \[0, 1\]"):
        export_patches(scene_2d, 16, output_dir=tmp_path, min_visibility=2, progress=False)
    with pytest.raises(TypeError, match=r"subjects\[0\] must be a Subject"):
        export_patches(["photo.png"], 16, output_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="label_name 'photo' is not a LabelMap"):
        export_patches(scene_2d, 16, output_dir=tmp_path, label_name="photo", image_name="mask", progress=False)


def test_a_fractional_overlap_means_the_same_voxels_as_everywhere(scene_2d: Subject, tmp_path: Path) -> None:
    by_fraction = _export(scene_2d, tmp_path / "fraction", patch_overlap=0.5)
    by_voxels = _export(scene_2d, tmp_path / "voxels", patch_overlap=8)
    locations = [entry["location"] for entry in by_fraction.manifest["patches"]]
    assert locations == [entry["location"] for entry in by_voxels.manifest["patches"]]
    assert by_fraction.num_patches == 35  # 64x48 in tiles of 16 every 8 voxels: 7 x 5
