"""TorchIO's consistency checks of a subject's images, with its names (mixed into :class:`~torchpatch.Subject`).

:meth:`~torchpatch.Subject.check_consistent_space` is torchpatch's own check
(one grid: spatial shape and affine); these are TorchIO's, attribute by
attribute, raising ``RuntimeError`` as TorchIO does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .image import Image


class InconsistentSpaceError(ValueError, RuntimeError):
    """Images of one subject on different grids (spatial shapes or affines), found by ``check_consistent_space``.

    Both a :class:`ValueError` (torchpatch's) and a :class:`RuntimeError`
    (what TorchIO raises from ``subject.shape`` or ``spatial_shape``), so
    code catching either works.

    Example:
        >>> issubclass(InconsistentSpaceError, ValueError), issubclass(InconsistentSpaceError, RuntimeError)
        (True, True)
    """


class SubjectChecks:
    """``check_consistent_attribute`` and the checks TorchIO builds on it.

    Example:
        >>> import torch
        >>> from torchpatch import LabelMap, ScalarImage, Subject
        >>> subject = Subject(
        ...     t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 4)),
        ...     seg=LabelMap(tensor=torch.zeros(1, 4, 4, 4), affine=np.diag([1.0, 1.0, 1.0 + 1e-9, 1.0])),
        ... )
        >>> subject.check_consistent_affine()  # within the tolerances
        >>> subject.check_consistent_attribute('orientation')
    """

    # Provided by Subject.
    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def images(self) -> dict[str, Image]:
        raise NotImplementedError

    def check_consistent_attribute(
        self,
        attribute: str,
        relative_tolerance: float = 1e-6,
        absolute_tolerance: float = 1e-6,
        message: str | None = None,
    ) -> None:
        """Check that every image has the first image's ``attribute`` (numbers within the tolerances).

        Numbers are compared as ``numpy.allclose`` compares them, other
        values (orientation codes) for equality.

        Args:
            attribute: An image attribute: ``'spatial_shape'``, ``'spacing'``,
                ``'affine'``, ``'orientation'``...
            relative_tolerance: ``rtol`` of ``numpy.allclose``.
            absolute_tolerance: ``atol`` of ``numpy.allclose``.
            message: A message to raise instead, with ``{}`` where the
                differing values go.

        Raises:
            RuntimeError: Naming the subject and the two images that differ,
                with their values.
        """
        items = list(self.images.items())
        if not items:
            return
        first_name, first = items[0]
        reference = getattr(first, attribute)
        for name, image in items[1:]:
            value = getattr(image, attribute)
            if not _close(value, reference, relative_tolerance, absolute_tolerance):
                values = f"{first_name!r}: {reference!r}, {name!r}: {value!r}"
                if message is not None:
                    raise RuntimeError(message.format(values))
                raise RuntimeError(
                    f"more than one {attribute!r} among the images of subject {self.name!r}: {values}; "
                    f"resample or reorient them to one grid (Resample, ToCanonical)"
                )

    def check_consistent_spatial_shape(self) -> None:
        """:meth:`check_consistent_attribute` of ``'spatial_shape'``."""
        self.check_consistent_attribute("spatial_shape")

    def check_consistent_orientation(self) -> None:
        """:meth:`check_consistent_attribute` of ``'orientation'``."""
        self.check_consistent_attribute("orientation")

    def check_consistent_affine(self) -> None:
        """:meth:`check_consistent_attribute` of ``'affine'``."""
        self.check_consistent_attribute("affine")


def _close(value: Any, reference: Any, rtol: float, atol: float) -> bool:
    """Whether ``value`` is ``reference``: ``numpy.allclose`` for numbers of one shape, equality otherwise."""
    try:
        a, b = np.asarray(value, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    except (TypeError, ValueError):
        return bool(value == reference)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


__all__ = ["InconsistentSpaceError", "SubjectChecks"]
