"""Built-in layers. Importing this package registers every layer type.

One module per family; `engine.layers` stays free for net_spec's layer factory,
as in pycaffe.
"""

import importlib

_FAMILIES = ("neuron", "loss", "common", "data", "vision", "normalization", "python")

for _family in _FAMILIES:
    try:
        importlib.import_module(f"engine.nn.{_family}")
    except ModuleNotFoundError as exc:  # a family not written yet
        if exc.name != f"engine.nn.{_family}":
            raise
