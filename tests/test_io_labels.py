"""io.label_runs: the compiled two-pass grouping of a label volume's runs, and its numpy way."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch.io import labels
from torchpatch.io.labels import label_runs

INTEGER_DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64]


def _reference(volume: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs by their definition: maximal stretches of one non-zero value in flat C order, by value."""
    flat = np.ascontiguousarray(volume).reshape(-1).tolist()
    found: dict[int, list[list[int]]] = {}
    for position, value in enumerate(flat):
        value = int(value)
        if value == 0:
            continue
        runs = found.setdefault(value, [])
        if runs and runs[-1][0] + runs[-1][1] == position and position > 0 and int(flat[position - 1]) == value:
            runs[-1][1] += 1
        else:
            runs.append([position, 1])
    classes = sorted(found)
    rows = [run for value in classes for run in found[value]]
    first = np.cumsum([0] + [len(found[value]) for value in classes[:-1]]) if classes else []
    return np.array(rows, dtype=np.int64).reshape(-1, 2), np.array(classes, np.int64), np.array(first, np.int64)


def _assert_same(found: tuple[np.ndarray, ...], expected: tuple[np.ndarray, ...]) -> None:
    assert [a.dtype for a in found] == [np.dtype(np.int64)] * 3
    assert found[0].shape[1:] == (2,)
    for got, wanted in zip(found, expected):
        np.testing.assert_array_equal(got, wanted)


def test_the_extension_takes_integer_volumes():
    # The fast path is the compiled one: a build without it would pass every equality test below on numpy.
    assert labels._compiled(np.array([0, 1, 1], np.uint8)) is not None
    assert labels._compiled(np.array([0.0, 1.0])) is None  # floats: numpy's way


@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
def test_runs_group_by_class_in_order(dtype):
    rng = np.random.default_rng(3)
    low = -3 if np.issubdtype(dtype, np.signedinteger) else 0
    volume = rng.integers(low, 5, size=(1, 9, 8, 7)).astype(dtype)
    volume[0, 2:6, 1:5, :] = 4  # runs of one class as well as single voxels
    runs, classes, first = found = label_runs(volume)
    _assert_same(found, _reference(volume))
    assert 0 not in classes.tolist()
    flat = volume.reshape(-1)
    for value, start, stop in zip(classes, first, [*first[1:], len(runs)]):
        group = runs[start:stop]
        assert (np.diff(group[:, 0]) > 0).all()
        for position, length in group:
            assert (flat[position : position + length] == value).all()


def test_bool_volumes_have_one_class():
    volume = np.zeros((1, 4, 4, 2), dtype=bool)
    volume[0, 1, 2, :] = True
    volume[0, 3, 3, 1] = True
    runs, classes, first = label_runs(volume)
    assert runs.tolist() == [[12, 2], [31, 1]] and classes.tolist() == [1] and first.tolist() == [0]


@pytest.mark.parametrize("volume", [np.zeros((1, 3, 3, 3), np.uint8), np.zeros((0,), np.int16)])
def test_no_foreground_gives_empty_arrays(volume):
    found = label_runs(volume)
    assert [a.size for a in found] == [0, 0, 0]
    _assert_same(found, _reference(volume))


@pytest.mark.parametrize(
    "values",
    [
        np.array([0, 70_000, 70_000, 5, 70_000, 0], np.int64),  # beyond the counters
        np.array([-5, 0, 3, -5, -5], np.int32),  # negative, in a dtype wider than 16 bits
        np.array([0, 2**40, 1], np.uint64),
    ],
)
def test_wide_values_go_through_numpy(values):
    assert labels._compiled(values) is None
    _assert_same(label_runs(values), _reference(values))


def test_strided_and_fortran_volumes_are_read_in_c_order():
    rng = np.random.default_rng(1)
    volume = np.asfortranarray(rng.integers(0, 4, size=(6, 5, 4)).astype(np.uint8))
    _assert_same(label_runs(volume), _reference(volume))
    _assert_same(label_runs(volume[::2, :, 1:]), _reference(volume[::2, :, 1:]))


def test_numpy_way_gives_the_same(monkeypatch: pytest.MonkeyPatch):
    rng = np.random.default_rng(2)
    volume = np.repeat(rng.integers(0, 6, size=400), 5).astype(np.int16)
    compiled = label_runs(volume)
    monkeypatch.setattr(labels, "_compiled", lambda flat: None)
    _assert_same(label_runs(volume), compiled)


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from([*INTEGER_DTYPES, np.bool_]),
    values=st.lists(st.integers(-4, 4), min_size=0, max_size=200),
    run=st.integers(1, 40),
    compiled=st.booleans(),
)
def test_any_volume_gives_its_runs(dtype, values, run, compiled):
    array = np.repeat(np.array(values, dtype=np.int64), run)  # runs of equal voxels, as in label maps
    if not np.issubdtype(dtype, np.signedinteger):
        array = np.abs(array)
    volume = array.astype(dtype)
    found = label_runs(volume) if compiled else labels._numpy_runs(volume)
    _assert_same(found, _reference(volume))
