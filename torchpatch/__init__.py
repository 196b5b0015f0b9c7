"""torchpatch: patch-based deep learning on large 3D and 2D images."""

from . import annotations, data, geometry, inference, io, transforms, viz

# The old module paths, kept as aliases of parts of torchpatch.annotations (no API page of their own).
from . import annotations_io as annotations_io
from . import heatmap as heatmap
from ._version import __version__ as __version__
from .annotations import BoundingBoxes, Points
from .constants import (
    AFFINE,
    CHANNELS_DIMENSION,
    DATA,
    HISTORY,
    INTENSITY,
    LABEL,
    LOCATION,
    MIN_FLOAT_32,
    PATH,
    STEM,
    TYPE,
)
from .dataset import SubjectsDataset
from .export import ExportResult, export_patches
from .heatmap import points_to_heatmap
from .image import Image, LabelMap, ScalarImage
from .inference import GridAggregator, infer, sliced_detection
from .loader import SubjectsLoader, collate_subjects
from .patches import Patches
from .queue import Queue
from .sampler import GridSampler, LabelSampler, ObjectSampler, PatchSampler, UniformSampler, WeightedSampler
from .subject import ImageNotFoundError, Subject

# Transforms where TorchIO 1.x puts them (``tio.RandomAffine``, ``tio.CropOrPad``...).
from .transforms import (
    Clamp,
    Compose,
    CopyAffine,
    Crop,
    CropOrPad,
    EnsureShapeMultiple,
    KeepLargestComponent,
    KeepLargestConnectedComponent,
    Lambda,
    Mask,
    OneHot,
    OneOf,
    Pad,
    RandomAffine,
    RandomAnisotropy,
    RandomBiasField,
    RandomBlur,
    RandomElasticDeformation,
    RandomFlip,
    RandomGamma,
    RandomNoise,
    RandomSwap,
    RemapLabels,
    Resample,
    RescaleIntensity,
    SequentialLabels,
    ToCanonical,
    ZNormalization,
)

__all__ = [
    "AFFINE",
    "CHANNELS_DIMENSION",
    "DATA",
    "HISTORY",
    "INTENSITY",
    "LABEL",
    "LOCATION",
    "MIN_FLOAT_32",
    "PATH",
    "STEM",
    "TYPE",
    "BoundingBoxes",
    "Compose",
    "Crop",
    "CropOrPad",
    "ExportResult",
    "GridAggregator",
    "GridSampler",
    "Image",
    "ImageNotFoundError",
    "LabelSampler",
    "ObjectSampler",
    "OneOf",
    "Pad",
    "PatchSampler",
    "Patches",
    "Points",
    "Queue",
    "RandomAffine",
    "RandomAnisotropy",
    "RandomBiasField",
    "RandomBlur",
    "RandomElasticDeformation",
    "RandomFlip",
    "RandomGamma",
    "RandomNoise",
    "RandomSwap",
    "RescaleIntensity",
    "Resample",
    "ToCanonical",
    "UniformSampler",
    "WeightedSampler",
    "ZNormalization",
    "LabelMap",
    "ScalarImage",
    "Subject",
    "SubjectsDataset",
    "SubjectsLoader",
    "annotations",
    "collate_subjects",
    "export_patches",
    "data",
    "geometry",
    "infer",
    "inference",
    "io",
    "points_to_heatmap",
    "sliced_detection",
    "transforms",
    "viz",
    "Clamp",
    "CopyAffine",
    "EnsureShapeMultiple",
    "KeepLargestComponent",
    "KeepLargestConnectedComponent",
    "Lambda",
    "Mask",
    "OneHot",
    "RemapLabels",
    "SequentialLabels",
]
