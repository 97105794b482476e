"""Layers with learned weight matrices (InnerProduct, Embed) and the bare Parameter layer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.blob import Blob
from engine.fillers import fill
from engine.kernels.cpu.blas import parallel_gemm
from engine.kernels.cpu.common import rows_from_floats, scatter_add_rows
from engine.layer import Layer, register_layer
from engine.nn.common_base import canonical_axis, layer_error, param_blob


def _check_param_shapes(layer: Layer, expected: Sequence[tuple[int, ...]]) -> None:
    """Weights loaded from layer_param.blobs must fit the layer's parameters."""
    names = ("weight", "bias")
    if len(layer.blobs) != len(expected):
        raise layer_error(
            layer, f"has {len(layer.blobs)} param blob(s) in the model, expected {len(expected)}"
        )
    for i, (blob, shape) in enumerate(zip(layer.blobs, expected, strict=True)):
        if blob.shape != tuple(shape):
            raise layer_error(
                layer, f"{names[i]} blob has shape {blob.shape}, expected {tuple(shape)}", blob=names[i]
            )


def _setup_weight_and_bias(layer: Layer, expected: Sequence[tuple[int, ...]], p) -> None:
    """Keep (shape-checked) weights loaded from the model, else create and fill them; all learn."""
    if layer.blobs:
        _check_param_shapes(layer, expected)
        _as_dtype(layer)
    else:
        layer.blobs = [layer.new_blob(s) for s in expected]
        fill(layer.blobs[0], p.weight_filler)
        if len(expected) > 1:
            fill(layer.blobs[1], p.bias_filler)
    for i in range(len(layer.blobs)):
        layer.set_param_propagate_down(i, True)


def _as_dtype(layer: Layer) -> None:
    """Loaded blobs come in the proto's precision; compute in the layer's."""
    for i, blob in enumerate(layer.blobs):
        if blob.dtype != layer.dtype:
            converted = Blob(blob.shape, dtype=layer.dtype)
            converted.data[...] = blob.cpu_data()
            layer.blobs[i] = converted


@register_layer("InnerProduct")
class InnerProductLayer(Layer):
    """Fully connected: top = bottom (M x K) times weightᵀ plus bias; K is the count from `axis`."""

    category = "common"
    description = "Fully connected layer: matrix product with learned weights plus bias"
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        p = self.layer_param.inner_product_param
        self.num_output = int(p.num_output)
        self.bias_term = bool(p.bias_term)
        self.transpose = bool(p.transpose)
        self.axis = canonical_axis(self, bottom[0], p.axis)
        self.k = bottom[0].count_range(self.axis)
        weight_shape = (self.k, self.num_output) if self.transpose else (self.num_output, self.k)
        expected = [weight_shape] + ([(self.num_output,)] if self.bias_term else [])
        _setup_weight_and_bias(self, expected, p)

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        b = bottom[0]
        axis = canonical_axis(self, b, self.layer_param.inner_product_param.axis)
        if b.count_range(axis) != self.k:
            raise layer_error(
                self,
                f"input size incompatible with inner product parameters: bottom {b.shape} gives "
                f"{b.count_range(axis)} inputs from axis {axis}, the weights take {self.k}",
            )
        self.axis = axis
        self.m = b.count_range(0, axis)
        top[0].reshape(list(b.shape[:axis]) + [self.num_output])

    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        x = bottom[0].cpu_data().reshape(self.m, self.k)
        out = top[0].data.reshape(self.m, self.num_output)
        parallel_gemm(False, not self.transpose, x, self.blobs[0].cpu_data(), 0.0, out)
        if self.bias_term:
            out += self.blobs[1].cpu_data()

    def backward_cpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        dy = top[0].cpu_diff().reshape(self.m, self.num_output)
        if self.param_propagate_down(0):
            x = bottom[0].cpu_data().reshape(self.m, self.k)
            wd = self.blobs[0].diff
            if self.transpose:
                parallel_gemm(True, False, x, dy, 1.0, wd)  # += x^T dy
            else:
                parallel_gemm(True, False, dy, x, 1.0, wd)  # += dy^T x
        if self.bias_term and self.param_propagate_down(1):
            self.blobs[1].diff[...] += dy.sum(axis=0)
        if propagate_down[0]:
            parallel_gemm(False, self.transpose, dy, self.blobs[0].cpu_data(), 0.0,
                          bottom[0].diff.reshape(self.m, self.k))

    # -- GPU (inner_product_layer.cu): device GEMMs; the bias through the per-channel kernels
    def forward_gpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        from engine.kernels.gpu.blas import gemm
        from engine.kernels.gpu.dense import add_channel_bias

        y = top[0].mutable_gpu_data()
        gemm(False, not self.transpose, self.m, self.num_output, self.k, 1.0, bottom[0].gpu_data(),
             self.blobs[0].gpu_data(), 0.0, y)
        if self.bias_term:
            add_channel_bias(self.m, self.num_output, 1, self.blobs[1].gpu_data(), y)

    def backward_gpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        from engine.kernels.gpu.blas import gemm
        from engine.kernels.gpu.dense import channel_sum

        dy = top[0].gpu_diff()
        m, n, k = self.m, self.num_output, self.k
        if self.param_propagate_down(0):
            x, wd = bottom[0].gpu_data(), self.blobs[0].mutable_gpu_diff()
            if self.transpose:
                gemm(True, False, k, n, m, 1.0, x, dy, 1.0, wd)
            else:
                gemm(True, False, n, k, m, 1.0, dy, x, 1.0, wd)
        if self.bias_term and self.param_propagate_down(1):
            channel_sum(m, n, 1, dy, self.blobs[1].mutable_gpu_diff())
        if propagate_down[0]:
            gemm(False, self.transpose, m, k, n, 1.0, dy, self.blobs[0].gpu_data(), 0.0,
                 bottom[0].mutable_gpu_diff())


@register_layer("Embed")
class EmbedLayer(Layer):
    """Looks up rows of a learned input_dim x num_output table by integer indices held as floats."""

    category = "common"
    description = "Embedding lookup: integer indices select rows of a learned table"
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        p = self.layer_param.embed_param
        self.num_output = int(p.num_output)
        self.input_dim = int(p.input_dim)
        if self.num_output <= 0:
            raise layer_error(self, "num_output must be positive")
        if self.input_dim <= 0:
            raise layer_error(self, "input_dim must be positive")
        self.bias_term = bool(p.bias_term)
        expected = [(self.input_dim, self.num_output)] + ([(self.num_output,)] if self.bias_term else [])
        _setup_weight_and_bias(self, expected, p)

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        top[0].reshape(list(bottom[0].shape) + [self.num_output])

    def allow_force_backward(self, bottom_index: int) -> bool:
        return False  # indices have no gradient

    def _rows(self, bottom: Blob) -> np.ndarray:
        rows, bad = rows_from_floats(bottom.cpu_data(), self.input_dim)
        if bad >= 0:
            value = bottom.cpu_data().reshape(-1)[bad]
            raise layer_error(
                self, f"index {value!r} at position {bad} of the bottom is outside [0, {self.input_dim})"
            )
        return rows

    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        rows = self._rows(bottom[0])
        out = top[0].data.reshape(-1, self.num_output)
        np.take(self.blobs[0].cpu_data(), rows, axis=0, out=out)
        if self.bias_term:
            out += self.blobs[1].cpu_data()

    def backward_cpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        if propagate_down[0]:
            raise layer_error(self, "can't backpropagate to the Embed layer's input (indices)")
        dy = top[0].cpu_diff().reshape(-1, self.num_output)
        if self.param_propagate_down(0):
            scatter_add_rows(self._rows(bottom[0]), dy, self.blobs[0].diff)
        if self.bias_term and self.param_propagate_down(1):
            self.blobs[1].diff[...] += dy.sum(axis=0)

    # -- GPU (embed_layer.cu): a gather forward, an atomic scatter-add backward
    def _gpu_check_indices(self, bottom: Blob) -> None:
        """Indices are checked where they already are on the host (no device read-back)."""
        from engine.syncedmem import HEAD_AT_CPU, SYNCED

        if bottom.data_memory.head in (HEAD_AT_CPU, SYNCED):
            self._rows(bottom)

    def forward_gpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        from engine.kernels.gpu.dense import embed_forward

        self._gpu_check_indices(bottom[0])
        bias = self.blobs[1].gpu_data() if self.bias_term else None
        embed_forward(bottom[0].gpu_data(), bottom[0].count, self.input_dim, self.num_output,
                      self.blobs[0].gpu_data(), bias, top[0].mutable_gpu_data())

    def backward_gpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        from engine.kernels.gpu.dense import channel_sum, embed_backward

        if propagate_down[0]:
            raise layer_error(self, "can't backpropagate to the Embed layer's input (indices)")
        dy = top[0].gpu_diff()
        if self.param_propagate_down(0):
            embed_backward(bottom[0].gpu_data(), bottom[0].count, self.input_dim, self.num_output, dy,
                           self.blobs[0].mutable_gpu_diff())
        if self.bias_term and self.param_propagate_down(1):
            channel_sum(bottom[0].count, self.num_output, 1, dy, self.blobs[1].mutable_gpu_diff())


@register_layer("Parameter")
class ParameterLayer(Layer):
    """Exposes a learned blob of parameter_param.shape as its top (data and diff shared)."""

    category = "utility"
    description = "Outputs a learned parameter blob of the given shape"
    exact_num_bottom_blobs = 0
    exact_num_top_blobs = 1

    def layer_setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        shape = [int(d) for d in self.layer_param.parameter_param.shape.dim]
        if self.blobs:
            if len(self.blobs) != 1 or list(self.blobs[0].shape) != shape:
                got = [b.shape for b in self.blobs]
                raise layer_error(
                    self, f"model holds param blob(s) {got}, expected one of shape {tuple(shape)}"
                )
        else:
            self.blobs = [param_blob(self, shape)]
        top[0].reshape(shape)

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        """The top keeps the parameter's shape."""

    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        top[0].reshape(self.blobs[0].shape)
        top[0].share_data(self.blobs[0])
        top[0].share_diff(self.blobs[0])
