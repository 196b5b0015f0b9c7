"""Atomic writes: a reader sees the old file (or folder) or the new one, never half of one.

Everything is written under a hidden temporary name next to its target and
renamed onto it with :func:`os.replace` / :func:`os.rename`, which is atomic
within a file system. The temporary names carry the writer's process id::

    .scan.partial-4242-9f2c01ab.nii.gz     a file being written by process 4242
    .out.partial-4242-0d3e77c1/            a folder being written (cache entry, export)
    .out.old-4242-5be0a912/                the folder it replaces, while it is swapped

A writer killed with ``SIGKILL`` cannot clean up after itself, so the next
writer in the same folder removes the partial files and folders whose process
is gone (:func:`remove_dead_partials`; POSIX only, where ``os.kill(pid, 0)``
probes a process). There is no fsync (it cost about 7 ms a file here):
durability across a power loss is the file system's.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from ..typing import TypePath
from .paths import get_stem, get_suffix

#: ``.{name}.partial-{pid}-{token}{suffix}`` (or ``old``): a temporary name of this module.
_PARTIAL_NAME = re.compile(r"\..+\.(?:partial|old)-(?P<pid>\d+)-[0-9a-f]{8,32}(?:\.[A-Za-z0-9]+){0,2}")

#: Folders whose dead partials this process has already removed (see :func:`_sweep_once`).
_SWEPT: set[str] = set()


def _token() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def is_partial_name(name: str) -> bool:
    """Whether ``name`` is a temporary name made by this module.

    Example:
        >>> is_partial_name('.scan.partial-4242-9f2c01ab.nii.gz'), is_partial_name('scan.nii.gz')
        (True, False)
    """
    return _PARTIAL_NAME.fullmatch(name) is not None


def _writer_is_dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):  # alive under another user, or not a pid
        return False
    return False


def remove_dead_partials(parent: TypePath) -> list[Path]:
    """Delete the partial files and folders in ``parent`` whose writing process is gone.

    Those of live processes (this one included) are left alone. Does nothing
    outside POSIX, where a process cannot be probed.

    Returns:
        What was removed.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / '.a.npy.partial-999999999-0123abcd').write_bytes(b'half')  # no such process
        >>> [p.name for p in remove_dead_partials(folder)], list(folder.iterdir())
        (['.a.npy.partial-999999999-0123abcd'], [])
    """
    if os.name != "posix":
        return []
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return []
    for entry in entries:
        match = _PARTIAL_NAME.fullmatch(entry.name)
        if match is None or not _writer_is_dead(int(match.group("pid"))):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        removed.append(path)
    return removed


def _sweep_once(parent: Path) -> None:
    """:func:`remove_dead_partials` on the first write of this process into ``parent``.

    File writers can write thousands of files into one folder; listing it
    before each would make writing them quadratic. Partials left by a dead
    run are there before this process writes its first file.
    """
    key = os.fspath(parent.absolute())
    if key not in _SWEPT:
        _SWEPT.add(key)
        remove_dead_partials(parent)


@contextlib.contextmanager
def atomic_path(path: TypePath) -> Iterator[Path]:
    """A temporary path to write ``path`` through, for writers that need a path.

    The temporary name ends with the suffix of ``path`` (``.nii.gz`` too), so
    libraries that choose a format by suffix write the right one. On a normal
    exit the file is renamed onto ``path``; on an error it is deleted.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with atomic_path(folder / 'x.npy') as temporary:
        ...     _ = temporary.write_bytes(b'voxels')
        >>> [p.name for p in folder.iterdir()]
        ['x.npy']
    """
    target = Path(path)
    _sweep_once(target.parent)
    suffix = get_suffix(target)
    temporary = target.with_name(f".{get_stem(target)}.partial-{_token()}{suffix}")
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def write_atomic(path: TypePath, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file and :func:`os.replace`.

    ``str`` is written as UTF-8, line endings as given. The file gets the
    permissions a new file gets (``0o666`` less the umask).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'labels.txt'
        >>> write_atomic(path, '0 0.5 0.5 0.2 0.2\\n')
        >>> path.read_text()
        '0 0.5 0.5 0.2 0.2\\n'
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"write_atomic writes bytes or str, got {type(data).__name__}")
    target = Path(path)
    _sweep_once(target.parent)
    temporary = target.with_name(f".{target.name}.partial-{_token()}")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def partial_folder(target: TypePath) -> Path:
    """A new hidden folder next to ``target`` to write into, after removing those of dead writers.

    Creates the parent folders of ``target`` if needed. Finish with
    :func:`commit_folder` (or use :func:`atomic_folder`, which does both).

    Example:
        >>> import tempfile
        >>> temporary = partial_folder(Path(tempfile.mkdtemp()) / 'entry')
        >>> temporary.is_dir(), is_partial_name(temporary.name)
        (True, True)
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_partials(target.parent)
    temporary = target.parent / f".{target.name}.partial-{_token()}"
    temporary.mkdir()
    return temporary


def commit_folder(temporary: Path, target: TypePath, *, replace: bool = True) -> bool:
    """Rename the finished folder ``temporary`` onto ``target``.

    Args:
        temporary: A folder from :func:`partial_folder`.
        target: Where it goes.
        replace: What to do when ``target`` already exists (an empty
            folder is simply replaced): ``True`` swaps it out (it is renamed aside, then deleted;
            restored if the swap fails); ``False`` keeps it and deletes
            ``temporary`` (another writer finished the same entry first).

    Returns:
        Whether ``temporary`` became ``target``.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / 'entry'
        >>> first, second = partial_folder(target), partial_folder(target)
        >>> _ = (first / 'manifest.json').write_text('{}')
        >>> commit_folder(first, target), commit_folder(second, target, replace=False)
        (True, False)
    """
    target = Path(target)
    if not target.exists():
        os.rename(temporary, target)
        return True
    if not replace:
        try:
            os.rename(temporary, target)  # succeeds onto an empty folder
        except OSError:
            if not target.exists():
                raise
            shutil.rmtree(temporary, ignore_errors=True)
            return False
        return True
    old = target.parent / f".{target.name}.old-{_token()}"
    os.rename(target, old)
    try:
        os.rename(temporary, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return True


@contextlib.contextmanager
def atomic_folder(target: TypePath, *, replace: bool = True) -> Iterator[Path]:
    """A temporary folder that becomes ``target`` when the block ends without an error.

    On an error the temporary folder is deleted and ``target`` is untouched.
    ``replace`` is that of :func:`commit_folder`.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / 'entry'
        >>> with atomic_folder(target) as temporary:
        ...     _ = (temporary / 'manifest.json').write_text('{}')
        >>> [p.name for p in target.iterdir()]
        ['manifest.json']
    """
    temporary = partial_folder(target)
    try:
        yield temporary
        commit_folder(temporary, target, replace=replace)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


__all__ = [
    "atomic_folder",
    "atomic_path",
    "commit_folder",
    "is_partial_name",
    "partial_folder",
    "remove_dead_partials",
    "write_atomic",
]
