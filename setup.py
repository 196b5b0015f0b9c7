"""The compiled part of torchpatch: two optional C extensions (the metadata is in pyproject.toml).

``torchpatch.io.transpose`` reorders decoded volumes into C order 1.4-6x faster
than torch's transposes, and copies the boxes of the Queue's batches out of the
decode-once cache's memory maps (tests/test_io_transpose.py checks it is built). It is optional: where it
cannot be built (no C compiler), torchpatch installs without it and reorders
with torch (``torchpatch.io.reorder_backend()`` says which).

``torchpatch.io.gzsplit`` lets a second thread decode the second part of a
large ``.nii.gz`` while libdeflate decodes the first (torchpatch/io/libdeflate.py);
without it such files are decoded on one thread.
"""

import sys

from setuptools import Extension, setup

FLAGS = [] if sys.platform == "win32" else ["-O3"]  # the tile loops must be unrolled

setup(
    ext_modules=[
        Extension(
            "torchpatch.io.transpose",
            sources=["torchpatch/io/transpose.c"],
            extra_compile_args=FLAGS,
            optional=True,
        ),
        Extension(
            "torchpatch.io.gzsplit",
            sources=["torchpatch/io/gzsplit.c"],
            extra_compile_args=FLAGS,
            optional=True,
        ),
    ]
)
