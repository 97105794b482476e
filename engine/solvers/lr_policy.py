"""Learning-rate policies, computed as Caffe's SGDSolver::GetLearningRate does.

Arithmetic is done in float32 where Caffe does it in float, so that learning
rates (and hence trajectories) agree with Caffe's to the last bit where possible.
"""

from __future__ import annotations

import logging

import numpy as np

from engine.errors import BrewnetError
from engine.proto import caffe_pb2

log = logging.getLogger("brewnet.solver")

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")

f32 = np.float32


def learning_rate(param: caffe_pb2.SolverParameter, it: int, current_step: int) -> tuple[float, int]:
    """The rate at iteration `it` and the (possibly advanced) multistep counter."""
    policy = param.lr_policy
    base_lr, gamma, power = f32(param.base_lr), f32(param.gamma), f32(param.power)
    if policy == "fixed":
        rate = base_lr
    elif policy == "step":
        if param.stepsize <= 0:
            raise BrewnetError("lr_policy 'step' needs stepsize > 0")
        current_step = it // param.stepsize
        rate = f32(float(base_lr) * float(gamma) ** current_step)
    elif policy == "exp":
        rate = f32(float(base_lr) * float(gamma) ** it)
    elif policy == "inv":
        rate = base_lr * np.power(f32(1) + gamma * f32(it), -power, dtype=f32)
    elif policy == "multistep":
        steps = param.stepvalue
        if current_step < len(steps) and it >= steps[current_step]:
            current_step += 1
            log.info("MultiStep Status: Iteration %d, step = %d", it, current_step)
        rate = f32(float(base_lr) * float(gamma) ** current_step)
    elif policy == "poly":
        if param.max_iter <= 0:
            raise BrewnetError("lr_policy 'poly' needs max_iter > 0")
        rate = base_lr * np.power(f32(1) - f32(it) / f32(param.max_iter), power, dtype=f32)
    elif policy == "sigmoid":
        rate = base_lr * (f32(1) / (f32(1) + np.exp(-gamma * (f32(it) - f32(param.stepsize)), dtype=f32)))
    else:
        raise BrewnetError(
            f"unknown lr_policy {policy!r}; Caffe's policies are: {', '.join(POLICIES)}"
        )
    return float(f32(rate)), current_step


def lr_curve(param: caffe_pb2.SolverParameter, iterations: int | None = None) -> np.ndarray:
    """The learning rate at every iteration 0..max_iter-1 (the editor's preview curve)."""
    n = param.max_iter if iterations is None else iterations
    rates = np.empty(max(n, 0), dtype=np.float64)
    step = 0
    for it in range(n):
        rates[it], step = learning_rate(param, it, step)
    return rates
