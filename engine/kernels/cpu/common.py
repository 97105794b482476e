"""CPU kernels for the common layers: float-to-row conversion and row scatter-adds.

Accumulating into repeated rows (Embed's weight gradient, BatchReindex's
bottom gradient) needs a loop, and `np.add.at` is slow; these loops run in numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _rows_from_floats(values: np.ndarray, limit: int, out: np.ndarray) -> int:
    for i in range(values.shape[0]):
        v = values[i]
        if not (v > -1.0 and v < limit):  # NaN fails too
            return i
        out[i] = np.int64(v)  # truncation toward zero, as C's (int) cast
    return -1


def rows_from_floats(values: np.ndarray, limit: int) -> tuple[np.ndarray, int]:
    """Row indices from float-coded integers, truncated as Caffe's int cast does.

    Returns (rows, -1), or (partial rows, position) for the first value whose
    truncation falls outside [0, limit).
    """
    flat = np.ascontiguousarray(values).reshape(-1)
    rows = np.empty(flat.size, dtype=np.int64)
    bad = _rows_from_floats(flat, int(limit), rows) if flat.size else -1
    return rows, int(bad)


@njit(cache=True)
def _scatter_add_rows(rows: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
    for i in range(rows.shape[0]):
        r = rows[i]
        for j in range(src.shape[1]):
            dst[r, j] += src[i, j]


def scatter_add_rows(rows: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
    """dst[rows[i]] += src[i] for every i, repeated rows accumulating; `dst` is C-contiguous."""
    if rows.size == 0 or src.size == 0:
        return
    if not dst.flags.c_contiguous:
        raise ValueError("scatter_add_rows needs a C-contiguous destination")
    src2 = np.ascontiguousarray(src, dtype=dst.dtype).reshape(rows.shape[0], -1)
    _scatter_add_rows(rows.astype(np.int64, copy=False), src2, dst.reshape(dst.shape[0], -1))
