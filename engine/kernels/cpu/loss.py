"""Label-indexed loops of the loss layers, as numba kernels.

Each walks the (outer, channels, inner) layout once, reading one label per
(outer, inner) position, where NumPy would need several gathers and masks.
Kernels return the index of the first out-of-range label (or -1) instead of
raising, so the layer can name itself in the error.
"""

from __future__ import annotations

import numpy as np
from numba import njit

FLT_MIN = 1.17549435e-38


@njit(cache=True)
def softmax_loss_forward(prob, label, outer, channels, inner, has_ignore, ignore_label):
    """-sum log(max(p[label], FLT_MIN)) over non-ignored positions; (loss, valid count, bad index)."""
    loss = 0.0
    count = 0
    for i in range(outer):
        for j in range(inner):
            idx = i * inner + j
            lv = int(label[idx])
            if has_ignore and lv == ignore_label:
                continue
            if lv < 0 or lv >= channels:
                return loss, count, idx
            p = prob[(i * channels + lv) * inner + j]
            loss -= np.log(max(p, FLT_MIN))
            count += 1
    return loss, count, -1


@njit(cache=True)
def softmax_loss_backward(prob, label, diff, outer, channels, inner, has_ignore, ignore_label):
    """diff = prob - onehot(label), zero at ignored positions; returns (valid count, bad index)."""
    count = 0
    for i in range(outer):
        for j in range(inner):
            idx = i * inner + j
            lv = int(label[idx])
            base = i * channels * inner + j
            if has_ignore and lv == ignore_label:
                for c in range(channels):
                    diff[base + c * inner] = 0
                continue
            if lv < 0 or lv >= channels:
                return count, idx
            for c in range(channels):
                diff[base + c * inner] = prob[base + c * inner]
            diff[base + lv * inner] -= 1
            count += 1
    return count, -1


@njit(cache=True)
def accuracy_counts(data, label, outer, channels, inner, top_k, has_ignore, ignore_label,
                    per_class_hits, per_class_total):
    """Top-k hits as Caffe counts them: ties with the true class count as better predictions.

    Returns (hits, valid count, bad index); per-class arrays are accumulated in place.
    """
    hits = 0
    count = 0
    for i in range(outer):
        for j in range(inner):
            idx = i * inner + j
            lv = int(label[idx])
            if has_ignore and lv == ignore_label:
                continue
            if lv < 0 or lv >= channels:
                return hits, count, idx
            per_class_total[lv] += 1
            base = i * channels * inner + j
            truth = data[base + lv * inner]
            better = -1
            k = 0
            while k < channels and better < top_k:
                if data[base + k * inner] >= truth:
                    better += 1
                k += 1
            if better < top_k:
                hits += 1
                per_class_hits[lv] += 1
            count += 1
    return hits, count, -1
