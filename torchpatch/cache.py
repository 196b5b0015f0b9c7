"""Decode once: preprocessed subjects stored as memory-mappable ``.npy`` files.

Decompressing a ``.nii.gz`` and running the preprocessing costs far more than
cutting a patch. With a cache, each subject is decoded and transformed once;
later epochs open its ``.npy`` files memory-mapped, so a patch costs a read of
its own bytes. Label maps also get the voxel positions of every non-zero class
(sorted by class), so the label sampler never scans the volume again::

    cache_dir/
      <key>/                       key = hash of sources + transform
        t1.npy                     (C, I, J, K), the transformed voxels
        seg.npy
        seg.positions.npy          flat indices of non-zero voxels, by class
        seg.classes.npy            rows (class, start, stop) into positions
        manifest.json              written last: a folder without it is ignored

The key covers each source file's path, size and modification time (or the
bytes of in-memory tensors), the affines, and the pickled transform (its
``repr`` when it cannot be pickled), so changing a file or the preprocessing
writes a new entry. Entries are written to a temporary folder and renamed, so
an interrupted write is never read. The transform must be deterministic:
random augmentation belongs in the Queue's ``patch_transform``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .constants import LABEL
from .image import Image, LabelMap, ScalarImage
from .subject import Subject
from .typing import TypePath

_FORMAT = 1
_MANIFEST = "manifest.json"


class LabelIndex:
    """Positions of the non-zero voxels of a cached label map, by class.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> index = LabelIndex.build(np.array([[[[0], [2], [1], [2]]]]), folder / 'seg')
        >>> index.classes(), index.positions(2).tolist()
        ([1, 2], [1, 3])
    """

    def __init__(self, prefix: Path) -> None:
        self.prefix = Path(prefix)
        table = np.load(f"{self.prefix}.classes.npy", allow_pickle=False)
        self._table = {int(c): (int(a), int(b)) for c, a, b in table}

    @classmethod
    def build(cls, labels: np.ndarray, prefix: Path) -> LabelIndex:
        """Write the index of ``labels`` ``(1, I, J, K)`` next to ``prefix``."""
        flat = np.asarray(labels).reshape(-1)
        foreground = np.flatnonzero(flat)
        values = flat[foreground]
        order = np.argsort(values, kind="stable")
        positions = foreground[order]
        values = values[order]
        classes, starts = np.unique(values, return_index=True)
        stops = np.append(starts[1:], values.size)
        table = np.stack([classes.astype(np.int64), starts, stops], axis=1).reshape(-1, 3)
        np.save(f"{prefix}.positions.npy", positions.astype(np.int64), allow_pickle=False)
        np.save(f"{prefix}.classes.npy", table.astype(np.int64), allow_pickle=False)
        return cls(prefix)

    def classes(self) -> list[int]:
        """Non-zero classes present."""
        return sorted(self._table)

    def view(self, label: int | None = None) -> np.ndarray:
        """Memory-mapped flat indices of ``label`` (every non-zero voxel when ``None``); nothing is read yet."""
        mapped = np.load(f"{self.prefix}.positions.npy", mmap_mode="r")
        if label is None:
            return mapped
        if label not in self._table:
            return mapped[:0]
        start, stop = self._table[label]
        return mapped[start:stop]

    def positions(self, label: int) -> np.ndarray:
        """Flat (C-order) indices of the voxels of ``label`` (empty if absent)."""
        return np.array(self.view(label))

    def foreground(self) -> np.ndarray:
        """Flat indices of every non-zero voxel."""
        return np.array(self.view())


def _hash_image(digest: Any, name: str, image: Image) -> None:
    digest.update(f"{name}|{type(image).__name__}|{image.type}|{image._requested_dtype}".encode())
    if image.path is not None and not image.is_loaded:
        paths = image.path if isinstance(image.path, list) else [image.path]
        for path in paths:
            status = os.stat(path)
            digest.update(f"{Path(path).resolve()}|{status.st_size}|{status.st_mtime_ns}".encode())
    else:
        data = image.data.detach().cpu().contiguous()
        digest.update(str((tuple(data.shape), data.dtype)).encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    digest.update(np.ascontiguousarray(image.affine).tobytes())


def _transform_fingerprint(transform: Callable[[Subject], Subject] | None) -> bytes:
    if transform is None:
        return b"none"
    try:
        return pickle.dumps(transform, protocol=4)
    except Exception:  # noqa: BLE001 - lambdas and closures cannot be pickled
        return repr(transform).encode()


def subject_key(subject: Subject, transform: Callable[[Subject], Subject] | None) -> str:
    """Cache key of ``subject`` preprocessed by ``transform``.

    Example:
        >>> from torchpatch import ScalarImage
        >>> s = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)))
        >>> subject_key(s, None) == subject_key(s, None), len(subject_key(s, None))
        (True, 40)
    """
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"torchpatch-cache-{_FORMAT}".encode())
    for name, image in sorted(subject.images.items()):
        _hash_image(digest, name, image)
    digest.update(_transform_fingerprint(transform))
    return digest.hexdigest()


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


class SubjectCache:
    """A folder of preprocessed subjects (see the module docstring).

    Example:
        >>> import tempfile
        >>> from torchpatch import ScalarImage
        >>> cache = SubjectCache(tempfile.mkdtemp())
        >>> subject = Subject(t1=ScalarImage(tensor=torch.ones(1, 2, 2, 2)), subject_id='a')
        >>> cached = cache.get_or_create(subject, None, lambda s: s)
        >>> cached['t1'].path.name, float(cached['t1'].data.sum()), cached['subject_id']
        ('t1.npy', 8.0, 'a')
    """

    def __init__(self, cache_dir: TypePath) -> None:
        self.root = Path(cache_dir).expanduser()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"cannot create the cache folder {str(cache_dir)!r}: {error}") from error

    def path(self, key: str) -> Path:
        """Folder of the entry ``key``."""
        return self.root / key

    def has(self, subject: Subject, transform: Callable[[Subject], Subject] | None) -> bool:
        """Whether ``subject`` preprocessed by ``transform`` has a finished entry (reading it needs no transform)."""
        return (self.path(subject_key(subject, transform)) / _MANIFEST).is_file()

    def load(self, key: str, original: Subject) -> Subject | None:
        """The cached subject, memory-mapped, or ``None`` when absent or unfinished."""
        folder = self.path(key)
        try:
            manifest = json.loads((folder / _MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if manifest.get("format") != _FORMAT:
            return None
        images: dict[str, Image] = {}
        for name, entry in manifest["images"].items():
            kind = LabelMap if entry["type"] == LABEL else ScalarImage
            image = kind(folder / f"{name}.npy", affine=np.array(entry["affine"]))
            if entry.get("index"):
                image.label_index = LabelIndex(folder / name)
            images[name] = image
        metadata = dict(original.metadata)
        metadata.update(manifest.get("metadata", {}))
        return original.with_images(images, **metadata)

    def store(self, key: str, subject: Subject, original: Subject) -> Subject:
        """Write ``subject`` (already preprocessed) atomically; return it memory-mapped."""
        temporary = self.root / f".partial-{key}-{uuid.uuid4().hex}"
        temporary.mkdir()
        try:
            entries = {}
            for name, image in subject.images.items():
                array = image.data.detach().cpu().numpy()
                np.save(temporary / f"{name}.npy", array, allow_pickle=False)
                index = image.type == LABEL and array.shape[0] == 1
                if index:
                    LabelIndex.build(array, temporary / name)
                entries[name] = {"type": image.type, "affine": image.affine.tolist(), "index": index}
            metadata = {k: v for k, v in subject.metadata.items() if _jsonable(v)}
            manifest = {"format": _FORMAT, "images": entries, "metadata": metadata}
            (temporary / _MANIFEST).write_text(json.dumps(manifest))
            try:
                os.rename(temporary, self.path(key))
            except OSError:
                # Another worker finished the same entry first: keep theirs.
                if not (self.path(key) / _MANIFEST).exists():
                    raise
        finally:
            if temporary.exists():
                shutil.rmtree(temporary, ignore_errors=True)
        loaded = self.load(key, original)
        if loaded is None:
            raise RuntimeError(f"cache entry {str(self.path(key))!r} for subject {subject.name!r} is unreadable")
        return loaded

    def get_or_create(
        self,
        subject: Subject,
        transform: Callable[[Subject], Subject] | None,
        prepare: Callable[[Subject], Subject],
    ) -> Subject:
        """The cached subject, computing it with ``prepare`` on a miss."""
        key = subject_key(subject, transform)
        cached = self.load(key, subject)
        if cached is not None:
            return cached
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.path(key))  # a folder without manifest: an interrupted write
        return self.store(key, prepare(subject), subject)


__all__ = ["LabelIndex", "SubjectCache", "subject_key"]
