"""An affine transform and an elastic deformation resampled together: TorchIO's ``RandomAffineElasticDeformation``.

TorchIO 1.2's arguments: ``affine_first`` (the order in which the two move the
image), the keyword arguments of each part, and the common transform
keywords. The affine parameters are drawn first, then the displacements (so
a seed gives TorchIO's numbers). Images are resampled once, with the affine
part's interpolations and pad values. A
:class:`~torchpatch.transforms.Compose` of :class:`~.affine.RandomAffine` and
:class:`~.elastic.RandomElasticDeformation` fuses the same way; these classes
carry TorchIO's names and arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...subject import Subject
from .affine import RandomAffine
from .deterministic import Affine, ElasticDeformation
from .elastic import RandomElasticDeformation
from .maps import BSplineMap, ChainMap, CoordinateMap
from .resample import Frame, SpatialRandomTransform


def _check_kwargs(value: Any, argument: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{argument} must be a dict of keyword arguments or None, got {type(value).__name__} {value!r}")
    return dict(value)


class AffineElasticBase(SpatialRandomTransform):
    """What the random and deterministic combinations share: one chain of the affine and elastic maps.

    Subclasses set ``affine`` and ``elastic`` (two spatial transforms)
    before calling ``__init__``. The history record holds ``affine_first``,
    ``affine`` and ``elastic`` (each part's parameters).

    Example:
        >>> transform = RandomAffineElasticDeformation(affine_kwargs={'degrees': 0})
        >>> isinstance(transform, AffineElasticBase), transform.parts()[0] is transform.affine
        (True, True)
    """

    affine: RandomAffine
    elastic: RandomElasticDeformation

    def __init__(self, affine_first: bool, **kwargs: Any) -> None:
        if not isinstance(affine_first, bool):
            raise TypeError(f"affine_first must be True or False, got {type(affine_first).__name__} {affine_first!r}")
        self.affine_first = affine_first
        super().__init__(
            image_interpolation=self.affine.image_interpolation,
            label_interpolation=self.affine.label_interpolation,
            default_pad_value=self.affine.default_pad_value,
            default_pad_label=self.affine.default_pad_label,
            **kwargs,
        )

    def parts(self, affine_first: bool | None = None) -> list[SpatialRandomTransform]:
        """The two transforms in the order they move the image."""
        first = self.affine_first if affine_first is None else affine_first
        return [self.affine, self.elastic] if first else [self.elastic, self.affine]

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """Each part's parameters: the affine ones first (TorchIO's order of draws)."""
        affine = self.affine.get_params(subject)
        elastic = self.elastic.get_params(subject)
        return {"affine_first": self.affine_first, "affine": affine, "elastic": elastic}

    def _maps(self, params: Mapping[str, Any], frame: Frame, inverse: bool) -> CoordinateMap:
        first = bool(params.get("affine_first", self.affine_first))
        maps = []
        for part in self.parts(first):
            own = params["affine" if part is self.affine else "elastic"]
            item = part.inverse_map(own, frame) if inverse else part.coordinate_map(own, frame)
            if isinstance(item, BSplineMap):
                item.zero_outside = True  # ITK's B-spline transform outside its grid, as TorchIO resamples
            maps.append(item)
        return ChainMap(maps[::-1] if inverse else maps)

    def coordinate_map(self, params: Mapping[str, Any], frame: Frame) -> CoordinateMap:
        """The affine map and the B-spline map chained in the order of ``affine_first``."""
        return self._maps(params, frame, inverse=False)

    def inverse_map(self, params: Mapping[str, Any], frame: Frame) -> CoordinateMap:
        """Each part undone, in the opposite order (the elastic part approximately, as TorchIO)."""
        return self._maps(params, frame, inverse=True)


class RandomAffineElasticDeformation(AffineElasticBase):
    """Random affine transform and elastic deformation with one resampling (TorchIO 1.2's names and arguments).

    Args:
        affine_first: Move the image by the affine transform first, then
            deform it (``False``: the other way round).
        affine_kwargs: Arguments of :class:`~.affine.RandomAffine` (its
            interpolations and pad values are used for the whole resampling).
        elastic_kwargs: Arguments of :class:`~.elastic.RandomElasticDeformation`.
        **kwargs: Common transform keywords (``p``, ``include``, ``exclude``,
            ``copy``, ``keep``...).

    Raises:
        TypeError: When ``affine_first`` is not a bool or a ``*_kwargs`` is not a dict.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject
        >>> _ = torch.manual_seed(0)
        >>> transform = RandomAffineElasticDeformation(
        ...     affine_kwargs={'degrees': 5}, elastic_kwargs={'num_control_points': 5, 'max_displacement': 2})
        >>> out = transform(Subject(t1=ScalarImage(tensor=torch.rand(1, 16, 16, 16))))
        >>> out.t1.shape, sorted(out['history'][0])
        ((1, 16, 16, 16), ['affine', 'affine_first', 'elastic', 'name'])
    """

    @property
    def random_affine(self) -> Any:
        """The ``RandomAffine`` it draws from (``affine``): TorchIO's name."""
        return self.affine

    @property
    def random_elastic(self) -> Any:
        """The ``RandomElasticDeformation`` it draws from (``elastic``): TorchIO's name."""
        return self.elastic

    def __init__(
        self,
        affine_first: bool = True,
        affine_kwargs: Mapping[str, Any] | None = None,
        elastic_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.affine_kwargs = _check_kwargs(affine_kwargs, "affine_kwargs")
        self.elastic_kwargs = _check_kwargs(elastic_kwargs, "elastic_kwargs")
        self.affine = RandomAffine(**self.affine_kwargs)
        self.elastic = RandomElasticDeformation(**self.elastic_kwargs)
        super().__init__(affine_first, **kwargs)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        arguments: dict[str, Any] = {"affine_first": self.affine_first}
        if self.affine_kwargs:
            arguments["affine_kwargs"] = self.affine_kwargs
        if self.elastic_kwargs:
            arguments["elastic_kwargs"] = self.elastic_kwargs
        return {**arguments, **SpatialRandomTransform.arguments(self)}


class AffineElasticDeformation(AffineElasticBase):
    """A given affine transform and elastic deformation with one resampling (TorchIO 1.2's names and arguments).

    Args:
        affine_first: Move the image by the affine transform first, then
            deform it (``False``: the other way round).
        affine_params: Arguments of :class:`~.deterministic.Affine`
            (``scales``, ``degrees``, ``translation``, and optionally
            ``center``, pad values and interpolations, used for the whole
            resampling).
        elastic_params: Arguments of :class:`~.deterministic.ElasticDeformation`
            (``control_points``, ``max_displacement``...).
        **kwargs: Common transform keywords (``p``, ``include``, ``exclude``...).

    Raises:
        TypeError: When ``affine_first`` is not a bool or a ``*_params`` is not a dict.

    Example:
        >>> import numpy as np, torch
        >>> from torchpatch import ScalarImage, Subject
        >>> transform = AffineElasticDeformation(
        ...     True, {'scales': 1, 'degrees': 0, 'translation': 0},
        ...     {'control_points': np.zeros((5, 5, 5, 3)), 'max_displacement': 1})
        >>> image = torch.rand(1, 8, 8, 8)
        >>> torch.equal(transform(Subject(t1=ScalarImage(tensor=image))).t1.data, image)
        True
    """

    def __init__(
        self,
        affine_first: bool,
        affine_params: Mapping[str, Any],
        elastic_params: Mapping[str, Any],
        **kwargs: Any,
    ) -> None:
        self.affine_params = _check_kwargs(affine_params, "affine_params")
        self.elastic_params = _check_kwargs(elastic_params, "elastic_params")
        self.affine = Affine(**self.affine_params)
        self.elastic = ElasticDeformation(**self.elastic_params)
        super().__init__(affine_first, **kwargs)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AffineElasticDeformation:
        """The transform that a history record of it describes."""
        points = np.asarray(record["elastic"]["displacements"], dtype=np.float64)
        elastic = {"control_points": points, "max_displacement": tuple(np.abs(points).reshape(-1, 3).max(axis=0))}
        return cls(bool(record["affine_first"]), dict(record["affine"]), elastic)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        affine: Sequence[Any] = [self.affine_params.get(k) for k in ("scales", "degrees", "translation")]
        arguments = {
            "affine_first": self.affine_first,
            "affine_params": dict(zip(("scales", "degrees", "translation"), affine)),
        }
        arguments["elastic_params"] = "<control points>"
        return {**arguments, **SpatialRandomTransform.arguments(self)}


__all__ = ["AffineElasticBase", "AffineElasticDeformation", "RandomAffineElasticDeformation"]
