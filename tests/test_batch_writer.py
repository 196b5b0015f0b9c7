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
