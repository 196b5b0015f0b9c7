"""Whole-image inference: grid aggregation and one-call sliding-window inference."""

from __future__ import annotations

from .aggregator import OVERLAP_MODES, GridAggregator
from .infer import infer
from .windows import gaussian_window, hann_window, make_window

__all__ = ["OVERLAP_MODES", "GridAggregator", "gaussian_window", "hann_window", "infer", "make_window"]
