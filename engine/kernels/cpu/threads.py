"""How many parts the threaded CPU kernels split their work into: numba's thread count, so
`numba.set_num_threads` and `NUMBA_NUM_THREADS` govern every one of them."""

from __future__ import annotations

import numba


def thread_count() -> int:
    return max(1, int(numba.get_num_threads()))
