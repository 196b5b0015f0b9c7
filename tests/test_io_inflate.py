"""Decoding ``.nii.gz``: libdeflate, the zlib fallback and the streaming path give nibabel's arrays.

Every way of decoding (libdeflate whole, zlib whole, zlib streamed in chunks
straight into the image) must give the array nibabel gives, for every dtype
we read, and refuse damaged files with a ``ValueError`` naming them.
"""

from __future__ import annotations

import gzip
import itertools
import re
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import io
from torchpatch.io import inflate
from torchpatch.io.nifti import read_nifti

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MODES = ["libdeflate", "deflate", "zlib", "stream"]
HAVE_LIBDEFLATE = inflate._LIBDEFLATE is not None
HAVE_DEFLATE = inflate._deflate is not None


@pytest.fixture(params=MODES)
def mode(request, monkeypatch):
    """How ``.nii.gz`` files are decoded in the test: libdeflate's C API, the deflate package's
    Python API, zlib whole, zlib streamed in chunks."""
    if request.param == "libdeflate" and not HAVE_LIBDEFLATE:
        pytest.skip("libdeflate's C API is not reachable (deflate missing, or its symbols hidden)")
    if request.param == "deflate" and not HAVE_DEFLATE:
        pytest.skip("the deflate package (libdeflate) is not installed")
    monkeypatch.setattr(inflate, "DECODER", "zlib" if request.param == "stream" else request.param)
    if request.param == "stream":
        monkeypatch.setattr(inflate, "STREAM_ABOVE_BYTES", 0)
        monkeypatch.setattr(inflate, "CHUNK_BYTES", 1000)  # chunks that cut slices and channels
    return request.param


def _nibabel_array(path: Path) -> np.ndarray:
    """What nibabel reads, laid out ``(C, I, J, K)``, scaled files as float32 unless stored as float64."""
    image = nib.load(path)
    array = np.asanyarray(image.dataobj)
    if array.dtype == np.float64 and image.get_data_dtype() != np.float64:
        array = array.astype(np.float32)
    if array.ndim == 2:
        return array[None, :, :, None]
    if array.ndim == 3:
        return array[None]
    if array.ndim == 5:
        array = array[:, :, :, 0, :]
    return np.moveaxis(array, -1, 0)


def _save(array: np.ndarray, path: Path, slope: float = 1.0, inter: float = 0.0, big_endian: bool = False) -> Path:
    """``array`` as a ``.nii.gz`` holding its raw values, with ``scl_slope``/``scl_inter`` set as given."""
    order = ">" if big_endian else "<"
    header = nib.Nifti1Header(endianness=order)
    header.set_data_dtype(array.dtype)
    plain = path.with_suffix("")
    nib.save(nib.Nifti1Image(array, np.eye(4), header), str(plain))
    content = bytearray(plain.read_bytes())
    struct.pack_into(f"{order}ff", content, 112, slope, inter)  # nibabel would rescale on save
    path.write_bytes(gzip.compress(bytes(content), compresslevel=1))
    return path


def _values(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    kind = np.dtype(dtype)
    if kind.kind == "f":
        values = rng.standard_normal(shape) * 100
    else:
        info = np.iinfo(kind)
        values = rng.integers(max(info.min, -5000), min(info.max, 5000), shape, endpoint=True)
    return np.where(rng.random(shape) < 0.3, 0, values).astype(kind)  # some runs of zeros, as in scans


DTYPES = ["uint8", "int8", "int16", "uint16", "int32", "float32", "float64"]
SHAPES = [(7, 5), (7, 5, 3), (7, 5, 3, 2), (6, 4, 3, 1, 3)]


@pytest.mark.parametrize("reorder", [True, False], ids=["C order", "file order"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: f"{len(shape)}D")
def test_every_dtype_and_layout_reads_as_nibabel_does(tmp_path, mode, dtype, shape, reorder):
    rng = np.random.default_rng(len(shape) * 100 + DTYPES.index(dtype))
    path = _save(_values(dtype, shape, rng), tmp_path / "x.nii.gz")
    data, affine = read_nifti(path, reorder)
    expected = _nibabel_array(path)
    assert data.dtype == expected.dtype
    np.testing.assert_array_equal(data, expected)
    np.testing.assert_array_equal(affine, nib.load(path).affine)
    # Without reorder a file decoded whole stays in its order; streamed voxels go into a C-ordered image.
    assert data.flags.c_contiguous if reorder or mode == "stream" else io.in_file_order(data)


@pytest.mark.parametrize(
    ("dtype", "slope", "inter"),
    [("int16", 0.5, -3.0), ("uint8", 2.0, 0.0), ("int16", 1.0, 1024.0), ("float32", 3.0, 1.5), ("float64", 2.0, 1.0)],
)
@pytest.mark.parametrize("shape", [(7, 5, 3), (7, 5, 3, 2)], ids=["3D", "4D"])
def test_scaled_files_read_as_nibabel_scales_them(tmp_path, mode, dtype, slope, inter, shape):
    rng = np.random.default_rng(7)
    path = _save(_values(dtype, shape, rng), tmp_path / "scaled.nii.gz", slope, inter)
    assert nib.load(path).dataobj.slope == slope  # the file really is scaled
    data, _ = read_nifti(path)
    expected = _nibabel_array(path)
    assert data.dtype == expected.dtype == (np.float64 if dtype == "float64" else np.float32)
    np.testing.assert_array_equal(data, expected)


def test_big_endian_file_reads_as_nibabel_does(tmp_path, mode):
    array = np.arange(7 * 5 * 3, dtype=np.int16).reshape(7, 5, 3) - 50
    path = _save(array, tmp_path / "big.nii.gz", big_endian=True)
    assert nib.load(path).get_data_dtype().byteorder == ">"
    data, _ = read_nifti(path)
    np.testing.assert_array_equal(data, _nibabel_array(path))
    np.testing.assert_array_equal(data[0], array)


def test_nifti2_and_header_extensions_read_as_nibabel_does(tmp_path, mode):
    array = np.random.default_rng(8).integers(-500, 500, (9, 7, 5)).astype(np.int16)
    nifti2 = tmp_path / "two.nii.gz"
    nib.save(nib.Nifti2Image(array, np.eye(4)), str(nifti2))
    extended = tmp_path / "extended.nii.gz"
    image = nib.Nifti1Image(array, np.eye(4))
    image.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment that moves the voxels" * 5))
    nib.save(image, str(extended))
    assert nib.load(extended).dataobj.offset > 352
    for path in (nifti2, extended):
        np.testing.assert_array_equal(read_nifti(path)[0][0], array)


def _nii_bytes(tmp_path: Path, array: np.ndarray) -> bytes:
    plain = tmp_path / "plain.nii"
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(plain))
    return plain.read_bytes()


@pytest.mark.parametrize("cuts", [(100,), (352, 500, 2000), (1, 2, 3, 4000)], ids=["2", "4", "5"])
def test_multi_member_gzip_reads_whole(tmp_path, mode, cuts):
    array = np.random.default_rng(3).integers(-300, 300, (16, 12, 10)).astype(np.int16)
    plain = _nii_bytes(tmp_path, array)
    edges = [0, *cuts, len(plain)]
    path = tmp_path / "members.nii.gz"
    path.write_bytes(b"".join(gzip.compress(plain[a:b]) for a, b in itertools.pairwise(edges)))
    np.testing.assert_array_equal(read_nifti(path)[0][0], array)


def test_zero_padding_after_the_last_member_is_allowed(tmp_path, mode):
    array = np.arange(6 * 5 * 4, dtype=np.float32).reshape(6, 5, 4)
    path = tmp_path / "padded.nii.gz"
    path.write_bytes(gzip.compress(_nii_bytes(tmp_path, array)) + bytes(100))
    np.testing.assert_array_equal(read_nifti(path)[0][0], array)


def test_streaming_writes_into_the_image_without_holding_the_file(tmp_path, monkeypatch):
    array = np.random.default_rng(4).standard_normal((20, 16, 12, 3)).astype(np.float32)
    path = _save(array, tmp_path / "big.nii.gz")
    whole, _ = read_nifti(path)
    monkeypatch.setattr(inflate, "STREAM_ABOVE_BYTES", 0)
    monkeypatch.setattr(inflate, "CHUNK_BYTES", 777)
    monkeypatch.setattr(inflate, "inflate_file", None)  # streaming must not decode the file whole
    monkeypatch.setattr(Path, "read_bytes", None)  # nor read it whole
    streamed, _ = read_nifti(path)
    np.testing.assert_array_equal(streamed, whole)
    assert streamed.flags.c_contiguous and streamed.flags.owndata


@pytest.mark.skipif(not HAVE_LIBDEFLATE, reason="libdeflate's C API is not reachable")
@pytest.mark.parametrize("members", [1, 3])
def test_libdeflate_decodes_files_without_zlib(tmp_path, monkeypatch, members):
    array = np.arange(8 * 8 * 8, dtype=np.int16).reshape(8, 8, 8)
    plain = _nii_bytes(tmp_path, array)
    path = tmp_path / "x.nii.gz"
    path.write_bytes(b"".join(gzip.compress(part) for part in np.array_split(np.frombuffer(plain, np.uint8), members)))
    monkeypatch.setattr(inflate, "_iter_members", None)  # the zlib path must not run
    np.testing.assert_array_equal(read_nifti(path)[0][0], array)


def test_default_decoder_is_the_fastest_available():
    expected = "libdeflate" if HAVE_LIBDEFLATE else "deflate" if HAVE_DEFLATE else "zlib"
    assert expected == inflate.DECODER


# ---- damaged files -----------------------------------------------------------


@pytest.fixture
def stored(tmp_path) -> tuple[Path, bytes]:
    """A ``.nii.gz`` of one stored (level 0) member: a flipped voxel byte leaves valid deflate."""
    array = (np.arange(12 * 10 * 8) % 251).astype(np.int16).reshape(12, 10, 8)
    return tmp_path / "scan.nii.gz", gzip.compress(_nii_bytes(tmp_path, array), compresslevel=0)


def _damaged(path: Path, content: bytes | bytearray, pattern: str) -> None:
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}.*{pattern}"):
        read_nifti(path)


def test_flipped_voxel_byte_fails_the_crc_check(mode, stored):
    path, content = stored
    flipped = bytearray(content)
    flipped[len(flipped) // 2] ^= 0x01
    _damaged(path, flipped, "CRC check failed")


def test_wrong_crc_in_the_trailer_fails_the_crc_check(mode, stored):
    path, content = stored
    crc, size = struct.unpack("<II", content[-8:])
    _damaged(path, content[:-8] + struct.pack("<II", crc ^ 1, size), "CRC check failed")


def test_wrong_size_in_the_trailer_fails_the_length_check(mode, stored):
    path, content = stored
    crc, size = struct.unpack("<II", content[-8:])
    _damaged(path, content[:-8] + struct.pack("<II", crc, size + 1), "length check")


@pytest.mark.parametrize("keep", [0.5, 0.9, -8, -4, -1])
def test_truncated_file_is_refused(tmp_path, mode, keep):
    path = tmp_path / "cut.nii.gz"
    content = gzip.compress(_nii_bytes(tmp_path, np.random.default_rng(5).standard_normal((12, 10, 8))))
    end = int(len(content) * keep) if isinstance(keep, float) else len(content) + keep
    path.write_bytes(content[:end])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_nifti(path)


def test_trailing_garbage_is_refused(mode, stored):
    path, content = stored
    _damaged(path, content + b"garbage", "trailing garbage")


def test_header_promising_more_voxels_than_the_stream_holds_is_refused(tmp_path, mode):
    plain = bytearray(_nii_bytes(tmp_path, np.zeros((8, 8, 8), np.uint8)))
    plain[46:48] = struct.pack("<h", 9)  # dim[3]: 8 -> 9 slices
    path = tmp_path / "short.nii.gz"
    path.write_bytes(gzip.compress(bytes(plain)))
    with pytest.raises(
        ValueError, match=rf"truncated NIfTI file {re.escape(repr(str(path)))}.*promises 928 .*holds 864"
    ):
        read_nifti(path)


def test_header_claiming_a_huge_volume_is_refused_without_allocating_it(tmp_path, mode):
    plain = bytearray(_nii_bytes(tmp_path, np.zeros((8, 8, 8), np.uint8)))
    plain[42:48] = struct.pack("<hhh", 1000, 1000, 1000)  # 1 GB of voxels promised, 512 bytes stored
    path = tmp_path / "huge.nii.gz"
    path.write_bytes(gzip.compress(bytes(plain)))
    with pytest.raises(ValueError, match=rf"truncated NIfTI file {re.escape(repr(str(path)))}.*holds 864"):
        read_nifti(path)


# ---- the gzip layer alone --------------------------------------------------


def _gzip_with_header_fields(data: bytes) -> bytes:
    """One member with FEXTRA, FNAME, FCOMMENT and FHCRC set (as few writers do)."""
    body = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = body.compress(data) + body.flush()
    header = b"\x1f\x8b\x08" + bytes([4 | 8 | 16 | 2]) + b"\x00" * 4 + b"\x00\xff"
    header += struct.pack("<H", 3) + b"abc" + b"name.nii\x00" + b"a comment\x00"
    header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    return header + deflated + struct.pack("<II", zlib.crc32(data), len(data))


def test_optional_header_fields_are_skipped(tmp_path, mode):
    path = tmp_path / "fields.gz"
    path.write_bytes(_gzip_with_header_fields(b"hello " * 100))
    assert bytes(inflate.inflate_file(path, 600)) == b"hello " * 100
    assert b"".join(inflate.iter_inflate(path, 7)) == b"hello " * 100


@settings(max_examples=40, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=3000),
    cuts=st.lists(st.integers(0, 3000), max_size=4),
    chunk=st.integers(1, 500),
    level=st.sampled_from([0, 1, 9]),
)
def test_every_split_into_members_decodes_to_the_same_bytes(tmp_path_factory, data, cuts, chunk, level):
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    content = b"".join(gzip.compress(data[a:b], compresslevel=level) for a, b in itertools.pairwise(edges))
    path = tmp_path_factory.mktemp("members") / "x.gz"
    path.write_bytes(content or gzip.compress(b""))
    assert b"".join(inflate.iter_inflate(path, chunk)) == data
    assert bytes(inflate.inflate_file(path, len(data))) == data
    assert bytes(inflate.inflate_file(path)) == data


def test_not_gzip_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(b"this is not gzip at all")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}.*not a gzip file"):
        inflate.inflate_file(path, 23)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}.*not a gzip file"):
        list(inflate.iter_inflate(path))


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is absent (a user's clone)")
@pytest.mark.parametrize("name", ["example_ct_sm.nii.gz", "example_seg.nii.gz"])
def test_real_files_read_as_nibabel_does(mode, name):
    path = SHARED_DATA / "totalsegmentator" / name
    data, _ = read_nifti(path)
    np.testing.assert_array_equal(data, _nibabel_array(path))


def _silent_flip(content: bytes) -> bytes | None:
    """``content`` (one gzip member) with one bit flipped that zlib inflates, without error, into other bytes."""
    intact = zlib.decompress(content[10:-8], -zlib.MAX_WBITS)
    for position in range(len(content) - 9, 10, -1):
        for bit in (0x01, 0x10, 0x80):
            flipped = bytearray(content)
            flipped[position] ^= bit
            try:
                decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                wrong = decoder.decompress(bytes(flipped[10:-8]))
            except zlib.error:
                continue
            if decoder.eof and not decoder.unused_data and wrong != intact and len(wrong) == len(intact):
                return bytes(flipped)
    return None


def test_compressed_stream_with_a_silently_wrong_flip_fails_the_crc_check(tmp_path, mode):
    array = (np.arange(16 * 16 * 16) % 251).astype(np.int16).reshape(16, 16, 16)
    path = tmp_path / "flipped.nii.gz"
    content = gzip.compress(_nii_bytes(tmp_path, array), mtime=0)
    flipped = _silent_flip(content)
    assert flipped is not None, "no flip that zlib inflates silently: cannot test the CRC check"
    _damaged(path, flipped, "CRC check failed")


def test_nii_gz_is_decoded_without_simpleitk(tmp_path, monkeypatch):
    import SimpleITK as sitk

    array = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4)
    path = _save(array, tmp_path / "whole.nii.gz")
    monkeypatch.setattr(sitk, "ReadImage", None)  # SimpleITK no longer inflates NIfTI
    np.testing.assert_array_equal(read_nifti(path)[0][0], array)


@pytest.mark.parametrize("decoder", ["libdeflate", "zlib"])
def test_zlib_stream_at_an_offset_decodes_checked(tmp_path, monkeypatch, decoder):
    """A MetaImage's zlib stream: read from its offset, bytes after it ignored, its Adler-32 checked."""
    if decoder == "libdeflate" and not HAVE_LIBDEFLATE:
        pytest.skip("libdeflate's C API is not reachable")
    monkeypatch.setattr(inflate, "DECODER", decoder)
    payload = np.random.default_rng(5).integers(0, 4, 50_000, dtype=np.uint8).tobytes()
    stream = zlib.compress(payload)
    path = tmp_path / "x.mha"
    path.write_bytes(b"header\n" + stream + b"trailing bytes")
    assert bytes(inflate.inflate_zlib_file(path, len(payload), 7)) == payload
    assert bytes(inflate.inflate_zlib_file(path, len(payload), 7, len(stream))) == payload
    bad = bytearray(path.read_bytes())
    bad[7 + len(stream) - 1] ^= 0xFF  # the last byte of the Adler-32
    path.write_bytes(bytes(bad))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        inflate.inflate_zlib_file(path, len(payload), 7, len(stream))
