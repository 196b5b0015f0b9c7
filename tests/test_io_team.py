"""Splitting the compiled copies between torch's OpenMP team (torchpatch/io/team.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from torchpatch import io
from torchpatch.io import base
from torchpatch.io import team as io_team


def test_the_copies_join_torchs_openmp_team_where_it_is_gnu_openmp():
    import sys

    path = io.openmp_library()
    if sys.platform != "linux" or path is None:
        assert io.team_threads() == 1 or path is not None
        pytest.skip("torch's parallel regions do not run on a GNU OpenMP mapped here")
    assert "libgomp" in Path(path).name
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert io.team_threads() == 2
        torch.set_num_threads(1)
        assert io.team_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert base.compiled is not None
    assert not base.compiled.team_init("/nonexistent/libgomp.so.1")  # loads nothing new


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_child_forked_after_the_team_was_used_copies_on_one_thread(team, rng):
    # The child inherits libgomp's record of the parent's team, not its threads: a parallel region there would
    # wait for them for ever, so the child's copies run on its one thread (and finish).
    source = rng.random((1, 8, 8, 8)).astype(np.float32)
    out = torch.empty(4, 1, 4, 4, 4)
    assert io.copy_boxes(out, [(source, (1, 2, 3))] * 4, threads=max(team, 2))  # the parent's team, used
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's exit code says what it saw
            code = 1
            signal.alarm(30)  # a hang fails the test rather than stopping the suite
            try:
                split = io_team.split_threads(2, 1 << 30)
                copied = io.copy_boxes(out, [(source, (1, 2, 3))] * 4, threads=2)
                code = 0 if (io.team_threads(), split, copied) == (1, 1, True) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        torch.set_num_threads(before)
    assert os.waitstatus_to_exitcode(status) == 0


def test_small_calls_and_forked_children_stay_on_one_thread(monkeypatch):
    monkeypatch.setattr(io_team, "TEAM_BYTES", 1 << 18)
    assert io_team.split_threads(2, (1 << 18) - 1) == 1
    assert io_team.split_threads(2, 1 << 18) == 2
    assert io_team.split_threads(1, 1 << 30) == 1
    monkeypatch.setattr(io_team, "FORKED", type("Set", (), {"is_set": staticmethod(lambda: True)})())
    assert io_team.split_threads(2, 1 << 30) == 1
    assert io.team_threads() == 1
