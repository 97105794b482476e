"""Each update rule against its formula, step by step, with history carried over.

The expected values are computed here in float64 from the gradients the net
produced; the solver works in float32, hence the tolerances.
"""

import numpy as np
import pytest


def _grads_and_weights(solver):
    solver.net.clear_param_diffs()
    solver.net.forward_backward()
    grads = [p.diff.astype(np.float64).copy() for p in solver.net.learnable_params]
    weights = [p.data.astype(np.float64).copy() for p in solver.net.learnable_params]
    return grads, weights


def _run(solver, rule, steps=5):
    n = len(solver.net.learnable_params)
    state = [dict() for _ in range(n)]
    for it in range(steps):
        grads, weights = _grads_and_weights(solver)
        solver.iter = it
        solver.apply_update()
        for i, p in enumerate(solver.net.learnable_params):
            lr = solver.param.base_lr * solver.net.params_lr[i]
            decay = solver.param.weight_decay * solver.net.params_weight_decay[i]
            g = grads[i] + decay * weights[i]
            step = rule(g, lr, state[i], it + 1, solver.param)
            np.testing.assert_allclose(p.data, weights[i] - step, rtol=2e-5, atol=2e-6,
                                       err_msg=f"param {i} iteration {it}")


def sgd(g, lr, s, t, p):
    s["h"] = p.momentum * s.get("h", 0) + lr * g
    return s["h"]


def nesterov(g, lr, s, t, p):
    old = s.get("h", 0)
    s["h"] = p.momentum * old + lr * g
    return (1 + p.momentum) * s["h"] - p.momentum * old


def adagrad(g, lr, s, t, p):
    s["h"] = s.get("h", 0) + g * g
    return lr * g / (np.sqrt(s["h"]) + p.delta)


def rmsprop(g, lr, s, t, p):
    s["h"] = p.rms_decay * s.get("h", 0) + (1 - p.rms_decay) * g * g
    return lr * g / (np.sqrt(s["h"]) + p.delta)


def adadelta(g, lr, s, t, p):
    s["g2"] = p.momentum * s.get("g2", 0) + (1 - p.momentum) * g * g
    update = g * np.sqrt((s.get("u2", 0) + p.delta) / (s["g2"] + p.delta))
    s["u2"] = p.momentum * s.get("u2", 0) + (1 - p.momentum) * update * update
    return lr * update


def adam(g, lr, s, t, p):
    b1, b2 = p.momentum, p.momentum2
    s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
    correction = np.sqrt(1 - b2**t) / (1 - b1**t)
    return lr * correction * s["m"] / (np.sqrt(s["v"]) + p.delta)


@pytest.mark.parametrize(
    "kind,rule,fields",
    [
        ("SGD", sgd, dict()),
        ("SGD", sgd, dict(momentum=0.5, base_lr=0.01)),
        ("SGD", sgd, dict(momentum=0.9, weight_decay=0.01)),
        ("Nesterov", nesterov, dict(momentum=0.5, base_lr=0.01, weight_decay=0.1)),
        ("AdaGrad", adagrad, dict(base_lr=0.01)),
        ("RMSProp", rmsprop, dict(rms_decay=0.5, base_lr=0.05, weight_decay=0.1)),
        ("AdaDelta", adadelta, dict(momentum=0.5, delta=1e-4, base_lr=0.5, weight_decay=0.01)),
        ("Adam", adam, dict(momentum=0.5, momentum2=0.9, delta=1e-6, base_lr=0.1, weight_decay=0.1)),
        ("Nesterov", nesterov, dict(momentum=0.9, weight_decay=0.01)),
        ("AdaGrad", adagrad, dict(weight_decay=0.01)),
        ("RMSProp", rmsprop, dict(rms_decay=0.95, weight_decay=0.01)),
        ("AdaDelta", adadelta, dict(momentum=0.95, delta=1e-6, base_lr=1.0)),
        ("Adam", adam, dict(momentum=0.9, momentum2=0.999, delta=1e-8, base_lr=0.01)),
    ],
)
def test_rule(make_solver, kind, rule, fields):
    solver = make_solver(kind, **fields)
    _run(solver, rule)


def test_history_blob_counts(make_solver):
    n = len(make_solver("SGD").net.learnable_params)
    assert n == 4
    assert len(make_solver("SGD").history) == n
    assert len(make_solver("AdaDelta").history) == 2 * n
    assert len(make_solver("Adam").history) == 2 * n


def test_adagrad_refuses_momentum(make_solver):
    from engine.errors import BrewnetError

    with pytest.raises(BrewnetError, match="Momentum"):
        make_solver("AdaGrad", momentum=0.9)


def test_l1_regularization(make_solver):
    solver = make_solver("SGD", weight_decay=0.1, regularization_type="L1")
    grads, weights = _grads_and_weights(solver)
    solver.apply_update()
    p = solver.net.learnable_params[0]
    expected = weights[0] - 0.1 * (grads[0] + 0.1 * np.sign(weights[0]))
    np.testing.assert_allclose(p.data, expected, rtol=1e-5, atol=1e-6)


def test_clip_gradients_scales_global_norm(make_solver):
    solver = make_solver("SGD", clip_gradients=0.01)
    grads, weights = _grads_and_weights(solver)
    norm = np.sqrt(sum((g**2).sum() for g in grads))
    assert norm > 0.01
    solver.apply_update()
    for i, p in enumerate(solver.net.learnable_params):
        lr = 0.1 * solver.net.params_lr[i]
        np.testing.assert_allclose(p.data, weights[i] - lr * grads[i] * 0.01 / norm, rtol=1e-5, atol=1e-7)


def test_lr_mult_zero_never_changes(tiny):
    from engine import solvers

    p = tiny.solver_param(type="SGD", momentum=0.9, weight_decay=0.01)
    p.net_param.layer[1].param[0].lr_mult = 0
    p.net_param.layer[1].param[1].lr_mult = 0
    s = solvers.SGDSolver(p)
    tiny.fill_inputs(s.net)
    before = [b.data.copy() for b in s.net.params["ip1"]]
    s.step(5)
    for b, old in zip(s.net.params["ip1"], before, strict=True):
        np.testing.assert_array_equal(b.data, old)
    assert not np.allclose(s.net.params["ip2"][0].data, 0)


def test_shared_weights_get_one_summed_update(tiny):
    """Two layers sharing a weight by name: one learnable blob, updated by the sum of both grads."""
    from engine import solvers

    p = tiny.solver_param(type="SGD")
    ip2 = p.net_param.layer[3]
    twin = p.net_param.layer.add()
    twin.CopyFrom(p.net_param.layer[1])
    twin.name, twin.top[0] = "ip1b", "ip1b"
    for layer in (p.net_param.layer[1], twin):
        layer.param[0].name, layer.param[1].name = "w", "b"
    elt = p.net_param.layer.add(name="sum", type="Eltwise", bottom=["ip1", "ip1b"], top=["both"])
    ip2.bottom[0] = "both"
    layers = list(p.net_param.layer)
    del p.net_param.layer[:]
    p.net_param.layer.extend([layers[0], layers[1], layers[2], layers[5], elt, *layers[3:5]])
    s = solvers.SGDSolver(p)
    tiny.fill_inputs(s.net)
    assert len(s.net.learnable_params) == 4  # w, b shared; ip2 weight and bias
    grads, weights = _grads_and_weights(s)
    s.apply_update()
    np.testing.assert_allclose(s.net.params["ip1"][0].data, weights[0] - 0.1 * grads[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(s.net.params["ip1"][0].data, s.net.params["ip1b"][0].data)
