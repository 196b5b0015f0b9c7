"""Keys shared by images, subjects, patches and batches.

The names and values match TorchIO 1.x, so ``batch['t1'][DATA]`` and
``patch[LOCATION]`` read the same after changing one import.
"""

from __future__ import annotations

#: Key of an image's voxels: ``image[DATA]`` and ``batch[name][DATA]``.
DATA = "data"
#: Key of an image's 4x4 voxel-to-RAS+ matrix.
AFFINE = "affine"
#: Key of the file an image was read from.
PATH = "path"
#: Key of that file's name without its suffix.
STEM = "stem"
#: Key of an image's kind, :data:`INTENSITY` or :data:`LABEL`.
TYPE = "type"
#: Key of a patch's box ``(i0, j0, k0, i1, j1, k1)`` in the image it came from.
LOCATION = "location"
#: The type of a :class:`~torchpatch.image.ScalarImage`.
INTENSITY = "intensity"
#: The type of a :class:`~torchpatch.image.LabelMap`.
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
