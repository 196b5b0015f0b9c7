"""The Queue's worker processes run behind the training process (a higher niceness)."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from torchpatch.queue import workers


def _niceness_after(init_name: str) -> int:
    getattr(workers, init_name)(0)
    return os.nice(0)


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no os.nice on this platform")
@pytest.mark.parametrize("init_name", ["worker_init", "augmenting_worker_init"])
def test_workers_are_nicer_than_the_training_process(init_name: str) -> None:
    before = os.nice(0)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        after = pool.apply(_niceness_after, (init_name,))
    assert after == min(19, before + workers.WORKER_NICENESS)
    assert os.nice(0) == before  # the training process keeps its own
