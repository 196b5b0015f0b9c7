"""TorchIO's small ``tio.utils`` helpers that scripts call, with its names and results.

Paths and values (:func:`get_stem`, :func:`to_tuple`, :func:`guess_type`,
:func:`parse_spatial_shape`...), a collate function that keeps each row's
history (:func:`history_collate`), one file through a transform
(:func:`apply_transform_to_file`) and a throw-away data set of random
images (:func:`create_dummy_dataset`).
"""

from __future__ import annotations

import ast
import gzip
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..constants import HISTORY
from ..image import LabelMap, ScalarImage
from ..loader import collate_subjects
from ..subject import Subject

#: The image classes by the names ``apply_transform_to_file`` (and the command line's ``--imclass``) take.
IMAGE_CLASSES: dict[str, type[ScalarImage] | type[LabelMap]] = {"ScalarImage": ScalarImage, "LabelMap": LabelMap}


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
    if class_ not in IMAGE_CLASSES:
        raise ValueError(f"class_ must be one of {sorted(IMAGE_CLASSES)}, got {class_!r}")
    transformed = transform(Subject(image=IMAGE_CLASSES[class_](input_path)))
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
    "IMAGE_CLASSES",
    "apply_transform_to_file",
    "check_sequence",
    "compress",
    "create_dummy_dataset",
    "get_first_item",
    "get_stem",
    "get_subclasses",
    "guess_type",
    "history_collate",
    "is_iterable",
    "normalize_path",
    "parse_spatial_shape",
    "to_tuple",
]
