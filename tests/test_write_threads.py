"""The per-batch choice between one torch thread and torch's threads for the aggregator's writes."""

from __future__ import annotations

import pytest
import torch

from torchpatch.inference.write_threads import PARALLEL_ELEMENTS, WriteThreads


def test_times_both_settings_then_keeps_the_faster_and_retries_the_other() -> None:
    threads = WriteThreads(retry_every=4, window=1)
    assert threads.choose() is True  # torch's threads first
    threads.record(True, 2.0, 1)
    assert threads.choose() is False  # then one thread
    threads.record(False, 1.0, 1)
    assert threads.seconds == (1.0, 2.0)
    picks = [threads.choose() for _ in range(8)]
    # Batches 3..10: one thread, except every 4th batch retries torch's threads.
    assert picks == [False, True, False, False, False, True, False, False]


def test_median_ignores_one_slow_batch() -> None:
    threads = WriteThreads(window=3)
    for seconds in (1.0, 50.0, 1.2):
        threads.record(True, seconds, 1)
    assert threads.seconds == (None, 1.2)
    threads.record(False, 0.0, 0)  # nothing written: not a sample
    assert threads.seconds[0] is None


def test_small_batches_run_on_one_thread_untimed(two_threads: None) -> None:
    threads = WriteThreads()
    with threads.writing(PARALLEL_ELEMENTS - 1):
        inside = torch.get_num_threads()
    assert inside == 1
    assert torch.get_num_threads() == 2
    assert threads.seconds == (None, None)


def test_large_batches_alternate_and_restore_threads(two_threads: None) -> None:
    threads = WriteThreads()
    seen = []
    for _ in range(2):
        with threads.writing(PARALLEL_ELEMENTS):
            seen.append(torch.get_num_threads())
    assert seen == [2, 1]
    assert torch.get_num_threads() == 2
    assert None not in threads.seconds


def test_threads_restored_when_the_block_raises(two_threads: None) -> None:
    threads = WriteThreads()
    with pytest.raises(RuntimeError, match="boom"), threads.writing(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_one_thread_allowed_means_no_choice() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        threads = WriteThreads()
        with threads.writing(PARALLEL_ELEMENTS):
            pass
        assert threads.seconds == (None, None)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("arguments", "error"),
    [({"retry_every": 1}, ValueError), ({"window": 0}, ValueError), ({"window": 2.0}, TypeError)],
)
def test_bad_arguments(arguments: dict, error: type) -> None:
    with pytest.raises(error, match=next(iter(arguments))):
        WriteThreads(**arguments)


def test_no_choice_without_openmp(two_threads: None, monkeypatch) -> None:
    # torch's native thread pool cannot change its size once used (it warns): leave it alone.
    from torchpatch.inference import write_threads

    monkeypatch.setattr(write_threads, "OPENMP", False)
    threads = WriteThreads()
    with threads.writing(PARALLEL_ELEMENTS - 1):
        inside = torch.get_num_threads()
    assert inside == 2
    assert threads.seconds == (None, None)
