"""The cache manifest keeps a subject's metadata with their types: the history's records rebuild after a reload."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import torchpatch as tp
from torchpatch import LabelMap, ScalarImage, Subject, SubjectsDataset
from torchpatch.cache.metadata import TAG, decode, decode_metadata, encode, encode_metadata
from torchpatch.recorded import RecordedFunction, UnsentFunction

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
_keys = st.text(max_size=5) | st.integers() | st.tuples(st.integers(), st.integers())
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(_keys, inner, max_size=3)
        | st.dictionaries(st.just(TAG), inner, max_size=1)
    ),
    max_leaves=10,
)


@given(_values)
def test_values_come_back_equal_and_of_the_same_types(value) -> None:
    back = decode(json.loads(json.dumps(encode(value))))
    assert back == value
    assert repr(back) == repr(value)  # tuples stay tuples, int keys stay ints


@pytest.mark.parametrize(
    "value",
    [torch.float64, torch.uint8, np.arange(6, dtype=np.int16).reshape(2, 3), torch.ones(2, 2), np.float32(0.5)],
)
def test_dtypes_and_arrays_come_back(value) -> None:
    back = decode(json.loads(json.dumps(encode(value))))
    assert type(back) is type(value)
    if isinstance(value, torch.dtype):
        assert back is value
    else:
        np.testing.assert_array_equal(np.asarray(back), np.asarray(value))
        assert np.asarray(back).dtype == np.asarray(value).dtype


def test_paths_and_functions() -> None:
    assert decode(encode(Path("/a/b.pt"))) == Path("/a/b.pt")
    back = decode(json.loads(json.dumps(encode(RecordedFunction(lambda x: x)))))
    assert isinstance(back, UnsentFunction) and "lambda" in back.description
    with pytest.raises(RuntimeError, match="could not be pickled"):
        back(1)


def test_what_cannot_be_stored_is_left_out_and_unknown_tags_are_errors() -> None:
    assert encode_metadata({"a": 1, "b": object(), "c": np.array(["x"])}) == {"a": 1}
    with pytest.raises(ValueError, match="unknown tagged value"):
        decode({TAG: "nonsense"})
    with pytest.raises(ValueError, match="unknown torch dtype"):
        decode({TAG: "torch.dtype", "name": "Tensor"})
    assert decode_metadata({"age": 3}) == {"age": 3}  # a format-2 manifest's plain JSON


def test_a_cached_subject_keeps_its_preprocessing_history_and_inverts(tmp_path) -> None:
    labels = (torch.rand(1, 6, 6, 6) * 4).to(torch.uint8)
    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 6, 6, 6)), seg=LabelMap(tensor=labels))
    transform = tp.Compose([tp.CropOrPad((4, 8, 6)), tp.RemapLabels({3: 5}), tp.To(torch.float64)])
    first = SubjectsDataset([subject], transform=transform, cache_dir=tmp_path)[0]
    again = SubjectsDataset([subject], transform=transform, cache_dir=tmp_path)[0]  # read from the manifest
    assert again["history"] == first["history"] == transform(subject)["history"]
    back = again.apply_inverse_transform(warn=False)
    assert back.seg.shape == (1, 6, 6, 6)
    assert torch.equal(back.seg.data[:, 1:5], labels[:, 1:5])
