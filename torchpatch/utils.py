"""TorchIO's ``tio.utils``, with its names: batches back into subjects, and its small helpers.

A batch of :class:`~torchpatch.SubjectsLoader` (or of the Queue, or of
``collate_subjects``) is a plain ``dict``: each image a ``dict`` with its
``(B, C, I, J, K)`` voxels and ``(B, 4, 4)`` affines, each other key one
value per row. :func:`get_subjects_from_batch` turns it back into one
:class:`~torchpatch.Subject` per row (to plot a batch, to write it, to run
a transform on its rows) and :func:`add_images_from_batch` adds a model's
outputs to them as images in the same space.

Example:
    >>> import torch
    >>> from torchpatch import ScalarImage, Subject, collate_subjects
    >>> rows = [Subject(t1=ScalarImage(tensor=torch.full((1, 2, 2, 2), float(i))), age=i) for i in (3, 4)]
    >>> subjects = get_subjects_from_batch(collate_subjects(rows))
    >>> add_images_from_batch(subjects, torch.zeros(2, 1, 2, 2, 2))
    >>> [float(s.t1.data.max()) for s in subjects], int(subjects[1].age), subjects[0].get_images_names()
    ([3.0, 4.0], 4, ['t1', 'prediction'])

The small helpers TorchIO scripts call (:func:`history_collate`,
:func:`apply_transform_to_file`, :func:`get_stem`, :func:`to_tuple`,
:func:`create_dummy_dataset`...) give TorchIO's results.
"""

from __future__ import annotations

import ast
import gzip
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .constants import AFFINE, DATA, HISTORY, LABEL, TYPE
from .image import Image, LabelMap, ScalarImage
from .loader import collate_subjects
from .subject import Subject


def get_batch_images_and_size(batch: Mapping[str, Any]) -> tuple[list[str], int]:
    """The names of the images in ``batch`` (entries holding ``DATA``) and its number of rows.

    Raises:
        RuntimeError: When ``batch`` holds no image (TorchIO's error), or
            its images have different numbers of rows; the message lists
            the keys and sizes.

    Example:
        >>> get_batch_images_and_size({'t1': {'data': torch.zeros(3, 1, 2, 2, 2)}, 'age': [1, 2, 3]})
        (['t1'], 3)
    """
    sizes = {key: len(value[DATA]) for key, value in batch.items() if isinstance(value, Mapping) and DATA in value}
    if not sizes:
        raise RuntimeError(
            f"the batch holds no images (no entry with a {DATA!r} key) among its keys {list(batch)}: "
            f"pass a batch of SubjectsLoader or collate_subjects"
        )
    if len(set(sizes.values())) > 1:
        raise RuntimeError(f"the images of the batch have different numbers of rows: {sizes}")
    return list(sizes), next(iter(sizes.values()))


def get_subjects_from_batch(batch: Mapping[str, Any]) -> list[Subject]:
    """One :class:`~torchpatch.Subject` per row of ``batch``, as TorchIO's helper of the same name makes them.

    Each image becomes a :class:`~torchpatch.LabelMap` where the batch says
    its row is a label map (its ``type``), else a
    :class:`~torchpatch.ScalarImage`, with that row's voxels (a view, not a
    copy) and affine; every other key gives each subject its row's value
    (``value[i]``: a location, a history, a name).

    Raises:
        RuntimeError: As :func:`get_batch_images_and_size`.
        ValueError: When a key's value has no row for every subject (a
            number, or a shorter list), naming the key.

    Example:
        >>> from torchpatch import LabelMap, Subject, collate_subjects
        >>> rows = [Subject(seg=LabelMap(tensor=torch.zeros(1, 2, 2, 2, dtype=torch.uint8)), site=s) for s in 'ab']
        >>> [(type(s.seg).__name__, s.site) for s in get_subjects_from_batch(collate_subjects(rows))]
        [('LabelMap', 'a'), ('LabelMap', 'b')]
    """
    names, size = get_batch_images_and_size(batch)
    subjects = []
    for row in range(size):
        entries: dict[str, Any] = {}
        for key, value in batch.items():
            if key in names:
                types = value.get(TYPE)
                kind: type[Image] = LabelMap if types is not None and types[row] == LABEL else ScalarImage
                entries[key] = kind(tensor=value[DATA][row], affine=_row(value[AFFINE], row))
                continue
            try:
                if len(value) != size:
                    raise TypeError
                entries[key] = value[row]
            except (TypeError, KeyError, IndexError):
                raise ValueError(
                    f"key {key!r} of the batch holds no value per row for its {size} subjects: "
                    f"got {type(value).__name__} {_short(value)}"
                ) from None
        subjects.append(Subject(entries))
    return subjects


def add_images_from_batch(
    subjects: Sequence[Subject], tensor: torch.Tensor, class_: type[Image] | None = None, name: str = "prediction"
) -> None:
    """Add row ``i`` of ``tensor`` (``(B, C, I, J, K)``, a model's outputs) to ``subjects[i]`` as image ``name``.

    Each image is a ``class_`` (:class:`~torchpatch.ScalarImage` by default;
    :class:`~torchpatch.LabelMap` for a segmentation) with the affine of the
    subject's first image, as in TorchIO.

    Raises:
        ValueError: When ``tensor`` has another number of rows than
            there are subjects; the message gives both counts.

    Example:
        >>> from torchpatch import LabelMap, ScalarImage, Subject
        >>> subjects = [Subject(t1=ScalarImage(tensor=torch.rand(1, 2, 2, 2)))]
        >>> add_images_from_batch(subjects, torch.ones(1, 1, 2, 2, 2, dtype=torch.uint8), LabelMap, name='seg')
        >>> type(subjects[0].seg).__name__, int(subjects[0].seg.data.sum())
        ('LabelMap', 8)
    """
    if len(tensor) != len(subjects):
        raise ValueError(f"the tensor has {len(tensor)} rows for {len(subjects)} subjects: one row per subject")
    kind = ScalarImage if class_ is None else class_
    for subject, data in zip(subjects, tensor):
        subject.add_image(kind(tensor=data, affine=subject.get_first_image().affine), name)


def _row(affines: Any, row: int) -> Any:
    """Row ``row`` of a batch's affines as a numpy array (a tensor or an array of ``(B, 4, 4)``)."""
    affine = affines[row]
    return affine.numpy() if isinstance(affine, torch.Tensor) else affine


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_tuple(value: Any, length: int = 1) -> tuple[Any, ...]:
    """``tuple(value)`` for an iterable (not a string), else ``value`` repeated ``length`` times.

    Example:
        >>> to_tuple(2, length=3), to_tuple([1, 2], length=3), to_tuple('ab', length=2)
        ((2, 2, 2), (1, 2), ('ab', 'ab'))
    """
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        return tuple(value)
    return (value,) * length


def get_stem(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> str | list[str]:
    """A file name up to its first dot (``'t1'`` for ``.../t1.nii.gz``), or a list of them for several paths.

    Example:
        >>> get_stem('/data/sub-01/t1.nii.gz'), get_stem(['a.nrrd', Path('b.v2.mha')])
        ('t1', ['a', 'b'])
    """
    if isinstance(path, (str, os.PathLike)):
        return Path(path).name.partition(".")[0]
    return [Path(item).name.partition(".")[0] for item in path]


def normalize_path(path: str | os.PathLike[str]) -> Path:
    """The absolute path, ``~`` expanded and links resolved.

    Example:
        >>> normalize_path('~/x') == Path.home().resolve() / 'x'
        True
    """
    return Path(path).expanduser().resolve()


def is_iterable(obj: Any) -> bool:
    """Whether ``iter(obj)`` works (strings included, as in TorchIO).

    Example:
        >>> is_iterable([1]), is_iterable('a'), is_iterable(3)
        (True, True, False)
    """
    try:
        iter(obj)
    except TypeError:
        return False
    return True


def check_sequence(sequence: Any, name: str) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``sequence`` can be iterated.

    Example:
        >>> check_sequence([1, 2], 'labels')
        >>> check_sequence(3, 'labels')
        Traceback (most recent call last):
        ...
        TypeError: "labels" must be a sequence, got int 3
    """
    if not is_iterable(sequence):
        raise TypeError(f'"{name}" must be a sequence, got {type(sequence).__name__} {sequence!r}')


def parse_spatial_shape(shape: Any) -> tuple[Any, ...]:
    """A spatial shape as three positive whole numbers (one number is used for the three).

    Raises:
        ValueError: When an element is not a positive whole number or there are not three.

    Example:
        >>> parse_spatial_shape(4), parse_spatial_shape((2, 3, 1))
        ((4, 4, 4), (2, 3, 1))
    """
    result = to_tuple(shape, length=3)
    if any(not isinstance(n, (int, float, np.integer, np.floating)) or n < 1 or n % 1 for n in result):
        raise ValueError(f"a spatial shape must hold positive whole numbers, got {shape!r}")
    if len(result) != 3:
        raise ValueError(f"a spatial shape must have 3 elements, got {shape!r}")
    return result


def guess_type(string: str) -> Any:
    """The Python value a command-line string spells (number, bool, ``None``, tuple, list), else the string.

    Spaces are ignored; the items of a tuple or list are guessed one by one.

    Example:
        >>> guess_type('3'), guess_type('0.5'), guess_type('(1, 2.5)'), guess_type('[1,2]'), guess_type('t1')
        (3, 0.5, (1, 2.5), [1, 2], 't1')
    """
    text = string.replace(" ", "")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    if isinstance(value, (list, tuple)):
        items = [guess_type(item) for item in text[1:-1].split(",") if item]
        return tuple(items) if isinstance(value, tuple) else items
    return text if isinstance(value, str) else value  # a quoted string keeps its quotes, as in TorchIO


def compress(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str] | None = None) -> Path:
    """Gzip a file (by default to its path with the suffix ``.nii.gz``); the output path.

    Example:
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / 'a.nii').write_bytes(b'voxels')
        >>> out = compress(folder / 'a.nii')
        >>> out.name, gzip.decompress(out.read_bytes())
        ('a.nii.gz', b'voxels')
    """
    output = Path(input_path).with_suffix(".nii.gz") if output_path is None else Path(output_path)
    with open(input_path, "rb") as source, gzip.open(output, "wb") as target:
        shutil.copyfileobj(source, target)
    return output


def history_collate(batch: Sequence[Subject], collate_transforms: bool = True) -> dict[str, Any]:
    """TorchIO's collate function that keeps each row's history: :func:`~torchpatch.collate_subjects` does.

    The rows' ``history`` lists stay one list per row (the records of their
    random transforms), which :func:`get_subjects_from_batch` gives back so
    that each subject can undo them (``apply_inverse_transform``). With
    ``collate_transforms=False`` the histories are left out.

    Example:
        >>> from torchpatch.transforms import RandomFlip
        >>> row = RandomFlip(axes=(0,), flip_probability=1)(Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 1, 1))))
        >>> history_collate([row, row])['history']
        [[{'name': 'RandomFlip', 'axes': [0]}], [{'name': 'RandomFlip', 'axes': [0]}]]
    """
    if not batch or not isinstance(batch[0], Subject):
        return {}
    collated = collate_subjects(list(batch))
    if not collate_transforms:
        collated.pop(HISTORY, None)
    return collated


def get_subclasses(target_class: type) -> list[type]:
    """Every subclass of ``target_class``, children before grandchildren.

    Example:
        >>> class A: pass
        >>> class B(A): pass
        >>> class C(B): pass
        >>> [cls.__name__ for cls in get_subclasses(A)]
        ['B', 'C']
    """
    found: list[type] = list(target_class.__subclasses__())
    for child in list(found):
        found.extend(get_subclasses(child))
    return found


def get_first_item(data_loader: Iterable[Any]) -> Any:
    """The first batch of a loader (or the first item of any iterable).

    Example:
        >>> get_first_item([[1, 2], [3]])
        [1, 2]
    """
    return next(iter(data_loader))


def apply_transform_to_file(
    input_path: str | os.PathLike[str],
    transform: Any,
    output_path: str | os.PathLike[str],
    class_: str = "ScalarImage",
    verbose: bool = False,
) -> None:
    """Read one image file, transform it (as image ``image`` of a subject) and write the result.

    Args:
        input_path: The image to read.
        transform: Any transform (a callable ``Subject -> Subject``).
        output_path: Where to write the transformed image.
        class_: ``'ScalarImage'`` or ``'LabelMap'``.
        verbose: Print the first record of the output's history.

    Raises:
        ValueError: When ``class_`` is neither image class.

    Example:
        >>> from torchpatch.transforms import Flip
        >>> folder = Path(tempfile.mkdtemp())
        >>> ScalarImage(tensor=torch.arange(3.0).reshape(1, 3, 1, 1)).save(folder / 'in.nii.gz')
        >>> apply_transform_to_file(folder / 'in.nii.gz', Flip(0), folder / 'out.nii.gz')
        >>> ScalarImage(folder / 'out.nii.gz').data.flatten().tolist()
        [2.0, 1.0, 0.0]
    """
    kinds = {"ScalarImage": ScalarImage, "LabelMap": LabelMap}
    if class_ not in kinds:
        raise ValueError(f"class_ must be one of {sorted(kinds)}, got {class_!r}")
    transformed = transform(Subject(image=kinds[class_](input_path)))
    transformed["image"].save(output_path)
    history = transformed.get(HISTORY) or []
    if verbose and history:
        print("Applied transform:", history[0])


def create_dummy_dataset(
    num_images: int,
    size_range: tuple[int, int],
    directory: str | os.PathLike[str] | None = None,
    suffix: str = ".nii.gz",
    force: bool = False,
    verbose: bool = False,
) -> list[Subject]:
    """Subjects of random uint8 images (``one_modality``) and 3-class label maps (``segmentation``), written once.

    As TorchIO's: ``directory/dummy_images/image_{i}{suffix}`` and
    ``dummy_labels/label_{i}{suffix}``, sizes drawn from ``size_range`` and
    voxels from numpy's global generator (``np.random.seed`` gives TorchIO's
    files); when the folders exist their files are read instead (``force``
    writes them again).

    Example:
        >>> np.random.seed(0)
        >>> subjects = create_dummy_dataset(2, (4, 6), directory=tempfile.mkdtemp())
        >>> [sorted(s.get_images_names()) for s in subjects][0], subjects[0].segmentation.data.max().item() <= 2
        (['one_modality', 'segmentation'], True)
    """
    root = Path(tempfile.gettempdir() if directory is None else directory)
    images, labels = root / "dummy_images", root / "dummy_labels"
    if force:
        shutil.rmtree(images, ignore_errors=True)
        shutil.rmtree(labels, ignore_errors=True)
    write = not images.is_dir()
    if write:
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        if verbose:
            print("Creating dummy dataset...")
    subjects = []
    for index in range(num_images):
        image_path, label_path = images / f"image_{index}{suffix}", labels / f"label_{index}{suffix}"
        if write:
            shape = np.random.randint(*size_range, size=3)
            voxels = np.random.rand(*shape)
            classes = np.where(voxels < 0.33, 0, np.where(voxels > 0.66, 2, 1)).astype(np.uint8)
            ScalarImage(tensor=torch.from_numpy((voxels * 255).astype(np.uint8))[None]).save(image_path)
            LabelMap(tensor=torch.from_numpy(classes)[None]).save(label_path)
        subjects.append(Subject(one_modality=ScalarImage(image_path), segmentation=LabelMap(label_path)))
    return subjects


__all__ = [
    "add_images_from_batch",
    "apply_transform_to_file",
    "check_sequence",
    "compress",
    "create_dummy_dataset",
    "get_batch_images_and_size",
    "get_first_item",
    "get_stem",
    "get_subclasses",
    "get_subjects_from_batch",
    "guess_type",
    "history_collate",
    "is_iterable",
    "normalize_path",
    "parse_spatial_shape",
    "to_tuple",
]
