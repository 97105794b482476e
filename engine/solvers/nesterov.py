"""Nesterov's accelerated gradient, in Caffe's formulation."""

from __future__ import annotations

import numpy as np

from engine.solvers.sgd import SGDSolver


class NesterovSolver(SGDSolver):
    type_name = "Nesterov"

    def compute_update_value(self, param_id: int, rate: float) -> None:
        param = self.net.learnable_params[param_id]
        history = self.history[param_id].data
        dtype = param.dtype.type
        momentum = dtype(np.float32(self.param.momentum))
        previous = history.copy()
        diff = param.diff
        history *= momentum
        history += self.local_rate(param_id, rate) * diff
        diff[...] = (dtype(1) + momentum) * history - momentum * previous
