"""Applying transforms one after the other: :class:`Compose`, with consecutive spatial transforms resampled once.

:func:`fusion_runs` cuts a pipeline into the runs resampled together; the
Queue's patches with context plan with the same runs
(:mod:`torchpatch.transforms.augmentation.context`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from ..subject import Subject
from .base import Transform, TypeSubjectTransform, apply_checked, skips


def fusion_runs(transforms: Sequence[TypeSubjectTransform]) -> list[list[TypeSubjectTransform]]:
    """``transforms`` cut into runs resampled together: neighbours that every member of the run ``fuses`` with.

    Transforms without a ``fuses`` method (most) are runs of one.

    Example:
        >>> fusion_runs([abs, round])
        [[<built-in function abs>], [<built-in function round>]]
    """
    runs: list[list[TypeSubjectTransform]] = []
    for transform in transforms:
        last = runs[-1] if runs else None
        if last is not None and all(getattr(member, "fuses", lambda _: False)(transform) for member in last):
            last.append(transform)
        else:
            runs.append([transform])
    return runs


class Compose(Transform):
    """Apply transforms one after the other.

    Any callable ``Subject -> Subject`` is accepted, so plain functions and
    lambdas mix with the built-in transforms. Consecutive spatial random
    transforms (flips, affine, elastic) that select the same images and agree
    on interpolation and padding are composed and resampled once (each is
    still drawn and recorded in turn).

    Args:
        transforms: A sequence of callables, applied in order.
        p: Probability of applying them at all (drawn from torch's global
            generator, one number per call as in TorchIO); otherwise the subject is returned
            as it is.
        **kwargs: :class:`Transform`'s keywords (``keep``, ``copy``...);
            ``include``/``exclude``/``label_keys`` name the images of a
            ``dict`` input (each transform inside chooses its own images of
            a subject).

    Raises:
        TypeError: When ``transforms`` is not a sequence, when one of them is
            not callable (its position is named), or when one returns
            something other than a subject; when ``p`` is not a number.
        ValueError: When ``p`` is outside ``[0, 1]``.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject
        >>> from torchpatch.transforms import Pad
        >>> pipeline = Compose([Pad(1), lambda s: s.with_images({}, seen=True)])
        >>> out = pipeline(Subject(a=ScalarImage(tensor=torch.ones(1, 2, 2, 1))))
        >>> out.a.spatial_shape, out['seen']
        ((4, 4, 1), True)
        >>> Compose([Pad(1)], p=0)(Subject(a=ScalarImage(tensor=torch.ones(1, 2, 2, 1)))).a.spatial_shape
        (2, 2, 1)
    """

    draws_p = True
    records_itself = True

    def __init__(self, transforms: Sequence[TypeSubjectTransform], p: float = 1.0, **kwargs: Any) -> None:
        super().__init__(p=p, **kwargs)
        if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence):
            hint = "; wrap a single transform in a list: Compose([transform])" if callable(transforms) else ""
            raise TypeError(f"transforms must be a sequence of callables, got {type(transforms).__name__}{hint}")
        for position, transform in enumerate(transforms):
            if not callable(transform):
                raise TypeError(
                    f"transforms[{position}] must be a callable Subject -> Subject, "
                    f"got {type(transform).__name__} {transform!r}"
                )
        self.transforms: list[TypeSubjectTransform] = list(transforms)

    def apply_transform(self, subject: Subject) -> Subject:
        """Run every transform in order, checking each returns a subject."""
        result = subject.with_images({})
        if skips(self.p):
            return result
        position = 0
        for run in fusion_runs(self.transforms):
            if len(run) > 1:
                # Consecutive spatial transforms: composed, resampled once.
                result = run[0].apply_run(run, result)  # type: ignore[attr-defined]
            else:
                result = apply_checked(run[0], result, position, subject.name)
            position += len(run)
        return result

    def is_invertible(self) -> bool:
        """Whether every transform is invertible (TorchIO's)."""
        return all(isinstance(t, Transform) and t.is_invertible() for t in self.transforms)

    def inverse(self, warn: bool = True) -> Compose:
        """The inverses of the invertible transforms, last first; the others skipped (a warning each, as TorchIO)."""
        kept = [t for t in self.transforms if isinstance(t, Transform) and t.is_invertible()]
        for skipped in [t for t in self.transforms if t not in kept] if warn else []:
            warnings.warn(f"Skipping {getattr(skipped, 'name', skipped)} as it is not invertible", RuntimeWarning, 2)
        inverses = [t.inverse() for t in kept]
        if not inverses and warn:
            warnings.warn("No invertible transforms found", RuntimeWarning, stacklevel=2)
        return Compose(inverses[::-1], p=self.p)

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, index: int) -> TypeSubjectTransform:
        return self.transforms[index]

    def __iter__(self) -> Iterator[TypeSubjectTransform]:
        return iter(self.transforms)

    def __repr__(self) -> str:
        inner = ", ".join(repr(transform) for transform in self.transforms)
        suffix = f", p={self.p!r}" if self.p != 1 else ""
        return f"Compose([{inner}]{suffix})"


__all__ = ["Compose", "fusion_runs"]
