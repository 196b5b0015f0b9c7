"""Fuzz the compiled extensions (``torchpatch/io/gzsplit.c``, ``transpose.c``) under AddressSanitizer.

Not collected by pytest (a few minutes; ``make fuzz`` runs it): the script
builds its own copies of both sources with ``-fsanitize=address,undefined``
in a temporary folder, then runs itself again with the sanitizer runtimes
preloaded and alternates two kinds of cases:

- the deflate decoder: streams of every level and strategy (bytes like
  scans, text, noise), damaged, truncated, cut at the front or left whole,
  with ``decode`` and ``find_block`` called from random bits into buffers
  of random sizes, and whole streams decoded from a found block into
  buffers of their exact size or a little less;
- the box copies: ``write_boxes``, ``blend_boxes``, ``copy_boxes`` (C order
  and the files' order), ``reverse`` and ``label_runs`` called directly,
  past the Python checks, with buffers, strides, boxes and sizes drawn near
  and past their edges.

Any read or write outside a buffer aborts with the sanitizer's report,
which names the case's seed::

    .venv/bin/python tests/fuzz_extensions.py --seconds 300 --seed 0

The whole suite runs against sanitized builds of both extensions the same
way: in a clean checkout (``git worktree add``), build them with
``setup.py build_ext --inplace``, compile ``gzsplit.c`` and
``transpose.c`` over them with the flags of :func:`build`, and run
``pytest tests`` with ``LD_PRELOAD`` and ``ASAN_OPTIONS`` as
:func:`main` sets them (on 2026-12-07: 3 146 passed, no report; the two
``test_steady_heap`` tests fail there, as the sanitizer's allocator
replaces glibc's).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

SOURCES = Path(__file__).resolve().parent.parent / "torchpatch" / "io"
STRATEGIES = (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED, zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE, zlib.Z_FIXED)


def build(folder: Path) -> list[str]:
    """Compile the sanitized copies of both extensions into ``folder``; the runtimes to preload."""
    include = sysconfig.get_paths()["include"]
    flags = ["-shared", "-fPIC", "-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"]
    for name in ("gzsplit", "transpose"):
        target = folder / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
        source = str(SOURCES / f"{name}.c")
        command = ["gcc", *flags, "-fno-sanitize-recover=undefined", f"-I{include}", source, "-o", str(target), "-lm"]
        subprocess.run(command, check=True)
    names = ("libasan.so", "libubsan.so")
    return [
        subprocess.run(["gcc", f"-print-file-name={n}"], check=True, capture_output=True, text=True).stdout.strip()
        for n in names
    ]


def payload(rng: np.random.Generator, size: int) -> bytes:
    """``size`` bytes of one of four kinds: noise, runs like a label map, a smooth int16 signal, words."""
    kind = int(rng.integers(0, 4))
    if kind == 0:
        return rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    if kind == 1:
        runs = rng.integers(0, 40, size // 64 + 1).repeat(64)[:size]
        return (runs + rng.integers(0, 3, size)).astype(np.uint8).tobytes()
    if kind == 2:
        return np.cumsum(rng.normal(0, 3, size // 2 + 1)).astype(np.int16).tobytes()[:size]
    words = (b"tissue", b"air", b"bone", b"\x00\x00\x00\x00", b"\xff\x7f")
    return b"".join(words[i] for i in rng.integers(0, len(words), size // 4 + 1))[:size]


def deflate_case(gzsplit: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 300_000))
    strategy = STRATEGIES[int(rng.integers(0, len(STRATEGIES)))]
    compressor = zlib.compressobj(int(rng.integers(0, 10)), zlib.DEFLATED, -15, int(rng.integers(1, 10)), strategy)
    stream = np.frombuffer(compressor.compress(payload(rng, size)) + compressor.flush(), np.uint8).copy()
    bits = 8 * len(stream)
    action = int(rng.integers(0, 6))
    if action >= 4:  # a whole stream from a found block, into a buffer of about its size
        found = gzsplit.find_block(stream, int(rng.integers(0, bits + 1)), bits, np.empty(size + 64, np.uint16))
        if found is not None:
            symbols = np.empty(int(rng.integers(max(0, size - 70_000), size + 65)), np.uint16)
            stop = 0 if action == 4 else int(rng.integers(found[0], bits + 1))
            result = gzsplit.decode(stream, found[0], symbols, 0, np.zeros(1, np.int64), stop)
            assert result is None or result[1] <= len(symbols), (seed, result)
        return
    if action >= 1 and len(stream):
        flips = int(rng.integers(1, 16))
        stream[rng.integers(0, len(stream), flips)] ^= rng.integers(1, 256, flips).astype(np.uint8)
    if action == 2:
        stream = stream[: int(rng.integers(0, len(stream) + 1))].copy()
    if action == 3 and len(stream) > 10:
        stream = stream[int(rng.integers(0, len(stream))) :].copy()
    bits = 8 * len(stream)
    symbols = np.empty(int(rng.integers(0, 2 * size + 200)), np.uint16)
    bit = int(rng.integers(0, bits + 1))
    count = int(rng.integers(0, len(symbols) + 1)) if rng.integers(0, 3) == 0 else 0
    stop = int(rng.integers(0, bits + 1)) if rng.integers(0, 2) else 0
    try:
        result = gzsplit.decode(stream, bit, symbols, count, np.zeros(1, np.int64), stop)
        if result is not None:
            assert result[1] <= len(symbols), (seed, result)
            if result[1] > count:
                window = rng.integers(0, 256, 32768, dtype=np.uint8)
                gzsplit.resolve(symbols[count : result[1]], window, np.empty(result[1] - count, np.uint8))
        last = min(bits, bit + int(rng.integers(0, bits + 1)))
        found = gzsplit.find_block(stream, bit, last, symbols)
        assert found is None or found[2] <= len(symbols), (seed, found)
    except ValueError:
        pass  # refused arguments (a count past the buffer, a marker past the window): what the checks are for


def near(rng: np.random.Generator, edge: int) -> int:
    """0, a small number, ``edge`` itself or anything up to a little past it."""
    kind = int(rng.integers(0, 6))
    if kind == 0:
        return 0
    if kind == 1:
        return int(rng.integers(0, 4))
    if kind == 2:
        return edge
    return int(rng.integers(0, max(edge, 1) + 8))


def boxes_case(transpose: Any, seed: int) -> None:
    """Every entry point of ``transpose.c`` once, with arguments near and past the buffers' edges."""
    rng = np.random.default_rng(seed)
    calls = []
    out, values = np.zeros(int(rng.integers(0, 3000)), np.uint8), np.zeros(int(rng.integers(0, 3000)), np.uint8)
    align = (1, 4)[int(rng.integers(0, 2))]
    strides = [near(rng, 600) // align * align for _ in range(4)]
    boxes = [
        (near(rng, len(out)), near(rng, len(values)), near(rng, 8), near(rng, 8), near(rng, 200) // align * align)
        for _ in range(int(rng.integers(0, 6)))
    ]
    calls.append(lambda: transpose.write_boxes(out, values.tobytes(), boxes, *strides, 1))
    out32, values32 = np.zeros(int(rng.integers(0, 800)), np.float32), np.zeros(int(rng.integers(0, 800)), np.float32)
    strides32 = [near(rng, 600) // 4 * 4 for _ in range(4)]
    blends = []
    for _ in range(int(rng.integers(0, 5))):
        a, b, c = near(rng, 6), near(rng, 6), near(rng, 40) // 4 * 4
        ratio = np.ones(int(rng.integers(0, max(1, a * b * c // 4 + 4))), np.float32)
        blends.append((ratio, near(rng, out32.nbytes) // 4 * 4, near(rng, values32.nbytes) // 4 * 4, a, b, c))
    calls.append(lambda: transpose.blend_boxes(out32, values32.tobytes(), blends, *strides32, 1))
    size = (1, 2, 4, 8)[int(rng.integers(0, 4))]
    a, b, c, channels, count = near(rng, 5), near(rng, 5), near(rng, 5), near(rng, 3), int(rng.integers(0, 4))
    target = np.zeros(int(rng.integers(0, max(1, count * a * b * c * channels * size + 16))), np.uint8)
    items = []
    for _ in range(count):
        si, sj, sk = near(rng, 7), near(rng, 7), near(rng, 7)
        source = np.zeros(int(rng.integers(0, max(1, channels * si * sj * sk * size + 16))), np.uint8)
        items.append((source, si, sj, sk, near(rng, si), near(rng, sj), near(rng, sk)))
    file_order = bool(rng.integers(0, 2))
    scratch = np.zeros(int(rng.integers(0, 4096)), np.uint8) if file_order and rng.integers(0, 2) else None
    calls.append(lambda: transpose.copy_boxes(target, items, a, b, c, channels, size, file_order, scratch, 1))
    si, sj, sk = near(rng, 9), near(rng, 9), near(rng, 9)
    if rng.integers(0, 64) == 0:  # now and then a volume of 4 MiB or more: the one pass's streaming stores
        si, sj, sk = 256 + near(rng, 9), 256 + near(rng, 9), 70 + near(rng, 9)
    volume = [np.zeros(int(rng.integers(0, si * sj * sk * size + 8)), np.uint8) for _ in range(3)]
    if rng.integers(0, 3) == 0:  # out inside the source's memory, at any offset (two passes), else apart (one)
        volume[1] = volume[0][int(rng.integers(0, len(volume[0]) + 1)) :]
    elif rng.integers(0, 2):  # a scratch of a few planes (the one pass), or of anything
        volume[2] = np.zeros(int(rng.integers(0, 4 * max(1, si * sk * size) + 8)), np.uint8)
    calls.append(lambda: transpose.reverse(*volume, si, sj, sk, size))
    labels = rng.integers(0, 5, int(rng.integers(0, 300))).astype(np.uint8)
    counts = np.zeros(int(rng.integers(0, 10)), np.int64)
    calls.append(lambda: transpose.label_runs(labels.tobytes(), 1, False, int(rng.integers(-2, 3)), counts))
    for call in calls:
        with contextlib.suppress(ValueError, TypeError):  # refused arguments: what the checks are for
            call()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to fuzz (default 120)")
    parser.add_argument("--seed", type=int, default=0, help="the first case's seed (each case adds one)")
    parser.add_argument("--in-sanitized", metavar="FOLDER", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.in_sanitized is None:
        with tempfile.TemporaryDirectory(prefix="torchpatch-fuzz-") as folder:
            preload = build(Path(folder))
            environment = {**os.environ, "LD_PRELOAD": ":".join(preload), "ASAN_OPTIONS": "detect_leaks=0"}
            command = [sys.executable, __file__, "--seconds", str(arguments.seconds), "--seed", str(arguments.seed)]
            sys.exit(subprocess.run([*command, "--in-sanitized", folder], env=environment, check=False).returncode)
    sys.path.insert(0, arguments.in_sanitized)
    import gzsplit  # the sanitized copies
    import transpose

    seed, start, cases = arguments.seed, time.monotonic(), {"deflate": 0, "boxes": 0}
    while time.monotonic() - start < arguments.seconds:
        deflate_case(gzsplit, seed)
        # The box cases are quick: several for each deflate case.
        for offset in range(20):
            boxes_case(transpose, seed * 20 + offset)
        cases["deflate"] += 1
        cases["boxes"] += 20
        seed += 1
    print(f"{cases['deflate']} deflate and {cases['boxes']} box cases (seeds from {arguments.seed}) without a report")


if __name__ == "__main__":
    main()
