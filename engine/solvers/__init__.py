"""Solvers: one module per update rule, a shared Step/Solve loop, and pycaffe's names."""

from __future__ import annotations

import os

from engine.errors import BrewnetError
from engine.proto import caffe_pb2
from engine.solvers.adadelta import AdaDeltaSolver
from engine.solvers.adagrad import AdaGradSolver
from engine.solvers.adam import AdamSolver
from engine.solvers.lr_policy import learning_rate, lr_curve
from engine.solvers.nesterov import NesterovSolver
from engine.solvers.records import IterationRecord, OutputValue, TestRecord
from engine.solvers.rmsprop import RMSPropSolver
from engine.solvers.sgd import SGDSolver
from engine.solvers.solver import NONE, SNAPSHOT, STOP, Solver, TrainingDivergedError

SOLVER_TYPES: dict[str, type[Solver]] = {
    cls.type_name: cls
    for cls in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver, AdamSolver)
}


def solver_class(type_name: str) -> type[Solver]:
    try:
        return SOLVER_TYPES[type_name]
    except KeyError:
        raise BrewnetError(
            f"unknown solver type {type_name!r}; known: {', '.join(SOLVER_TYPES)}"
        ) from None


def get_solver(param: caffe_pb2.SolverParameter | str | os.PathLike, **kwargs) -> Solver:
    """pycaffe's caffe.get_solver: the solver class named by the file's `type`."""
    from engine.solvers.solver import load_solver_param

    loaded = load_solver_param(param)
    solver = solver_class(loaded.type)(loaded, **kwargs)
    return solver


__all__ = [
    "NONE", "SNAPSHOT", "STOP", "AdaDeltaSolver", "AdaGradSolver", "AdamSolver", "IterationRecord",
    "NesterovSolver", "OutputValue", "RMSPropSolver", "SGDSolver", "Solver", "TestRecord",
    "TrainingDivergedError", "get_solver", "learning_rate", "lr_curve", "solver_class",
]
