"""The `Python` layer: runs a user's `caffe.Layer` subclass named by `python_param`.

Mirrors Caffe's PythonLayer: the module is imported and the class instantiated
with the LayerParameter when the layer is created; `param_str` and `phase` are
set right before the user's `setup`; Caffe's Reshape/Forward/Backward call the
user's `reshape`/`forward`/`backward`. The user's `self.blobs` *is* this layer's
param list, so solvers learn them and `net.params` shows them. A loss is
declared the pycaffe way: `loss_weight` on a top.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from engine import pycaffe
from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import Layer, register_layer
from engine.proto import caffe_pb2


def _missing_is_target(exc: ModuleNotFoundError, module: str) -> bool:
    """True when the module named in python_param (or a parent package) is what is missing."""
    parts = module.split(".")
    return exc.name in {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def load_user_class(layer_param: caffe_pb2.LayerParameter) -> type[pycaffe.Layer]:
    """Import python_param.module and return python_param.layer, or a WiringError naming all three."""
    name = layer_param.name
    module_name = layer_param.python_param.module
    class_name = layer_param.python_param.layer
    where = f"Python layer '{name}' (module '{module_name}', layer '{class_name}')"
    if not module_name or not class_name:
        raise WiringError(f"{where}: python_param needs both 'module' and 'layer'", layer=name)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not _missing_is_target(exc, module_name):
            raise WiringError(f"{where}: importing the module failed: {exc}", layer=name) from exc
        raise WiringError(
            f"{where}: cannot import module '{module_name}' (is its directory on sys.path / "
            f"PYTHONPATH? sys.path[0] = {sys.path[0]!r})",
            layer=name,
        ) from exc
    except Exception as exc:  # syntax errors and the like in the user's module
        raise WiringError(
            f"{where}: importing the module failed: {type(exc).__name__}: {exc}", layer=name
        ) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise WiringError(f"{where}: module '{module_name}' has no attribute '{class_name}'", layer=name)
    if not (isinstance(cls, type) and issubclass(cls, pycaffe.Layer)):
        raise WiringError(f"{where}: '{class_name}' must be a subclass of caffe.Layer", layer=name)
    return cls


def _reraise_prefixed(exc: BaseException, prefix: str) -> None:
    """Raise `exc`'s type with `prefix` before its message, the original as __cause__."""
    message = f"{prefix}: {exc}"
    try:
        new = type(exc)(message)
    except Exception:
        new = None
    if new is None or str(new) != message:  # an exception type that cannot be rebuilt from a message
        exc.add_note(prefix)
        raise exc
    raise new from exc


@register_layer("Python")
class PythonLayer(Layer):
    category = "utility"
    description = "User layer written in Python (python_param: module, layer, param_str)"

    def __init__(self, layer_param: caffe_pb2.LayerParameter) -> None:
        super().__init__(layer_param)
        cls = load_user_class(self.layer_param)
        prefix = f"Python layer '{self.name}' ({cls.__module__}.{cls.__name__})"
        try:
            user = cls(self.layer_param)
        except Exception as exc:
            raise WiringError(f"{prefix}: constructing the layer failed: {exc}", layer=self.name) from exc
        # Set even when a user __init__ skipped super().__init__: blobs loaded from the prototxt stay.
        user._blobs = pycaffe.BlobVec(self.blobs)
        user._layer_param = self.layer_param
        self.user_layer = user
        self.blobs = user._blobs
        self._prefix = prefix
        self.share_in_parallel = bool(self.layer_param.python_param.share_in_parallel)

    def __getattr__(self, name: str):
        """Unknown attributes come from the user object, as pycaffe's net.layers[i] is that object."""
        user = self.__dict__.get("user_layer")
        if user is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(user, name)

    def _call(self, fn: Callable, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:
            _reraise_prefixed(exc, self._prefix)

    def layer_setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        user = self.user_layer
        ref = bottom[0] if bottom else (top[0] if top else None)
        if ref is not None:
            self.dtype = ref.dtype
        self.blobs.dtype = self.dtype
        user.param_str = self.layer_param.python_param.param_str
        user.phase = int(self.phase)
        try:
            user.setup(bottom, top)
        except Exception as exc:
            raise WiringError(f"{self._prefix}: setup failed: {exc}", layer=self.name) from exc

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        self._call(self.user_layer.reshape, bottom, top)

    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        self._call(self.user_layer.forward, bottom, top)

    def backward_cpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        self._call(self.user_layer.backward, top, [bool(p) for p in propagate_down], bottom)
