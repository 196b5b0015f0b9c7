"""Pure geometry: per-axis arguments, affines and spacing, the grid plan, padding modes. No tensors, no files.

Everything here works on plain tuples and 4x4 ``numpy`` affines, so the
samplers, the grid, inference, export and the transforms can plan a crop, a
pad or a grid before touching voxels.
"""

from __future__ import annotations

from .affine import (
    LPS_TO_RAS,
    WORLD_AXES,
    check_affine,
    check_locations,
    check_region,
    is_number,
    location_from_region,
    orientation_axes,
    orientation_from_affine,
    origin_from_affine,
    reorientation_index_map,
    shift_affine,
    shift_affines,
    spacing_from_affine,
)
from .arguments import parse_patch_overlap, parse_patch_size, parse_voxel_axes, to_optional_triplet, to_triplet
from .grid import AxisSplit, GridPlan, grid_starts, plan_grid
from .padding import GEOMETRIC_MODES, MODE_ALIASES, STATISTIC_MODES, parse_padding_mode, source_indices

__all__ = [
    "GEOMETRIC_MODES",
    "LPS_TO_RAS",
    "WORLD_AXES",
    "MODE_ALIASES",
    "STATISTIC_MODES",
    "AxisSplit",
    "GridPlan",
    "check_affine",
    "check_locations",
    "check_region",
    "grid_starts",
    "is_number",
    "location_from_region",
    "orientation_axes",
    "orientation_from_affine",
    "reorientation_index_map",
    "origin_from_affine",
    "parse_padding_mode",
    "parse_patch_overlap",
    "parse_patch_size",
    "parse_voxel_axes",
    "plan_grid",
    "shift_affine",
    "shift_affines",
    "source_indices",
    "spacing_from_affine",
    "to_optional_triplet",
    "to_triplet",
]
