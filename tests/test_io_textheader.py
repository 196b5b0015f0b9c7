"""NRRD and MetaImage voxels decoded by torchpatch: the arrays and affines SimpleITK gives.

Every 3D scalar ``.nrrd`` and ``.mha`` whose voxels are in the file (raw,
gzip or zlib) is read by :mod:`torchpatch.io.textheader`; anything else goes
to SimpleITK. Both ways must give what SimpleITK gives, and damaged files a
``ValueError`` naming them.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchpatch import io
from torchpatch.io import inflate, textheader
from torchpatch.io.sitk import from_sitk

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DTYPES = ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"]


@pytest.fixture(params=["libdeflate", "zlib"])
def decoder(request, monkeypatch):
    """libdeflate's C API, or the standard library's zlib (when ``deflate`` is missing)."""
    if request.param == "libdeflate" and inflate._LIBDEFLATE is None:
        pytest.skip("libdeflate's C API is not reachable")
    monkeypatch.setattr(inflate, "DECODER", request.param)
    return request.param


def _write(path: Path, array: np.ndarray, compress: bool = True, **geometry) -> Path:
    """``array`` (``(I, J, K)``) written by SimpleITK, with ``spacing``/``origin``/``direction`` if given."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    for name, value in geometry.items():
        getattr(image, f"Set{name.capitalize()}")(value)
    sitk.WriteImage(image, str(path), useCompression=compress)
    return path


def _simpleitk(path: Path):
    return from_sitk(sitk.ReadImage(str(path)))


def _check_as_simpleitk(path: Path, fast: bool = True) -> np.ndarray:
    """``io.read_array(path)`` against SimpleITK's reading; ``fast``: whether torchpatch decoded it."""
    assert (textheader.voxel_layout(path) is not None) == fast
    data, affine = io.read_array(path)
    expected, expected_affine = _simpleitk(path)
    assert data.dtype == expected.dtype
    assert data.flags.c_contiguous
    np.testing.assert_array_equal(data, expected)
    np.testing.assert_array_equal(affine, expected_affine)
    return data


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_type_reads_as_simpleitk_reads_it(tmp_path, decoder, suffix, compress, dtype):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if dtype[0] in "iu" else np.finfo(dtype)
    array = rng.uniform(max(info.min, -1e6), min(info.max, 1e6), size=(7, 5, 3)).astype(dtype)
    path = _write(tmp_path / f"x{suffix}", array, compress)
    data = _check_as_simpleitk(path)
    np.testing.assert_array_equal(data[0], array)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_oblique_flipped_geometry_is_simpleitks(tmp_path, suffix):
    angle = 0.3
    direction = (np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle), 0, 0, 0, -1)
    array = np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5)
    geometry = {"spacing": (0.7, 1.1, 3.0), "origin": (-10.0, 4.0, 2.5), "direction": direction}
    path = _write(tmp_path / f"o{suffix}", array, **geometry)
    _check_as_simpleitk(path)


def _nrrd(path: Path, fields: str, payload: bytes, newline: bytes = b"\n") -> Path:
    head = ("NRRD0004\n# written by hand\n" + fields + "\n").replace("\n", newline.decode())
    path.write_bytes(head.encode() + payload)
    return path


@pytest.mark.parametrize("encoding", ["raw", "gzip", "gz"])
def test_big_endian_nrrd_reads_as_simpleitk_reads_it(tmp_path, decoder, encoding):
    array = np.arange(-30, 30, dtype=">i2").reshape((3, 4, 5), order="F")
    payload = array.tobytes(order="F")
    payload = payload if encoding == "raw" else gzip.compress(payload)
    fields = f"type: signed short\ndimension: 3\nsizes: 3 4 5\nendian: big\nencoding: {encoding}\n"
    data = _check_as_simpleitk(_nrrd(tmp_path / "big.nrrd", fields, payload))
    assert data.dtype == np.int16 and data.dtype.isnative
    np.testing.assert_array_equal(data[0], array)


def test_nrrd_with_comments_key_values_and_crlf_lines(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape((2, 3, 4), order="F")
    fields = (
        "type: uchar\ndimension: 3\nspace: left-posterior-superior\nsizes: 2 3 4\n"
        "space directions: (1,0,0) (0,2,0) (0,0,3)\nkinds: domain domain domain\n"
        "# a comment: sizes: 9 9 9\nsomekey:=somevalue\nencoding: gzip\n"
    )
    path = _nrrd(tmp_path / "crlf.nrrd", fields, gzip.compress(array.tobytes(order="F")), newline=b"\r\n")
    np.testing.assert_array_equal(_check_as_simpleitk(path)[0], array)


def test_big_endian_mha_reads_as_simpleitk_reads_it(tmp_path, decoder):
    array = np.linspace(-5, 5, 60, dtype=">f4").reshape((5, 4, 3), order="F")
    stream = zlib.compress(array.tobytes(order="F"))
    head = (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = True\nCompressedData = True\n"
        f"CompressedDataSize = {len(stream)}\nDimSize = 5 4 3\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n"
    )
    path = tmp_path / "big.mha"
    path.write_bytes(head.encode() + stream)
    np.testing.assert_array_equal(_check_as_simpleitk(path)[0], array)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda f: f.replace("encoding: gzip", "encoding: ascii"), id="ascii"),
        pytest.param(lambda f: f.replace("encoding: gzip", "encoding: bzip2"), id="bzip2"),
        pytest.param(lambda f: f + "byte skip: 0\nline skip: 1\n", id="line skip"),
        pytest.param(lambda f: f.replace("dimension: 3\nsizes: 3 4 5", "dimension: 2\nsizes: 3 20"), id="2D"),
        pytest.param(lambda f: f.replace("type: short", "type: block"), id="block type"),
        pytest.param(lambda f: f.replace("endian: little\n", ""), id="no endian"),
    ],
)
def test_nrrd_torchpatch_does_not_decode_is_left_to_simpleitk(tmp_path, change):
    fields = "type: short\ndimension: 3\nsizes: 3 4 5\nendian: little\nencoding: gzip\n"
    layout = textheader._nrrd_layout(("NRRD0004\n" + change(fields) + "\n").encode())
    assert layout is None


def test_vector_and_2d_files_are_left_to_simpleitk(tmp_path):
    vector = sitk.GetImageFromArray(np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3), isVector=True)
    sitk.WriteImage(vector, str(tmp_path / "rgb.nrrd"), useCompression=True)
    sitk.WriteImage(vector, str(tmp_path / "rgb.mha"), useCompression=True)
    flat = sitk.GetImageFromArray(np.arange(12, dtype=np.int16).reshape(3, 4))
    sitk.WriteImage(flat, str(tmp_path / "flat.nrrd"), useCompression=True)
    for name in ("rgb.nrrd", "rgb.mha", "flat.nrrd"):
        _check_as_simpleitk(tmp_path / name, fast=False)


@pytest.mark.parametrize("suffix", [".mhd", ".nhdr"])
@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype", ["i2", "u1", "f4", "f8"])
def test_detached_data_files_read_as_simpleitk_reads_them(tmp_path, decoder, suffix, compress, dtype):
    """``.mhd`` + ``.raw``/``.zraw`` (LUNA16's layout) and ``.nhdr`` + ``.raw``/``.raw.gz``."""
    array = (np.random.default_rng(6).normal(size=(9, 8, 7)) * 50).astype(dtype)
    path = _write(tmp_path / f"d{suffix}", array, compress)
    layout = textheader.voxel_layout(path)
    assert layout is not None and layout.data_file is not None and layout.data_file.parent == tmp_path
    np.testing.assert_array_equal(_check_as_simpleitk(path)[0], array)


def _raw_volume() -> np.ndarray:
    return np.arange(3 * 4 * 5, dtype="<i2").reshape((3, 4, 5), order="F")


@pytest.mark.parametrize(("skip", "prefix"), [("10", b"0123456789"), ("-1", b"some leading bytes")])
def test_nhdr_byte_skip_in_its_data_file(tmp_path, skip, prefix):
    array = _raw_volume()
    (tmp_path / "v.raw").write_bytes(prefix + array.tobytes(order="F"))
    fields = f"type: short\ndimension: 3\nsizes: 3 4 5\nendian: little\nencoding: raw\nbyte skip: {skip}\n"
    path = tmp_path / "v.nhdr"
    path.write_text("NRRD0004\n" + fields + "data file: v.raw\n")
    np.testing.assert_array_equal(_check_as_simpleitk(path)[0], array)


@pytest.mark.parametrize(("size", "prefix"), [("16", bytes(16)), ("-1", b"leading")])
def test_mhd_header_size_in_its_data_file(tmp_path, size, prefix):
    array = _raw_volume()
    (tmp_path / "v.raw").write_bytes(prefix + array.tobytes(order="F"))
    path = tmp_path / "v.mhd"
    path.write_text(
        f"ObjectType = Image\nNDims = 3\nDimSize = 3 4 5\nElementType = MET_SHORT\nHeaderSize = {size}\n"
        "ElementDataFile = v.raw\n"
    )
    np.testing.assert_array_equal(_check_as_simpleitk(path)[0], array)


def test_absolute_data_file_path(tmp_path):
    array = _raw_volume()
    (tmp_path / "elsewhere").mkdir()
    data = tmp_path / "elsewhere" / "v.raw"
    data.write_bytes(array.tobytes(order="F"))
    path = tmp_path / "v.mhd"
    path.write_text(f"NDims = 3\nDimSize = 3 4 5\nElementType = MET_SHORT\nElementDataFile = {data}\n")
    np.testing.assert_array_equal(_check_as_simpleitk(path)[0], array)


@pytest.mark.parametrize(
    "data_file",
    ["LIST", "slice%03d.raw 1 5 1", "missing.raw"],
    ids=["list", "pattern", "missing"],
)
def test_several_or_missing_data_files_are_left_to_simpleitk(tmp_path, data_file):
    path = tmp_path / "v.mhd"
    path.write_text(f"NDims = 3\nDimSize = 3 4 5\nElementType = MET_SHORT\nElementDataFile = {data_file}\n")
    assert textheader.voxel_layout(path) is None
    if data_file == "missing.raw":
        with pytest.raises(ValueError, match=re.escape(str(path))):
            io.read_array(path)


def test_truncated_data_file_raises_naming_it(tmp_path):
    path = _write(tmp_path / "cut.mhd", np.zeros((20, 20, 20), np.float32), compress=False)
    data = textheader.voxel_layout(path).data_file
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(ValueError, match=re.escape(str(data))):
        textheader.read_voxels(path, textheader.voxel_layout(path))


def test_header_simpleitk_reads_otherwise_falls_back(tmp_path, monkeypatch):
    """Where SimpleITK's header disagrees with the layout read here (size, type), SimpleITK reads the voxels."""
    path = _write(tmp_path / "x.nrrd", np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    wrong = textheader.VoxelLayout(textheader.voxel_layout(path).offset, "gzip", np.dtype("<i2"), (4, 3, 2))
    monkeypatch.setattr(textheader, "voxel_layout", lambda p: wrong)
    read = []
    monkeypatch.setattr(textheader, "read_voxels", lambda *a: read.append(a))
    data, _ = io.read_array(path)
    assert not read
    np.testing.assert_array_equal(data, _simpleitk(path)[0])


def test_large_compressed_volumes_are_left_to_simpleitk_raw_ones_are_not(tmp_path, monkeypatch):
    """Compressed voxels past the streaming size would need the file and the voxels at once; raw ones do not
    (and a box of them is read without the rest)."""
    compressed = _write(tmp_path / "x.nrrd", np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    raw = _write(tmp_path / "y.mhd", np.arange(24, dtype=np.int16).reshape(2, 3, 4), compress=False)
    monkeypatch.setattr(inflate, "STREAM_ABOVE_BYTES", 10)
    _check_as_simpleitk(compressed, fast=False)
    _check_as_simpleitk(raw)
    assert io.supports_region_reads(raw)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
@pytest.mark.parametrize("compress", [True, False])
def test_truncated_file_raises_naming_it(tmp_path, decoder, suffix, compress):
    rng = np.random.default_rng(3)
    path = _write(tmp_path / f"cut{suffix}", rng.normal(size=(20, 20, 20)).astype(np.float32), compress)
    offset = textheader.voxel_layout(path).offset
    path.write_bytes(path.read_bytes()[: offset + (path.stat().st_size - offset) // 2])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        io.read_array(path)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_flipped_compressed_byte_raises_naming_it(tmp_path, decoder, suffix):
    rng = np.random.default_rng(4)
    path = _write(tmp_path / f"flip{suffix}", rng.normal(size=(20, 20, 20)).astype(np.float32))
    raw = bytearray(path.read_bytes())
    middle = textheader.voxel_layout(path).offset + (len(raw) - textheader.voxel_layout(path).offset) // 2
    raw[middle] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        io.read_array(path)


def test_mha_stream_holding_more_than_its_header_promises_raises(tmp_path, decoder):
    head = "NDims = 3\nDimSize = 2 2 2\nElementType = MET_UCHAR\nCompressedData = True\nElementDataFile = LOCAL\n"
    path = tmp_path / "more.mha"
    path.write_bytes(head.encode() + zlib.compress(bytes(9)))
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}.*more than the 8 bytes promised"):
        textheader.read_voxels(path, textheader.voxel_layout(path))


def test_huge_promise_is_refused_without_allocating(tmp_path, decoder):
    head = "NDims = 3\nDimSize = 4000 4000 4000\nElementType = MET_UCHAR\nCompressedData = True\n"
    head += "ElementDataFile = LOCAL\n"
    path = tmp_path / "huge.mha"
    path.write_bytes(head.encode() + zlib.compress(bytes(9)))
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}.*fewer than the 64000000000 bytes promised"):
        textheader.read_voxels(path, textheader._meta_layout(path.read_bytes()))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)),
    dtype=st.sampled_from(DTYPES),
    suffix=st.sampled_from([".nrrd", ".mha"]),
    compress=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_any_small_volume_reads_as_simpleitk_reads_it(tmp_path_factory, shape, dtype, suffix, compress, seed):
    array = np.random.default_rng(seed).integers(0, 100, size=shape).astype(dtype)
    path = _write(tmp_path_factory.mktemp("h") / f"v{suffix}", array, compress)
    np.testing.assert_array_equal(_check_as_simpleitk(path)[0], array)


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is absent")
@pytest.mark.parametrize("name", ["brain1_image.nrrd", "brain1_label.nrrd"])
def test_real_nrrd_files_read_as_simpleitk_reads_them(name):
    _check_as_simpleitk(SHARED_DATA / "pyradiomics" / name)


# Region reads of raw voxels -------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nrrd", ".nhdr", ".mha", ".mhd"])
@pytest.mark.parametrize("dtype", ["i2", "f4", "u1"])
def test_region_reads_of_raw_voxels_touch_only_the_box(tmp_path, suffix, dtype):
    from torchpatch import ScalarImage

    array = (np.random.default_rng(7).normal(size=(21, 17, 13)) * 40).astype(dtype)
    path = _write(tmp_path / f"r{suffix}", array, compress=False)
    assert io.supports_region_reads(path)
    region = io.read_region(path, (2, 3, 4), (12, 9, 13))
    assert region.flags.c_contiguous and region.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(region[0], array[2:12, 3:9, 4:13])
    image = ScalarImage(path)
    patch = image.read_region((0, 0, 0), (5, 5, 5))
    assert not image.is_loaded  # read from the file, not by loading the image
    np.testing.assert_array_equal(patch[0].numpy(), array[:5, :5, :5])


def test_region_reads_of_a_big_endian_raw_nrrd(tmp_path):
    array = np.arange(-60, 60, dtype=">i2").reshape((4, 5, 6), order="F")
    fields = "type: short\ndimension: 3\nsizes: 4 5 6\nendian: big\nencoding: raw\n"
    path = _nrrd(tmp_path / "big.nrrd", fields, array.tobytes(order="F"))
    region = io.read_region(path, (1, 1, 1), (3, 4, 6))
    assert region.dtype.isnative
    np.testing.assert_array_equal(region[0], array[1:3, 1:4, 1:6])


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_compressed_voxels_have_no_region_reads(tmp_path, suffix):
    path = _write(tmp_path / f"z{suffix}", np.zeros((4, 4, 4), np.int16), compress=True)
    assert not io.supports_region_reads(path)
    with pytest.raises(ValueError, match=f"raw voxels.*{re.escape(str(path))}"):
        io.read_region(path, (0, 0, 0), (1, 1, 1))


def test_region_read_of_a_truncated_raw_file_raises_naming_it(tmp_path):
    path = _write(tmp_path / "cut.mhd", np.zeros((20, 20, 20), np.float32), compress=False)
    assert io.supports_region_reads(path)
    data = textheader.voxel_layout(path).data_file
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(ValueError, match=re.escape(str(data))):
        io.read_region(path, (0, 0, 0), (2, 2, 2))


def test_raw_layout_follows_a_rewritten_file(tmp_path):
    from torchpatch.io.sitk import raw_layout

    path = _write(tmp_path / "x.mha", np.zeros((6, 5, 4), np.int16), compress=False)
    assert raw_layout(path) is not None
    _write(path, np.ones((6, 5, 4), np.int16), compress=True)
    assert raw_layout(path) is None
