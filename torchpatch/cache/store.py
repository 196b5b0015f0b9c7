"""The cache folder: :class:`SubjectCache` reads and writes entries (layout in :mod:`torchpatch.cache`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..constants import LABEL
from ..image import Image
from ..io.atomic import atomic_folder, remove_dead_partials
from ..subject import Subject
from ..typing import TypePath
from ..utils.batches import image_class
from .fingerprint import source_key, subject_key
from .labels import CachedLabelMap, LabelIndex
from .metadata import decode_metadata, encode_metadata

#: Layout of an entry folder (the key's own version is fingerprint.KEY_VERSION): 2 since the label index
#: holds runs of voxels (``.runs.npy``), not positions; 3 since the manifest's metadata keep their types
#: (:mod:`~torchpatch.cache.metadata`). Format 2 entries (plain JSON metadata) read the same.
_FORMAT = 3
_FORMATS_READ = (2, 3)
_MANIFEST = "manifest.json"

#: Folder of the use markers: ``.sources/<source key>/<entry key>``, touched when the entry is used.
_SOURCES = ".sources"

#: Entries kept per subject (its sources), the most recently used: older transforms' entries go.
VERSIONS_KEPT = 3


class SubjectCache:
    """A folder of preprocessed subjects (see the module docstring).

    Example:
        >>> import tempfile, torch
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
        remove_dead_partials(self.root)  # entries whose writer was killed

    def __getstate__(self) -> dict[str, Any]:
        # What this process has parsed stays here: a worker parses its own.
        return {"root": self.root}

    @property
    def _known(self) -> tuple[dict[str, tuple[int, dict[str, Image], dict[str, Any]]], set[str]]:
        """Entries parsed by this process (key -> manifest date, images, metadata) and those marked used.

        Made on first use, in whichever process: after ``__init__``, after
        unpickling, or on an instance made without either.
        """
        if "_entries" not in self.__dict__:
            self._entries: dict[str, tuple[int, dict[str, Image], dict[str, Any]]] = {}
            self._marked: set[str] = set()
        return self._entries, self._marked

    def path(self, key: str) -> Path:
        """Folder of the entry ``key``."""
        return self.root / key

    def has(self, subject: Subject, transform: Callable[[Subject], Subject] | None) -> bool:
        """Whether ``subject`` preprocessed by ``transform`` has a finished entry (reading it needs no transform)."""
        return (self.path(subject_key(subject, transform)) / _MANIFEST).is_file()

    def load(self, key: str, original: Subject) -> Subject | None:
        """The cached subject, memory-mapped, or ``None`` when absent or unfinished.

        The manifest is parsed once per process and entry version (its
        modification time): a Queue asks for every cached subject again each
        epoch, and the images keep the headers they have read. Each call
        returns new image objects (their metadata and affine copied), as
        reading the entry afresh would.
        """
        folder = self.path(key)
        entries, marked = self._known
        try:
            stamp = os.stat(folder / _MANIFEST).st_mtime_ns
        except OSError:
            entries.pop(key, None)
            return None
        entry = entries.get(key)
        if entry is None or entry[0] != stamp:
            parsed = self._parse(folder)
            if parsed is None:
                return None
            entry = (stamp, *parsed)
            entries[key] = entry
        _, images, stored = entry
        copies = {}
        for name, image in images.items():
            copies[name] = image.replica()  # an affine edited in place stays in that copy
        metadata = dict(original.metadata)
        metadata.update(stored)
        if key not in marked:
            self._mark_used(original, key)
            marked.add(key)
        return original.with_images(copies, **metadata)

    def _parse(self, folder: Path) -> tuple[dict[str, Image], dict[str, Any]] | None:
        """The images and metadata of the entry in ``folder``, or ``None`` when unreadable."""
        try:
            manifest = json.loads((folder / _MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if manifest.get("format") not in _FORMATS_READ:
            return None
        images: dict[str, Image] = {}
        for name, entry in manifest["images"].items():
            path, affine = folder / f"{name}.npy", np.array(entry["affine"])
            if entry["type"] == LABEL:
                index = LabelIndex(folder / name) if entry.get("index") else None
                images[name] = CachedLabelMap(path, affine=affine, label_index=index)
            else:
                images[name] = image_class(entry["type"])(path, affine=affine)
            with contextlib.suppress(Exception):
                # Read once here, kept by every copy handed out (a broken file still fails where it is read).
                images[name].spatial_shape  # noqa: B018
        try:
            metadata = decode_metadata(dict(manifest.get("metadata", {})))
        except (KeyError, TypeError, ValueError):
            return None
        return images, metadata

    def _mark_used(self, subject: Subject, key: str) -> Path:
        marker = self.root / _SOURCES / source_key(subject) / key
        with contextlib.suppress(OSError):
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        return marker

    def prune(self, subject: Subject, keep: int = VERSIONS_KEPT) -> list[Path]:
        """Remove the entries of ``subject``'s sources beyond the ``keep`` most recently used.

        Every change of the dataset transform writes new entries; this bounds
        what the old ones take (called after each write).

        Returns:
            The entry folders removed.

        Example:
            >>> import tempfile, torch
            >>> from torchpatch import ScalarImage
            >>> from torchpatch.transforms import Pad
            >>> cache = SubjectCache(tempfile.mkdtemp())
            >>> subject = Subject(t1=ScalarImage(tensor=torch.ones(1, 2, 2, 2)))
            >>> for width in (1, 2, 3):
            ...     _ = cache.get_or_create(subject, Pad(width), Pad(width))
            >>> len(cache.prune(subject, keep=1)), len([p for p in cache.root.iterdir() if p.name != '.sources'])
            (2, 1)
        """
        folder = self.root / _SOURCES / source_key(subject)
        try:
            markers = sorted(folder.iterdir(), key=lambda path: path.stat().st_mtime_ns, reverse=True)
        except OSError:
            return []
        removed = []
        for marker in markers[keep:]:
            # An entry being read by another process stays readable: its files are open or mapped.
            shutil.rmtree(self.path(marker.name), ignore_errors=True)
            with contextlib.suppress(OSError):
                marker.unlink()
            removed.append(self.path(marker.name))
        return removed

    def store(self, key: str, subject: Subject, original: Subject) -> Subject:
        """Write ``subject`` (already preprocessed) atomically; return it memory-mapped."""
        # A finished entry of another worker is kept (replace=False); partial
        # folders of writers that died are removed first.
        with atomic_folder(self.path(key), replace=False) as temporary:
            entries = {}
            for name, image in subject.images.items():
                array = image.data.detach().cpu().numpy()
                np.save(temporary / f"{name}.npy", array, allow_pickle=False)
                index = image.type == LABEL and array.shape[0] == 1 and not np.issubdtype(array.dtype, np.floating)
                if index:
                    LabelIndex.build(array, temporary / name)
                entries[name] = {"type": image.type, "affine": image.affine.tolist(), "index": index}
            manifest = {"format": _FORMAT, "images": entries, "metadata": encode_metadata(subject.metadata)}
            (temporary / _MANIFEST).write_text(json.dumps(manifest))
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
        stored = self.store(key, prepare(subject), subject)
        self.prune(subject)
        return stored


__all__ = ["VERSIONS_KEPT", "SubjectCache"]
