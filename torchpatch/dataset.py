"""``SubjectsDataset``: a map-style dataset of subjects with an optional transform."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from torch.utils.data import Dataset
from tqdm import tqdm

from .cache import SubjectCache
from .subject import Subject
from .typing import TypePath
from .utils.batches import get_subjects_from_batch

TypeTransform = Callable[[Subject], Subject]


class SubjectsDataset(Dataset[Subject]):
    """Subjects, each transformed (and loaded) when it is indexed.

    The stored subjects are never modified: every access returns a new,
    transformed subject, so a random transform gives a new draw each epoch.

    Args:
        subjects: The subjects.
        transform: Any callable ``Subject -> Subject`` (a torchpatch
            transform, a :class:`~torchpatch.transforms.Compose`, a function).
        load_getitem: Read the voxels of every image when indexed. Set it to
            ``False`` to keep images lazy (samplers then read regions only).
        cache_dir: Decode and preprocess each subject once into this folder
            (see :mod:`torchpatch.cache`); later accesses return the cached
            subject with memory-mapped images, so a patch costs a read of its
            own bytes. The transform must then be deterministic.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject
        >>> subjects = [Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 4)), subject_id=i) for i in range(3)]
        >>> dataset = SubjectsDataset(subjects)
        >>> len(dataset), dataset[1]['subject_id']
        (3, 1)
    """

    def __init__(
        self,
        subjects: Sequence[Subject],
        transform: TypeTransform | None = None,
        load_getitem: bool = True,
        cache_dir: TypePath | None = None,
    ) -> None:
        if isinstance(subjects, Subject) or not isinstance(subjects, Sequence):
            raise TypeError(f"subjects must be a sequence (list, tuple) of Subject, got {type(subjects).__name__}")
        for index, subject in enumerate(subjects):
            if not isinstance(subject, Subject):
                raise TypeError(f"subjects[{index}] must be a Subject, got {type(subject).__name__}")
        self._subjects = list(subjects)
        self.set_transform(transform)
        self.load_getitem = load_getitem
        self._cache = None if cache_dir is None else SubjectCache(cache_dir)

    @classmethod
    def from_batch(cls, batch: Mapping[str, Any], **kwargs: Any) -> SubjectsDataset:
        """A dataset of the rows of a collated batch (:func:`~torchpatch.utils.get_subjects_from_batch`).

        ``kwargs`` (``transform``, ...) go to the constructor.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage, collate_subjects
            >>> rows = [Subject(t1=ScalarImage(tensor=torch.rand(1, 2, 2, 2))) for _ in range(3)]
            >>> len(SubjectsDataset.from_batch(collate_subjects(rows)))
            3
        """
        return cls(get_subjects_from_batch(batch), **kwargs)

    @property
    def caches(self) -> bool:
        """Whether each subject is decoded once into ``cache_dir`` and read from there afterwards.

        Example:
            >>> SubjectsDataset([]).caches
            False
        """
        return self._cache is not None

    @property
    def transform(self) -> TypeTransform | None:
        """The transform applied to each subject (``None`` for none), as in TorchIO.

        Example:
            >>> SubjectsDataset([], transform=None).transform is None
            True
        """
        return self._transform

    def set_transform(self, transform: TypeTransform | None) -> None:
        """Replace the transform (``None`` for none)."""
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable (Subject -> Subject) or None, got {type(transform).__name__}")
        self._transform = transform

    def __len__(self) -> int:
        return len(self._subjects)

    def __getitem__(self, index: int) -> Subject:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        subject = self._subjects[index]
        if self._cache is not None:
            return self._cache.get_or_create(subject, self._transform, self._prepare)
        return self._prepare(subject)

    def _prepare(self, subject: Subject) -> Subject:
        """Copy, load (when asked, or when caching) and transform one subject."""
        # New Image objects (sharing the voxels until replaced), so load() and
        # set_data() in a transform never reach the stored subject.
        subject = subject.with_images({name: image.replica() for name, image in subject.images.items()})
        if self.load_getitem or self._cache is not None:
            subject.load()
        if self._transform is not None:
            transformed = self._transform(subject)
            if not isinstance(transformed, Subject):
                raise TypeError(
                    f"the transform must return a Subject, got {type(transformed).__name__} "
                    f"for subject {subject.name!r}"
                )
            subject = transformed
        return subject

    def subject_name(self, index: int) -> str:
        """The name of stored subject ``index`` (see :attr:`Subject.name`), without loading or transforming it.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage, Subject
            >>> dataset = SubjectsDataset([Subject(t1=ScalarImage(tensor=torch.rand(1, 2, 2, 2)), subject_id='sub-7')])
            >>> dataset.subject_name(0)
            'sub-7'
        """
        return self._subjects[index].name

    def is_cached(self, index: int) -> bool:
        """Whether subject ``index`` is in the cache, so reading it runs no transform.

        Example:
            >>> import tempfile, torch
            >>> from torchpatch import ScalarImage, Subject
            >>> subjects = [Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 4)))]
            >>> dataset = SubjectsDataset(subjects, cache_dir=tempfile.mkdtemp())
            >>> before = dataset.is_cached(0)
            >>> dataset.build_cache(progress=False)
            >>> before, dataset.is_cached(0)
            (False, True)
        """
        return self._cache is not None and self._cache.has(self._subjects[index], self._transform)

    def build_cache(self, progress: bool = True) -> None:
        """Fill the cache now for every subject, with a progress bar.

        Example:
            >>> import tempfile, torch
            >>> from torchpatch import ScalarImage, Subject
            >>> subjects = [Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 4)))]
            >>> dataset = SubjectsDataset(subjects, cache_dir=tempfile.mkdtemp())
            >>> dataset.build_cache(progress=False)
            >>> dataset[0]['t1'].path.suffix
            '.npy'
        """
        if self._cache is None:
            raise ValueError("build_cache needs a dataset made with cache_dir=...")
        for index in tqdm(range(len(self)), desc="Caching subjects", disable=not progress):
            self[index]

    def dry_iter(self) -> Iterator[Subject]:
        """The stored subjects, untransformed and unloaded."""
        return iter(self._subjects)


__all__ = ["SubjectsDataset"]
