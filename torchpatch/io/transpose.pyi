from typing import Any

import numpy.typing as npt

_Buffer = npt.NDArray[Any] | bytes | bytearray | memoryview

def reverse(
    source: _Buffer, out: _Buffer, scratch: _Buffer, size_i: int, size_j: int, size_k: int, itemsize: int, /
) -> None: ...
def copy_boxes(
    out: _Buffer,
    boxes: list[tuple[_Buffer, int, int, int, int, int, int]],
    size_a: int,
    size_b: int,
    size_c: int,
    channels: int,
    itemsize: int,
    file_order: bool = False,
    scratch: _Buffer | None = None,
    threads: int = 1,
    /,
) -> None: ...
def write_boxes(
    out: _Buffer,
    values: _Buffer,
    boxes: list[tuple[int, int, int, int, int]],
    out_plane: int,
    out_row: int,
    values_plane: int,
    values_row: int,
    threads: int = 1,
    /,
) -> None: ...
def blend_boxes(
    out: _Buffer,
    values: _Buffer,
    boxes: list[tuple[_Buffer, int, int, int, int, int]],
    out_plane: int,
    out_row: int,
    values_plane: int,
    values_row: int,
    threads: int = 1,
    /,
) -> bool: ...
def team_init(path: str, /) -> bool: ...
def label_runs(source: _Buffer, itemsize: int, signed: bool, low: int, counts: _Buffer, /) -> bytearray | None: ...
