"""Keys shared by images, subjects, patches and batches.

The names and values match TorchIO 1.x, so ``batch['t1'][DATA]`` and
``patch[LOCATION]`` read the same after changing one import.
"""

from __future__ import annotations

DATA = "data"
AFFINE = "affine"
PATH = "path"
STEM = "stem"
TYPE = "type"
LOCATION = "location"
INTENSITY = "intensity"
LABEL = "label"

#: Number of voxels on each side of a patch location: ``(i0, j0, k0, i1, j1, k1)``.
LOCATION_LENGTH = 6

__all__ = [
    "AFFINE",
    "DATA",
    "INTENSITY",
    "LABEL",
    "LOCATION",
    "LOCATION_LENGTH",
    "PATH",
    "STEM",
    "TYPE",
]
