"""Learning-rate policies against the formulas of Caffe's documentation."""

import math

import numpy as np
import pytest

from engine.errors import BrewnetError
from engine.proto import caffe_pb2
from engine.solvers import learning_rate, lr_curve


def _param(**kw):
    p = caffe_pb2.SolverParameter(base_lr=0.01, max_iter=1000)
    for k, v in kw.items():
        if isinstance(v, list):
            getattr(p, k).extend(v)
        else:
            setattr(p, k, v)
    return p


@pytest.mark.parametrize(
    "kw,formula",
    [
        (dict(lr_policy="fixed"), lambda it: 0.01),
        (dict(lr_policy="step", gamma=0.1, stepsize=300), lambda it: 0.01 * 0.1 ** (it // 300)),
        # Caffe stores gamma as float: the float32 value of 0.999 is what gets raised to `it`.
        (dict(lr_policy="exp", gamma=0.999), lambda it: 0.01 * float(np.float32(0.999)) ** it),
        (dict(lr_policy="inv", gamma=1e-4, power=0.75), lambda it: 0.01 * (1 + 1e-4 * it) ** -0.75),
        (dict(lr_policy="poly", power=2.0), lambda it: 0.01 * (1 - it / 1000) ** 2),
        (dict(lr_policy="sigmoid", gamma=-0.01, stepsize=500),
         lambda it: 0.01 / (1 + math.exp(0.01 * (it - 500)))),
    ],
)
def test_policy_matches_formula(kw, formula):
    p = _param(**kw)
    for it in (0, 1, 299, 300, 301, 599, 600, 999):
        rate, _ = learning_rate(p, it, 0)
        assert rate == pytest.approx(formula(it), rel=2e-6), (kw["lr_policy"], it)


def test_multistep_advances_one_step_per_call():
    p = _param(lr_policy="multistep", gamma=0.5, stepvalue=[3, 5])
    rates = lr_curve(p, 8)
    expected = [0.01, 0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025, 0.0025]
    assert rates.tolist() == pytest.approx(expected, rel=1e-6)


def test_unknown_policy_names_the_known_ones():
    with pytest.raises(BrewnetError, match="multistep"):
        learning_rate(_param(lr_policy="cosine"), 0, 0)
