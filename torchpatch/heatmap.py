"""Count heatmaps, kept at this import path for existing code.

They live in :mod:`torchpatch.annotations.heatmap`; this module re-exports
them so that ``from torchpatch.heatmap import points_to_heatmap`` keeps working.
"""

from __future__ import annotations

from .annotations.heatmap import gaussian_kernel, points_to_heatmap

__all__ = ["gaussian_kernel", "points_to_heatmap"]
