"""Loading one ``.nii.gz``: torchpatch vs nibabel vs SimpleITK, and the inflaters under them.

Files (written once into ``--folder``, then reused):

    ct-int16      a CT-like phantom: HU per tissue of a head phantom, partial-volume edges,
                  Gaussian noise, int16 (the way scanners store CT)
    mr-float32    an MR-like phantom after preprocessing: the T1 phantom of
                  ``benchmarks/augment.py`` with its Rician noise, z-scored inside the head,
                  float32, background exactly 0
    noise-float32 uniform noise (the old benchmark volume; gzip cannot compress it)
    real files    every ``.nii.gz`` under ``../shared/data`` (TotalSegmentator's example CT
                  and its labels), when that folder exists

Two tables, both timed in this process after one warm-up call, median of
``--repeats`` calls, with the minor page faults of one call:

* **inflate**: the gzip stream of each file into bytes, CRC32 and size checked, by
  zlib (Python's ``gzip``), zlib-ng (``zlib_ng``), ISA-L (``isal``) and libdeflate
  (``deflate``), whichever are importable;
* **load**: the file into a ``(C, I, J, K)`` numpy array: torchpatch
  (``torchpatch.io.read_image``, and ``ScalarImage(path).load()``), nibabel
  (``np.asanyarray(image.dataobj)``, ``get_fdata()``) and SimpleITK
  (``ReadImage`` + ``GetArrayFromImage``), with the ratios of the slower peers to torchpatch.

Every table runs twice, each time in a fresh child process: with the default
threads and with ``OMP_NUM_THREADS=1`` (and ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1``).
Run from the repository root (the peers are the project's own dependencies)::

    .venv/bin/python benchmarks/load.py              # both tables, about 2 minutes on 2 cores
    .venv/bin/python benchmarks/load.py --quick      # smaller phantoms, 3 repeats
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
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
SHAPE = (160, 192, 160)
QUICK_SHAPE = (96, 112, 96)
#: Hounsfield units of the tissues of the head phantom (air, scalp, skull, CSF, grey, white, deep grey).
HOUNSFIELD = {"air": -1000, "scalp": 40, "skull": 1000, "csf": 8, "grey": 38, "white": 28, "deep": 35}
THREADS = ("default", "1")


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def _phantoms(shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """The CT-like int16 and MR-like float32 phantoms, from the head phantom of augment.py."""
    from scipy import ndimage

    from benchmarks.augment import INTENSITY, make_phantom

    t1, _ = make_phantom(shape, seed=15)
    # HU from the T1 phantom's tissue mixture (its MR noise smoothed away first),
    # then CT noise of ~6 HU and -1024 outside the scanner's circular field of view.
    names = list(HOUNSFIELD)
    levels = np.array([INTENSITY[n] for n in names], np.float32)
    hu = np.array([HOUNSFIELD[n] for n in names], np.float32)
    order = np.argsort(levels)
    ct = np.interp(ndimage.gaussian_filter(t1, 1.0), levels[order], hu[order]).astype(np.float32)
    ct += np.random.default_rng(15).normal(0, 6, shape).astype(np.float32)
    i, j = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape[:2]), indexing="ij")
    outside = ((i**2 + j**2) >= 1)[..., None]
    ct_int16 = np.where(outside, -1024, np.clip(np.rint(ct), -1024, 3071)).astype(np.int16)
    head = t1 > 0.1
    mr = np.zeros(shape, np.float32)
    mr[head] = (t1[head] - t1[head].mean()) / t1[head].std()
    noise = np.random.default_rng(16).random(shape, dtype=np.float32)
    return {"ct-int16": ct_int16, "mr-float32": mr, "noise-float32": noise}


def make_files(folder: Path, shape: tuple[int, int, int]) -> list[Path]:
    """The phantom files (written with nibabel) and the real ``.nii.gz`` files."""
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True)
    tag = "x".join(map(str, shape))
    paths = [folder / f"{name}-{tag}.nii.gz" for name in ("ct-int16", "mr-float32", "noise-float32")]
    if not all(path.exists() for path in paths):
        arrays = _phantoms(shape)
        for path, array in zip(paths, arrays.values()):
            image = nib.Nifti1Image(array, np.eye(4))
            image.header.set_data_dtype(array.dtype)
            nib.save(image, str(path))
    real = sorted(SHARED_DATA.glob("*/*.nii.gz")) if SHARED_DATA.exists() else []
    return paths + real


def describe(path: Path) -> dict[str, Any]:
    """Size on disk, size inflated, ratio, dtype and shape of one file."""
    import nibabel as nib

    image: Any = nib.load(path)
    with open(path, "rb") as stream:
        stream.seek(-4, os.SEEK_END)
        inflated = int.from_bytes(stream.read(4), "little")
    stored = path.stat().st_size
    return {
        "file": path.name,
        "dtype": str(image.get_data_dtype()),
        "shape": "x".join(map(str, image.shape)),
        "stored_mb": stored / 1e6,
        "inflated_mb": inflated / 1e6,
        "ratio": inflated / stored,
    }


# ---------------------------------------------------------------------------
# Cases (child side)
# ---------------------------------------------------------------------------


def inflaters() -> dict[str, Callable[[bytes], Any]]:
    """Whole-buffer gzip decoders that check the CRC32 and size, by name."""
    found: dict[str, Callable[[bytes], Any]] = {"zlib": gzip.decompress}
    try:
        from zlib_ng import gzip_ng

        found["zlib-ng"] = gzip_ng.decompress
    except ImportError:
        pass
    try:
        from isal import igzip

        found["isal"] = igzip.decompress
    except ImportError:
        pass
    try:
        import deflate

        found["libdeflate"] = deflate.gzip_decompress
    except ImportError:
        pass
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

    def scalar_image(path: Path) -> Any:
        image = tp.ScalarImage(path)
        image.load()
        return image.data

    return {
        "torchpatch read_image": lambda path: io.read_image(path)[0],
        "torchpatch ScalarImage.load": scalar_image,
        "nibabel dataobj": nib_dataobj,
        "nibabel get_fdata": nib_fdata,
        "SimpleITK": sitk_array,
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
    results: dict[str, Any] = {"inflate": {}, "load": {}}
    for path in paths:
        compressed = path.read_bytes()
        results["inflate"][path.name] = {
            name: measure(lambda f=function: f(compressed), repeats)  # type: ignore[misc]
            for name, function in inflaters().items()
        }
        results["load"][path.name] = {
            name: measure(lambda f=function: f(path), repeats)  # type: ignore[misc]
            for name, function in loaders().items()
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
    parser.add_argument("--quick", action="store_true", help=f"phantoms of {QUICK_SHAPE}, 3 repeats")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/torchpatch-load-bench"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        paths = [Path(p) for p in json.loads(args.child)]
        print("@@RESULT@@ " + json.dumps(child(paths, args.repeats)))
        return
    repeats = 3 if args.quick else args.repeats
    paths = make_files(args.folder, QUICK_SHAPE if args.quick else SHAPE)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {repeats} after a warm-up")
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
        _table("load (time vs torchpatch read_image)", result["load"], "torchpatch read_image")


if __name__ == "__main__":
    main()
