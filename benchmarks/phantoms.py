"""Benchmark volumes that compress like real scans: a CT-like and an MR-like phantom, and the old noise.

Uniform noise cannot be compressed, so a benchmark built on it measures
memcpy inside inflate instead of decoding (issue 15). The phantoms here have
what makes real files compress 2-5x: smooth tissue classes, partial-volume
edges, noise of a realistic size, and a field of view that is mostly air::

    kind         image                                   label (uint8)
    ct-int16     abdomen-like CT in Hounsfield units      0 outside the body, 1 fat, 2 muscle and soft
                 (int16, -1024 outside the scan circle)   tissue, 3 organs, 4 contrast-filled vessels, 5 bone
    mr-float32   T1-like head after preprocessing         0 background, 1 white matter, 2 grey matter,
                 (float32, background masked to 0)        3 CSF, 4 deep grey nuclei
    noise        the old queue.py volume: an ellipsoid    1 inside the ellipsoid, 0 elsewhere
                 at 100 plus a gradient and N(0, 10)
                 noise, float32 (nearly incompressible)

Every volume is deterministic given its seed and takes 1-3 s to make at
160x192x160. :func:`write_subjects` writes a folder of ``.nii.gz`` subjects
with nibabel (gzip level 1, nibabel's default) and reports their sizes and
compression ratios. Needs numpy, scipy and nibabel (the benchmark venvs).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

#: The kinds :func:`make_volume` knows.
KINDS = ("ct-int16", "mr-float32", "noise")
#: Bumped whenever a volume changes, so the benchmarks' cached data folders are rewritten.
VERSION = 1

#: MR label values and T1-like intensities (white matter brightest, CSF dark, skull darkest).
TISSUES = {"background": 0, "white matter": 1, "grey matter": 2, "csf": 3, "deep grey": 4}
INTENSITY = {"air": 0.0, "scalp": 0.75, "skull": 0.08, "csf": 0.22, "grey": 0.55, "white": 0.82, "deep": 0.62}

#: CT label values.
CT_CLASSES = {"outside": 0, "fat": 1, "soft tissue": 2, "organ": 3, "vessel": 4, "bone": 5}
#: Hounsfield units of the CT phantom's tissues (portal-venous contrast phase).
HOUNSFIELD = {
    "padding": -1024,
    "air": -1000,
    "gas": -950,
    "fat": -100,
    "muscle": 50,
    "soft": 30,
    "liver": 110,
    "spleen": 120,
    "kidney": 190,
    "aorta": 280,
    "vein": 160,
    "trabecular": 260,
    "cortical": 1200,
    "rib": 700,
    "disc": 80,
}
#: Standard deviation of the CT noise, in HU (a routine abdominal scan).
CT_NOISE_HU = 12.0


def _smooth(rng: Any, shape: tuple[int, ...], coarse: tuple[int, ...]) -> Any:
    """A smooth random field of ``shape``, unit std: cubic-spline zoom of a coarse Gaussian grid.

    The same field as ``scipy.ndimage.zoom(low, shape / coarse, order=3)`` (to
    rounding): a spline zoom is separable, so it is applied as one small
    matrix per axis, 10-100x faster than ``zoom`` on the whole volume.
    """
    import numpy as np
    from scipy import ndimage

    field_ = rng.normal(size=coarse)
    for axis, (n, c) in enumerate(zip(shape, coarse)):
        matrix = ndimage.zoom(np.eye(c), (n / c, 1.0), order=3)  # column j: the zoom of unit vector j
        field_ = np.moveaxis(np.tensordot(matrix, field_, axes=([1], [axis])), 0, axis)
    return ((field_ - field_.mean()) / (field_.std() + 1e-12)).astype(np.float32)


def _sigmoid(signed: Any) -> Any:
    """1 inside (``signed`` < 0), 0 outside, a soft step one unit wide: partial volume."""
    import numpy as np

    return (1 / (1 + np.exp(np.clip(signed, -30, 30)))).astype(np.float32)


def make_phantom(shape: tuple[int, int, int], seed: int) -> tuple[Any, Any]:
    """A head-like T1 phantom and its tissue labels (float32 image, uint8 labels).

    Nested, smoothly deformed ellipsoids (scalp, skull, CSF, cortex with a
    folded grey/white boundary), two ventricles and two deep grey nuclei.
    Tissue edges are soft (a sigmoid half a voxel wide: partial volume); then
    a smooth multiplicative bias and Rician noise (SNR ~40 in white matter)
    everywhere, the air included. ``benchmarks/augment.py`` uses this volume
    as is; the ``mr-float32`` kind of :func:`make_volume` also masks the air.

    Args:
        shape: The volume's size in voxels.
        seed: Seed of the random generator; the same seed gives the same volume.

    Returns:
        The image and the label map (values of :data:`TISSUES`).

    Example:
        >>> image, label = make_phantom((32, 40, 32), seed=0)
        >>> image.dtype.name, label.dtype.name, image.shape
        ('float32', 'uint8', (32, 40, 32))
        >>> sorted(set(label.ravel().tolist())) == sorted(TISSUES.values())
        True
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    axes = [(np.arange(n, dtype=np.float32) - (n - 1) / 2) / (n / 2) for n in shape]
    u = np.meshgrid(*axes, indexing="ij", sparse=True)
    radii = np.array([0.82, 0.86, 0.80]) * rng.uniform(0.95, 1.05, 3)
    rho = np.sqrt(sum((ui / r) ** 2 for ui, r in zip(u, radii))).astype(np.float32)
    rho *= 1 + 0.03 * _smooth(rng, shape, (5, 6, 5))  # head shape
    folds = _smooth(rng, shape, (22, 26, 22))  # gyri: the grey/white boundary
    width = 0.5 / (min(shape) / 2)  # half a voxel, in rho units

    def inside(threshold: Any) -> Any:
        return 1 / (1 + np.exp(np.clip((rho - threshold) / width, -50, 50)))

    def blob(centre: tuple[float, ...], size: tuple[float, ...]) -> Any:
        distance = np.sqrt(sum(((ui - c) / s) ** 2 for ui, c, s in zip(u, centre, size)))
        return 1 / (1 + np.exp(np.clip((distance - 1) / (width / min(size)), -50, 50)))

    head, skull, csf, brain = inside(1.0), inside(0.93), inside(0.87), inside(0.84)
    white = inside(0.70 + 0.06 * folds) * brain
    side = rng.uniform(0.08, 0.12)
    ventricles = np.maximum(blob((side, 0.05, 0.1), (0.07, 0.25, 0.1)), blob((-side, 0.05, 0.1), (0.07, 0.25, 0.1)))
    deep = np.maximum(blob((0.22, -0.05, -0.05), (0.08, 0.1, 0.08)), blob((-0.22, -0.05, -0.05), (0.08, 0.1, 0.08)))
    image = INTENSITY["air"] + head * (INTENSITY["scalp"] - INTENSITY["air"])
    image += skull * (INTENSITY["skull"] - INTENSITY["scalp"]) + csf * (INTENSITY["csf"] - INTENSITY["skull"])
    image += brain * (INTENSITY["grey"] - INTENSITY["csf"]) + white * (INTENSITY["white"] - INTENSITY["grey"])
    image = image * (1 - deep) + INTENSITY["deep"] * deep
    image = image * (1 - ventricles) + INTENSITY["csf"] * ventricles
    image *= np.exp(0.12 * _smooth(rng, shape, (3, 3, 3)))  # scanner bias field
    sigma = 0.02
    image = np.sqrt((image + rng.normal(0, sigma, shape)) ** 2 + rng.normal(0, sigma, shape) ** 2)
    label = np.zeros(shape, dtype=np.uint8)
    label[csf > 0.5] = TISSUES["csf"]
    label[brain > 0.5] = TISSUES["grey matter"]
    label[white > 0.5] = TISSUES["white matter"]
    label[deep > 0.5] = TISSUES["deep grey"]
    label[ventricles > 0.5] = TISSUES["csf"]
    return image.astype(np.float32), label


def make_ct(shape: tuple[int, int, int], seed: int) -> tuple[Any, Any, tuple[float, float, float]]:
    """An abdomen-like CT phantom in Hounsfield units (int16) and its tissue classes (uint8).

    Axes are (left-right, front-back, foot-head). The field of view is 380 mm
    across and 400 mm long whatever ``shape`` (the spacing follows). Inside the
    scanner's reconstruction circle: air around an elliptical body whose
    outline varies smoothly along the body, subcutaneous fat, a muscle wall,
    visceral fat mixed into soft tissue, a contrast-enhanced liver, spleen
    and kidneys, a contrast-filled aorta and vena cava, a spine (cortical
    shell, trabecular body, discs, spinous process), ribs in the upper half,
    and a few bowel-gas pockets. Edges are soft (half a voxel: partial volume);
    noise is Gaussian, slightly correlated like a reconstruction kernel's, of
    :data:`CT_NOISE_HU`. Outside the circle the scanner's padding, -1024.

    Args:
        shape: The volume's size in voxels.
        seed: Seed of the random generator; the same seed gives the same volume.

    Returns:
        The image (int16 HU), the label map (values of :data:`CT_CLASSES`) and the spacing in mm.

    Example:
        >>> image, label, spacing = make_ct((40, 48, 40), seed=0)
        >>> image.dtype.name, label.dtype.name, spacing
        ('int16', 'uint8', (9.5, 9.5, 10.0))
        >>> int(image.min()), int(image.max()) > 300
        (-1024, True)
        >>> sorted(set(label.ravel().tolist())) == sorted(CT_CLASSES.values())
        True
    """
    import numpy as np
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    step = 380.0 / min(nx, ny)
    spacing = (step, step, 400.0 / nz)
    x, y, z = (
        ((np.arange(n, dtype=np.float32) - (n - 1) / 2) * s).reshape([-1 if a == i else 1 for a in range(3)])
        for i, (n, s) in enumerate(zip(shape, spacing))
    )
    edge = 0.5 * min(spacing)  # mm over which a boundary goes from 10 % to 90 %-ish: half a voxel
    hu = HOUNSFIELD

    def ellipse(cx: float, cy: float, ax: Any, ay: Any) -> Any:
        """Soft inside of an axial ellipse (semi-axes in mm, may vary along z), all slices."""
        rho = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)
        return _sigmoid((rho - 1) * np.minimum(ax, ay) / edge)

    def ellipsoid(centre: tuple[float, float, float], radii: tuple[float, float, float]) -> Any:
        rho = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip((x, y, z), centre, radii)))
        return _sigmoid((rho - 1) * min(radii) / edge)

    def paint(image: Any, mask: Any, value: Any) -> Any:
        return image * (1 - mask) + value * mask

    # The body's outline: semi-axes vary smoothly along z and with a smooth random bump.
    profile = _smooth(rng, (1, 1, nz), (1, 1, 4))
    body_a = 160.0 * rng.uniform(0.95, 1.05) * (1 + 0.04 * profile)
    body_b = 110.0 * rng.uniform(0.95, 1.05) * (1 + 0.04 * profile)
    lumpy = 1 + 0.015 * _smooth(rng, shape, (4, 4, 6))
    body = ellipse(0.0, 10.0, body_a * lumpy, body_b * lumpy)
    fat_depth = 14.0 + 6.0 * _smooth(rng, shape, (4, 4, 5))
    wall = ellipse(0.0, 10.0, body_a - fat_depth, body_b - fat_depth)
    cavity = ellipse(0.0, 10.0, body_a - fat_depth - 12.0, body_b - fat_depth - 12.0)
    visceral = _sigmoid((0.9 - _smooth(rng, shape, (10, 10, 12))) / 0.15)  # 1 = soft tissue, 0 = fat
    image = np.full(shape, float(hu["air"]), dtype=np.float32)
    image = paint(image, body, hu["fat"])
    image = paint(image, wall, hu["muscle"])
    image = paint(image, cavity, hu["fat"] + (hu["soft"] - hu["fat"]) * visceral)
    upper = _sigmoid(-z / (2 * spacing[2]))  # 1 in the upper half (z > 0)
    liver = ellipsoid((-70.0, -5.0, 90.0), (75.0, 70.0, 85.0)) * cavity
    spleen = ellipsoid((95.0, 45.0, 110.0), (30.0, 40.0, 55.0)) * cavity
    kidneys = [ellipsoid((side * 70.0, 55.0, 10.0), (28.0, 30.0, 55.0)) * cavity for side in (-1, 1)]
    image = paint(image, liver, hu["liver"])
    image = paint(image, spleen, hu["spleen"])
    for kidney in kidneys:
        image = paint(image, kidney, hu["kidney"])
    gas = sum(
        ellipsoid(
            (rng.uniform(-60, 80), rng.uniform(-60, 10), rng.uniform(-150, 40)),
            tuple(rng.uniform(8, 18, 3)),
        )
        for _ in range(6)
    )
    gas = np.minimum(gas * cavity, 1)
    image = paint(image, gas, hu["gas"])
    aorta = ellipse(18.0, 40.0, 12.0, 12.0) * cavity
    vein = ellipse(-22.0, 38.0, 11.0, 14.0) * cavity
    image = paint(image, vein, hu["vein"])
    image = paint(image, aorta, hu["aorta"])
    # Spine: vertebral bodies (cortical shell, trabecular core) with discs every 35 mm.
    vertebra = ellipse(0.0, 78.0, 24.0, 20.0)
    core = ellipse(0.0, 78.0, 20.0, 16.0)
    disc = _sigmoid((0.75 - np.cos(2 * math.pi * z / 35.0)) / 0.08) * vertebra
    process = ellipse(0.0, 112.0, 6.0, 16.0) * (1 - disc)
    image = paint(image, np.maximum(vertebra, process), hu["cortical"])
    image = paint(image, core, hu["trabecular"])
    image = paint(image, disc, hu["disc"])
    # Ribs: thin bands of the muscle wall every 25 mm, upper half, not at the back.
    band = _sigmoid((0.8 - np.cos(2 * math.pi * z / 25.0)) / 0.06)
    shell = ellipse(0.0, 10.0, body_a - fat_depth - 3.0, body_b - fat_depth - 3.0)
    ring = shell - ellipse(0.0, 10.0, body_a - fat_depth - 10.0, body_b - fat_depth - 10.0)
    ribs = np.clip(ring, 0, 1) * band * upper * _sigmoid((y - 60.0) / 10.0)
    image = paint(image, ribs, hu["rib"])
    noise = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), 0.6)
    image += noise * (CT_NOISE_HU / (noise.std() + 1e-12))
    circle = (x / (190.0 - step)) ** 2 + (y / (190.0 - step)) ** 2 <= 1
    image = np.where(circle, np.clip(np.rint(image), -1024, 3071), hu["padding"]).astype(np.int16)
    label = np.zeros(shape, dtype=np.uint8)
    label[body > 0.5] = CT_CLASSES["fat"]
    label[(wall > 0.5) | ((cavity > 0.5) & (visceral > 0.5))] = CT_CLASSES["soft tissue"]
    organs = np.maximum(np.maximum(liver, spleen), np.maximum(*kidneys))
    label[organs > 0.5] = CT_CLASSES["organ"]
    label[gas > 0.5] = CT_CLASSES["outside"]
    label[np.maximum(aorta, vein) > 0.5] = CT_CLASSES["vessel"]
    label[(np.maximum(vertebra, process) > 0.5) | (ribs > 0.5)] = CT_CLASSES["bone"]
    label[disc > 0.5] = CT_CLASSES["soft tissue"]
    label[np.broadcast_to(~circle, shape)] = CT_CLASSES["outside"]
    return image, label, spacing


def make_noise(shape: tuple[int, int, int], seed: int) -> tuple[Any, Any]:
    """The old ``benchmarks/queue.py`` volume: float32, as incompressible as noise.

    One ellipsoid (class 1, about 10 % of the voxels, placed at random); the
    image is 100 inside it plus a smooth gradient plus N(0, 10) noise. Same
    recipe as before issue 15 (the random draws differ: each subject has its
    own seed now).

    Example:
        >>> image, label = make_noise((16, 16, 16), seed=0)
        >>> image.dtype.name, sorted(set(label.ravel().tolist()))
        ('float32', [0, 1])
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    grid = np.ogrid[: shape[0], : shape[1], : shape[2]]
    centre = [rng.uniform(0.35, 0.65) * s for s in shape]
    radii = [rng.uniform(0.22, 0.3) * s for s in shape]
    label = (sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1).astype(np.uint8)
    gradient = (grid[0] / shape[0] * 20 + grid[1] / shape[1] * 10).astype(np.float32)
    image = (100 * label + gradient + rng.normal(0, 10, size=shape)).astype(np.float32)
    return image, label


def make_volume(kind: str, shape: tuple[int, int, int], seed: int) -> tuple[Any, Any, tuple[float, float, float]]:
    """One benchmark volume: ``(image, label, spacing in mm)``.

    ``mr-float32`` is :func:`make_phantom` with the air set to 0 outside the
    head (scanner and skull-stripping pipelines write such masked volumes; the
    Rician noise of the air is what would keep a float32 file from compressing).

    Args:
        kind: One of :data:`KINDS`.
        shape: The volume's size in voxels.
        seed: Seed of the random generator; the same seed gives the same volume.

    Raises:
        ValueError: ``kind`` is not one of :data:`KINDS`.

    Example:
        >>> image, label, spacing = make_volume("mr-float32", (24, 32, 24), seed=3)
        >>> image.dtype.name, float(image[0, 0, 0]), spacing
        ('float32', 0.0, (1.0, 1.0, 1.0))
        >>> make_volume("pet", (8, 8, 8), seed=0)
        Traceback (most recent call last):
        ...
        ValueError: unknown volume kind 'pet'; expected one of ('ct-int16', 'mr-float32', 'noise')
    """
    if kind == "ct-int16":
        return make_ct(shape, seed)
    if kind == "mr-float32":
        import numpy as np
        from scipy import ndimage

        image, label = make_phantom(shape, seed)
        # The head mask: the scalp (image > 0.3 before noise) closed and dilated by two voxels.
        head = ndimage.binary_dilation(ndimage.binary_fill_holes(image > 0.3), iterations=2)
        return np.where(head, image, np.float32(0)).astype(np.float32), label, (1.0, 1.0, 1.0)
    if kind == "noise":
        image, label = make_noise(shape, seed)
        return image, label, (1.0, 1.0, 1.2)
    raise ValueError(f"unknown volume kind {kind!r}; expected one of {KINDS}")


def write_subjects(
    folder: Path, kind: str, subjects: int, shape: tuple[int, int, int], seed: int = 1000
) -> dict[str, Any]:
    """Write ``subjects`` volumes of ``kind`` as ``sub-NN_image.nii.gz`` and ``sub-NN_label.nii.gz``.

    Files are written under a temporary name then renamed, and
    ``manifest.json`` last, so a folder without a manifest is incomplete.
    The affine centres the volume on the origin with the kind's spacing.

    Args:
        folder: Where to write (created if missing).
        kind: One of :data:`KINDS`.
        subjects: How many subjects; subject ``i`` has seed ``seed + i``.
        shape: The size of each volume in voxels.
        seed: The first subject's seed.

    Returns:
        The manifest: ``kind``, ``subjects`` (names), ``shape``, ``dtype``,
        ``raw_bytes`` and ``file_bytes`` per role (``image``, ``label``; summed
        over the subjects) and ``ratio`` per role (raw / file).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     manifest = write_subjects(Path(folder), "ct-int16", 2, (32, 32, 24))
        ...     print(manifest["subjects"], manifest["dtype"], manifest["ratio"]["image"] > 1.5)
        ['sub-00', 'sub-01'] int16 True
    """
    import nibabel as nib
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    raw = {"image": 0, "label": 0}
    stored = {"image": 0, "label": 0}
    dtype = ""
    for index in range(subjects):
        image, label, spacing = make_volume(kind, shape, seed + index)
        dtype = image.dtype.name
        affine = np.diag([*spacing, 1.0])
        affine[:3, 3] = [-(n - 1) / 2 * s for n, s in zip(shape, spacing)]
        stem = f"sub-{index:02d}"
        for role, array in (("image", image), ("label", label)):
            target = folder / f"{stem}_{role}.nii.gz"
            temporary = folder / f".{stem}_{role}.partial.nii.gz"
            nib.save(nib.Nifti1Image(array, affine), str(temporary))
            temporary.replace(target)
            raw[role] += array.nbytes
            stored[role] += target.stat().st_size
        names.append(stem)
    manifest = {
        "kind": kind,
        "version": VERSION,
        "subjects": names,
        "shape": list(shape),
        "dtype": dtype,
        "raw_bytes": raw,
        "file_bytes": stored,
        "ratio": {role: raw[role] / stored[role] for role in raw},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def subject_paths(folder: Path) -> list[tuple[str, Path, Path]]:
    """``(name, image path, label path)`` of each subject of a folder :func:`write_subjects` wrote."""
    names = json.loads((folder / "manifest.json").read_text())["subjects"]
    return [(name, folder / f"{name}_image.nii.gz", folder / f"{name}_label.nii.gz") for name in names]


def describe(manifest: dict[str, Any]) -> str:
    """One line on a written folder: kind, dtype, mean file sizes and compression ratios.

    Example:
        >>> manifest = {"kind": "noise", "subjects": ["sub-00"], "shape": [8, 8, 8], "dtype": "float32",
        ...             "raw_bytes": {"image": 2048, "label": 512}, "file_bytes": {"image": 1900, "label": 64},
        ...             "ratio": {"image": 2048 / 1900, "label": 8.0}}
        >>> for part in describe(manifest).split("; "):
        ...     print(part)
        noise: 1 subjects of 8x8x8 float32
        image 2.0 KiB -> 1.9 KiB per file (1.08x, gzip level 1), label 0.5 KiB -> 0.1 KiB (8.00x)
    """
    count = max(1, len(manifest["subjects"]))

    def size(value: float) -> str:
        return f"{value / 2**20:.1f} MiB" if value >= 2**20 else f"{value / 2**10:.1f} KiB"

    raw, stored, ratio = manifest["raw_bytes"], manifest["file_bytes"], manifest["ratio"]
    return (
        f"{manifest['kind']}: {len(manifest['subjects'])} subjects of {'x'.join(map(str, manifest['shape']))} "
        f"{manifest['dtype']}; image {size(raw['image'] / count)} -> {size(stored['image'] / count)} per file "
        f"({ratio['image']:.2f}x, gzip level 1), label {size(raw['label'] / count)} -> "
        f"{size(stored['label'] / count)} ({ratio['label']:.2f}x)"
    )


__all__ = [
    "CT_CLASSES",
    "CT_NOISE_HU",
    "HOUNSFIELD",
    "INTENSITY",
    "KINDS",
    "TISSUES",
    "VERSION",
    "describe",
    "make_ct",
    "make_noise",
    "make_phantom",
    "make_volume",
    "subject_paths",
    "write_subjects",
]
