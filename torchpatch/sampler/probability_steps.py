"""TorchIO's probability-map steps of the weighted and label samplers, for the scripts and subclasses using them.

TorchIO 1.x draws the patches of a ``WeightedSampler`` or a ``LabelSampler``
in steps, each a public method that a subclass may override::

    get_probability_map(subject)                 ->  (1, I, J, K) weights
    process_probability_map(map, subject)        ->  (I, J, K) float64, border cleared, sums to 1
    get_cumulative_distribution_function(array)  ->  the flat running sum of that array
    get_random_index_ini(array, cdf)             ->  a patch corner: the centre drawn by
                                                     sample_probability_map, minus patch_size // 2

torchpatch's samplers draw from tables built once per subject instead
(:mod:`~torchpatch.sampler.weighted`, :mod:`~torchpatch.sampler.label`); these
steps give TorchIO's numbers for whoever calls them. A subclass overriding
one of them is sampled through them: the array that its
``get_probability_map`` and ``process_probability_map`` give is drawn from
with the weighted sampler's table, and overridden CDF or index steps are
called once per patch, as TorchIO calls them. Such a subclass is not
:attr:`~torchpatch.PatchSampler.thread_safe` unless it says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from ..subject import Subject
from ..typing import TypeTriplet
from .sampler import RandomSampler, make_generator

Draw = Callable[[np.random.Generator, int], np.ndarray]
#: Makes a draw of patch corners from a ``(1, I, J, K)`` map, a patch size and a description of the map.
MapDraw = Callable[[torch.Tensor, TypeTriplet, str], Draw]
#: A function or method, as :func:`default_step` takes and returns it.
Function = TypeVar("Function", bound=Callable[..., Any])

#: The smallest uniform number :meth:`ProbabilityMapSteps.sample_probability_map` scales (TorchIO's: never 0).
SMALLEST_DRAW = float(torch.finfo(torch.float32).eps)

#: Steps that give the array drawn from, and steps that draw from it.
MAP_STEPS = ("get_probability_map", "process_probability_map", "get_probabilities_from_label_map")
DRAW_STEPS = ("get_cumulative_distribution_function", "get_random_index_ini", "sample_probability_map")

#: torchpatch's own versions of the steps: anything else found under a step's name is a subclass's.
DEFAULT_STEPS: set[Any] = {RandomSampler.get_probability_map}


def default_step(function: Function) -> Function:
    """Mark ``function`` as torchpatch's own version of a step (see :func:`overridden_steps`).

    Example:
        >>> default_step(len) in DEFAULT_STEPS
        True
    """
    DEFAULT_STEPS.add(function)
    return function


def overridden_steps(kind: type) -> tuple[str, ...]:
    """The steps that ``kind`` (a sampler class) defines itself or inherits from a class other than torchpatch's.

    Example:
        >>> from torchpatch import WeightedSampler
        >>> class Doubled(WeightedSampler):
        ...     def get_probability_map(self, subject):
        ...         return 2 * subject['w'].data
        >>> overridden_steps(WeightedSampler), overridden_steps(Doubled)
        ((), ('get_probability_map',))
    """
    found = []
    for name in (*MAP_STEPS, *DRAW_STEPS):
        if hasattr(kind, name):
            attribute = getattr(kind, name)
            if getattr(attribute, "__func__", attribute) not in DEFAULT_STEPS:
                found.append(name)
    return tuple(found)


def check_probability_map(data: torch.Tensor, subject: Subject, name: str | None) -> None:
    """Raise if the map holds negative, NaN or infinite values (one float32 pass).

    Example:
        >>> from torchpatch import ScalarImage
        >>> subject = Subject(prob=ScalarImage(tensor=torch.ones(1, 2, 2, 1)), subject_id='s1')
        >>> check_probability_map(subject['prob'].data, subject, 'prob')  # fine: returns None
        >>> check_probability_map(torch.tensor([[[[0.5]], [[-1.0]]]]), subject, 'prob')
        Traceback (most recent call last):
        ...
        ValueError: probability map 'prob' of subject 's1' holds negative values (minimum -1); ...
    """
    values = data if data.is_floating_point() else data.to(torch.float32)
    low, high = (float(v) for v in torch.aminmax(values))  # NaN propagates to both
    if not np.isfinite(low) or not np.isfinite(high):
        raise ValueError(f"probability map {name!r} of subject {subject.name!r} holds NaN or infinite values")
    if low < 0:
        raise ValueError(
            f"probability map {name!r} of subject {subject.name!r} holds negative values (minimum {low:g}); "
            f"probabilities must be >= 0"
        )


def _sizes(patch_size: Any, what: str) -> TypeTriplet:
    values = [int(v) for v in np.asarray(patch_size).reshape(-1).tolist()]
    if len(values) != 3 or min(values) < 1:
        raise ValueError(f"patch_size must be three ints >= 1{what}, got {patch_size!r}")
    return (values[0], values[1], values[2])


class ProbabilityMapSteps(RandomSampler):
    """Base of :class:`~torchpatch.WeightedSampler` and :class:`~torchpatch.LabelSampler`: TorchIO's steps.

    Attributes:
        cdf: Always ``None``, as in TorchIO 1.x, which never sets it: each
            subject's cumulative distribution is built when it is sampled
            (:meth:`get_cumulative_distribution_function` gives it).
        steps_overridden: The steps of this class that are not torchpatch's
            (set per class, see :func:`overridden_steps`).

    Example:
        >>> from torchpatch import ScalarImage, WeightedSampler
        >>> subject = Subject(w=ScalarImage(tensor=torch.tensor([5.0, 1.0, 3.0, 8.0]).reshape(1, 4, 1, 1)))
        >>> sampler = WeightedSampler((3, 1, 1), 'w')
        >>> array = sampler.process_probability_map(subject['w'].data, subject)
        >>> array.ravel().tolist(), sampler.get_cumulative_distribution_function(array).tolist()
        ([0.0, 0.25, 0.75, 0.0], [0.0, 0.25, 1.0, 1.0])
    """

    cdf: np.ndarray | None = None
    steps_overridden: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.steps_overridden = overridden_steps(cls)
        # A subclass's steps may use shared state (torch's RNG): thread-safe only if it says so.
        if "thread_safe" not in cls.__dict__ and any(name in cls.__dict__ for name in cls.steps_overridden):
            cls.thread_safe = False

    @property
    def probability_map_name(self) -> str | None:
        """The name of the image the sampler reads (TorchIO's name); set by each sampler."""
        raise NotImplementedError(f"{type(self).__name__} does not name a probability map")

    # The steps ------------------------------------------------------------------------

    @default_step
    def process_probability_map(self, probability_map: torch.Tensor | np.ndarray, subject: Subject) -> np.ndarray:
        """The map as TorchIO draws from it: float64 ``(I, J, K)``, zero on the border, summing to one.

        Args:
            probability_map: ``(1, I, J, K)`` non-negative weights on
                ``subject``'s grid, as ``get_probability_map`` gives them.
            subject: The subject the map belongs to (for the patch size and messages).

        Raises:
            ValueError: If the map is not one channel on the subject's grid,
                holds negative, NaN or infinite values, or is zero wherever
                a patch fits.

        Example:
            >>> from torchpatch import ScalarImage, WeightedSampler
            >>> subject = Subject(w=ScalarImage(tensor=torch.ones(1, 4, 1, 1)))
            >>> WeightedSampler((3, 1, 1), 'w').process_probability_map(subject['w'].data, subject).ravel().tolist()
            [0.0, 0.5, 0.5, 0.0]
        """
        shape = subject.spatial_shape
        name = self.probability_map_name
        data = torch.as_tensor(probability_map)
        if data.ndim != 4 or data.shape[0] != 1 or tuple(data.shape[1:]) != shape:
            raise ValueError(
                f"probability map {name!r} of subject {subject.name!r} must have shape (1, *{shape}), "
                f"one channel on the subject's grid, got {tuple(data.shape)}"
            )
        check_probability_map(data, subject, name)
        array = data[0].numpy().astype(np.float64)  # float32 sums drift (TorchIO saw totals of 0.92)
        patch_size = self.get_patch_size(shape)
        self.clear_probability_borders(array, patch_size)
        total = array.sum()
        if total <= 0:
            raise ValueError(
                f"probability map {name!r} of subject {subject.name!r} is zero wherever a patch of {patch_size} "
                f"fits in {shape} (patch centres lie at least patch_size // 2 from the border); pad the subject "
                f"with half the patch size (transforms.Pad({tuple(p // 2 for p in patch_size)})) or pass "
                f"padding_mode="
            )
        array /= total
        return array

    @staticmethod
    @default_step
    def clear_probability_borders(probability_map: np.ndarray | torch.Tensor, patch_size: Sequence[int]) -> None:
        """Zero, in place, the voxels no patch of ``patch_size`` can be centred on.

        A patch's centre is ``start + patch_size // 2``, so ``p // 2`` voxels
        before it and ``(p - 1) // 2`` after it belong to the patch::

            axis of 7, p = 4:   x x x x x x x   ->   . . x x x x .

        Args:
            probability_map: A 3D ``(I, J, K)`` array or tensor, changed in place.
            patch_size: Three ints >= 1.

        Example:
            >>> array = np.ones((7, 1, 1))
            >>> ProbabilityMapSteps.clear_probability_borders(array, (4, 1, 1))
            >>> array.ravel().tolist()
            [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
        """
        if probability_map.ndim != 3:
            raise ValueError(f"the probability map must be 3D (I, J, K), got shape {tuple(probability_map.shape)}")
        sizes = _sizes(patch_size, "")
        for axis, size in enumerate(sizes):
            length = int(probability_map.shape[axis])
            for border in (slice(0, size // 2), slice(max(0, length - (size - 1) // 2), length)):
                index: list[slice] = [slice(None)] * 3
                index[axis] = border
                probability_map[tuple(index)] = 0

    @staticmethod
    @default_step
    def get_cumulative_distribution_function(probability_map: np.ndarray | torch.Tensor) -> np.ndarray:
        """The running sum of the map, flattened (C order) and normalised to end at one.

        Raises:
            ValueError: If the map has no positive total.

        Example:
            >>> ProbabilityMapSteps.get_cumulative_distribution_function(np.array([[1.0, 0.0], [3.0, 4.0]])).tolist()
            [0.125, 0.125, 0.5, 1.0]
        """
        flat = np.asarray(probability_map).ravel()
        total = flat.sum()
        if not total > 0:
            raise ValueError(f"the probability map must have a positive finite total, got {total}")
        return np.cumsum(flat / total)

    @classmethod
    @default_step
    def sample_probability_map(
        cls,
        probability_map: np.ndarray,
        cdf: np.ndarray,
        *,
        generator: np.random.Generator | int | None = None,
    ) -> np.ndarray:
        """One voxel ``(i, j, k)`` of the map drawn by inverse transform sampling on ``cdf``.

        Args:
            probability_map: The ``(I, J, K)`` map ``cdf`` was built from.
            cdf: Its running sum (:meth:`get_cumulative_distribution_function`).
            generator: A numpy generator or seed; ``None`` draws from
                torch's global RNG as TorchIO does, so the same
                ``torch.manual_seed`` gives TorchIO's voxel.

        Raises:
            ValueError: If ``cdf`` does not match the map (a voxel of
                probability 0 was drawn, or the lengths differ).

        Example:
            >>> probability = np.array([[0.0, 1.0, 0.0, 3.0]])
            >>> cdf = ProbabilityMapSteps.get_cumulative_distribution_function(probability)
            >>> sorted({tuple(ProbabilityMapSteps.sample_probability_map(probability, cdf, generator=s).tolist())
            ...         for s in range(20)})
            [(0, 1), (0, 3)]
        """
        array = np.asarray(probability_map)
        if len(cdf) != array.size:
            raise ValueError(f"cdf has {len(cdf)} values but the probability map has {array.size} voxels")
        uniform = float(torch.rand(1).item()) if generator is None else float(make_generator(generator).random())
        flat = int(np.searchsorted(cdf, max(SMALLEST_DRAW, uniform) * cdf[-1]))
        centre = np.unravel_index(min(flat, array.size - 1), array.shape)
        if not array[centre] > 0:
            raise ValueError(
                f"drew voxel {tuple(int(c) for c in centre)} whose probability is {array[centre]}: cdf was not "
                f"built from this probability map"
            )
        return np.array(centre, dtype=np.int64)

    @default_step
    def get_random_index_ini(
        self,
        probability_map: np.ndarray,
        cdf: np.ndarray,
        *,
        generator: np.random.Generator | int | None = None,
    ) -> np.ndarray:
        """The first voxel of a patch whose centre is drawn from the map (:meth:`sample_probability_map`).

        Args:
            probability_map: The processed ``(I, J, K)`` map (border cleared).
            cdf: Its running sum.
            generator: As for :meth:`sample_probability_map`.

        Raises:
            ValueError: If the centre drawn lies where no patch fits (a map
                whose border was not cleared).

        Example:
            >>> from torchpatch import WeightedSampler
            >>> probability = np.array([0.0, 0.0, 1.0, 0.0]).reshape(4, 1, 1)
            >>> cdf = WeightedSampler.get_cumulative_distribution_function(probability)
            >>> WeightedSampler((3, 1, 1), 'w').get_random_index_ini(probability, cdf, generator=0).tolist()
            [1, 0, 0]
        """
        if generator is None:
            centre = self.sample_probability_map(probability_map, cdf)
        else:
            centre = self.sample_probability_map(probability_map, cdf, generator=generator)
        shape = tuple(int(s) for s in np.shape(probability_map))
        patch_size = self.get_patch_size(shape)
        corner = np.asarray(centre, dtype=np.int64) - np.array([p // 2 for p in patch_size], dtype=np.int64)
        if corner.min() < 0 or any(c + p > s for c, p, s in zip(corner.tolist(), patch_size, shape)):
            raise ValueError(
                f"drew centre {tuple(np.asarray(centre).tolist())}, where no patch of {patch_size} fits in {shape}; "
                f"clear the map's border first (clear_probability_borders)"
            )
        return corner

    # Sampling through the steps ---------------------------------------------------------

    def _draw_through_steps(self, subject: Subject, patch_size: TypeTriplet, draw_map: MapDraw) -> Draw:
        """Corners drawn from what this class's steps give (see the module's docstring); ``draw_map`` draws a map."""
        array = self.process_probability_map(self.get_probability_map(subject), subject)
        where = f"processed probability map of subject {subject.name!r}"
        if not isinstance(array, np.ndarray) or array.shape != subject.spatial_shape:
            raise ValueError(
                f"process_probability_map must return an array of shape {subject.spatial_shape}, got "
                f"{type(array).__name__} of shape {tuple(np.shape(array))} for subject {subject.name!r}"
            )
        if "process_probability_map" in self.steps_overridden:
            cleared = np.array(array, dtype=np.float64)
            ProbabilityMapSteps.clear_probability_borders(cleared, patch_size)
            if not np.array_equal(cleared, array):
                raise ValueError(
                    f"process_probability_map left weight on the border of subject {subject.name!r}, where no patch "
                    f"of {patch_size} can be centred; clear it with clear_probability_borders(array, patch_size)"
                )
        if not any(name in self.steps_overridden for name in DRAW_STEPS):
            data = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
            check_probability_map(data, subject, self.probability_map_name)
            return draw_map(data, patch_size, where)
        cdf = self.get_cumulative_distribution_function(array)
        seeded = not {"get_random_index_ini", "sample_probability_map"} & set(self.steps_overridden)
        high = [s - p for s, p in zip(array.shape, patch_size)]

        def draw(rng: np.random.Generator, count: int) -> np.ndarray:
            corners = np.empty((count, 3), dtype=np.int64)
            for row in range(count):
                # A subclass's index steps have TorchIO's arguments (and draw from torch's RNG).
                corner = (
                    self.get_random_index_ini(array, cdf, generator=rng)
                    if seeded
                    else self.get_random_index_ini(array, cdf)
                )
                values = np.asarray(corner).reshape(-1).tolist()
                if len(values) != 3 or any(not 0 <= int(v) <= h for v, h in zip(values, high)):
                    raise ValueError(
                        f"get_random_index_ini gave {values} for subject {subject.name!r}: a patch of "
                        f"{patch_size} needs a corner between (0, 0, 0) and {tuple(high)}"
                    )
                corners[row] = values
            return corners

        return draw


__all__ = [
    "DEFAULT_STEPS",
    "Function",
    "ProbabilityMapSteps",
    "check_probability_map",
    "default_step",
    "overridden_steps",
]
