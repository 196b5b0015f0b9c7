"""Decode-once cache: entries, invalidation, atomic writes, cached label positions."""

from __future__ import annotations

import copy
import os
import pickle
import re
import shutil
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import LOCATION, LabelMap, LabelSampler, ScalarImage, Subject, SubjectsDataset, UniformSampler
from torchpatch.cache import LabelIndex, RunPositions, SubjectCache, subject_key
from torchpatch.cache.fingerprint import file_fingerprint
from torchpatch.transforms import RescaleIntensity


def _file_subject(tmp_path, seed=0, shape=(12, 10, 8)):
    rng = np.random.default_rng(seed)
    image = ScalarImage(tensor=torch.from_numpy(rng.random((1, *shape), dtype=np.float32)))
    labels = torch.from_numpy(rng.integers(0, 3, size=(1, *shape)).astype(np.uint8))
    image.save(tmp_path / f"t1-{seed}.nii.gz")
    LabelMap(tensor=labels).save(tmp_path / f"seg-{seed}.nii.gz")
    return Subject(
        t1=ScalarImage(tmp_path / f"t1-{seed}.nii.gz"),
        seg=LabelMap(tmp_path / f"seg-{seed}.nii.gz"),
        subject_id=f"s{seed}",
    )


def test_cached_subject_is_memory_mapped_and_equal_to_the_source(tmp_path):
    subject = _file_subject(tmp_path)
    dataset = SubjectsDataset([subject], cache_dir=tmp_path / "cache")
    cached = dataset[0]
    assert cached["t1"].path.suffix == ".npy"
    assert not cached["t1"].is_loaded
    assert torch.equal(cached["t1"].data, subject["t1"].data)
    assert torch.equal(cached["seg"].data, subject["seg"].data)
    np.testing.assert_array_equal(cached["t1"].affine, subject["t1"].affine)
    assert cached["subject_id"] == "s0"


def test_second_access_reads_the_cache_not_the_source(tmp_path, monkeypatch):
    subject = _file_subject(tmp_path)
    dataset = SubjectsDataset([subject], cache_dir=tmp_path / "cache")
    dataset[0]

    def fail(*args, **kwargs):
        raise AssertionError("the source was decoded again")

    monkeypatch.setattr(SubjectsDataset, "_prepare", fail)
    assert dataset[0]["t1"].path.suffix == ".npy"


def test_changing_a_source_file_invalidates_its_entry(tmp_path):
    subject = _file_subject(tmp_path)
    key = subject_key(subject, None)
    time.sleep(0.01)
    ScalarImage(tensor=torch.zeros(1, 12, 10, 8)).save(tmp_path / "t1-0.nii.gz")
    os.utime(tmp_path / "t1-0.nii.gz", ns=(time.time_ns(), time.time_ns() + 10**9))
    assert subject_key(subject, None) != key
    cached = SubjectsDataset([subject], cache_dir=tmp_path / "cache")[0]
    assert float(cached["t1"].data.abs().sum()) == 0.0


def test_changing_the_preprocessing_invalidates_the_entry(tmp_path):
    subject = _file_subject(tmp_path)
    keys = {
        subject_key(subject, None),
        subject_key(subject, RescaleIntensity((0, 1))),
        subject_key(subject, RescaleIntensity((0, 2))),
    }
    assert len(keys) == 3
    cache = tmp_path / "cache"
    first = SubjectsDataset([subject], transform=RescaleIntensity((0, 1)), cache_dir=cache)[0]
    second = SubjectsDataset([subject], transform=RescaleIntensity((0, 2)), cache_dir=cache)[0]
    assert float(first["t1"].data.max()) == pytest.approx(1.0)
    assert float(second["t1"].data.max()) == pytest.approx(2.0)


def test_an_interrupted_write_is_never_read(tmp_path):
    subject = _file_subject(tmp_path)
    cache = SubjectCache(tmp_path / "cache")
    key = subject_key(subject, None)
    folder = cache.path(key)
    folder.mkdir()
    np.save(folder / "t1.npy", np.zeros((1, 12, 10, 8), np.float32))  # no manifest: unfinished
    assert cache.load(key, subject) is None
    cached = SubjectsDataset([subject], cache_dir=tmp_path / "cache")[0]
    assert torch.equal(cached["t1"].data, subject["t1"].data)


def test_failed_preprocessing_leaves_no_entry(tmp_path):
    subject = _file_subject(tmp_path)

    def broken(s):
        raise ValueError("broken transform")

    dataset = SubjectsDataset([subject], transform=broken, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="broken transform"), pytest.warns(UserWarning, match="cannot be pickled"):
        dataset[0]
    assert list((tmp_path / "cache").iterdir()) == []


def test_label_index_lists_each_class_in_c_order(tmp_path):
    labels = np.array([0, 2, 1, 2, 0, 1], dtype=np.uint8).reshape(1, 3, 2, 1)
    index = LabelIndex.build(labels, tmp_path / "seg")
    assert index.classes() == [1, 2]
    assert index.positions(1).tolist() == [2, 5]
    assert index.positions(2).tolist() == [1, 3]
    assert index.positions(7).tolist() == []
    assert sorted(index.foreground().tolist()) == [1, 2, 3, 5]


def test_label_index_keeps_runs_not_every_position(tmp_path):
    labels = np.zeros((1, 40, 40, 40), dtype=np.uint8)
    labels[0, 5:30, 5:30, 5:35] = 1  # 18 750 voxels in 625 runs along K
    labels[0, 10:12, 10:12, 36] = 2
    index = LabelIndex.build(labels, tmp_path / "seg")
    assert not (tmp_path / "seg.positions.npy").exists()
    runs = np.load(tmp_path / "seg.runs.npy")
    assert runs.shape == (625 + 4, 2) and runs.nbytes < labels.size
    assert index.positions(1).size == 18_750 and index.view(2).size == 4
    np.testing.assert_array_equal(index.positions(1), np.flatnonzero(labels.reshape(-1) == 1))


@settings(max_examples=50, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 9), min_size=0, max_size=30),
    gaps=st.lists(st.integers(0, 5), min_size=30, max_size=30),
    keys=st.lists(st.integers(0, 10**6), max_size=20),
    step=st.integers(1, 7),
)
def test_run_positions_read_like_the_positions_they_cover(lengths, gaps, keys, step):
    starts = np.cumsum([gap + 1 for gap in gaps[: len(lengths)]]) + np.cumsum([0, *lengths[:-1]]).astype(int)
    runs = np.stack([starts, lengths], axis=1).astype(np.int64).reshape(-1, 2)
    expected = np.concatenate([np.arange(a, a + n) for a, n in runs]) if len(runs) else np.zeros(0, np.int64)
    view = RunPositions(runs)
    assert view.size == len(view) == expected.size
    np.testing.assert_array_equal(np.asarray(view), expected)
    if expected.size:
        picks = np.array([key % expected.size for key in keys], dtype=np.int64)
        np.testing.assert_array_equal(view[picks], expected[picks])
        np.testing.assert_array_equal(view[::step], expected[::step])
        assert view[int(picks[0]) if picks.size else 0] == expected[int(picks[0]) if picks.size else 0]
    with pytest.raises(IndexError, match="out of range"):
        view[np.array([expected.size])]
    with pytest.raises(ValueError, match="copy=False cannot"):
        np.array(view, copy=False)


def test_an_entry_of_the_previous_layout_is_written_again(tmp_path):
    subject = _file_subject(tmp_path)
    dataset = SubjectsDataset([subject], cache_dir=tmp_path / "cache")
    entry = dataset[0]["seg"].path.parent
    manifest = entry / "manifest.json"
    # As the previous layout wrote it: format 1, each class's positions in place of its runs.
    (entry / "seg.runs.npy").rename(entry / "seg.positions.npy")
    manifest.write_text(re.sub(r'"format": \d+', '"format": 1', manifest.read_text()))
    os.utime(manifest, ns=(time.time_ns(), time.time_ns() + 10**9))
    again = SubjectsDataset([subject], cache_dir=tmp_path / "cache")[0]
    assert again["seg"].label_index is not None and (entry / "seg.runs.npy").exists()
    labels = subject["seg"].data.numpy().reshape(-1)
    np.testing.assert_array_equal(again["seg"].label_index.positions(2), np.flatnonzero(labels == 2))


@pytest.mark.parametrize("probabilities", [None, {0: 1, 1: 1, 2: 2}, {2: 1}])
def test_label_sampler_on_cached_subject_matches_class_frequencies(tmp_path, probabilities):
    labels = torch.zeros(1, 24, 24, 24, dtype=torch.uint8)
    labels[0, 4:10, 4:10, 4:10] = 1
    labels[0, 15:18, 15:18, 15:18] = 2
    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 24, 24, 24)), seg=LabelMap(tensor=labels))
    cached = SubjectsDataset([subject], cache_dir=tmp_path / "cache")[0]
    assert cached["seg"].label_index is not None
    sampler = LabelSampler(8, "seg", probabilities)
    centres = [patch[LOCATION][:3] + 4 for patch in sampler(cached, 2000, generator=0)]
    classes = np.bincount([int(labels[0, i, j, k]) for i, j, k in centres], minlength=3) / 2000
    if probabilities is None:
        assert classes[0] == 0
        assert classes[1] == pytest.approx(216 / 243, abs=0.04)
    elif probabilities == {2: 1}:
        assert classes[2] == 1.0
    else:
        np.testing.assert_allclose(classes, [0.25, 0.25, 0.5], atol=0.04)


def test_cached_label_sampler_respects_the_valid_centre_region(tmp_path):
    labels = torch.zeros(1, 10, 10, 1, dtype=torch.uint8)
    labels[0, 0, 0, 0] = 1  # too close to the border to be a centre
    labels[0, 5, 5, 0] = 1
    subject = Subject(seg=LabelMap(tensor=labels))
    cached = SubjectsDataset([subject], cache_dir=tmp_path / "cache")[0]
    locations = {tuple(p[LOCATION].tolist()) for p in LabelSampler(4, "seg", {1: 1})(cached, 50, generator=0)}
    assert locations == {(3, 3, 0, 7, 7, 1)}


def test_uniform_patches_from_the_cache_equal_patches_from_memory(tmp_path):
    subject = _file_subject(tmp_path)
    cached = SubjectsDataset([subject], cache_dir=tmp_path / "cache")[0]
    for patch in UniformSampler((4, 5, 3))(cached, 10, generator=1):
        i0, j0, k0, i1, j1, k1 = patch[LOCATION].tolist()
        assert torch.equal(patch["t1"].data, subject["t1"].data[:, i0:i1, j0:j1, k0:k1])


def test_build_cache_without_cache_dir_is_an_error():
    dataset = SubjectsDataset([Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)))])
    with pytest.raises(ValueError, match="cache_dir"):
        dataset.build_cache()


# Fingerprints, the cached label map, dead writers ---------------------------------------


def test_fingerprint_is_equal_for_equal_sources_and_changes_when_a_file_is_touched(tmp_path):
    from torchpatch.cache import image_fingerprint

    subject = _file_subject(tmp_path)
    again = ScalarImage(tmp_path / "t1-0.nii.gz")
    assert image_fingerprint(subject["t1"]) == image_fingerprint(again)
    before = image_fingerprint(again)
    os.utime(tmp_path / "t1-0.nii.gz", ns=(time.time_ns(), time.time_ns() + 10**9))
    assert image_fingerprint(again) != before
    assert image_fingerprint(ScalarImage(tmp_path / "t1-0.nii.gz", dtype=torch.float64)) != image_fingerprint(again)


def test_fingerprint_of_tensors_follows_their_bytes_and_affine():
    from torchpatch.cache import image_fingerprint

    zeros = ScalarImage(tensor=torch.zeros(1, 3, 2, 1))
    assert image_fingerprint(zeros) == image_fingerprint(ScalarImage(tensor=torch.zeros(1, 3, 2, 1)))
    assert image_fingerprint(zeros) != image_fingerprint(ScalarImage(tensor=torch.ones(1, 3, 2, 1)))
    assert image_fingerprint(zeros) != image_fingerprint(
        ScalarImage(tensor=torch.zeros(1, 3, 2, 1), affine=2 * np.eye(4))
    )
    assert image_fingerprint(zeros) != image_fingerprint(LabelMap(tensor=torch.zeros(1, 3, 2, 1)))


def test_fingerprint_of_a_folder_changes_when_a_file_in_it_is_rewritten(tmp_path):
    from torchpatch.cache.fingerprint import file_fingerprint

    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "1.dcm").write_bytes(b"slice")
    before = file_fingerprint(folder)
    os.utime(folder / "1.dcm", ns=(time.time_ns(), time.time_ns() + 10**9))
    assert file_fingerprint(folder)["files_sha1"] != before["files_sha1"]


def test_cached_label_maps_own_their_index(tmp_path):
    from torchpatch.cache import CachedLabelMap

    labels = torch.zeros(1, 6, 6, 1, dtype=torch.uint8)
    labels[0, 2:4, 2:4] = 1
    cached = SubjectsDataset([Subject(seg=LabelMap(tensor=labels))], cache_dir=tmp_path / "cache")[0]
    seg = cached["seg"]
    assert isinstance(seg, CachedLabelMap) and isinstance(seg.label_index, LabelIndex)
    seg.load()  # the same cached voxels: the positions still hold
    assert seg.label_index is not None and seg.label_index.classes() == [1]
    patch = seg.derive(seg.data[:, :3], seg.affine)
    assert isinstance(patch, CachedLabelMap) and patch.label_index is None
    assert seg.label_index is not None
    seg.set_data(torch.zeros(1, 6, 6, 1))
    assert seg.label_index is None


def test_cached_label_map_keeps_its_index_through_unload_and_pickle(tmp_path):
    import pickle

    from torchpatch.cache import CachedLabelMap

    labels = torch.zeros(1, 6, 6, 1, dtype=torch.uint8)
    labels[0, 1, 1] = 2
    seg = SubjectsDataset([Subject(seg=LabelMap(tensor=labels))], cache_dir=tmp_path / "cache")[0]["seg"]
    seg.load()
    seg.unload()
    copy = pickle.loads(pickle.dumps(seg))
    assert isinstance(copy, CachedLabelMap) and copy.label_index.positions(2).tolist() == [7]
    with pytest.raises(TypeError, match="LabelIndex or None, got str"):
        CachedLabelMap(tensor=labels, label_index="positions")


def test_cache_removes_partial_entries_of_dead_writers(tmp_path):
    root = tmp_path / "cache"
    dead = root / ".0123.partial-999999999-0123abcd"  # a worker killed while writing an entry
    (dead / "t1.npy").parent.mkdir(parents=True)
    (dead / "t1.npy").write_bytes(b"half")
    SubjectCache(root)
    assert list(root.iterdir()) == []
    (dead / "t1.npy").parent.mkdir(parents=True)
    subject = Subject(t1=ScalarImage(tensor=torch.ones(1, 2, 2, 2)))
    cache = SubjectCache.__new__(SubjectCache)  # as unpickled in a worker: __init__ does not run
    cache.root = root
    cache.get_or_create(subject, None, lambda s: s)
    assert [p.name for p in root.iterdir() if p.name != ".sources"] == [subject_key(subject, None)]


def _offset_by(value):
    return lambda s: s.with_images(
        {n: ScalarImage(tensor=i.data + value, affine=i.affine) for n, i in s.images.items()}
    )


def test_an_unpicklable_transform_gets_a_stable_key_and_one_warning(tmp_path):
    """A lambda's key comes from its code and captured values (its repr holds an address that changes every run)."""
    subject = Subject(t1=ScalarImage(tensor=torch.ones(1, 2, 2, 2)))
    first, again, other = _offset_by(1.0), _offset_by(1.0), _offset_by(2.0)
    with pytest.warns(UserWarning, match="module-level function or a Transform class") as caught:
        key = subject_key(subject, first)
        assert subject_key(subject, again) == key  # a new closure object, as in a new run
    assert len(caught) == 1
    with pytest.warns(UserWarning, match="cannot be pickled"):
        assert subject_key(subject, other) != key  # other captured value
    cache_dir = tmp_path / "cache"
    for _ in range(3):  # three "runs": one entry, reused
        dataset = SubjectsDataset([subject], transform=_offset_by(1.0), cache_dir=cache_dir)
        assert float(dataset[0].t1.data.max()) == 2.0
    assert len([p for p in cache_dir.iterdir() if p.name != ".sources"]) == 1


def test_the_cache_keeps_the_most_recently_used_versions_of_each_subject(tmp_path):
    from torchpatch.cache.store import VERSIONS_KEPT
    from torchpatch.transforms import Pad

    subject = Subject(t1=ScalarImage(tensor=torch.ones(1, 2, 2, 2)))
    cache = SubjectCache(tmp_path / "cache")
    for width in range(1, VERSIONS_KEPT + 3):
        cache.get_or_create(subject, Pad(width), Pad(width))
    entries = [p.name for p in cache.root.iterdir() if p.name != ".sources"]
    assert len(entries) == VERSIONS_KEPT
    newest = {subject_key(subject, Pad(width)) for width in range(3, VERSIONS_KEPT + 3)}
    assert set(entries) == newest
    other = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)))
    cache.get_or_create(other, Pad(1), Pad(1))  # another subject's versions are counted apart
    assert len([p for p in cache.root.iterdir() if p.name != ".sources"]) == VERSIONS_KEPT + 1


def _copied(subject):
    """A preparation that leaves ``subject`` unloaded (as the dataset's does), so its key stays the same."""
    return subject.with_images({name: copy.copy(image) for name, image in subject.images.items()})


def test_loading_an_entry_parses_its_manifest_once_and_hands_out_new_images(tmp_path, monkeypatch):
    subject = _file_subject(tmp_path)
    cache = SubjectCache(tmp_path / "cache")
    first = cache.get_or_create(subject, None, _copied)
    parses = []
    parse = SubjectCache._parse
    monkeypatch.setattr(SubjectCache, "_parse", lambda self, folder: parses.append(folder) or parse(self, folder))
    second = cache.get_or_create(subject, None, _copied)
    third = cache.get_or_create(subject, None, _copied)
    assert parses == []  # parsed when stored, reused since
    assert second["t1"] is not third["t1"] and second["seg"] is not third["seg"]
    second["t1"].metadata["note"] = "mine"
    second["t1"].affine[0, 3] += 5.0  # edited in place: that copy only
    np.testing.assert_array_equal(third["t1"].affine, first["t1"].affine)
    second["t1"].set_data(torch.zeros_like(second["t1"].data))
    assert "note" not in third["t1"].metadata
    assert torch.equal(third["t1"].data, first["t1"].data)
    assert third["t1"].spatial_shape == subject["t1"].spatial_shape


def test_a_rewritten_or_removed_entry_is_read_again(tmp_path):
    subject = _file_subject(tmp_path)
    cache = SubjectCache(tmp_path / "cache")
    key = subject_key(subject, None)
    cache.get_or_create(subject, None, _copied)
    manifest = cache.path(key) / "manifest.json"
    text = manifest.read_text().replace('"metadata": {', '"metadata": {"site": "B", ', 1)
    manifest.write_text(text)
    os.utime(manifest, ns=(time.time_ns(), time.time_ns() + 10**9))  # a newer date whatever the clock's grain
    assert cache.load(key, subject)["site"] == "B"
    shutil.rmtree(cache.path(key))
    assert cache.load(key, subject) is None


def test_a_pickled_cache_carries_no_parsed_entries(tmp_path):
    subject = _file_subject(tmp_path)
    cache = SubjectCache(tmp_path / "cache")
    cache.get_or_create(subject, None, _copied)
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.root == cache.root and copy._known == ({}, set())
    assert torch.equal(copy.get_or_create(subject, None, lambda s: s)["t1"].data, subject["t1"].data)


def test_a_file_fingerprint_follows_a_file_replaced_under_the_same_name(tmp_path):
    path = tmp_path / "a.npy"
    path.write_bytes(b"1234")
    before = file_fingerprint(path)
    assert file_fingerprint(path) == before
    replacement = tmp_path / "b.npy"
    replacement.write_bytes(b"12345")
    os.replace(replacement, path)  # another inode, another size
    assert file_fingerprint(path)["size"] == 5
    with open(path, "r+b") as file:  # the same inode rewritten in place
        file.write(b"9")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert file_fingerprint(path)["mtime_ns"] != before["mtime_ns"]
    returned = file_fingerprint(path)
    returned["size"] = -1  # a caller changing what it got changes nothing kept
    assert file_fingerprint(path)["size"] == 5


def _fresh_key(subject, transform):
    from torchpatch.cache import fingerprint

    kept = dict(fingerprint._KEYS)
    fingerprint._KEYS.clear()
    try:
        return subject_key(subject, transform)
    finally:
        fingerprint._KEYS.update(kept)


def test_a_kept_subject_key_is_the_key_computed_afresh_and_follows_what_it_reads(tmp_path):
    subject = _file_subject(tmp_path)
    key = subject_key(subject, None)
    assert subject_key(subject, None) == key == _fresh_key(subject, None)  # kept, and the same
    # Another transform, another affine, another dtype asked for, a rewritten file: other keys, each as computed afresh.
    assert subject_key(subject, RescaleIntensity((0, 1))) == _fresh_key(subject, RescaleIntensity((0, 1))) != key
    moved = subject.with_images({"t1": subject["t1"].replica(), "seg": subject["seg"]})
    moved["t1"].affine = np.diag([2.0, 1.0, 1.0, 1.0])
    assert subject_key(moved, None) == _fresh_key(moved, None) != key
    cast = Subject(t1=ScalarImage(tmp_path / "t1-0.nii.gz", dtype=torch.float64), seg=subject["seg"])
    assert subject_key(cast, None) == _fresh_key(cast, None) != key
    renamed = Subject(t2=ScalarImage(tmp_path / "t1-0.nii.gz"), seg=LabelMap(tmp_path / "seg-0.nii.gz"))
    assert subject_key(renamed, None) != key
    ScalarImage(tensor=torch.ones(1, 12, 10, 8)).save(tmp_path / "t1-0.nii.gz")
    os.utime(tmp_path / "t1-0.nii.gz", ns=(time.time_ns(), time.time_ns() + 10**9))
    assert subject_key(subject, None) == _fresh_key(subject, None) != key


def test_subjects_read_from_the_dataset_own_their_affines(tmp_path):
    # Without a cache too: a transform editing an affine in place changes the copy it was given only.
    subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 4)))
    for dataset in (SubjectsDataset([subject]), SubjectsDataset([subject], cache_dir=tmp_path / "cache")):
        first = dataset[0]
        first["t1"].affine[0, 3] = 9.0
        assert float(dataset[0]["t1"].affine[0, 3]) == 0.0
    assert float(subject["t1"].affine[0, 3]) == 0.0
    # A file image whose header the stored subject has read already: its copies still own their affines.
    ScalarImage(tensor=torch.zeros(1, 4, 4, 4)).save(tmp_path / "a.nii.gz")
    stored = Subject(t1=ScalarImage(tmp_path / "a.nii.gz"))
    assert stored["t1"].spatial_shape == (4, 4, 4)  # reads (and keeps) the header
    dataset = SubjectsDataset([stored])
    dataset[0]["t1"].affine[0, 3] = 9.0
    assert float(dataset[0]["t1"].affine[0, 3]) == 0.0 and float(stored["t1"].affine[0, 3]) == 0.0
