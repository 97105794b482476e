"""CBLAS GEMM callable from numba kernels, so each worker thread can run its own single-threaded GEMM.

The convolution kernels split the batch over numba's threads and give each image's GEMM to the
BLAS from inside the loop, with the column buffer still in that core's cache. numba's own
`np.dot` calls SciPy's BLAS through a row-major/column-major swap that makes the small-M shapes of
convolution (M = output channels) about 1.5x slower, and it cannot accumulate (beta = 1). Here we
bind the CBLAS `sgemm`/`dgemm` of the OpenBLAS that NumPy's wheel bundles, by symbol name
through llvmlite, so kernels that call it can still be cached on disk.

`openblas_set_num_threads_local(1)` keeps each call on its calling thread: the parallelism comes
from the batch split, not from BLAS threads (which would oversubscribe the cores).
"""

from __future__ import annotations

import ctypes
import glob
import os

import numpy as np
from numba import njit, prange, types

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

_SGEMM, _DGEMM, _THREADS = "brewnet_cblas_sgemm", "brewnet_cblas_dgemm", "brewnet_blas_threads_local"

# (file name patterns next to numpy, sgemm symbol, dgemm symbol): the scipy-openblas64 builds
# that NumPy's wheels bundle on Linux, macOS and Windows
_CANDIDATES = (
    (("numpy.libs/libscipy_openblas64_*.so", "numpy/.dylibs/libscipy_openblas64_*.dylib",
      "numpy.libs/libscipy_openblas64_*.dll"), "scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"),
)


def _gemm_type(real: types.Type) -> types.Type:
    i64, i32 = types.int64, types.int32
    return types.void(i32, i32, i32, i64, i64, i64, real, types.voidptr, i64, types.voidptr, i64, real,
                      types.voidptr, i64)


_sgemm = types.ExternalFunction(_SGEMM, _gemm_type(types.float32))
_dgemm = types.ExternalFunction(_DGEMM, _gemm_type(types.float64))
_threads_local = types.ExternalFunction(_THREADS, types.int32(types.int32))


def _bind() -> str | None:
    """Register the BLAS symbols with llvmlite; the path of the library, or None if none was found."""
    import llvmlite.binding as llvm

    site = os.path.dirname(os.path.dirname(np.__file__))
    for patterns, s_name, d_name in _CANDIDATES:
        for pattern in patterns:
            for path in sorted(glob.glob(os.path.join(site, pattern))):
                try:
                    lib = ctypes.CDLL(path)
                    names = (s_name, d_name, "openblas_set_num_threads_local")
                    funcs = [getattr(lib, name) for name in names]
                except (OSError, AttributeError):
                    continue
                for symbol, func in zip((_SGEMM, _DGEMM, _THREADS), funcs, strict=True):
                    llvm.add_symbol(symbol, ctypes.cast(func, ctypes.c_void_p).value)
                return path
    return None


#: the bound BLAS library, or None: then callers must not use the kernels of this module
LIBRARY: str | None = _bind()


def available() -> bool:
    """Whether the per-thread GEMM can be used (NumPy's bundled OpenBLAS was found)."""
    return LIBRARY is not None


@njit(cache=True, inline="always")
def single_threaded() -> int:
    """Make this thread's BLAS calls single-threaded; returns the previous setting for restore()."""
    return _threads_local(1)


@njit(cache=True, inline="always")
def restore(previous: int) -> None:
    _threads_local(previous)


@njit(cache=True)
def gemm(trans_a, trans_b, m, n, k, a, a_off, b, b_off, beta, c, c_off):
    """c[c_off:] (m x n) = op(a[a_off:]) @ op(b[b_off:]) + beta * c, on flat C-ordered buffers.

    op(a) is m x k (stored k x m when trans_a), op(b) is k x n (stored n x k when trans_b); the
    matrices are stored compactly (see gemm_strided for blocks of larger matrices).
    """
    lda, ldb = (m if trans_a else k), (k if trans_b else n)
    gemm_strided(trans_a, trans_b, m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, n)


@njit(cache=True)
def gemm_strided(trans_a, trans_b, m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
    """gemm with the row strides (leading dimensions) of the stored matrices given, as in row-major
    CBLAS, so a block of a larger matrix can be read or written in place."""
    ta = TRANS if trans_a else NO_TRANS
    tb = TRANS if trans_b else NO_TRANS
    size = c.itemsize
    pa = a.ctypes.data + a_off * size
    pb = b.ctypes.data + b_off * size
    pc = c.ctypes.data + c_off * size
    if size == 4:
        _sgemm(ROW_MAJOR, ta, tb, m, n, k, np.float32(1.0), pa, lda, pb, ldb, np.float32(beta), pc, ldc)
    else:
        _dgemm(ROW_MAJOR, ta, tb, m, n, k, 1.0, pa, lda, pb, ldb, np.float64(beta), pc, ldc)


@njit(cache=True)
def _rows_gemm(part, parts, trans_a, trans_b, m, n, k, a, b, beta, c):
    first, last = m * part // parts, m * (part + 1) // parts
    if last <= first:
        return
    previous = single_threaded()
    lda, ldb = (m if trans_a else k), (k if trans_b else n)
    a_off = first if trans_a else first * k
    gemm_strided(trans_a, trans_b, last - first, n, k, a, a_off, lda, b, 0, ldb, beta, c, first * n, n)
    restore(previous)


@njit(cache=True, parallel=True)
def _parallel_rows_gemm(parts, trans_a, trans_b, m, n, k, a, b, beta, c):
    for part in prange(parts):
        _rows_gemm(part, parts, trans_a, trans_b, m, n, k, a, b, beta, c)


def parallel_gemm(trans_a: bool, trans_b: bool, a: np.ndarray, b: np.ndarray, beta: float,
                  c: np.ndarray) -> None:
    """c = op(a) @ op(b) + beta * c (beta 0 or 1) for C-contiguous 2-D arrays, the rows of c split
    over numba's threads, each running a single-threaded GEMM.

    For the engine's own matrix products on the host (InnerProduct): OpenBLAS's own threads spin
    for about 0.1 s after each call, taking a core from the numba kernels that follow; numba's
    pool is the one the other kernels use. Each element of c is one GEMM's dot product, as
    unsplit. Falls back to numpy where the BLAS binding is unavailable."""
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    n = b.shape[0] if trans_b else b.shape[1]
    if not available() or not (a.flags.c_contiguous and b.flags.c_contiguous and c.flags.c_contiguous):
        product = (a.T if trans_a else a) @ (b.T if trans_b else b)
        if beta == 0:
            c[...] = product
        else:
            c += product
        return
    from engine.kernels.cpu.threads import thread_count

    parts = max(1, min(thread_count(), m // 16))
    _parallel_rows_gemm(parts, trans_a, trans_b, m, n, k, a, b, beta, c)
