"""The voxels of images made from label maps: each label's Gaussian tissue, looked up per voxel.

What :class:`~.labels_to_image.RandomLabelsToImage` computes once its
parameters are drawn. A categorical map's labels are looked up through a
table indexed by value (or searched, for wide sparse values); one normal
field gives every voxel its noise. A partial-volume map sums its channels'
tissues weighted by their fractions, one field per channel.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import torch

from ...io.buffers import thread_scratch

#: Label value of voxels that no label claims (a discretized partial-volume voxel whose channels are all 0).
UNLABELLED = -1
#: Widest span of label values looked up through a table by value (8 MiB of int64); wider, sparser ones are searched.
TABLE_SPAN = 1 << 20
#: Voxels computed at a time (their index, noise and gathered values stay in the core's cache).
CHUNK_VOXELS = 1 << 17


def is_partial_volume(data: torch.Tensor) -> bool:
    """Whether a label map's voxels are fractions per channel rather than one whole-number label each.

    Example:
        >>> is_partial_volume(torch.tensor([[[[0, 2]]]])), is_partial_volume(torch.tensor([[[[0.5, 1.0]]]]))
        (False, True)
    """
    if data.shape[0] != 1:
        return True
    return bool(data.is_floating_point() and not torch.equal(data, data.round()))


def discretized(data: torch.Tensor) -> torch.Tensor:
    """The channel of highest value per voxel, :data:`UNLABELLED` where every channel is 0 (TorchIO's rule).

    Example:
        >>> discretized(torch.tensor([[[[0.2, 0.0]]], [[[0.7, 0.0]]]])).flatten().tolist()
        [1, -1]
    """
    highest, channel = data.max(dim=0, keepdim=True)
    return channel.masked_fill_(highest == 0, UNLABELLED)


#: The labels last found per label-map tensor: ``id -> (weak reference, version, settings, labels)``.
_FOUND: dict[int, tuple[weakref.ref[torch.Tensor], int, tuple[bool, bool], list[int]]] = {}
#: Tensors whose labels are remembered at most (one subject's maps, drawn for patch after patch).
_FOUND_AT_MOST = 8


def labels_found(data: torch.Tensor, partial_volume: bool, discretize: bool) -> list[int]:
    """The labels of a label map: its values (categorical) or its channels (partial volume).

    Patch augmentation draws the parameters on the whole subject for every
    patch, so the labels of a map are remembered while its tensor lives and
    is not changed in place (torch's version counter): 8.7 ms of counting a
    160 x 192 x 160 map once per subject rather than once per patch.

    Example:
        >>> labels_found(torch.tensor([[[[2, 0, 5]]]]), False, False)
        [0, 2, 5]
        >>> labels_found(torch.tensor([[[[0.2]]], [[[0.8]]], [[[0.0]]]]), True, False)
        [0, 1, 2]
    """
    if partial_volume and not discretize:
        return list(range(data.shape[0]))
    settings, version = (partial_volume, discretize), data._version  # counts the tensor's in-place changes
    known = _FOUND.get(id(data))
    if known is not None and known[0]() is data and known[1:3] == (version, settings):
        return list(known[3])
    labels = _count_labels(data, partial_volume)
    if len(_FOUND) >= _FOUND_AT_MOST:
        _FOUND.clear()
    _FOUND[id(data)] = (weakref.ref(data), version, settings, labels)
    return list(labels)


def _count_labels(data: torch.Tensor, partial_volume: bool) -> list[int]:
    """The values of a categorical (or discretized) map other than :data:`UNLABELLED`, counted, not sorted."""
    values = discretized(data) if partial_volume else data
    flat = values.reshape(-1)
    if flat.numel() and not flat.is_floating_point() and flat.dtype != torch.bool:
        low, high = (int(value) for value in torch.aminmax(flat))
        if high - low < TABLE_SPAN:
            # Counted chunk by chunk in the thread's scratch: no sort, no volume-sized temporaries.
            seen = torch.zeros(high - low + 1, dtype=torch.bool, device=flat.device)
            index = _chunk_buffers(flat.device)[0]
            for start in range(0, flat.numel(), CHUNK_VOXELS):
                piece = index[: min(CHUNK_VOXELS, flat.numel() - start)]
                piece.copy_(flat[start : start + CHUNK_VOXELS]).sub_(low)
                seen |= torch.bincount(piece, minlength=high - low + 1) > 0
            found = (torch.nonzero(seen).flatten() + low).tolist()
            return [label for label in found if label != UNLABELLED]
    return [label for label in values.unique().long().tolist() if label != UNLABELLED]


def value_table(values: torch.Tensor, labels: list[int]) -> tuple[int, torch.Tensor] | None:
    """``(low, slot)``: ``slot[value - low]`` is the position of ``value`` in ``labels`` (``len(labels)``: none).

    ``None`` unless the map holds whole numbers of a span under :data:`TABLE_SPAN`.

    Example:
        >>> value_table(torch.tensor([[5, 2, 7]]), [2, 5])
        (2, tensor([0, 2, 2, 1, 2, 2]))
    """
    flat = values.reshape(-1)
    if not flat.numel() or flat.is_floating_point() or flat.dtype == torch.bool:
        return None
    low, high = (int(value) for value in torch.aminmax(flat))
    if high - low >= TABLE_SPAN:
        return None
    slot = torch.full((high - low + 1,), len(labels), dtype=torch.int64, device=values.device)
    for place, label in enumerate(labels):
        if low <= label <= high:
            slot[label - low] = place
    return low, slot


def label_slots(values: torch.Tensor, labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each voxel's label position in ``labels`` (``len(labels)`` for values no label claims), in two steps.

    Returns ``(index, slot)``: an int index per voxel (flat) and a small
    table such that ``slot[index]`` is the voxel's position: a table by value
    (:func:`value_table`) or a search in the sorted labels.

    Example:
        >>> index, slot = label_slots(torch.tensor([[5, 2, 7]]), [2, 5])
        >>> slot[index].tolist()
        [1, 0, 2]
    """
    table = value_table(values, labels)
    if table is not None:
        low, slot = table
        return values.reshape(-1).to(torch.int64) - low, slot
    return searched_slots(values, labels)


def searched_slots(values: torch.Tensor, labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`label_slots` by a search in the sorted labels (any values: wide, sparse or floating).

    Example:
        >>> index, slot = searched_slots(torch.tensor([[2.0, 9.0, 5.0]]), [2, 5])
        >>> slot[index].tolist()
        [0, 2, 1]
    """
    count = len(labels)
    sorted_labels = torch.tensor(labels, dtype=torch.float64, device=values.device)
    as_float = values.reshape(-1).to(torch.float64)
    position = torch.searchsorted(sorted_labels, as_float).clamp_(max=max(count - 1, 0))
    if count:
        position.masked_fill_(sorted_labels[position] != as_float, count)
    else:
        position.fill_(0)
    return position, torch.arange(count + 1, device=values.device)


def _chunk_buffers(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """An index, a noise, a gather and a mask buffer of :data:`CHUNK_VOXELS` (the thread's scratch on the CPU)."""
    if device.type != "cpu":
        return (
            torch.empty(CHUNK_VOXELS, dtype=torch.int64, device=device),
            torch.empty(CHUNK_VOXELS, device=device),
            torch.empty(CHUNK_VOXELS, device=device),
            torch.empty(CHUNK_VOXELS, dtype=torch.bool, device=device),
        )
    scratch = torch.from_numpy(thread_scratch(CHUNK_VOXELS * 17))
    index = scratch[: CHUNK_VOXELS * 8].view(torch.int64)
    noise = scratch[CHUNK_VOXELS * 8 : CHUNK_VOXELS * 12].view(torch.float32)
    gathered = scratch[CHUNK_VOXELS * 12 : CHUNK_VOXELS * 16].view(torch.float32)
    return index, noise, gathered, scratch[CHUNK_VOXELS * 16 :].view(torch.bool)


def categorical_tissues(
    values: torch.Tensor,
    labels: list[int],
    params: Mapping[str, Any],
    active: list[bool],
    unused: list[bool],
    generator: torch.Generator,
    original: torch.Tensor | None,
) -> torch.Tensor:
    """One channel of tissues for a map of label values; unused or unlabelled voxels from ``original`` if given.

    Chunk by chunk of :data:`CHUNK_VOXELS`: the label's table position, its
    mean, the noise times its standard deviation, and the filled voxels, all
    in scratch buffers the thread reuses; only the output is new memory.

    Example:
        >>> params = {'mean': [1.0, 2.0], 'std': [0.0, 0.0]}
        >>> values = torch.tensor([[[[0, 3, 3, 7]]]])
        >>> out = categorical_tissues(values, [0, 3], params, [True, True], [False, False],
        ...                           torch.Generator(), torch.full((1, 1, 1, 4), 9.0))
        >>> out.flatten().tolist()  # 7 is no label: filled from the original
        [1.0, 2.0, 2.0, 9.0]
    """
    device = values.device
    # Per label position (plus a last slot for values no label claims): mean, std, whether it is filled.
    means = torch.tensor([m if a else 0.0 for m, a in zip(params["mean"], active)] + [0.0], device=device)
    stds = torch.tensor([s if a else 0.0 for s, a in zip(params["std"], active)] + [0.0], device=device)
    fills = torch.tensor([*unused, True], device=device)
    table = value_table(values, labels)
    if table is None:
        positions, slot = searched_slots(values, labels)
        low = 0
    else:
        low, slot = table
    means, stds, fills = means[slot], stds[slot], fills[slot]
    noisy = bool(stds.any())
    flat = values.reshape(-1)
    source = None if original is None else original.reshape(-1)
    out = torch.empty(flat.numel(), device=device)
    index_buffer, noise_buffer, gathered_buffer, fill_buffer = _chunk_buffers(device)
    for start in range(0, flat.numel(), CHUNK_VOXELS):
        stop = min(start + CHUNK_VOXELS, flat.numel())
        size = stop - start
        if table is None:
            index = positions[start:stop]
        else:
            index = index_buffer[:size]
            index.copy_(flat[start:stop])
            if low:
                index.sub_(low)
        piece = out[start:stop]
        torch.index_select(means, 0, index, out=piece)
        if noisy:
            noise, gathered = noise_buffer[:size], gathered_buffer[:size]
            if device.type == "cpu":
                torch.randn(size, generator=generator, out=noise)
            else:  # the generator is the CPU's
                noise.copy_(torch.randn(size, generator=generator))
            piece.addcmul_(noise, torch.index_select(stds, 0, index, out=gathered))
        if source is not None:
            fill = torch.index_select(fills, 0, index, out=fill_buffer[:size])
            piece.copy_(torch.where(fill, source[start:stop].to(torch.float32), piece))
    return out.reshape(values.shape)


def partial_volume_tissues(
    data: torch.Tensor,
    labels: list[int],
    params: Mapping[str, Any],
    active: list[bool],
    unused: list[bool],
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tissues of a partial-volume map (each voxel's channels' tissues weighted by its fractions) and where to fill.

    Example:
        >>> data = torch.tensor([[[[0.25, 0.0]]], [[[0.75, 0.0]]]])
        >>> tissues, fill = partial_volume_tissues(
        ...     data, [0, 1], {'mean': [1.0, 2.0], 'std': [0.0, 0.0]}, [True, True], [False, False], torch.Generator()
        ... )
        >>> tissues.flatten().tolist(), fill.flatten().tolist()
        ([1.75, 0.0], [False, True])
    """
    shape = (1, *data.shape[1:])
    tissues = torch.zeros(shape, device=data.device)
    claimed = torch.zeros(shape, dtype=torch.float64, device=data.device)
    for index, channel in enumerate(labels):
        if channel >= data.shape[0]:
            continue
        fraction = data[channel : channel + 1]
        if active[index]:
            noise = torch.randn(shape, generator=generator).to(data.device)
            tissues += noise.mul_(params["std"][index]).add_(params["mean"][index]) * fraction
        if not unused[index]:
            claimed += fraction
    return tissues, claimed < 0.5
