"""Random elastic deformations: :class:`RandomElasticDeformation`.

A coarse grid of control points spans the image; each gets a random
displacement in mm, and a cubic B-spline interpolates them into a smooth
displacement at every voxel (see :class:`~.maps.BSplineMap` for where the
control points sit: where TorchIO 1.x puts them). As in TorchIO, the
displacements are in LPS millimetres (SimpleITK's world: ``+x`` is left,
``+y`` posterior, ``+z`` superior) and each output voxel at ``p`` samples the
input at ``p + d(p)``, so a record from TorchIO replays to the same field.
Because B-spline weights are non-negative and sum to one, no voxel moves
further than ``max_displacement`` along any axis.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...geometry import is_number
from ...subject import Subject
from .maps import BSplineMap, CoordinateMap
from .resample import Frame, SpatialRandomTransform


def _parse_control_points(value: Any) -> tuple[int, int, int]:
    items = (value,) * 3 if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(items, Sequence)
        or len(items) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in items)
    ):
        raise TypeError(f"num_control_points must be an int or three ints, got {value!r}")
    if min(items) < 4:
        raise ValueError(f"num_control_points must be at least 4 on every axis (a cubic B-spline), got {value!r}")
    return (int(items[0]), int(items[1]), int(items[2]))


def _parse_displacement(value: Any) -> tuple[float, float, float]:
    items = (value,) * 3 if is_number(value) else value
    if not isinstance(items, Sequence) or isinstance(items, str) or len(items) != 3:
        raise TypeError(f"max_displacement must be a number or three numbers (mm), got {value!r}")
    if not all(is_number(v) for v in items):
        raise TypeError(f"max_displacement must hold numbers, got {value!r}")
    if not all(np.isfinite(v) and v >= 0 for v in items):
        raise ValueError(f"max_displacement must be finite and non-negative, got {value!r}")
    return (float(items[0]), float(items[1]), float(items[2]))


class RandomElasticDeformation(SpatialRandomTransform):
    """A smooth random deformation from a coarse grid of random displacements (TorchIO 1.x meaning).

    Each control point's displacement is drawn uniformly in
    ``[-max_displacement, max_displacement]`` mm along each world axis;
    ``locked_borders=1`` keeps the outer layer of control points still,
    ``2`` also the layer on the image's border. The field is a cubic
    B-spline of the control points, so every voxel moves by at most
    ``max_displacement`` per axis. It is resampled once together with the
    neighbouring spatial transforms (e.g. after :class:`RandomAffine`).
    2D images (depth one) are deformed in their plane.

    The history record holds ``displacements``: the control points' ``(n0,
    n1, n2, 3)`` displacements in LPS mm as nested lists (TorchIO's
    ``control_points``). Unlike TorchIO 1.2.1, which locks the borders of the
    first two axes only, ``locked_borders`` locks all three.

    Args:
        num_control_points: Control points per axis (an int or three), at
            least 4.
        max_displacement: Largest displacement in mm (a number or one per
            world axis x, y, z).
        locked_borders: 0, 1 or 2 (see above).
        image_interpolation: ``'linear'`` or ``'nearest'``, for scalar images.
        label_interpolation: ``'nearest'`` or ``'linear'``, for label maps.
        default_pad_value: Value outside the volume for scalar images
            (as in :class:`RandomAffine`); label maps use 0.
        p: Probability of applying the transform.
        include: Names of the only images to deform.
        exclude: Names of images to leave as they are.
        lock_all_axes: Lock the borders of all three axes; ``False`` locks
            those of the first two only, as TorchIO 1.2.1 does (its numbers
            for a given seed). Keyword only.

    Raises:
        TypeError: When an argument has the wrong type.
        ValueError: When there are fewer than 4 control points on an axis, a
            displacement is negative, ``locked_borders`` is not 0, 1 or 2, or
            ``locked_borders=2`` leaves no control point free.

    Warns:
        RuntimeWarning: When called on an image where ``max_displacement``
            exceeds half the distance between control points (the
            deformation may fold).

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 32, 32, 32)))
        >>> _ = torch.manual_seed(0)
        >>> out = RandomElasticDeformation(max_displacement=2)(subject)
        >>> torch.tensor(out['history'][0]['displacements']).shape
        torch.Size([7, 7, 7, 3])
    """

    @property
    def num_locked_borders(self) -> int:
        """``locked_borders``: TorchIO's name."""
        return self.locked_borders

    def __init__(
        self,
        num_control_points: int | Sequence[int] = 7,
        max_displacement: float | Sequence[float] = 7.5,
        locked_borders: int = 2,
        image_interpolation: str = "linear",
        label_interpolation: str = "nearest",
        default_pad_value: float | str = "minimum",
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        *,
        lock_all_axes: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_interpolation, label_interpolation, default_pad_value, p, include, exclude, **kwargs)
        if not isinstance(lock_all_axes, bool):
            raise TypeError(
                f"lock_all_axes must be True or False, got {type(lock_all_axes).__name__} {lock_all_axes!r}"
            )
        self.lock_all_axes = lock_all_axes
        self.num_control_points = _parse_control_points(num_control_points)
        self.max_displacement = _parse_displacement(max_displacement)
        if isinstance(locked_borders, bool) or locked_borders not in (0, 1, 2):
            raise ValueError(f"locked_borders must be 0, 1 or 2, got {locked_borders!r}")
        if locked_borders == 2 and min(self.num_control_points) < 5:
            raise ValueError(
                f"locked_borders=2 with {self.num_control_points} control points locks every control point "
                f"(an identity); use at least 5 control points per axis or locked_borders=1"
            )
        self.locked_borders = int(locked_borders)

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """Draw every control point's displacement (mm, world axes)."""
        images = self.get_images_dict(subject)
        frame = Frame.of(subject, list(images), type(self).__name__)
        self.check_folding(subject, frame)
        # TorchIO's draw: uniform in [-D, D) per component, from one float32 torch.rand.
        field = ((torch.rand(*self.num_control_points, 3) - 0.5) * 2).double() * torch.tensor(
            self.max_displacement, dtype=torch.float64
        )
        for lock in range(self.locked_borders):
            for axis in range(3 if self.lock_all_axes else 2):
                field.narrow(axis, lock, 1).zero_()
                field.narrow(axis, field.shape[axis] - 1 - lock, 1).zero_()
        if frame.is_2d and images:
            field[..., frame.normal_axis] = 0
        return {"displacements": field.tolist()}

    def check_folding(self, subject: Subject, frame: Frame | None = None) -> None:
        """Warn (``RuntimeWarning``) where ``max_displacement`` exceeds half the control points' spacing.

        As TorchIO checks it, axis by axis: the displacement allowed along
        an axis against half the distance between control points along the
        same axis of the subject's grid; every such axis is named.
        """
        if frame is None:
            frame = Frame.of(subject, list(self.get_images_dict(subject)), type(self).__name__)
        spacing = np.linalg.norm(frame.affine[:3, :3], axis=0)
        steps = [(frame.shape[axis] + 0.25) * spacing[axis] / (self.num_control_points[axis] - 3) for axis in range(3)]
        axes = [a for a in range(3) if frame.shape[a] > 1 and self.max_displacement[a] > steps[a] / 2]
        if axes:
            warnings.warn(
                f"{type(self).__name__}: max_displacement {self.max_displacement} mm exceeds half the "
                f"{', '.join(f'{steps[a]:.3g}' for a in axes)} mm between control points along axes {axes} of "
                f"subject {subject.name!r}; the deformation may fold. Use fewer control points or a smaller "
                f"max_displacement",
                RuntimeWarning,
                stacklevel=4,
            )

    def coordinate_map(self, params: Mapping[str, Any], frame: Frame) -> CoordinateMap:
        """A :class:`~.maps.BSplineMap` with the displacements in voxels."""
        world = torch.as_tensor(params["displacements"], dtype=torch.float64)
        world = world * torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64)  # LPS -> RAS
        # ITK lays the control grid along the LPS world axes: a voxel axis pointing
        # the other way (e.g. i towards -L in an RAS+ image) sees it reversed.
        lps = np.diag([-1.0, -1.0, 1.0]) @ frame.affine[:3, :3]
        reversed_axes = [a for a in range(3) if lps[int(np.argmax(np.abs(lps[:, a]))), a] < 0]
        if reversed_axes:
            world = world.flip(reversed_axes)
        to_voxels = torch.from_numpy(np.linalg.inv(frame.affine[:3, :3]))
        voxels = world @ to_voxels.T
        if frame.is_2d:
            voxels[..., 2] = 0
        return BSplineMap(voxels, frame.shape)

    def inverse_map(self, params: Mapping[str, Any], frame: Frame) -> CoordinateMap:
        """The opposite displacements: an approximate inverse, as TorchIO's."""
        opposite = (-torch.as_tensor(params["displacements"], dtype=torch.float64)).tolist()
        return self.coordinate_map({"displacements": opposite}, frame)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        points: Any = self.num_control_points
        displacement: Any = self.max_displacement
        arguments = {
            "num_control_points": points[0] if len(set(points)) == 1 else points,
            "max_displacement": displacement[0] if len(set(displacement)) == 1 else displacement,
            "locked_borders": self.locked_borders,
        }
        if not self.lock_all_axes:
            arguments["lock_all_axes"] = False
        return {**arguments, **super().arguments()}


__all__ = ["RandomElasticDeformation"]
