"""RandomTransform, OneOf and Compose(p=): probability, seeded determinism, the history, pickling, errors."""

from __future__ import annotations

import pickle

import pytest
import torch

from torchpatch import LabelMap, Queue, ScalarImage, Subject, SubjectsDataset, UniformSampler
from torchpatch.transforms import (
    Compose,
    OneOf,
    Pad,
    RandomBiasField,
    RandomBlur,
    RandomFlip,
    RandomGamma,
    RandomNoise,
    RandomSwap,
    RandomTransform,
)
from torchpatch.transforms.augmentation.random import add_history, parse_range

ALL = [
    RandomFlip(axes=(0, 1, 2)),
    RandomNoise(),
    RandomGamma(),
    RandomBlur(),
    RandomSwap(patch_size=2, num_iterations=5),
    RandomBiasField(),
]


def make_subject() -> Subject:
    generator = torch.Generator().manual_seed(1)
    data = torch.rand(1, 6, 5, 4, generator=generator)
    return Subject(t1=ScalarImage(tensor=data), seg=LabelMap(tensor=(data > 0.5).to(torch.uint8)), subject_id="s1")


def same_voxels(a: Subject, b: Subject) -> bool:
    return all(torch.equal(a[name].data, b[name].data) for name in a.images)


@pytest.mark.parametrize("transform", ALL, ids=lambda t: type(t).__name__)
def test_seeded_runs_are_identical(transform: RandomTransform) -> None:
    subject = make_subject()
    torch.manual_seed(3)
    first = transform(subject)
    torch.manual_seed(3)
    second = transform(subject)
    assert same_voxels(first, second)
    assert first["history"] == second["history"]


@pytest.mark.parametrize("transform", ALL, ids=lambda t: type(t).__name__)
def test_history_record_replays_the_transform(transform: RandomTransform) -> None:
    subject = make_subject()
    torch.manual_seed(5)
    out = transform(subject)
    (record,) = out["history"]
    assert record["name"] == type(transform).__name__
    params = {key: value for key, value in record.items() if key != "name"}
    replayed = transform.apply_params(subject, params)
    assert same_voxels(out, replayed)
    assert pickle.loads(pickle.dumps(record)) == record


@pytest.mark.parametrize("transform", ALL, ids=lambda t: type(t).__name__)
def test_transform_pickles_and_input_is_left_unchanged(transform: RandomTransform) -> None:
    subject = make_subject()
    before = {name: image.data.clone() for name, image in subject.images.items()}
    restored = pickle.loads(pickle.dumps(transform))
    torch.manual_seed(0)
    out = transform(subject)
    torch.manual_seed(0)
    assert same_voxels(out, restored(subject))
    assert all(torch.equal(subject[name].data, data) for name, data in before.items())
    assert "history" not in subject


@pytest.mark.parametrize("transform_class", [type(t) for t in ALL], ids=lambda c: c.__name__)
def test_p_zero_returns_the_input_unrecorded(transform_class: type[RandomTransform]) -> None:
    subject = make_subject()
    out = transform_class(p=0)(subject)
    assert out is not subject
    assert same_voxels(out, subject)
    assert "history" not in out


def test_history_appends_without_mutating_the_input_list() -> None:
    subject = add_history(make_subject(), {"name": "Earlier"})
    history = subject["history"]
    out = Compose([RandomFlip(flip_probability=1), RandomGamma(log_gamma=0)])(subject)
    assert [record["name"] for record in out["history"]] == ["Earlier", "RandomFlip", "RandomGamma"]
    assert out["history"][1] == {"name": "RandomFlip", "axes": [0]}
    assert out["history"][2] == {"name": "RandomGamma", "gamma": {"t1": 1.0}}
    assert subject["history"] is history and len(history) == 1


def test_history_that_is_not_a_list_is_a_type_error() -> None:
    subject = make_subject().with_images({}, history="flipped")
    with pytest.raises(TypeError, match="'history' metadata of subject 's1' must be a list"):
        RandomFlip()(subject)


def test_p_is_drawn_from_the_global_generator() -> None:
    transform = RandomFlip(flip_probability=1, p=0.5)
    torch.manual_seed(0)
    applied = ["history" in transform(make_subject()) for _ in range(200)]
    assert 70 < sum(applied) < 130
    torch.manual_seed(0)
    assert applied == ["history" in transform(make_subject()) for _ in range(200)]


def test_one_of_follows_the_weights() -> None:
    one_of = OneOf({RandomFlip(flip_probability=1): 3, RandomGamma(log_gamma=0): 1, RandomNoise(): 0})
    torch.manual_seed(0)
    names = [one_of(make_subject())["history"][0]["name"] for _ in range(400)]
    assert "RandomNoise" not in names
    assert 240 < names.count("RandomFlip") < 360


def test_one_of_list_p_and_repr() -> None:
    one_of = OneOf([RandomFlip(), RandomGamma()], p=0)
    assert "history" not in one_of(make_subject())
    assert repr(one_of).startswith("OneOf({RandomFlip(axes=0, flip_probability=0.5): 1.0, RandomGamma(")
    assert repr(one_of).endswith(", p=0.0)")
    assert pickle.loads(pickle.dumps(one_of)).weights == [1.0, 1.0]


def test_compose_p() -> None:
    subject = make_subject()
    assert Compose([Pad(1)], p=0)(subject).t1.spatial_shape == (6, 5, 4)
    assert Compose([Pad(1)], p=1)(subject).t1.spatial_shape == (8, 7, 6)
    assert repr(Compose([Pad(1)], p=0.5)) == "Compose([Pad(padding=1, padding_mode=0)], p=0.5)"
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got 1.5"):
        Compose([Pad(1)], p=1.5)
    with pytest.raises(TypeError, match=r"p must be a number in \[0, 1\], got str '1'"):
        Compose([Pad(1)], p="1")


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: RandomFlip(p=-0.1), ValueError, r"p must be a probability in \[0, 1\], got -0.1"),
        (lambda: RandomFlip(p=None), TypeError, r"p must be a number in \[0, 1\], got NoneType"),
        (lambda: OneOf([]), ValueError, "transforms must hold at least one transform"),
        (lambda: OneOf(RandomFlip()), TypeError, "transforms must be a mapping .* got RandomFlip"),
        (lambda: OneOf([RandomFlip(), 3]), TypeError, r"transforms\[1\] must be a callable"),
        (lambda: OneOf({RandomFlip(): -1}), ValueError, "the weight of RandomFlip.* must be non-negative, got -1"),
        (lambda: OneOf({RandomFlip(): "1"}), TypeError, "the weight of RandomFlip.* must be a number, got str"),
        (lambda: OneOf({RandomFlip(): 0}), ValueError, "must not all be zero"),
        (lambda: OneOf([RandomFlip()], p=2), ValueError, "p must be a probability"),
    ],
)
def test_bad_arguments(make, error, message) -> None:
    with pytest.raises(error, match=message):
        make()


def test_one_of_checks_the_result() -> None:
    with pytest.raises(TypeError, match=r"transforms\[0\] .* must return a Subject, got NoneType"):
        OneOf([lambda s: None])(make_subject())


def test_parse_range_errors() -> None:
    with pytest.raises(ValueError, match="std given as one number must be non-negative, got -1"):
        parse_range(-1, "std")
    with pytest.raises(TypeError, match=r"std must hold two numbers, got \('a', 1\)"):
        parse_range(("a", 1), "std")
    with pytest.raises(TypeError, match="std must be a number or two numbers"):
        parse_range([1, 2, 3], "std")
    with pytest.raises(ValueError, match="std must be finite"):
        parse_range((0, float("inf")), "std")
    with pytest.raises(ValueError, match=r"std must be at least 0, got \(-1, 1\)"):
        parse_range((-1, 1), "std", minimum=0)


def test_random_transform_needs_both_steps() -> None:
    with pytest.raises(NotImplementedError, match="RandomTransform must implement get_params"):
        RandomTransform()(make_subject())


def test_queue_seeding_makes_augmentation_reproducible_whatever_the_workers() -> None:
    augment = Compose([RandomFlip(axes=(0, 1, 2)), OneOf([RandomNoise(), RandomGamma()]), RandomBiasField()])
    runs = []
    for num_workers in (0, 2):
        subjects = [make_subject().with_images({}, subject_id=f"s{i}") for i in range(3)]
        dataset = SubjectsDataset(subjects, transform=augment)
        queue = Queue(dataset, 4, 2, UniformSampler(3), num_workers=num_workers, seed=11)
        try:
            runs.append(torch.stack([patch["t1"].data for patch in queue]))
        finally:
            queue.close()
    assert torch.equal(runs[0], runs[1])
