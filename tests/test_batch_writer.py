"""BatchWriter: blends in batch order, copies crop jobs, skips empty batches, on any thread setting."""

from __future__ import annotations

import pytest
import torch

from torchpatch.inference.batch_writer import BatchWriter


def overlapping_jobs(ratios: list[float]) -> list:
    """Patches of 4 voxels along K, each starting 2 after the previous, blended with the given ratios."""
    jobs = []
    for item, ratio in enumerate(ratios):
        box = (slice(0, 2), slice(0, 3), slice(2 * item, 2 * item + 4))
        jobs.append((item, box, (slice(0, 2), slice(0, 3), slice(0, 4)), torch.full((2, 3, 4), ratio)))
    return jobs


@pytest.mark.parametrize("threads", [1, 2])
def test_a_batch_blends_its_patches_in_order(threads: int) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        values = torch.stack([torch.full((1, 2, 3, 4), float(v)) for v in (2.0, 4.0, 8.0)])
        output = torch.zeros(1, 2, 3, 8)
        BatchWriter(1).write(values, output, overlapping_jobs([1.0, 0.5, 0.25]))
    finally:
        torch.set_num_threads(before)
    # Voxels 2-3: 2, then halfway to 4 = 3; voxels 4-5: 4 * 0.5 = 2, then a quarter of the way to 8 = 3.5.
    assert output[0, 0, 0].tolist() == [2.0, 2.0, 3.0, 3.0, 3.5, 3.5, 2.0, 2.0]


def test_crop_jobs_copy_and_empty_batches_write_nothing() -> None:
    writer = BatchWriter(1)
    output = torch.zeros(1, 2, 3, 4)
    writer.write(torch.ones(1, 1, 2, 3, 4), output, [])
    assert not output.any()
    box = (slice(0, 2), slice(0, 3), slice(0, 4))
    writer.write(torch.full((1, 1, 2, 3, 4), 2.0), output, [(0, box, box, None)])
    assert torch.equal(output, torch.full_like(output, 2.0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int16])
@pytest.mark.parametrize("channels", [1, 3])
def test_crop_writes_go_through_the_compiled_copies_and_equal_numpys(monkeypatch, dtype, channels) -> None:
    from torchpatch import io

    generator = torch.Generator().manual_seed(channels)
    values = (torch.rand(3, channels, 5, 6, 7, generator=generator) * 100).to(dtype)
    jobs = [  # patch item, output boxes, patch boxes: the middles of overlapping patches, a repeat
        (0, (slice(0, 4), slice(0, 5), slice(0, 6)), (slice(0, 4), slice(0, 5), slice(0, 6))),
        (1, (slice(4, 8), slice(2, 6), slice(6, 9)), (slice(1, 5), slice(1, 5), slice(2, 5))),
        (2, (slice(7, 9), slice(0, 6), slice(1, 8)), (slice(3, 5), slice(0, 6), slice(0, 7))),
        (0, (slice(2, 3), slice(6, 7), slice(8, 9)), (slice(4, 5), slice(5, 6), slice(6, 7))),
    ]
    writes: list[int] = []
    write_boxes = io.write_boxes
    monkeypatch.setattr(io, "write_boxes", lambda *a: writes.append(len(a[2])) or write_boxes(*a))
    compiled = torch.zeros(channels, 9, 7, 9, dtype=dtype)
    BatchWriter(channels).write(values, compiled, [(*job, None) for job in jobs])
    assert writes == [channels * len(jobs)]
    monkeypatch.setattr(io, "write_boxes", lambda *a: False)  # numpy's slices, as without the extension
    by_numpy = torch.zeros(channels, 9, 7, 9, dtype=dtype)
    BatchWriter(channels).write(values, by_numpy, [(*job, None) for job in jobs])
    assert torch.equal(compiled, by_numpy) and by_numpy.any()


@pytest.mark.parametrize("channels", [1, 3])
def test_blends_on_one_thread_go_through_the_compiled_blend_and_give_torchs_bits(monkeypatch, channels) -> None:
    from torchpatch import io

    generator = torch.Generator().manual_seed(7)
    values = torch.randn(3, channels, 2, 3, 4, generator=generator)
    ratios = [torch.rand(2, 3, 4, generator=generator) for _ in range(3)]
    ratios[1][0, 0, :2] = torch.tensor([0.5, 1.0])
    # The same boxes as overlapping_jobs, each patch with ratios of its own (0.5 and 1 among them).
    jobs = [(item, box, inner, ratios[item]) for item, box, inner, _ in overlapping_jobs([1.0, 0.5, 0.25])]
    blends: list[int] = []
    blend_boxes = io.blend_boxes
    monkeypatch.setattr(io, "blend_boxes", lambda *a: blends.append(len(a[2])) or blend_boxes(*a))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        compiled = torch.randn(channels, 2, 3, 8, generator=generator)
        by_torch = compiled.clone()
        BatchWriter(channels).write(values, compiled, jobs)
        assert blends == [channels * len(jobs)]
        monkeypatch.setattr(io, "blend_boxes", lambda *a: False)  # torch's lerp_, as without the extension
        BatchWriter(channels).write(values, by_torch, jobs)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(compiled, by_torch)
