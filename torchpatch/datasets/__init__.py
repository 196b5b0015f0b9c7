"""Built-in data: deterministic synthetic phantoms made in code."""

from __future__ import annotations

from .phantoms import make_phantom, phantom_subjects

__all__ = ["make_phantom", "phantom_subjects"]
