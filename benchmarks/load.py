"""Loading one ``.nii.gz``: torchpatch vs nibabel vs SimpleITK, and the inflaters under them.

Files (the volumes of ``benchmarks/phantoms.py``, written once into ``--folder``
with nibabel at its default gzip level 1, then reused), at 160x192x160, and the
CT also at a scanner's 512x512x96:

    ct-int16      abdomen-like CT in Hounsfield units, int16
    mr-float32    T1-like head after preprocessing, float32, background masked to 0
    noise         the old benchmark volume (float32 noise; gzip can hardly compress it)
    real files    every ``.nii.gz`` under ``../shared/data`` (TotalSegmentator's example CT
                  and its labels), when that folder exists
    .nrrd, .mha   the same phantoms written by SimpleITK, compressed (NRRD: gzip; MetaImage: zlib)
    .mhd          the same, uncompressed, the voxels in a .raw file beside it (LUNA16's layout)

Two tables, both timed in this process after one warm-up call, median of
``--repeats`` calls, with the minor page faults of one call:

* **inflate**: the gzip stream of each file into bytes, CRC32 and size checked, by
  zlib (Python's ``gzip``), zlib-ng (``zlib_ng``), ISA-L (``isal``) and libdeflate
  (``deflate``), whichever are importable, and by ``torchpatch.io.inflate.inflate_file``
  (reading the file, then libdeflate writing into a numpy buffer);
* **load**: the file into a ``(C, I, J, K)`` numpy array: torchpatch
  (``torchpatch.io.read_array``; ``read_image_file_order``, decoded but
  not reordered, like SimpleITK's array; and ``ScalarImage(path).load()``
  then ``.data``), nibabel
  (``np.asanyarray(image.dataobj)``, ``get_fdata()``) and SimpleITK
  (``ReadImage`` + ``GetArrayFromImage``; and that array made ``(C, I, J, K)`` in C order, as
  torchpatch returns it), with each time's ratio to torchpatch's ``read_array``;
* **load NRRD and MetaImage**: the same for the ``.nrrd`` and ``.mha`` files, with
  ``torchpatch via SimpleITK`` (SimpleITK's read made ``(C, I, J, K)`` by torchpatch: how
  torchpatch read them before it decoded their voxels itself).

nibabel's array is the file's ``(I, J, K)`` in Fortran order and SimpleITK's its
``(K, J, I)`` in C order: neither pays for the reordering into the C-ordered
``(C, I, J, K)`` that torchpatch (like TorchIO) hands to torch.

Every table runs twice, each time in a fresh child process: with the default
threads and with ``OMP_NUM_THREADS=1`` (and ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1``).
Run from the repository root (the peers are the project's own dependencies)::

    .venv/bin/python benchmarks/load.py              # both tables, about 2 minutes on 2 cores
    .venv/bin/python benchmarks/load.py --quick      # smaller phantoms, 3 repeats
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
# As a script, this folder shadows the standard library's ``queue``: reach the root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.append(str(_HERE.parent))

SHARED_DATA = _HERE.parent.parent / "shared" / "data"
#: The phantoms: every kind at the benchmarks' 160x192x160, and a CT at a scanner's 512x512x96.
VOLUMES = [(kind, (160, 192, 160)) for kind in ("ct-int16", "mr-float32", "noise")] + [("ct-int16", (512, 512, 96))]
QUICK_VOLUMES = [(kind, (96, 112, 96)) for kind in ("ct-int16", "mr-float32", "noise")]
THREADS = ("default", "1")


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def make_files(folder: Path, volumes: list[tuple[str, tuple[int, int, int]]]) -> list[Path]:
    """The phantoms of ``benchmarks/phantoms.py`` (written once with nibabel) and the real files."""
    import nibabel as nib

    from benchmarks.phantoms import VERSION, make_volume

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, shape in volumes:
        path = folder / f"{kind}-{'x'.join(map(str, shape))}-v{VERSION}.nii.gz"
        if not path.exists():
            image, _, spacing = make_volume(kind, shape, seed=15)
            partial = folder / f"partial-{path.name}"  # renamed when whole: no half-written file is reused
            nib.save(nib.Nifti1Image(image, np.diag([*spacing, 1.0])), str(partial))
            partial.rename(path)
        paths.append(path)
    real = sorted(SHARED_DATA.glob("*/*.nii.gz")) if SHARED_DATA.exists() else []
    return paths + real


def make_sitk_files(folder: Path, volumes: list[tuple[str, tuple[int, int, int]]]) -> list[Path]:
    """The same phantoms as compressed ``.nrrd`` (gzip) and ``.mha`` (zlib) and as an uncompressed ``.mhd`` + ``.raw``,
    written once by SimpleITK."""
    import SimpleITK as sitk

    from benchmarks.phantoms import VERSION, make_volume

    paths = []
    for kind, shape in volumes:
        image = None
        for suffix in (".nrrd", ".mha", ".mhd"):
            path = folder / f"{kind}-{'x'.join(map(str, shape))}-v{VERSION}{suffix}"
            if not path.exists():
                if image is None:
                    voxels, _, spacing = make_volume(kind, shape, seed=15)
                    image = sitk.GetImageFromArray(np.ascontiguousarray(voxels.transpose(2, 1, 0)))
                    image.SetSpacing([float(s) for s in spacing])
                if suffix == ".mhd":  # uncompressed, voxels in a .raw beside it (LUNA16's layout)
                    sitk.WriteImage(image, str(path), useCompression=False)
                else:
                    partial = folder / f"partial-{path.name}"
                    sitk.WriteImage(image, str(partial), useCompression=True)
                    partial.rename(path)
            paths.append(path)
    return paths


def describe(path: Path) -> dict[str, Any]:
    """Size on disk, size inflated, ratio, dtype and shape of one file."""
    stored = path.stat().st_size
    if path.suffix == ".mhd":  # the header and the .raw it names
        stored += path.with_suffix(".raw").stat().st_size
    if not path.name.endswith(".nii.gz"):
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        probe = sitk.GetArrayViewFromImage(sitk.Image([1, 1], reader.GetPixelID()))
        size = tuple(reader.GetSize())
        inflated = int(np.prod(size)) * probe.dtype.itemsize
        dtype, shape = str(probe.dtype), "x".join(map(str, size))
    else:
        import nibabel as nib

        image: Any = nib.load(path)
        with open(path, "rb") as stream:
            stream.seek(-4, os.SEEK_END)
            inflated = int.from_bytes(stream.read(4), "little")
        dtype, shape = str(image.get_data_dtype()), "x".join(map(str, image.shape))
    return {
        "file": path.name,
        "dtype": dtype,
        "shape": shape,
        "stored_mb": stored / 1e6,
        "inflated_mb": inflated / 1e6,
        "ratio": inflated / stored,
    }


# ---------------------------------------------------------------------------
# Cases (child side)
# ---------------------------------------------------------------------------


def inflaters() -> dict[str, Callable[..., Any]]:
    """Whole-buffer gzip decoders that check the CRC32 and size, by name (called with the bytes and the path)."""
    found: dict[str, Callable[..., Any]] = {"zlib": lambda data, _: gzip.decompress(data)}
    try:
        from zlib_ng import gzip_ng

        found["zlib-ng"] = lambda data, _: gzip_ng.decompress(data)
    except ImportError:
        pass
    try:
        from isal import igzip

        found["isal"] = lambda data, _: igzip.decompress(data)
    except ImportError:
        pass
    try:
        import deflate

        found["libdeflate"] = lambda data, _: deflate.gzip_decompress(data)
    except ImportError:
        pass
    from torchpatch.io import inflate

    def torchpatch_inflate(data: bytes, path: Path) -> Any:  # reads the file itself (page cache)
        return inflate.inflate_file(path, int.from_bytes(data[-4:], "little"))

    found[f"torchpatch ({inflate.DECODER})"] = torchpatch_inflate
    return found


def loaders() -> dict[str, Callable[[Path], Any]]:
    """File -> array, by library."""
    import nibabel as nib
    import SimpleITK as sitk

    import torchpatch as tp
    from torchpatch import io

    def nib_dataobj(path: Path) -> Any:
        return np.asanyarray(nib.load(path).dataobj)  # type: ignore[attr-defined]

    def nib_fdata(path: Path) -> Any:
        return nib.load(path).get_fdata()  # type: ignore[attr-defined]

    def sitk_array(path: Path) -> Any:
        return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))

    def sitk_c_order(path: Path) -> Any:  # the (C, I, J, K) C-ordered array torchpatch returns
        return np.ascontiguousarray(sitk.GetArrayFromImage(sitk.ReadImage(str(path))).transpose(2, 1, 0)[None])

    def scalar_image(path: Path) -> Any:
        image = tp.ScalarImage(path)
        image.load()
        return image.data

    return {
        "torchpatch read_array": lambda path: io.read_array(path)[0],
        # Decoded, not reordered: what a Queue worker cuts patches from, and what SimpleITK's array is.
        "torchpatch read_image_file_order": lambda path: io.read_image_file_order(path)[0],
        "torchpatch ScalarImage.load": scalar_image,
        "nibabel dataobj": nib_dataobj,
        "nibabel get_fdata": nib_fdata,
        "SimpleITK": sitk_array,
        "SimpleITK + (C,I,J,K) C order": sitk_c_order,
    }


def sitk_loaders() -> dict[str, Callable[[Path], Any]]:
    """NRRD / MetaImage file -> array, by library; ``torchpatch via SimpleITK`` is how torchpatch read them before."""
    import SimpleITK as sitk

    from torchpatch.io.sitk import from_sitk

    every = loaders()
    return {
        "torchpatch read_array": every["torchpatch read_array"],
        "torchpatch read_image_file_order": every["torchpatch read_image_file_order"],
        "torchpatch ScalarImage.load": every["torchpatch ScalarImage.load"],
        "torchpatch via SimpleITK": lambda path: from_sitk(sitk.ReadImage(str(path)))[0],
        "SimpleITK": every["SimpleITK"],
        "SimpleITK + (C,I,J,K) C order": every["SimpleITK + (C,I,J,K) C order"],
    }


def measure(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    """Median seconds of ``repeats`` calls after one warm-up, and the minor faults of the median call."""
    call()
    times, faults = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        del result
    return {"seconds": statistics.median(times), "faults": statistics.median(faults)}


def child(paths: list[Path], repeats: int) -> dict[str, Any]:
    from torchpatch.io import textheader

    results: dict[str, Any] = {"inflate": {}, "load": {}, "load_sitk": {}}
    for path in paths:
        if not path.name.endswith(".nii.gz"):
            if textheader.voxel_layout(path) is None:
                raise RuntimeError(f"{path}: torchpatch would leave this file to SimpleITK")
            results["load_sitk"][path.name] = {
                name: measure(functools.partial(function, path), repeats) for name, function in sitk_loaders().items()
            }
            continue
        compressed = path.read_bytes()
        results["inflate"][path.name] = {
            name: measure(functools.partial(function, compressed, path), repeats)
            for name, function in inflaters().items()
        }
        results["load"][path.name] = {
            name: measure(functools.partial(function, path), repeats) for name, function in loaders().items()
        }
    return results


# ---------------------------------------------------------------------------
# Report (parent side)
# ---------------------------------------------------------------------------


def _table(title: str, rows: dict[str, dict[str, dict[str, float]]], baseline: str | None) -> None:
    names = list(next(iter(rows.values())))
    print(f"\n{title}: median ms (minor page faults of one call)")
    print(f"{'file':<28}" + "".join(f"{name:>30}" for name in names))
    for file, cases in rows.items():
        line = f"{file:<28}"
        for name in names:
            case = cases[name]
            cell = f"{1e3 * case['seconds']:.1f} ({case['faults']:.0f})"
            if baseline is not None and name != baseline:
                cell += f" {case['seconds'] / cases[baseline]['seconds']:.2f}x"
            line += f"{cell:>30}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="phantoms of 96x112x96 only, 3 repeats")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "torchpatch-load-bench")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        paths = [Path(p) for p in json.loads(args.child)]
        print("@@RESULT@@ " + json.dumps(child(paths, args.repeats)))
        return
    repeats = 3 if args.quick else args.repeats
    volumes = QUICK_VOLUMES if args.quick else VOLUMES
    paths = make_files(args.folder, volumes) + make_sitk_files(args.folder, volumes)
    from torchpatch import io

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {repeats} after a warm-up, "
        f"torchpatch's reorder into C order: {io.reorder_backend()}"
    )
    print(f"{'file':<28}{'dtype':>8}{'shape':>16}{'on disk MB':>12}{'inflated MB':>13}{'ratio':>8}")
    for path in paths:
        row = describe(path)
        print(
            f"{row['file']:<28}{row['dtype']:>8}{row['shape']:>16}{row['stored_mb']:>12.2f}"
            f"{row['inflated_mb']:>13.2f}{row['ratio']:>8.2f}"
        )
    for threads in THREADS:
        env = dict(os.environ)
        if threads == "1":
            env.update(OMP_NUM_THREADS="1", ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS="1")
        command = [sys.executable, __file__, "--repeats", str(repeats), "--child", json.dumps(list(map(str, paths)))]
        output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
        result = json.loads(output.split("@@RESULT@@ ", 1)[1])
        print(f"\n=== threads: {threads} ===")
        _table("inflate (time vs zlib)", result["inflate"], "zlib")
        _table("load (time vs torchpatch read_array)", result["load"], "torchpatch read_array")
        _table("load NRRD and MetaImage (time vs torchpatch read_array)", result["load_sitk"], "torchpatch read_array")


if __name__ == "__main__":
    main()
