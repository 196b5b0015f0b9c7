"""Fingerprints of sources: what a cache entry or an export was made from.

One description of where an image's voxels come from, used to key the
decode-once cache (:func:`subject_key`) and to tell whether an export
can be reused:

- a file not yet loaded: its resolved path, size and modification time
  (a DICOM folder also lists its files by name, size and date), so a file
  rewritten in place gives a new fingerprint without being read;
- voxels in memory (a tensor, or a file's voxels that may since have been
  transformed or cropped): a SHA-1 of their shape, dtype and bytes;
- and in both cases the class, the type, the dtype asked for when reading,
  and the affine.

Fingerprints are plain JSON-able dicts, so they can be stored in manifests
and compared after a round trip; :func:`digest` hashes any of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import stat
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..image import Image
from ..subject import Subject
from ..typing import TypePath

#: Fingerprints of files already seen, by (path as given, device, inode, size, modification time).
_FILES: dict[tuple[str, int, int, int, int], dict[str, Any]] = {}

#: At most this many are kept (then forgotten all at once).
FILES_KEPT = 4096

#: Changes whenever what goes into :func:`subject_key` changes, so old entries are not reused.
KEY_VERSION = 2


def sha1(*chunks: bytes | memoryview) -> str:
    """Hex SHA-1 of the concatenated ``chunks`` (not for security: a content name).

    Example:
        >>> sha1(b'ab', b'c') == sha1(b'abc')
        True
    """
    hasher = hashlib.sha1(usedforsecurity=False)
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.hexdigest()


def tensor_chunks(tensor: torch.Tensor | None) -> tuple[bytes, memoryview]:
    """A header (shape, dtype) and the raw bytes of ``tensor``, to hash without copying the voxels.

    Example:
        >>> header, data = tensor_chunks(torch.zeros(2, dtype=torch.int16))
        >>> header, len(data)
        (b'(2,)|torch.int16|', 4)
    """
    if tensor is None:
        return b"none", memoryview(b"")
    data = tensor.detach().cpu().contiguous()
    header = f"{tuple(data.shape)}|{data.dtype}|".encode()
    return header, data.reshape(-1).view(torch.uint8).numpy().data if data.numel() else memoryview(b"")


def file_fingerprint(path: TypePath) -> dict[str, Any]:
    """Resolved path, size and modification time of a file; a folder also lists its files.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'a.npy'
        >>> _ = path.write_bytes(b'1234')
        >>> sorted(file_fingerprint(path)), file_fingerprint(path)['size']
        (['mtime_ns', 'path', 'size'], 4)
    """
    # A file seen before with the same identity, size and date has the same fingerprint
    # (resolving the path is most of the cost; a relinked path names another inode).
    known = _file_identity(path)
    if known in _FILES:
        return dict(_FILES[known])
    resolved = Path(path).resolve()
    status = resolved.stat()
    entry: dict[str, Any] = {"path": str(resolved), "size": status.st_size, "mtime_ns": status.st_mtime_ns}
    if known is not None:
        if len(_FILES) >= FILES_KEPT:
            _FILES.clear()
        _FILES[known] = dict(entry)
    if resolved.is_dir():  # a DICOM series: files rewritten in place do not change the folder's date
        listing = []
        for child in sorted(os.scandir(resolved), key=lambda child: child.name):
            if child.is_file():
                child_status = child.stat()
                listing.append((child.name, child_status.st_size, child_status.st_mtime_ns))
        entry["files_sha1"] = sha1(json.dumps(listing).encode())
    return entry


def _file_identity(path: TypePath) -> tuple[str, int, int, int, int] | None:
    """A file's path, device, inode, size and modification time (one ``os.stat``); ``None`` for a folder or no file."""
    try:
        seen = os.stat(path)
    except OSError:
        return None
    if stat.S_ISDIR(seen.st_mode):
        return None
    return (os.fspath(path), seen.st_dev, seen.st_ino, seen.st_size, seen.st_mtime_ns)


def image_fingerprint(image: Image) -> dict[str, Any]:
    """Where the voxels of ``image`` come from (see the module docstring); reads no voxels from disk.

    Example:
        >>> from torchpatch import ScalarImage
        >>> a = ScalarImage(tensor=torch.zeros(1, 2, 2, 1))
        >>> b = ScalarImage(tensor=torch.zeros(1, 2, 2, 1))
        >>> image_fingerprint(a) == image_fingerprint(b), sorted(image_fingerprint(a))
        (True, ['affine', 'class', 'dtype', 'sha1', 'type'])
    """
    requested = image.requested_dtype  # the cast applied when reading: part of the voxels
    entry: dict[str, Any] = {
        "class": type(image).__name__,
        "type": image.type,
        "dtype": None if requested is None else str(requested),
    }
    if image.path is not None and not image.is_loaded:
        paths = image.path if isinstance(image.path, list) else [image.path]
        entry["files"] = [file_fingerprint(path) for path in paths]
    else:  # a tensor, or voxels that may differ from the file (transformed, cropped)
        entry["sha1"] = sha1(*tensor_chunks(image.data))
    entry["affine"] = np.asarray(image.affine, dtype=np.float64).tolist()
    return entry


def digest(fingerprint: Any, *chunks: bytes | memoryview) -> str:
    """Hex SHA-1 of a JSON-able fingerprint (keys sorted) followed by ``chunks``.

    Example:
        >>> digest({'b': 1, 'a': [2.0]}) == digest({'a': [2.0], 'b': 1}), len(digest({}))
        (True, 40)
    """
    return sha1(json.dumps(fingerprint, sort_keys=True).encode(), *chunks)


#: Transforms already warned about (by their structural fingerprint): warn once each.
_WARNED: set[str] = set()

#: Depth of the walk through an unpicklable transform's attributes and captured values.
_DEPTH = 6


def structure(value: Any, depth: int = _DEPTH) -> Any:
    """A JSON-able description of ``value`` that is the same in every run: for what pickle cannot store.

    Functions (lambdas, closures) are described by their module, name,
    bytecode, constants, captured values and the simple module-level values
    they read; other objects by their class and attributes; anything else by
    its ``repr`` with memory addresses removed.

    Example:
        >>> structure(lambda s: s) == structure(lambda s: s), structure(lambda s: s) == structure(lambda s: None)
        (True, False)
    """
    if depth <= 0:
        return "..."
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [structure(item, depth - 1) for item in value]
    if isinstance(value, dict):
        return {str(key): structure(item, depth - 1) for key, item in value.items()}
    with contextlib.suppress(Exception):  # what pickle cannot store is described below
        return {"pickle": sha1(pickle.dumps(value, protocol=4))}
    code = getattr(value, "__code__", None)
    if code is not None:
        cells = [cell.cell_contents for cell in (getattr(value, "__closure__", None) or ()) if _filled(cell)]
        module_globals = getattr(value, "__globals__", {})
        read = {name: module_globals[name] for name in code.co_names if _simple(module_globals.get(name))}
        return {
            "function": f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}",
            "code": _code(code),
            "captured": structure(cells, depth - 1),
            "globals": structure(read, depth - 1),
            "defaults": structure(getattr(value, "__defaults__", None), depth - 1),
        }
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict):
        return {
            "class": f"{type(value).__module__}.{type(value).__qualname__}",
            "state": structure(attributes, depth - 1),
        }
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def _simple(value: Any) -> bool:
    return isinstance(value, (bool, int, float, str, tuple)) and not isinstance(value, type)


def _code(code: Any) -> list[Any]:
    constants = [_code(c) if hasattr(c, "co_code") else repr(c) for c in code.co_consts]
    return [code.co_code.hex(), constants, list(code.co_names)]


def transform_fingerprint(transform: Callable[[Subject], Subject] | None) -> bytes:
    """The pickled ``transform``; ``b'none'`` for ``None``.

    A transform pickle cannot store (a lambda, a closure) is described by
    :func:`structure` instead, and a warning says so once: the description
    covers its code and the values it captures, not everything it may read.

    Example:
        >>> transform_fingerprint(None)
        b'none'
    """
    if transform is None:
        return b"none"
    try:
        return pickle.dumps(transform, protocol=4)
    except Exception:  # noqa: BLE001 - lambdas and closures cannot be pickled
        described = json.dumps(structure(transform), sort_keys=True).encode()
        key = sha1(described)
        if key not in _WARNED:
            _WARNED.add(key)
            warnings.warn(
                f"the dataset transform {transform!r} cannot be pickled (a lambda or a closure), so its cache key is "
                f"made from its code and the values it captures: a change to anything else it reads will not be "
                f"noticed. Define it as a module-level function or a Transform class to key the cache exactly",
                UserWarning,
                stacklevel=4,
            )
        return described


def source_key(subject: Subject) -> str:
    """Hash of ``subject``'s image fingerprints alone: the same for every transform of the same sources.

    Example:
        >>> from torchpatch import ScalarImage
        >>> s = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)))
        >>> source_key(s) == source_key(s.with_images({})), len(source_key(s))
        (True, 40)
    """
    images = {name: image_fingerprint(image) for name, image in subject.images.items()}
    return digest({"torchpatch-cache": KEY_VERSION, "images": images})


def subject_key(subject: Subject, transform: Callable[[Subject], Subject] | None) -> str:
    """Cache key of ``subject`` preprocessed by ``transform``: the fingerprints of its images and the transform.

    Kept per identity of the images (their files' paths, inodes, sizes
    and dates, and the rest of what :func:`image_fingerprint` reads)
    and the transform's fingerprint: a Queue asks for the key of every
    cached subject every epoch, and building and hashing the fingerprints
    again cost 13 of the 18 us of a two-image subject.

    Example:
        >>> from torchpatch import ScalarImage
        >>> s = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)))
        >>> subject_key(s, None) == subject_key(s, None), len(subject_key(s, None))
        (True, 40)
    """
    pickled = transform_fingerprint(transform)
    identity = _identity(subject)
    if identity is not None:
        known = _KEYS.get((identity, pickled))
        if known is not None:
            return known
    images = {name: image_fingerprint(image) for name, image in subject.images.items()}
    key = digest({"torchpatch-cache": KEY_VERSION, "images": images}, pickled)
    if identity is not None:
        if len(_KEYS) >= FILES_KEPT:
            _KEYS.clear()
        _KEYS[identity, pickled] = key
    return key


#: Subject keys by the identity of the subject's images and the transform's fingerprint (:func:`subject_key`).
_KEYS: dict[tuple[Any, bytes], str] = {}


def _identity(subject: Subject) -> tuple[Any, ...] | None:
    """Everything :func:`image_fingerprint` reads of each image, cheaply; ``None`` unless every image is an unread file.

    A file stands for its :func:`_file_identity` (what :func:`file_fingerprint`
    keeps its fingerprint by); folders and voxels (hashed) have no such identity.
    """
    parts: list[Any] = []
    for name, image in subject.images.items():
        if image.path is None or image.is_loaded:
            return None
        files = tuple(_file_identity(path) for path in (image.path if isinstance(image.path, list) else [image.path]))
        if None in files:
            return None
        affine = np.asarray(image.affine, dtype=np.float64)
        requested = image.requested_dtype
        parts.append((name, type(image).__name__, image.type, requested, files, affine.tobytes()))
    return tuple(parts)


__all__ = [
    "KEY_VERSION",
    "digest",
    "file_fingerprint",
    "image_fingerprint",
    "sha1",
    "source_key",
    "structure",
    "subject_key",
    "tensor_chunks",
    "transform_fingerprint",
]
