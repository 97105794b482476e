"""Small helpers shared by the common layers: errors that name the layer, axis checks."""

from __future__ import annotations

from collections.abc import Sequence

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import Layer


def layer_error(layer: Layer, message: str, blob: str | None = None) -> WiringError:
    """A WiringError that starts with the layer's name and type."""
    return WiringError(f"layer '{layer.name}' of type {layer.type}: {message}", layer=layer.name, blob=blob)


def canonical_axis(layer: Layer, blob: Blob, axis: int, what: str = "axis") -> int:
    """Caffe's CanonicalAxisIndex, failing with the layer's name instead of an IndexError."""
    n = blob.num_axes
    if not -n <= axis < n:
        raise layer_error(layer, f"{what} {axis} is out of range for a {n}-D bottom of shape {blob.shape}")
    return axis + n if axis < 0 else axis


def param_blob(layer: Layer, shape: Sequence[int]) -> Blob:
    """A param blob in the layer's dtype; reshaped explicitly so a 0-axis shape holds one value."""
    blob = Blob(dtype=layer.dtype)
    blob.reshape(list(shape))
    return blob


def no_in_place(layer: Layer, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
    """Layers whose tops alias bottom memory by sharing cannot also be computed in place."""
    for t in top:
        if any(t is b for b in bottom):
            raise layer_error(layer, "does not allow in-place computation")
