"""CPU kernels: numba @njit loops for the layers where plain numpy is too slow."""
