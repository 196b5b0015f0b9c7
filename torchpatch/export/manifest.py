"""The manifest of an export: written last, read back to decide whether a rerun can reuse the export.

``manifest.json`` records the format, the options
(:meth:`~torchpatch.export.options.ExportOptions.parameters`), the sources of
every subject, every patch (its files and location) and every file with its
size. A folder whose manifest has the same format, options and sources, and
whose files are all still there with their sizes, is a finished export of
the same data (:func:`is_reusable`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._version import __version__
from ..io.atomic import write_atomic

#: Version of the manifest's layout: a manifest of another version is never reused.
FORMAT_VERSION = 1
#: The manifest's file name in the export folder.
MANIFEST_NAME = "manifest.json"


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a finished export in ``folder``, or ``None`` (no folder, no manifest, another file).

    Example:
        >>> import tempfile
        >>> read_manifest(Path(tempfile.mkdtemp())) is None
        True
    """
    try:
        content = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if isinstance(content, dict) and content.get("format") == "torchpatch-export":
        return content
    return None


def write_manifest(
    folder: Path,
    parameters: dict[str, Any],
    sources: list[Any],
    patches: list[dict[str, Any]],
    outputs: dict[str, str],
    files: dict[str, int],
) -> dict[str, Any]:
    """Write the manifest of the export in ``folder`` (atomically) and return it as read back.

    Args:
        folder: The export folder (its partial folder while it is written).
        parameters: The options.
        sources: One fingerprint per subject.
        patches: One entry per patch: ``subject``, ``index``, ``location``
            and its files.
        outputs: The shared files (``coco``, ``boxes``, ``points``).
        files: Every file written (relative path: size in bytes).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> manifest = write_manifest(folder, {'patch_size': 4}, [], [], {}, {})
        >>> manifest['num_patches'], read_manifest(folder) == manifest
        (0, True)
    """
    manifest = {
        "format": "torchpatch-export",
        "format_version": FORMAT_VERSION,
        "torchpatch_version": __version__,
        "parameters": parameters,
        "sources": sources,
        "num_patches": len(patches),
        "outputs": outputs,
        "patches": patches,
        "files": files,
    }
    text = json.dumps(manifest, indent=1, allow_nan=False) + "\n"
    write_atomic(folder / MANIFEST_NAME, text)
    result: dict[str, Any] = json.loads(text)
    return result


def is_reusable(manifest: dict[str, Any], folder: Path, parameters: dict[str, Any], sources: list[Any]) -> bool:
    """Whether ``manifest`` has this format, ``parameters`` and ``sources``, and every file it lists is intact.

    A file is intact when it is still there with the size the manifest
    records; paths that lead out of ``folder`` make the manifest unusable.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> manifest = write_manifest(folder, {'patch_size': 4}, [], [], {}, {'images/a.png': 3})
        >>> is_reusable(manifest, folder, {'patch_size': 4}, [])  # images/a.png is missing
        False
    """
    expected = json.loads(json.dumps({"parameters": parameters, "sources": sources}))
    if manifest.get("format_version") != FORMAT_VERSION or not isinstance(manifest.get("num_patches"), int):
        return False
    if manifest.get("parameters") != expected["parameters"] or manifest.get("sources") != expected["sources"]:
        return False
    files = manifest.get("files")
    if not isinstance(files, dict):
        return False
    root = folder.resolve()
    for relative, size in files.items():
        path = (root / str(relative)).resolve()
        if root not in path.parents:  # the manifest is read from disk: no escaping the folder
            return False
        try:
            if path.stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def check_replaceable(target: Path, manifest: dict[str, Any] | None) -> None:
    """Refuse to replace ``target`` unless it is missing, empty or an export (``manifest`` read from it).

    Raises:
        ValueError: When ``target`` is a file, or a folder holding files but
            no export.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / 'notes.txt').write_text('keep me')
        >>> check_replaceable(folder, None)
        Traceback (most recent call last):
        ...
        ValueError: output_dir '...' holds files but no torchpatch export (manifest.json); ...
    """
    if not target.exists() or manifest is not None:
        return
    if not target.is_dir():
        raise ValueError(f"output_dir {str(target)!r} is a file; pass a folder")
    if any(target.iterdir()):
        raise ValueError(
            f"output_dir {str(target)!r} holds files but no torchpatch export ({MANIFEST_NAME}); an export replaces "
            f"its whole folder, so choose a new or empty folder"
        )


__all__ = ["FORMAT_VERSION", "MANIFEST_NAME", "check_replaceable", "is_reusable", "read_manifest", "write_manifest"]
