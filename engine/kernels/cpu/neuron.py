"""Element-wise and softmax kernels on host arrays, in the arrays' own dtype.

Plain vectorised NumPy: these ops are memory-bound single passes, where numba
buys nothing over NumPy's loops but compile time.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Caffe's sigmoid, written through tanh so it never overflows."""
    return 0.5 * np.tanh(0.5 * x) + 0.5


def softmax_forward(x: np.ndarray) -> np.ndarray:
    """Softmax over axis 1 of an (outer, channels, inner) array, max-shifted for stability."""
    shifted = x - x.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def softmax_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Gradient through softmax from its output `y`: (dy - <dy, y>) * y along axis 1."""
    dot = (dy * y).sum(axis=1, keepdims=True)
    return (dy - dot) * y


def bnll_forward(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x) without overflow (Caffe evaluates it in double, then stores Dtype)."""
    return np.logaddexp(0.0, x.astype(np.float64)).astype(x.dtype)


def bnll_backward(x: np.ndarray, dy: np.ndarray, threshold: float = 50.0) -> np.ndarray:
    """dy * sigmoid(x), with e^x capped at e^threshold as Caffe's kBNLL_THRESHOLD does."""
    e = np.exp(np.minimum(x, x.dtype.type(threshold)))
    return dy * e / (e + 1)
