"""Bad inputs and faults, one row each: the error type and a substring naming the culprit (issue 14).

Each row builds its bad input under ``tmp_path`` and calls the library as a
user would. A row whose current behaviour is not a clear error naming the
culprit is a known bug, marked ``xfail(strict=True)`` so that fixing it flips
the row (then remove the mark). Add a row for every bug found.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import torchpatch as tp
from torchpatch.annotations_io import read_coco, read_csv_boxes, read_voc, read_yolo
from torchpatch.io import read_array, read_header, write_image

Action = Callable[[Path], Any]


def _nifti(tmp_path: Path, name: str = "scan.nii.gz", shape: tuple[int, ...] = (1, 16, 16, 16)) -> Path:
    """A small valid image file."""
    path = tmp_path / name
    write_image(np.random.default_rng(0).random(shape).astype(np.float32), np.eye(4), path)
    return path


def _image(shape: tuple[int, int, int] = (8, 8, 8), label: bool = False) -> tp.Image:
    tensor = torch.zeros((1, *shape)) if label else torch.rand((1, *shape))
    return tp.LabelMap(tensor=tensor) if label else tp.ScalarImage(tensor=tensor)


def _subject(shape: tuple[int, int, int] = (8, 8, 8)) -> tp.Subject:
    return tp.Subject(t1=_image(shape), seg=_image(shape, label=True))


def _load(path: Path) -> Any:
    """Read a file as a user does: through the image's data."""
    return tp.ScalarImage(path).data


# ---- image files ------------------------------------------------------------


def truncated_nii_gz(tmp_path: Path) -> Any:
    path = _nifti(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return _load(path)


def truncated_nii(tmp_path: Path) -> Any:
    path = _nifti(tmp_path, "scan.nii")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return _load(path)


def corrupt_header_nii(tmp_path: Path) -> Any:
    path = _nifti(tmp_path, "scan.nii")
    data = bytearray(path.read_bytes())
    data[40:56] = b"\xff" * 16  # dim[] garbage
    path.write_bytes(bytes(data))
    return _load(path)


def wrong_magic_nii(tmp_path: Path) -> Any:
    path = _nifti(tmp_path, "scan.nii")
    data = bytearray(path.read_bytes())
    data[344:348] = b"XXXX"
    path.write_bytes(bytes(data))
    return _load(path)


def empty_nii_gz(tmp_path: Path) -> Any:
    path = tmp_path / "scan.nii.gz"
    path.write_bytes(b"")
    return _load(path)


def empty_nii(tmp_path: Path) -> Any:
    path = tmp_path / "scan.nii"
    path.write_bytes(b"")
    return _load(path)


def not_gzip_nii_gz(tmp_path: Path) -> Any:
    path = tmp_path / "scan.nii.gz"
    path.write_bytes(b"this is not gzip at all" * 20)
    return _load(path)


def gzip_flipped_byte(tmp_path: Path) -> Any:
    path = _nifti(tmp_path, shape=(1, 64, 64, 64))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return _load(path)


def nrrd_garbage(tmp_path: Path) -> Any:
    path = tmp_path / "scan.nrrd"
    path.write_bytes(b"NRRD0004\ntype: float\ndimension: banana\n\n")
    return _load(path)


def png_truncated(tmp_path: Path) -> Any:
    path = tmp_path / "photo.png"
    write_image(np.zeros((1, 32, 32, 1), np.uint8), np.eye(4), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return _load(path)


def npy_pickled_objects(tmp_path: Path) -> Any:
    path = tmp_path / "array.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return read_array(path)


def npy_garbage(tmp_path: Path) -> Any:
    path = tmp_path / "array.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    return read_array(path)


def unsupported_suffix(tmp_path: Path) -> Any:
    path = tmp_path / "scan.xyz"
    path.write_bytes(b"1234")
    return read_array(path)


def missing_file(tmp_path: Path) -> Any:
    return _load(tmp_path / "absent.nii.gz")


def folder_without_dicom(tmp_path: Path) -> Any:
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "notes.txt").write_text("nothing here")
    return read_header(folder)


def write_unsupported_suffix(tmp_path: Path) -> Any:
    return write_image(np.zeros((1, 4, 4, 4), np.float32), np.eye(4), tmp_path / "out.xyz")


def save_into_a_file(tmp_path: Path) -> Any:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    return _image().save(blocker / "out.nii.gz")


# ---- images and subjects ----------------------------------------------------


def nan_affine(tmp_path: Path) -> Any:
    affine = np.eye(4)
    affine[0, 0] = np.nan
    return tp.ScalarImage(tensor=torch.rand(1, 4, 4, 4), affine=affine)


def singular_affine(tmp_path: Path) -> Any:
    affine = np.eye(4)
    affine[1, 1] = 0
    return tp.ScalarImage(tensor=torch.rand(1, 4, 4, 4), affine=affine)


def affine_wrong_shape(tmp_path: Path) -> Any:
    return tp.ScalarImage(tensor=torch.rand(1, 4, 4, 4), affine=np.eye(3))


def tensor_wrong_dims(tmp_path: Path) -> Any:
    return tp.ScalarImage(tensor=torch.rand(4, 4))


def tensor_wrong_type(tmp_path: Path) -> Any:
    return tp.ScalarImage(tensor="not a tensor")


def mismatched_shapes_sampled(tmp_path: Path) -> Any:
    subject = tp.Subject(t1=_image((8, 8, 8)), seg=_image((9, 8, 8), label=True))
    return next(iter(tp.UniformSampler(4)(subject)))


def subject_missing_image_name(tmp_path: Path) -> Any:
    return tp.LabelSampler(4, label_name="mask")(_subject()).__next__()


def numpy_string_dtype(tmp_path: Path) -> Any:
    return tp.ScalarImage(tensor=np.array([[[["a"]]]]))


def numpy_object_dtype(tmp_path: Path) -> Any:
    return tp.ScalarImage(tensor=np.array([[[[None]]]], dtype=object))


def subject_without_image(tmp_path: Path) -> Any:
    return next(iter(tp.UniformSampler(4)(tp.Subject(age=42))))


def dataset_of_non_subjects(tmp_path: Path) -> Any:
    return tp.SubjectsDataset([1, 2])[0]  # type: ignore[list-item]


def grid_mismatched_shapes(tmp_path: Path) -> Any:
    subject = tp.Subject(t1=_image((8, 8, 8)), seg=_image((9, 8, 8), label=True))
    return tp.GridSampler(subject, 4)


# ---- DICOM series -----------------------------------------------------------


def _dicom_series(folder: Path, slices: int = 20, spacing: float = 2.0) -> Path:
    """A small CT series, one file per slice, ``spacing`` mm apart."""
    import SimpleITK as sitk  # only the DICOM rows need it

    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = "1.2.826.0.1.3680043.2.1125.1"
    for k in range(slices):
        image = sitk.GetImageFromArray(np.full((1, 8, 8), k, np.int16))
        tags = {
            "0020|000d": f"{uid}.1",
            "0020|000e": f"{uid}.2",
            "0008|0060": "CT",
            "0020|0032": f"0\\0\\{k * spacing}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|0030": "1\\1",
            "0020|0013": str(k + 1),
            "0008|0018": f"{uid}.3.{k}",
        }
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(image)
    return folder


def dicom_missing_slice(tmp_path: Path) -> Any:
    folder = _dicom_series(tmp_path / "series")
    (folder / "slice010.dcm").unlink()
    return _load(folder)


def dicom_corrupt_slice(tmp_path: Path) -> Any:
    folder = _dicom_series(tmp_path / "series")
    path = folder / "slice010.dcm"
    path.write_bytes(path.read_bytes()[:300])
    return _load(folder)


# ---- samplers, queue, inference ---------------------------------------------


def patch_larger_than_image(tmp_path: Path) -> Any:
    return next(iter(tp.UniformSampler(16)(_subject((8, 8, 8)))))


def zero_patch_size(tmp_path: Path) -> Any:
    return tp.UniformSampler(0)


def negative_patch_size(tmp_path: Path) -> Any:
    return tp.UniformSampler((4, -4, 4))


def grid_overlap_too_large(tmp_path: Path) -> Any:
    return tp.GridSampler(_subject((8, 8, 8)), 4, patch_overlap=4)


def label_sampler_absent_label(tmp_path: Path) -> Any:
    subject = _subject()
    subject["seg"].set_data(torch.zeros_like(subject["seg"].data, dtype=torch.uint8))
    sampler = tp.LabelSampler(4, label_name="seg", label_probabilities={7: 1.0})
    return next(iter(sampler(subject)))


def unknown_padding_mode_sampler(tmp_path: Path) -> Any:
    return tp.UniformSampler(4, padding_mode="bogus")


def queue_zero_samples(tmp_path: Path) -> Any:
    dataset = tp.SubjectsDataset([_subject()])
    return tp.Queue(dataset, max_length=4, samples_per_volume=0, sampler=tp.UniformSampler(4))


def queue_sampler_not_a_sampler(tmp_path: Path) -> Any:
    dataset = tp.SubjectsDataset([_subject()])
    return tp.Queue(dataset, max_length=4, samples_per_volume=2, sampler="uniform")  # type: ignore[arg-type]


def negative_label_probability(tmp_path: Path) -> Any:
    return tp.LabelSampler(4, "seg", {0: -1})


def weighted_map_absent(tmp_path: Path) -> Any:
    return next(iter(tp.WeightedSampler(4, "prob")(_subject())))


def weighted_map_negative(tmp_path: Path) -> Any:
    subject = tp.Subject(t1=tp.ScalarImage(tensor=-torch.ones(1, 8, 8, 8)))
    return next(iter(tp.WeightedSampler(4, "t1")(subject)))


def aggregator_wrong_locations(tmp_path: Path) -> Any:
    aggregator = tp.GridAggregator(tp.GridSampler(_subject(), 4))
    return aggregator.add_batch(torch.rand(2, 1, 4, 4, 4), torch.zeros(3, 6, dtype=torch.int64))


def infer_zero_batch(tmp_path: Path) -> Any:
    return tp.infer(lambda batch: batch, _image(), 4, batch_size=0, progress=False)


def infer_unknown_overlap_mode(tmp_path: Path) -> Any:
    return tp.infer(lambda batch: batch, _image(), 4, overlap_mode="bogus", progress=False)


def infer_fewer_outputs(tmp_path: Path) -> Any:
    def model(batch: torch.Tensor) -> torch.Tensor:
        return batch[:-1]

    return tp.infer(model, _image((8, 8, 8)), 4, batch_size=4, progress=False)


# ---- transforms -------------------------------------------------------------


def unknown_padding_mode_pad(tmp_path: Path) -> Any:
    return tp.Pad(2, padding_mode="bogus")


def negative_spacing_resample(tmp_path: Path) -> Any:
    return tp.Resample(-1)


def resample_nan_spacing(tmp_path: Path) -> Any:
    return tp.Resample(float("nan"))


def elastic_too_few_control_points(tmp_path: Path) -> Any:
    return tp.RandomElasticDeformation(num_control_points=2)


def affine_negative_degrees(tmp_path: Path) -> Any:
    return tp.RandomAffine(degrees=-10)


def negative_scales_affine(tmp_path: Path) -> Any:
    return tp.RandomAffine(scales=(-2, -1))


def flip_axis_out_of_range(tmp_path: Path) -> Any:
    return tp.RandomFlip(axes=(5,))(_subject())


def negative_noise_std(tmp_path: Path) -> Any:
    return tp.RandomNoise(std=-1)


def crop_or_pad_negative_shape(tmp_path: Path) -> Any:
    return tp.CropOrPad((4, -1, 4))


def rescale_reversed_range(tmp_path: Path) -> Any:
    return tp.RescaleIntensity(out_min_max=(1, 0))


def compose_not_callable(tmp_path: Path) -> Any:
    return tp.Compose([tp.RandomFlip(), 42])  # type: ignore[list-item]


def probability_above_one(tmp_path: Path) -> Any:
    return tp.RandomFlip(p=1.5)


# ---- annotation files -------------------------------------------------------


def voc_billion_laughs(tmp_path: Path) -> Any:
    path = tmp_path / "photo.xml"
    path.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>\n'
        "<annotation><filename>&lol3;</filename></annotation>\n"
    )
    return read_voc(path)


def voc_external_entity(tmp_path: Path) -> Any:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    path = tmp_path / "photo.xml"
    path.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
        "<annotation><filename>&xxe;</filename></annotation>\n"
    )
    return read_voc(path)


def voc_malformed_xml(tmp_path: Path) -> Any:
    path = tmp_path / "photo.xml"
    path.write_text("<annotation><object><name>tree</name></annotation>")
    return read_voc(path)


def voc_missing_bndbox(tmp_path: Path) -> Any:
    path = tmp_path / "photo.xml"
    path.write_text(
        "<annotation><size><width>10</width><height>10</height><depth>3</depth></size>"
        "<object><name>tree</name></object></annotation>"
    )
    return read_voc(path)


def coco_malformed_json(tmp_path: Path) -> Any:
    path = tmp_path / "boxes.json"
    path.write_text('{"images": [ {"id": 1, ')
    return read_coco(path)


def coco_nan_constant(tmp_path: Path) -> Any:
    path = tmp_path / "boxes.json"
    path.write_text(
        '{"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}],'
        ' "annotations": [{"image_id": 1, "bbox": [NaN, 0, 1, 1], "category_id": 1}],'
        ' "categories": [{"id": 1, "name": "tree"}]}'
    )
    return read_coco(path)


def coco_unknown_image(tmp_path: Path) -> Any:
    path = tmp_path / "boxes.json"
    content = {
        "images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}],
        "annotations": [],
        "categories": [{"id": 1, "name": "tree"}],
    }
    path.write_text(json.dumps(content))
    return read_coco(path, file_name="zebra.png")


def csv_bad_header(tmp_path: Path) -> Any:
    path = tmp_path / "boxes.csv"
    path.write_text("image,x0,y0\nphoto.png,1,2\n")
    return read_csv_boxes(path, (10, 10))


def csv_not_a_number(tmp_path: Path) -> Any:
    path = tmp_path / "boxes.csv"
    path.write_text("image_path,xmin,ymin,xmax,ymax,label\nphoto.png,1,two,3,4,tree\n")
    return read_csv_boxes(path, (10, 10))


def yolo_wrong_column_count(tmp_path: Path) -> Any:
    path = tmp_path / "photo.txt"
    path.write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5\n")
    return read_yolo(path, (10, 10))


def yolo_not_a_number(tmp_path: Path) -> Any:
    path = tmp_path / "photo.txt"
    path.write_text("0 0.5 half 0.2 0.2\n")
    return read_yolo(path, (10, 10))


def yolo_coordinates_above_one(tmp_path: Path) -> Any:
    path = tmp_path / "photo.txt"
    path.write_text("0 0.5 0.5 0.2 0.2\n0 250 120 40 30\n")
    return read_yolo(path, (10, 10))


def yolo_not_utf8(tmp_path: Path) -> Any:
    path = tmp_path / "photo.txt"
    path.write_bytes(b"\xff\xfe\x00garbage")
    return read_yolo(path, (10, 10))


# ---- cache and export -------------------------------------------------------


def cache_dir_not_writable(tmp_path: Path) -> Any:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    return tp.SubjectsDataset([_subject()], cache_dir=blocker / "cache")


def export_to_existing_file(tmp_path: Path) -> Any:
    target = tmp_path / "exported"
    target.write_text("precious")
    return tp.export_patches(_subject(), 4, output_dir=target, image_name="t1", progress=False)


def export_to_foreign_folder(tmp_path: Path) -> Any:
    target = tmp_path / "exported"
    target.mkdir()
    (target / "precious.txt").write_text("precious")
    return tp.export_patches(_subject(), 4, output_dir=target, image_name="t1", progress=False)


def export_unknown_image_name(tmp_path: Path) -> Any:
    return tp.export_patches(_subject(), 4, output_dir=tmp_path / "out", image_name="flair", progress=False)


# ---- the table --------------------------------------------------------------


ROWS = [
    pytest.param(truncated_nii_gz, ValueError, "scan.nii.gz", id="truncated .nii.gz"),
    pytest.param(truncated_nii, ValueError, "scan.nii", id="truncated .nii"),
    pytest.param(corrupt_header_nii, ValueError, "scan.nii", id="corrupt NIfTI header"),
    pytest.param(wrong_magic_nii, ValueError, "scan.nii", id="wrong NIfTI magic"),
    pytest.param(empty_nii_gz, ValueError, "scan.nii.gz", id="empty .nii.gz"),
    pytest.param(empty_nii, ValueError, "scan.nii", id="empty .nii"),
    pytest.param(not_gzip_nii_gz, ValueError, "scan.nii.gz", id=".nii.gz not gzip"),
    pytest.param(
        gzip_flipped_byte,
        (OSError, ValueError),
        "scan.nii.gz",
        id="gzip flipped byte",
    ),
    pytest.param(nrrd_garbage, ValueError, "scan.nrrd", id="garbage NRRD header"),
    pytest.param(png_truncated, ValueError, "photo.png", id="truncated PNG"),
    pytest.param(npy_pickled_objects, ValueError, "array.npy", id="npy of pickled objects"),
    pytest.param(npy_garbage, ValueError, "array.npy", id="npy garbage"),
    pytest.param(unsupported_suffix, ValueError, "scan.xyz", id="unsupported suffix"),
    pytest.param(missing_file, FileNotFoundError, "absent.nii.gz", id="missing file"),
    pytest.param(folder_without_dicom, ValueError, "series", id="folder without DICOM"),
    pytest.param(write_unsupported_suffix, ValueError, "out.xyz", id="write unsupported suffix"),
    pytest.param(save_into_a_file, OSError, "blocker", id="save below a file"),
    pytest.param(nan_affine, ValueError, "nan", id="NaN affine"),
    pytest.param(singular_affine, ValueError, "singular", id="singular affine"),
    pytest.param(affine_wrong_shape, ValueError, "(3, 3)", id="affine 3x3"),
    pytest.param(tensor_wrong_dims, ValueError, "4, 4", id="tensor 2D"),
    pytest.param(tensor_wrong_type, TypeError, "str", id="tensor is a string"),
    pytest.param(mismatched_shapes_sampled, ValueError, "seg", id="mismatched shapes sampled"),
    pytest.param(subject_missing_image_name, KeyError, "mask", id="label name absent"),
    pytest.param(numpy_string_dtype, TypeError, "<U1", id="numpy strings"),
    pytest.param(numpy_object_dtype, TypeError, "object", id="numpy objects"),
    pytest.param(subject_without_image, ValueError, "age", id="subject without image"),
    pytest.param(dataset_of_non_subjects, TypeError, "subjects[0]", id="dataset of ints"),
    pytest.param(grid_mismatched_shapes, ValueError, "seg", id="grid mismatched shapes"),
    pytest.param(dicom_missing_slice, ValueError, "slice009.dcm", id="DICOM missing slice"),
    pytest.param(dicom_corrupt_slice, ValueError, "slice010.dcm", id="DICOM corrupt slice"),
    pytest.param(patch_larger_than_image, ValueError, "16", id="patch larger than image"),
    pytest.param(zero_patch_size, ValueError, "0", id="zero patch size"),
    pytest.param(negative_patch_size, ValueError, "-4", id="negative patch size"),
    pytest.param(grid_overlap_too_large, ValueError, "overlap", id="grid overlap >= patch"),
    pytest.param(label_sampler_absent_label, ValueError, "7", id="label sampler absent label"),
    pytest.param(unknown_padding_mode_sampler, ValueError, "bogus", id="sampler unknown padding"),
    pytest.param(queue_zero_samples, ValueError, "got 0", id="queue zero samples"),
    pytest.param(queue_sampler_not_a_sampler, TypeError, "str", id="queue sampler is a string"),
    pytest.param(negative_label_probability, ValueError, "-1", id="negative label probability"),
    pytest.param(weighted_map_absent, KeyError, "prob", id="weighted map absent"),
    pytest.param(weighted_map_negative, ValueError, "-1", id="weighted map negative"),
    pytest.param(aggregator_wrong_locations, ValueError, "(3, 6)", id="aggregator wrong locations"),
    pytest.param(infer_zero_batch, ValueError, "batch_size", id="infer batch_size 0"),
    pytest.param(infer_unknown_overlap_mode, ValueError, "bogus", id="infer unknown overlap mode"),
    pytest.param(infer_fewer_outputs, ValueError, "3 outputs for a batch of 4", id="infer fewer outputs"),
    pytest.param(unknown_padding_mode_pad, ValueError, "bogus", id="Pad unknown mode"),
    pytest.param(negative_spacing_resample, ValueError, "-1", id="Resample negative spacing"),
    pytest.param(resample_nan_spacing, ValueError, "nan", id="Resample NaN spacing"),
    pytest.param(elastic_too_few_control_points, ValueError, "got 2", id="elastic 2 control points"),
    pytest.param(affine_negative_degrees, ValueError, "-10", id="RandomAffine negative degrees"),
    pytest.param(negative_scales_affine, ValueError, "-2", id="RandomAffine negative scales"),
    pytest.param(flip_axis_out_of_range, ValueError, "5", id="RandomFlip axis 5"),
    pytest.param(negative_noise_std, ValueError, "-1", id="RandomNoise negative std"),
    pytest.param(crop_or_pad_negative_shape, ValueError, "-1", id="CropOrPad negative shape"),
    pytest.param(rescale_reversed_range, ValueError, "(1, 0)", id="RescaleIntensity reversed range"),
    pytest.param(compose_not_callable, TypeError, "42", id="Compose non-callable"),
    pytest.param(probability_above_one, ValueError, "1.5", id="p above one"),
    pytest.param(voc_billion_laughs, ValueError, "photo.xml", id="VOC billion laughs"),
    pytest.param(voc_external_entity, ValueError, "photo.xml", id="VOC external entity"),
    pytest.param(voc_malformed_xml, ValueError, "photo.xml", id="VOC malformed XML"),
    pytest.param(voc_missing_bndbox, ValueError, "photo.xml", id="VOC missing bndbox"),
    pytest.param(coco_malformed_json, ValueError, "boxes.json", id="COCO malformed JSON"),
    pytest.param(coco_nan_constant, ValueError, "boxes.json", id="COCO NaN"),
    pytest.param(coco_unknown_image, ValueError, "zebra.png", id="COCO unknown image"),
    pytest.param(csv_bad_header, ValueError, "boxes.csv", id="CSV bad header"),
    pytest.param(csv_not_a_number, ValueError, "two", id="CSV not a number"),
    pytest.param(yolo_wrong_column_count, ValueError, "line 2", id="YOLO wrong column count"),
    pytest.param(yolo_not_a_number, ValueError, "half", id="YOLO not a number"),
    pytest.param(yolo_coordinates_above_one, ValueError, "line 2", id="YOLO coordinates above 1"),
    pytest.param(yolo_not_utf8, ValueError, "photo.txt", id="YOLO not UTF-8"),
    pytest.param(cache_dir_not_writable, ValueError, "cache", id="cache dir not writable"),
    pytest.param(export_to_existing_file, ValueError, "exported", id="export onto a file"),
    pytest.param(export_to_foreign_folder, ValueError, "exported", id="export onto a foreign folder"),
    pytest.param(export_unknown_image_name, ValueError, "flair", id="export unknown image"),
]


@pytest.mark.parametrize(("action", "error", "culprit"), ROWS)
def test_bad_input(
    tmp_path: Path, action: Action, error: type[Exception] | tuple[type[Exception], ...], culprit: str
) -> None:
    """Each bad input raises ``error`` with a message naming the culprit."""
    with pytest.raises(error) as caught:
        action(tmp_path)
    assert culprit in str(caught.value)


def test_rows() -> None:
    """The list stays long enough to be worth its name."""
    assert len(ROWS) >= 40


# Killed writers ----------------------------------------------------------------------------------------------------
# Each writer is killed with SIGKILL in a subprocess in the middle of its write (the partial file or folder is on
# disk); the next run of the same kind of writer in this process must remove what the dead one left.

_KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from torchpatch.io.atomic import atomic_folder, atomic_path
target = Path(sys.argv[2])
if sys.argv[1] == "file":
    with atomic_path(target) as temporary:
        temporary.write_bytes(b"half a volume")
        os.kill(os.getpid(), signal.SIGKILL)
else:
    with atomic_folder(target) as temporary:
        (temporary / "t1.npy").write_bytes(b"half a volume")
        os.kill(os.getpid(), signal.SIGKILL)
"""


def _kill_a_writer(kind: str, target: Path) -> list[str]:
    process = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, kind, str(target)], capture_output=True, text=True, timeout=60
    )
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    left = [p.name for p in target.parent.iterdir() if ".partial-" in p.name]
    assert left, "the killed writer left no partial file: the test would prove nothing"
    return left


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and dead-process checks are POSIX")
def test_a_killed_save_leaves_nothing_after_the_next_save(tmp_path: Path) -> None:
    _kill_a_writer("file", tmp_path / "scan.nii.gz")
    tp.ScalarImage(tensor=torch.zeros(1, 2, 2, 2)).save(tmp_path / "other.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.nii.gz"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and dead-process checks are POSIX")
def test_a_killed_cache_writer_leaves_nothing_after_the_next_run(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    _kill_a_writer("folder", cache / "0123abcd")
    subject = tp.Subject(t1=tp.ScalarImage(tensor=torch.rand(1, 4, 4, 4)))
    tp.SubjectsDataset([subject], cache_dir=cache)[0]
    assert not [p.name for p in cache.iterdir() if ".partial-" in p.name]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and dead-process checks are POSIX")
def test_a_killed_export_leaves_nothing_after_the_next_export(tmp_path: Path) -> None:
    output = tmp_path / "export"
    _kill_a_writer("folder", output)  # an export writes a partial folder beside output_dir, then renames it
    subject = tp.Subject(t1=tp.ScalarImage(tensor=torch.rand(1, 8, 8, 1)), subject_id="s")
    tp.export_patches(subject, (4, 4, 1), output_dir=output, progress=False)
    assert not [p.name for p in tmp_path.rglob("*") if ".partial-" in p.name]
    assert (output / "manifest.json").is_file()


def test_a_worker_killed_during_the_training_step_is_named() -> None:
    """The kill row of the table: a Queue worker SIGKILLed while the loop is in its step (a subprocess)."""
    script = Path(__file__).with_name("queue_worker_death.py")
    process = subprocess.run(
        [sys.executable, str(script), "step"], capture_output=True, text=True, timeout=150, env={**os.environ}
    )
    assert process.returncode == 0, process.stderr[-2000:]
    result = json.loads(process.stdout.strip().splitlines()[-1])
    assert result["error"] == "RuntimeError" and result["message"].startswith("a Queue worker process died"), result
