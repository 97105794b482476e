"""pycaffe's net_spec: write nets as Python expressions, get a NetParameter.

    n = NetSpec()
    n.data, n.label = L.Data(source='train_lmdb', backend=P.Data.LMDB, batch_size=64, ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type='xavier'))
    str(n.to_proto())

`L.<Type>(*bottoms, **kwargs)` makes a layer; keyword arguments go to the
type's `<type>_param` message when it has that field, else to LayerParameter
itself (name, param, include, loss_weight, propagate_down, ...); keys ending in
`param` always go to LayerParameter. `ntop` (default 1) and `in_place` are
consumed here. Unnamed tops and layers are named `<Type><n>` by type, as pycaffe does.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

from google.protobuf.message import Message

from engine.proto import caffe_pb2

# Layer types that read another type's parameter message (not covered by the descriptor scan).
_PARAM_ALIASES = {
    "Deconvolution": "convolution",
    "Im2col": "convolution",
    "RNN": "recurrent",
    "LSTM": "recurrent",
}


def param_name_dict() -> dict[str, str]:
    """Layer type name -> param field prefix, from LayerParameter's `*_param` fields.

    The message type name minus `Parameter` is taken as the layer type, the field
    name minus `_param` as the prefix: ConvolutionParameter convolution_param gives
    'Convolution' -> 'convolution'.
    """
    names: dict[str, str] = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if not field.name.endswith("_param") or field.message_type is None:
            continue
        type_name = field.message_type.name
        if type_name.endswith("Parameter"):
            names[type_name[: -len("Parameter")]] = field.name[: -len("_param")]
    return names


_param_names = param_name_dict()
for _type, _prefix in _PARAM_ALIASES.items():
    _param_names.setdefault(_type, _prefix)


def assign_proto(proto: Message, name: str, val: Any) -> None:
    """Set field `name` of `proto` from a Python value: lists fill repeated fields, dicts messages."""
    field = getattr(proto, name)
    is_repeated = hasattr(field, "extend")
    if is_repeated and not isinstance(val, list | tuple):
        val = [val]
    if isinstance(val, list | tuple):
        if not is_repeated:
            raise TypeError(f"field '{name}' of {proto.DESCRIPTOR.name} is not repeated; got a list")
        for item in val:
            if isinstance(item, dict):
                sub = field.add()
                for k, v in item.items():
                    assign_proto(sub, k, v)
            elif isinstance(item, Message):
                field.add().CopyFrom(item)
            else:
                field.append(item)
    elif isinstance(val, dict):
        for k, v in val.items():
            assign_proto(field, k, v)
    elif isinstance(val, Message):
        field.CopyFrom(val)
    else:
        setattr(proto, name, val)


class Top:
    """One output of a Function: the `n`-th top of layer `fn`."""

    def __init__(self, fn: Function, n: int) -> None:
        self.fn = fn
        self.n = n

    def to_proto(self) -> caffe_pb2.NetParameter:
        """The net needed to compute this top (every layer auto-named)."""
        return to_proto(self)

    def _to_proto(self, layers: OrderedDict, names: dict, autonames: Counter) -> None:
        self.fn._to_proto(layers, names, autonames)


class Function:
    """One layer: its type, bottom Tops and parameters; produces `ntop` Tops."""

    def __init__(self, type_name: str, inputs: tuple, params: dict[str, Any]) -> None:
        self.type_name = type_name
        for index, inp in enumerate(inputs):
            if not isinstance(inp, Top):
                raise TypeError(f"{type_name} input {index} is not a Top (type is {type(inp).__name__})")
        self.inputs = inputs
        self.params = dict(params)
        self.ntop = int(self.params.pop("ntop", 1))
        if self.ntop < 0:
            raise ValueError(f"{type_name}: ntop must be >= 0, got {self.ntop}")
        self.in_place = bool(self.params.pop("in_place", False))
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _get_name(self, names: dict, autonames: Counter) -> str:
        if self not in names and self.ntop > 0:
            names[self] = self._get_top_name(self.tops[0], names, autonames)
        elif self not in names:
            autonames[self.type_name] += 1
            names[self] = self.type_name + str(autonames[self.type_name])
        return names[self]

    def _get_top_name(self, top: Top, names: dict, autonames: Counter) -> str:
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = top.fn.type_name + str(autonames[top.fn.type_name])
        return names[top]

    def _to_proto(self, layers: OrderedDict, names: dict, autonames: Counter) -> None:
        if self in layers:
            return
        bottom_names = []
        for inp in self.inputs:
            inp._to_proto(layers, names, autonames)
            bottom_names.append(layers[inp.fn].top[inp.n])
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(bottom_names)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            for top in self.tops:
                layer.top.append(self._get_top_name(top, names, autonames))
        layer.name = self._get_name(names, autonames)
        for key, value in self.params.items():
            self._assign(layer, key, value)
        layers[self] = layer

    def _assign(self, layer: caffe_pb2.LayerParameter, key: str, value: Any) -> None:
        """Into `<type>_param` when that message has the field, else into LayerParameter."""
        prefix = _param_names.get(self.type_name)
        if not key.endswith("param") and prefix is not None:
            sub = getattr(layer, prefix + "_param")
            if key in sub.DESCRIPTOR.fields_by_name:
                assign_proto(sub, key, value)
                return
        if key not in layer.DESCRIPTOR.fields_by_name:
            where = f"LayerParameter or {prefix}_param" if prefix else "LayerParameter"
            raise AttributeError(
                f"{self.type_name} layer: unknown parameter '{key}' (not a field of {where})"
            )
        assign_proto(layer, key, value)


class NetSpec:
    """Assign Tops as attributes (`n.conv1 = L.Convolution(...)`); the attribute names the top/layer."""

    def __init__(self) -> None:
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name: str, value: Any) -> None:
        self.tops[name] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(f"NetSpec has no top named '{name}'") from None

    def __setitem__(self, key: str, value: Any) -> None:
        self.__setattr__(key, value)

    def __getitem__(self, item: str) -> Any:
        return self.tops[item]

    def __delitem__(self, name: str) -> None:
        del self.tops[name]

    def keys(self) -> list[str]:
        return list(self.tops.keys())

    def vals(self) -> list[Any]:
        return list(self.tops.values())

    def to_proto(self) -> caffe_pb2.NetParameter:
        """Every assigned top and what it depends on, in assignment (then dependency) order."""
        names = {v: k for k, v in self.tops.items()}
        autonames: Counter = Counter()
        layers: OrderedDict = OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


def to_proto(*tops: Top | Function) -> caffe_pb2.NetParameter:
    """The net computing these tops (or ntop=0 Functions); all names automatic."""
    layers: OrderedDict = OrderedDict()
    autonames: Counter = Counter()
    for top in tops:
        top._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class Layers:
    """`L.<Type>(*bottoms, **params)`: one Top, a tuple of Tops (ntop > 1) or the Function (ntop=0)."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def layer_fn(*args: Top, **kwargs: Any):
            fn = Function(name, args, kwargs)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops

        return layer_fn


class _EnumAccess:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, value: str) -> Any:
        message = getattr(caffe_pb2, self._name + "Parameter", None)
        if message is None:
            raise AttributeError(f"caffe_pb2 has no message {self._name}Parameter")
        try:
            return getattr(message, value)
        except AttributeError:
            raise AttributeError(f"{self._name}Parameter has no attribute '{value}'") from None


class Parameters:
    """`P.Pooling.MAX` -> caffe_pb2.PoolingParameter.MAX."""

    def __getattr__(self, name: str) -> _EnumAccess:
        if name.startswith("__"):
            raise AttributeError(name)
        return _EnumAccess(name)


layers = Layers()
params = Parameters()
