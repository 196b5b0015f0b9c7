"""Decode once: preprocessed subjects stored as memory-mappable ``.npy`` files.

Decompressing a ``.nii.gz`` and running the preprocessing costs far more than
cutting a patch. With a cache, each subject is decoded and transformed once;
later epochs open its ``.npy`` files memory-mapped, so a patch costs a read of
its own bytes. Label maps also get the runs of equal voxels of every non-zero
class (grouped by class), so the label sampler never scans the volume again::

    cache_dir/
      <key>/                       key = hash of sources + transform
        t1.npy                     (C, I, J, K), the transformed voxels
        seg.npy
        seg.runs.npy               (first flat index, length) of each run of a
                                   non-zero class, by class
        seg.classes.npy            rows (class, start, stop) into the runs
        manifest.json              written last: a folder without it is ignored;
                                   the metadata in it keep their types (tuples,
                                   int keys, dtypes: :mod:`~torchpatch.cache.metadata`)

The key (:func:`subject_key`) covers each source's fingerprint
(:mod:`~torchpatch.cache.fingerprint`: file path, size and modification time,
or the bytes of in-memory tensors, and the affine) and the pickled transform
(a lambda or closure, which pickle cannot store, is described by its code
and the values it captures, with a warning), so changing a file or the
preprocessing writes a new entry. Each subject keeps the entries of its
:data:`~torchpatch.cache.store.VERSIONS_KEPT` most recently used transforms
(``.sources/`` records their use); older ones are removed after a write. Entries are written to a hidden partial
folder and renamed (:mod:`torchpatch.io.atomic`), so an interrupted write is
never read, and the partial folders of killed writers are removed when the
cache is next opened or written. The transform must be deterministic: random
augmentation belongs in the Queue's ``patch_transform``.

Cached label maps are :class:`CachedLabelMap`, which own their
:class:`LabelIndex` (each class's runs of voxels, read through
:class:`RunPositions`) and drop it when their voxels change.
"""

from __future__ import annotations

from .fingerprint import image_fingerprint, subject_key
from .labels import CachedLabelMap, LabelIndex, RunPositions
from .store import SubjectCache

__all__ = ["CachedLabelMap", "LabelIndex", "RunPositions", "SubjectCache", "image_fingerprint", "subject_key"]
