"""Readers and writers of boxes and points: synthetic files, malformed files, the DeepForest sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from torchpatch import ScalarImage
from torchpatch.annotations import BoundingBoxes, Points
from torchpatch.annotations_io import (
    read_coco,
    read_csv_boxes,
    read_points_csv,
    read_points_json,
    read_voc,
    read_yolo,
    write_coco,
    write_points_csv,
    write_points_json,
    write_yolo,
)


def _find_shared_data() -> Path | None:
    here = Path(__file__).resolve()
    for candidate in (here.parents[1].parent / "shared" / "data", here.parents[2] / "shared" / "data"):
        if (candidate / "deepforest" / "OSBS_029.csv").is_file():
            return candidate
    return None


SHARED_DATA = _find_shared_data()
needs_deepforest = pytest.mark.skipif(SHARED_DATA is None, reason="shared/data/deepforest is not available")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# YOLO -------------------------------------------------------------------------------------


def test_yolo_line_becomes_pixel_box_with_x_along_i(tmp_path):
    path = write(tmp_path / "a.txt", "2 0.5 0.25 0.25 0.5\n\n1 0.125 0.75 0.25 0.5\n")
    boxes = read_yolo(path, (16, 8))
    assert boxes.spatial_shape == (16, 8, 1) and boxes.format == "xyxy"
    assert boxes.data.tolist() == [[6.0, 0.0, 10.0, 4.0], [0.0, 4.0, 4.0, 8.0]]
    assert boxes.class_ids.tolist() == [2, 1] and boxes.scores is None


def test_yolo_reads_scores_and_takes_the_canvas_of_an_image(tmp_path):
    path = write(tmp_path / "a.txt", "0 0.5 0.5 1 1 0.75\n")
    boxes = read_yolo(path, ScalarImage(tensor=torch.zeros(3, 4, 2, 1)), class_names=["tree"])
    assert boxes.data.tolist() == [[0.0, 0.0, 4.0, 2.0]] and boxes.scores.tolist() == [0.75]
    assert boxes.class_names == {0: "tree"}


def test_empty_yolo_file_means_no_boxes(tmp_path):
    assert len(read_yolo(write(tmp_path / "a.txt", ""), (4, 4))) == 0


def test_yolo_round_trip(tmp_path):
    boxes = BoundingBoxes([[1, 2, 5, 3], [0, 0, 8, 6]], "xyxy", (8, 6), class_ids=[1, 0], scores=[0.5, 0.25])
    write_yolo(tmp_path / "a.txt", boxes)
    again = read_yolo(tmp_path / "a.txt", (8, 6))
    assert torch.allclose(again.data, boxes.data) and again.class_ids.tolist() == [1, 0]
    assert again.scores.tolist() == [0.5, 0.25]


def test_yolo_writer_uses_class_zero_without_class_ids(tmp_path):
    write_yolo(tmp_path / "a.txt", BoundingBoxes([[0, 0, 2, 2]], "xyxy", (4, 4)))
    assert (tmp_path / "a.txt").read_text() == "0 0.25 0.25 0.5 0.5\n"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0 0.5 0.5 0.1\n", "line 1: expected 5 fields"),
        ("0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1 0.1 0.3 0.4 0.5\n", "line 2: expected 5 fields"),
        ("0 0.5 x 0.1 0.1\n", "line 1: cy must be a number"),
        ("0 0.5 0.5 nan 0.1\n", "line 1: w must be finite"),
        ("0 0.5 0.5 -0.1 0.1\n", "line 1: the box .* positive width"),
        ("-1 0.5 0.5 0.1 0.1\n", "line 1: the class id must be an integer"),
        ("1.5 0.5 0.5 0.1 0.1\n", "line 1: the class id must be an integer"),
        ("0 0.5 0.5 0.1 0.1 0.9\n0 0.5 0.5 0.1 0.1\n", "some lines have a score"),
        (
            "0 0.5 0.5 0.1 0.1\n0 120 64 30 20\n",
            r"line 2: YOLO coordinates are normalised .* cx=120, cy=64, w=30, h=20",
        ),
        ("0 0.5 1.25 0.1 0.1\n", r"line 1: YOLO coordinates .* got cy=1.25 \("),
        ("0 -0.5 0.5 0.1 0.1\n", r"line 1: YOLO coordinates .* got cx=-0.5 \("),
    ],
)
def test_malformed_yolo_names_file_and_line(tmp_path, text, match):
    path = write(tmp_path / "bad.txt", text)
    with pytest.raises(ValueError, match=match) as info:
        read_yolo(path, (8, 8))
    assert "bad.txt" in str(info.value)


def test_yolo_needs_a_2d_canvas(tmp_path):
    with pytest.raises(ValueError, match="2D"):
        read_yolo(write(tmp_path / "a.txt", ""), (4, 4, 4))


def test_missing_and_binary_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.txt"):
        read_yolo(tmp_path / "nothere.txt", (4, 4))
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ValueError, match=r"binary\.txt.*UTF-8"):
        read_yolo(tmp_path / "binary.txt", (4, 4))


def test_writers_refuse_3d_annotations_and_wrong_types(tmp_path):
    with pytest.raises(ValueError, match="2D boxes"):
        write_yolo(tmp_path / "a.txt", BoundingBoxes([[0, 0, 0, 1, 1, 1]], "xyzxyz", (2, 2, 2)))
    with pytest.raises(TypeError, match="BoundingBoxes"):
        write_yolo(tmp_path / "a.txt", [[0, 0, 1, 1]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2D points"):
        write_points_csv(tmp_path / "p.csv", {"a": Points([[0.5, 0.5, 0.5]], (2, 2, 2))})
    with pytest.raises(TypeError, match="dict"):
        write_points_csv(tmp_path / "p.csv", Points([[0.5, 0.5]], (2, 2)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dict"):
        write_coco(tmp_path / "c.json", BoundingBoxes([[0, 0, 1, 1]], "xyxy", (2, 2)))  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-written


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = write(tmp_path / "a.txt", "old\n")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken)  # the writers go through torchpatch.io.atomic
    with pytest.raises(OSError, match="disk full"):
        write_yolo(path, BoundingBoxes([[0, 0, 1, 1]], "xyxy", (2, 2)))
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


# Pascal VOC -------------------------------------------------------------------------------

VOC = """<annotation>
  <filename>photo.jpg</filename>
  <size><width>20</width><height>10</height><depth>3</depth></size>
  <object><name>leaf</name><difficult>0</difficult>
    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax><ymax>5</ymax></bndbox></object>
  <object><name>flower</name>
    <bndbox><xmin>11.5</xmin><ymin>3</ymin><xmax>20</xmax><ymax>10</ymax></bndbox></object>
</annotation>
"""


def test_voc_corners_are_one_based_inclusive_pixels(tmp_path):
    boxes = read_voc(write(tmp_path / "a.xml", VOC))
    assert boxes.spatial_shape == (20, 10, 1)
    assert boxes.data.tolist() == [[0.0, 0.0, 4.0, 5.0], [10.5, 2.0, 20.0, 10.0]]
    assert boxes.class_ids.tolist() == [1, 0] and boxes.class_names == {0: "flower", 1: "leaf"}


def test_voc_with_a_given_mapping_and_zero_based_corners(tmp_path):
    boxes = read_voc(write(tmp_path / "a.xml", VOC), class_to_id={"leaf": 5, "flower": 7}, one_based=False)
    assert boxes.data[0].tolist() == [1.0, 1.0, 4.0, 5.0] and boxes.class_ids.tolist() == [5, 7]
    with pytest.raises(ValueError, match=r"a\.xml.*object 1.*'flower' is not in class_to_id"):
        read_voc(tmp_path / "a.xml", class_to_id={"leaf": 0})


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY lol "lol">]><annotation>&lol;</annotation>', "DOCTYPE"),
        ("<annotation><size>", "not well-formed"),
        ("<voc/>", "root element must be <annotation>"),
        ("<annotation/>", "missing <size>"),
        ("<annotation><size><width>8</width></size></annotation>", "missing <height>"),
        ("<annotation><size><width>0</width><height>4</height></size></annotation>", "positive integers"),
        (
            "<annotation><size><width>8</width><height>4</height></size><object><name>a</name></object></annotation>",
            "object 0: missing <bndbox>",
        ),
        (
            "<annotation><size><width>8</width><height>4</height></size><object><bndbox/></object></annotation>",
            "object 0: missing <name>",
        ),
        (
            "<annotation><size><width>8</width><height>4</height></size><object><name>a</name><bndbox><xmin>x</xmin>"
            "<ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object></annotation>",
            "object 0: xmin must be a number",
        ),
        (
            "<annotation><size><width>8</width><height>4</height></size><object><name>a</name><bndbox><xmin>3</xmin>"
            "<ymin>1</ymin><xmax>1</xmax><ymax>2</ymax></bndbox></object></annotation>",
            "object 0: the box",
        ),
    ],
)
def test_malformed_voc_names_the_file(tmp_path, text, match):
    path = write(tmp_path / "bad.xml", text)
    with pytest.raises(ValueError, match=match) as info:
        read_voc(path)
    assert "bad.xml" in str(info.value)


def test_voc_names_are_read_as_utf8_whatever_the_declared_encoding(tmp_path):
    text = VOC.replace("<annotation>", '<?xml version="1.0" encoding="ISO-8859-1"?>\n<annotation>', 1)
    boxes = read_voc(write(tmp_path / "a.xml", text.replace("leaf", "feuillé")))
    assert boxes.class_names == {0: "feuillé", 1: "flower"}


def test_voc_refuses_utf16_in_disguise(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_bytes('<?xml version="1.0"?><!DOCTYPE a><annotation/>'.encode("utf-16-le"))
    with pytest.raises(ValueError, match="NUL"):
        read_voc(path)


def test_voc_refuses_an_entity_bomb_quickly(tmp_path):
    bomb = '<?xml version="1.0"?>\n<!DOCTYPE b [\n<!ENTITY a "aaaaaaaaaa">\n'
    bomb += "".join(f'<!ENTITY a{i} "{"&a;" * 10}">\n' for i in range(9))
    bomb += "]>\n<annotation>&a8;</annotation>\n"
    with pytest.raises(ValueError, match="entity expansion"):
        read_voc(write(tmp_path / "bomb.xml", bomb))


# COCO -------------------------------------------------------------------------------------

COCO = {
    "images": [
        {"id": 1, "file_name": "train/a.png", "width": 10, "height": 8},
        {"id": 2, "file_name": "train/b.png", "width": 6, "height": 6},
    ],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4]},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 6, 6]},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [5.5, 0, 1.5, 1]},
    ],
    "categories": [{"id": 1, "name": "leaf"}, {"id": 3, "name": "tree"}],
}


def test_coco_selects_one_image_by_id_or_file_name(tmp_path):
    path = write(tmp_path / "coco.json", json.dumps(COCO))
    boxes = read_coco(path, image_id=1)
    assert boxes.spatial_shape == (10, 8, 1)
    assert boxes.data.tolist() == [[1.0, 2.0, 4.0, 6.0], [5.5, 0.0, 7.0, 1.0]]
    assert boxes.class_ids.tolist() == [3, 1] and boxes.class_names == {1: "leaf", 3: "tree"}
    assert len(read_coco(path, file_name="b.png")) == 1
    assert len(read_coco(path, file_name="train/b.png")) == 1


def test_coco_results_with_scores(tmp_path):
    content = {**COCO, "annotations": [{"image_id": 2, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.9}]}
    boxes = read_coco(write(tmp_path / "c.json", json.dumps(content)), image_id=2)
    assert boxes.scores.tolist() == pytest.approx([0.9])


def test_coco_round_trip_of_several_images(tmp_path):
    first = BoundingBoxes([[1, 2, 4, 6]], "xyxy", (10, 8), class_ids=[3], class_names={3: "tree"})
    second = BoundingBoxes([[0, 0, 6, 6], [1, 1, 2, 2]], "xywh", (6, 12), scores=[0.5, 0.25])
    write_coco(tmp_path / "c.json", {"a.png": first, "b.png": second})
    content = json.loads((tmp_path / "c.json").read_text())
    assert content["categories"] == [{"id": 0, "name": "0"}, {"id": 3, "name": "tree"}]
    again = read_coco(tmp_path / "c.json", file_name="b.png")
    assert again.spatial_shape == (6, 12, 1) and torch.equal(again.data, second.to_xyxy().data)
    assert again.scores.tolist() == [0.5, 0.25] and again.class_ids.tolist() == [0, 0]


@pytest.mark.parametrize(
    ("content", "kwargs", "match"),
    [
        ("{", {}, "not valid JSON"),
        ('{"images": [], "annotations": [], "x": NaN}', {}, "NaN"),
        ("[1, 2]", {}, "COCO file is an object"),
        (json.dumps(COCO), {}, "describes 2 images; pass image_id"),
        (json.dumps(COCO), {"image_id": 9}, "0 images match id 9"),
        (json.dumps({**COCO, "annotations": {}}), {"image_id": 1}, "'annotations' must be a list"),
        (json.dumps({**COCO, "annotations": [3]}), {"image_id": 1}, r"annotations\[0\]: must be an object"),
        (
            json.dumps({**COCO, "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1]}]}),
            {"image_id": 1},
            r"annotations\[0\]: bbox must be",
        ),
        (
            json.dumps({**COCO, "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 0, 1]}]}),
            {"image_id": 1},
            r"annotations\[0\]: the box",
        ),
        (
            json.dumps({**COCO, "annotations": [{"image_id": 1, "category_id": "x", "bbox": [0, 0, 1, 1]}]}),
            {"image_id": 1},
            r"annotations\[0\]: the class id",
        ),
        (
            json.dumps(
                {**COCO, "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": "x"}]}
            ),
            {"image_id": 1},
            r"annotations\[0\]: score must be a number",
        ),
        (
            json.dumps({**COCO, "images": [{"id": 1, "file_name": "a", "width": 0, "height": 3}]}),
            {},
            "positive integer width and height",
        ),
        (json.dumps({**COCO, "categories": [{"id": 1}]}), {"image_id": 1}, r"categories\[0\]"),
        ("[" * 100000 + "]" * 100000, {}, "nested too deeply|not valid JSON|COCO file"),
    ],
)
def test_malformed_coco_names_the_file_and_entry(tmp_path, content, kwargs, match):
    path = write(tmp_path / "bad.json", content)
    with pytest.raises(ValueError, match=match) as info:
        read_coco(path, **kwargs)
    assert "bad.json" in str(info.value)


# Boxes CSV --------------------------------------------------------------------------------

CSV = """image_path,xmin,ymin,xmax,ymax,label
a.tif,1,2,4,6,Tree
b.tif,0,0,1,1,Snag
a.tif,5,5,8,8,Snag
"""


def test_csv_boxes_of_one_image_with_a_mapping_built_from_the_whole_file(tmp_path):
    path = write(tmp_path / "boxes.csv", CSV)
    boxes = read_csv_boxes(path, (10, 10), image="a.png")  # same stem as a.tif
    assert boxes.data.tolist() == [[1.0, 2.0, 4.0, 6.0], [5.0, 5.0, 8.0, 8.0]]
    assert boxes.class_ids.tolist() == [1, 0] and boxes.class_names == {0: "Snag", 1: "Tree"}
    given = read_csv_boxes(path, (10, 10), image="b.tif", class_to_id={"Tree": 1, "Snag": 2})
    assert given.class_ids.tolist() == [2]
    assert len(read_csv_boxes(path, (10, 10), image="c.tif")) == 0


@pytest.mark.parametrize(
    ("text", "kwargs", "match"),
    [
        (CSV, {}, "describes 2 images"),
        ("image_path,xmin,ymin,xmax,label\n", {}, r"lacks the columns \['ymax'\]"),
        ("image_path,xmin,ymin,xmax,ymax,label\na,1,1,x,2,T\n", {}, "line 2: xmax must be a number"),
        ("image_path,xmin,ymin,xmax,ymax,label\na,1,1,2,2\n", {}, "line 2: expected 6 fields"),
        ("image_path,xmin,ymin,xmax,ymax,label\na,1,1,2,2,T,extra\n", {}, "line 2: expected 6 fields"),
        ("image_path,xmin,ymin,xmax,ymax,label\na,1,1,2,2,\n", {}, "line 2: empty label"),
        ("image_path,xmin,ymin,xmax,ymax,label\na,3,1,2,2,T\n", {}, "line 2: the box"),
        ("image_path,xmin,ymin,xmax,ymax,label\na,1,1,2,2,T\n", {"class_to_id": {"S": 0}}, "line 2: class 'T'"),
    ],
)
def test_malformed_csv_boxes_name_file_and_line(tmp_path, text, kwargs, match):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError, match=match) as info:
        read_csv_boxes(path, (8, 8), **kwargs)
    assert "bad.csv" in str(info.value)


@needs_deepforest
def test_deepforest_sample_has_61_boxes_inside_the_image_with_x_along_columns():
    assert SHARED_DATA is not None
    folder = SHARED_DATA / "deepforest"
    image = ScalarImage(folder / "OSBS_029.png")
    assert image.shape == (3, 400, 400, 1)
    boxes = read_csv_boxes(folder / "OSBS_029.csv", image, image="OSBS_029.png")
    assert len(boxes) == 61 and boxes.class_names == {0: "Tree"} and boxes.spatial_shape == (400, 400, 1)
    assert bool((boxes.data >= 0).all() and (boxes.data <= 400).all())
    first = boxes.data[0].tolist()
    assert first == [203.0, 67.0, 227.0, 90.0]  # the first row: x along I (columns), y along J (rows)
    # Tree crowns differ from the whole image: their mean colour is not the image mean.
    data = image.data.to(torch.float32)
    crowns = torch.stack(
        [data[:, int(b[0]) : int(b[2]), int(b[1]) : int(b[3]), 0].mean(dim=(1, 2)) for b in boxes.data]
    )
    assert float((crowns.mean(dim=0) - data.mean(dim=(1, 2, 3))).abs().max()) > 1.0
    # The boxes follow patches of the photo.
    from torchpatch import Subject, UniformSampler

    subject = Subject(photo=image, boxes=boxes)
    patches = list(UniformSampler(100)(subject, 4, generator=0))
    assert all(p["boxes"].spatial_shape == (100, 100, 1) for p in patches)


# Points (Deep Plant Phenomics) ---------------------------------------------------------------


def test_dpp_points_csv_reads_pixel_indices_as_pixel_centres(tmp_path):
    path = write(tmp_path / "points.csv", "plant1.png,3,4,10,0\nplant2.png,\nplant3.png\n")
    points = read_points_csv(path, (12, 6), image="plant1.png")
    assert points.data.tolist() == [[3.5, 4.5], [10.5, 0.5]]
    assert points.voxel_indices().tolist() == [[3, 4, 0], [10, 0, 0]]
    assert len(read_points_csv(path, (12, 6), image="plant2")) == 0
    raw = read_points_csv(path, (12, 6), image="plant1.png", pixel_indices=False)
    assert raw.data.tolist() == [[3.0, 4.0], [10.0, 0.0]]


def test_dpp_points_csv_round_trip(tmp_path):
    points = {"a.png": Points([[3.5, 4.5], [10.25, 0.75]], (12, 6)), "b.png": Points([], (12, 6))}
    write_points_csv(tmp_path / "p.csv", points)
    assert (tmp_path / "p.csv").read_text() == "a.png,3,4,10,0\nb.png\n"
    again = read_points_csv(tmp_path / "p.csv", (12, 6), image="a.png")
    assert torch.equal(again.voxel_indices(), points["a.png"].voxel_indices())
    write_points_csv(tmp_path / "q.csv", points, pixel_indices=False)
    exact = read_points_csv(tmp_path / "q.csv", (12, 6), image="a.png", pixel_indices=False)
    assert exact.data.tolist() == [[3.5, 4.5], [10.25, 0.75]]


@pytest.mark.parametrize(
    ("text", "kwargs", "match"),
    [
        ("a.png,1,2,3\n", {}, "line 1: 3 coordinates, expected pairs"),
        ("a.png,1,x\n", {}, "line 1: a coordinate must be a number"),
        ("a.png,1,2\nb.png,3,4\n", {}, "found 2 rows"),
        ("a.png,1,2\n", {"image": "c.png"}, "found 0 rows for image 'c.png'"),
        ("a.png,1,2\na.png,3,4\n", {"image": "a.png"}, "found 2 rows"),
    ],
)
def test_malformed_dpp_points_csv_names_file_and_line(tmp_path, text, kwargs, match):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError, match=match) as info:
        read_points_csv(path, (8, 8), **kwargs)
    assert "bad.csv" in str(info.value)


def test_dpp_points_json_pairs_x_and_y_by_key(tmp_path):
    path = write(tmp_path / "plant.json", '{"x": {"0": 3, "1": 10}, "y": {"1": 0, "0": 4}}')
    assert read_points_json(path, (12, 6)).data.tolist() == [[3.5, 4.5], [10.5, 0.5]]
    lists = write(tmp_path / "lists.json", '{"x": [3, 10], "y": [4, 0]}')
    assert read_points_json(lists, (12, 6), pixel_indices=False).data.tolist() == [[3.0, 4.0], [10.0, 0.0]]


def test_dpp_points_json_round_trip(tmp_path):
    points = Points([[3.5, 4.5], [10.5, 0.5]], (12, 6))
    write_points_json(tmp_path / "plant.json", points)
    assert json.loads((tmp_path / "plant.json").read_text()) == {"x": {"0": 3, "1": 10}, "y": {"0": 4, "1": 0}}
    assert torch.equal(read_points_json(tmp_path / "plant.json", (12, 6)).data, points.data.to(torch.float64))
    write_points_json(tmp_path / "exact.json", Points([[3.25, 4.5]], (12, 6)), pixel_indices=False)
    assert read_points_json(tmp_path / "exact.json", (12, 6), pixel_indices=False).data.tolist() == [[3.25, 4.5]]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[]", "object with 'x' and 'y'"),
        ('{"x": {"0": 1}}', "object with 'x' and 'y'"),
        ('{"x": {"0": 1}, "y": {"1": 2}}', "different keys"),
        ('{"x": [1, 2], "y": [2]}', "'x' has 2 values but 'y' has 1"),
        ('{"x": [1], "y": {"0": 2}}', "both be objects or both be lists"),
        ('{"x": {"0": "1"}, "y": {"0": 2}}', "point '0': coordinates must be numbers"),
        ('{"x": {"0": Infinity}, "y": {"0": 2}}', "Infinity"),
    ],
)
def test_malformed_dpp_points_json_names_the_file(tmp_path, text, match):
    path = write(tmp_path / "bad.json", text)
    with pytest.raises(ValueError, match=match) as info:
        read_points_json(path, (8, 8))
    assert "bad.json" in str(info.value)
