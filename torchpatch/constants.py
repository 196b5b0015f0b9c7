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
#: Key of an image's kind, :data:`INTENSITY`, :data:`LABEL` or :data:`SAMPLING_MAP`.
TYPE = "type"
#: Key of a patch's box ``(i0, j0, k0, i1, j1, k1)`` in the image it came from.
LOCATION = "location"
#: The type of a :class:`~torchpatch.image.ScalarImage`.
INTENSITY = "intensity"
#: The type of a :class:`~torchpatch.image.LabelMap`.
LABEL = "label"
#: TorchIO's third type, for a sampling map (``Image(path, type=SAMPLING_MAP)``): spatial transforms
#: resample it with the label interpolation (nearest), intensity and label transforms leave it out.
SAMPLING_MAP = "sampling_map"
#: The types an :class:`~torchpatch.image.Image` may have.
IMAGE_TYPES = (INTENSITY, LABEL, SAMPLING_MAP)

#: Key of a subject's list of applied random transforms (their parameters, in order).
HISTORY = "history"
#: The channels axis of a batch ``(B, C, I, J, K)`` (an image's is 0).
CHANNELS_DIMENSION = 1
#: Smallest float32 ``x`` with ``1 + x != 1`` (``torch.finfo(torch.float32).eps``).
MIN_FLOAT_32 = 1.1920928955078125e-07

#: Number of voxels on each side of a patch location: ``(i0, j0, k0, i1, j1, k1)``.
LOCATION_LENGTH = 6

__all__ = [
    "AFFINE",
    "CHANNELS_DIMENSION",
    "DATA",
    "HISTORY",
    "IMAGE_TYPES",
    "INTENSITY",
    "LABEL",
    "LOCATION",
    "LOCATION_LENGTH",
    "MIN_FLOAT_32",
    "PATH",
    "SAMPLING_MAP",
    "STEM",
    "TYPE",
]
