"""Numerical gradient checking, as Caffe's GradientChecker does it.

Every layer's test module runs these in float64: the analytic gradient from
`backward` is compared with central differences of an objective built on the
layer's tops. Param blobs are always checked; bottoms are checked unless a
single `check_bottom` is named.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from engine import common
from engine.blob import Blob
from engine.layer import Layer


class GradientCheckError(AssertionError):
    """An analytic gradient disagrees with the numerical estimate."""


class GradientChecker:
    def __init__(
        self,
        stepsize: float,
        threshold: float,
        seed: int = 1701,
        kink: float = 0.0,
        kink_range: float = -1.0,
    ) -> None:
        self.stepsize = stepsize
        self.threshold = threshold
        self.seed = seed
        self.kink = kink
        self.kink_range = kink_range

    # -- public entry points (Caffe's names)
    def check_gradient(
        self, layer: Layer, bottom: Sequence[Blob], top: Sequence[Blob], check_bottom: int = -1
    ) -> None:
        """Objective: half the sum of squares of every top."""
        layer.setup(bottom, top)
        self.check_gradient_single(layer, bottom, top, check_bottom, -1, -1)

    def check_gradient_exhaustive(
        self, layer: Layer, bottom: Sequence[Blob], top: Sequence[Blob], check_bottom: int = -1
    ) -> None:
        """Objective: each single top element in turn."""
        layer.setup(bottom, top)
        if not top:
            raise ValueError("exhaustive check needs at least one top blob")
        for i, t in enumerate(top):
            j = 0
            while j < t.count:  # re-read: a forward may resize the top (Caffe does the same)
                self.check_gradient_single(layer, bottom, top, check_bottom, i, j)
                j += 1

    def check_gradient_eltwise(
        self, layer: Layer, bottom: Sequence[Blob], top: Sequence[Blob]
    ) -> None:
        """For element-wise layers: each top element against its own input element only."""
        layer.setup(bottom, top)
        if not top:
            raise ValueError("eltwise check needs at least one top blob")
        for i, t in enumerate(top):
            j = 0
            while j < t.count:
                self.check_gradient_single(layer, bottom, top, -1, i, j, element_wise=True)
                j += 1

    def check_gradient_single(
        self,
        layer: Layer,
        bottom: Sequence[Blob],
        top: Sequence[Blob],
        check_bottom: int,
        top_id: int,
        top_data_id: int,
        element_wise: bool = False,
    ) -> None:
        if element_wise:
            if layer.blobs:
                raise ValueError("element-wise check does not take layers with parameters")
            if top_id < 0 or top_data_id < 0:
                raise ValueError("element-wise check needs a top element")
            for b in bottom:
                if b.count != top[top_id].count:
                    raise ValueError("element-wise check needs bottoms the size of the top")
        # check_bottom: -1 checks every bottom, -2 only the params, i >= 0 bottom i (Caffe's convention).
        blobs_to_check: list[Blob] = []
        propagate_down = [check_bottom == -1] * len(bottom)
        for p in layer.blobs:
            blobs_to_check.append(p)
        if check_bottom == -1:
            blobs_to_check.extend(bottom)
        elif check_bottom < -1:
            pass
        else:
            if check_bottom >= len(bottom):
                raise ValueError(f"check_bottom {check_bottom} out of range")
            blobs_to_check.append(bottom[check_bottom])
            propagate_down[check_bottom] = True
        if not blobs_to_check:
            raise ValueError("no blobs to check")

        # Analytic gradient.
        for p in layer.blobs:
            p.diff[...] = 0
        common.set_random_seed(self.seed)
        layer.forward(bottom, top)
        self._objective_and_gradient(top, top_id, top_data_id)
        layer.backward(top, propagate_down, bottom)
        computed = [b.cpu_diff().copy().ravel() for b in blobs_to_check]

        # Numerical gradient, element by element.
        for blob_id, blob in enumerate(blobs_to_check):
            data = blob.data.reshape(-1)
            for feat_id in range(blob.count):
                if element_wise and feat_id != top_data_id:
                    estimated = 0.0
                else:
                    original = data[feat_id]
                    data[feat_id] = original + self.stepsize
                    common.set_random_seed(self.seed)
                    layer.forward(bottom, top)
                    positive = self._objective_and_gradient(top, top_id, top_data_id)
                    data = blob.data.reshape(-1)
                    data[feat_id] = original - self.stepsize
                    common.set_random_seed(self.seed)
                    layer.forward(bottom, top)
                    negative = self._objective_and_gradient(top, top_id, top_data_id)
                    data = blob.data.reshape(-1)
                    data[feat_id] = original
                    estimated = (positive - negative) / self.stepsize / 2.0
                analytic = float(computed[blob_id][feat_id])
                feature = float(data[feat_id])
                if self.kink - self.kink_range > abs(feature) or abs(feature) > (
                    self.kink + self.kink_range
                ):
                    scale = max(abs(analytic), abs(estimated), 1.0)
                    if abs(analytic - estimated) > self.threshold * scale:
                        raise GradientCheckError(
                            f"layer '{layer.name}' ({layer.type}): blob {blob_id} element "
                            f"{feat_id} (top {top_id}, element {top_data_id}): analytic "
                            f"{analytic:.8g} vs numeric {estimated:.8g}"
                        )

    @staticmethod
    def _objective_and_gradient(top: Sequence[Blob], top_id: int, top_data_id: int) -> float:
        """Set top diffs to d(objective)/d(top) and return the objective."""
        loss = 0.0
        if top_id < 0:
            for t in top:
                d = t.cpu_data()
                loss += float(np.dot(d.ravel(), d.ravel()))
                t.diff[...] = d
            return loss / 2.0
        for t in top:
            t.diff[...] = 0
        loss_weight = 2.0
        flat = top[top_id].cpu_data().ravel()
        loss = float(flat[top_data_id]) * loss_weight
        top[top_id].diff.reshape(-1)[top_data_id] = loss_weight
        return loss


def check_loss_weight_scaling(
    make_layer: Callable[[float], Layer],
    bottom: Sequence[Blob],
    top: Sequence[Blob],
    weights: Sequence[float] = (2.0, 0.0, 1.0, -1.0, -2.5, 3.7),
    rtol: float = 1e-6,
) -> None:
    """Loss × w and every bottom/param diff × w, for each weight w (Caffe's loss-weight test).

    `make_layer(w)` builds a fresh layer whose first top has loss_weight w. The
    reference is w = 1.
    """

    def run(weight: float) -> tuple[float, list[np.ndarray]]:
        layer = make_layer(weight)
        common.set_random_seed(1701)
        for t in top:  # set_loss_weights skips a 0 weight, so clear what a previous run left
            t.diff[...] = 0
        layer.setup(bottom, top)
        for p in layer.blobs:
            p.diff[...] = 0
        for b in bottom:
            b.diff[...] = 0
        loss = layer.forward(bottom, top)
        layer.backward(top, [layer.allow_force_backward(i) for i in range(len(bottom))], bottom)
        diffs = [b.cpu_diff().copy() for b in bottom] + [p.cpu_diff().copy() for p in layer.blobs]
        return loss, diffs

    ref_loss, ref_diffs = run(1.0)
    for w in weights:
        loss, diffs = run(w)
        if not np.isclose(loss, w * ref_loss, rtol=rtol, atol=1e-9):
            raise GradientCheckError(f"loss weight {w}: loss {loss} != {w} * {ref_loss}")
        for got, ref in zip(diffs, ref_diffs, strict=True):
            if not np.allclose(got, w * ref, rtol=rtol, atol=1e-9):
                raise GradientCheckError(f"loss weight {w}: diffs are not scaled by {w}")
