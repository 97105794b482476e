"""Caffe's InsertSplits: give every consumer of a shared top blob its own copy.

Backward passes accumulate nothing across consumers of one blob, so Caffe
inserts a "Split" layer after any top that feeds more than one bottom; the
Split layer sums its tops' diffs into the bottom. An explicit non-zero
`loss_weight` on a top counts as one more consumer (the implicit weight of a
loss layer does not: Caffe adds it later, in the layer's own setup). Names
follow Caffe exactly because saved models and logs carry them.
"""

from __future__ import annotations

from engine.errors import WiringError
from engine.proto import caffe_pb2


def split_layer_name(layer_name: str, blob_name: str, blob_idx: int) -> str:
    return f"{blob_name}_{layer_name}_{blob_idx}_split"


def split_blob_name(layer_name: str, blob_name: str, blob_idx: int, split_idx: int) -> str:
    return f"{blob_name}_{layer_name}_{blob_idx}_split_{split_idx}"


def _split_layer(
    layer_name: str, blob_name: str, blob_idx: int, split_count: int, loss_weight: float
) -> caffe_pb2.LayerParameter:
    split = caffe_pb2.LayerParameter()
    split.bottom.append(blob_name)
    split.name = split_layer_name(layer_name, blob_name, blob_idx)
    split.type = "Split"
    for k in range(split_count):
        split.top.append(split_blob_name(layer_name, blob_name, blob_idx, k))
        if loss_weight:
            split.loss_weight.append(loss_weight if k == 0 else 0.0)
    return split


def insert_splits(net_param: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """A copy of `net_param` with Split layers wherever a top has several consumers."""
    layers = net_param.layer
    last_top: dict[str, tuple[int, int]] = {}
    source_of_bottom: dict[tuple[int, int], tuple[int, int]] = {}
    consumers: dict[tuple[int, int], int] = {}
    loss_weight: dict[tuple[int, int], float] = {}
    for i, layer in enumerate(layers):
        for j, blob in enumerate(layer.bottom):
            if blob not in last_top:
                raise WiringError(
                    f"layer '{layer.name}': unknown bottom blob '{blob}' (bottom index {j}); "
                    "no earlier layer produces it",
                    layer=layer.name,
                    blob=blob,
                )
            top_idx = last_top[blob]
            source_of_bottom[(i, j)] = top_idx
            consumers[top_idx] = consumers.get(top_idx, 0) + 1
        for j, blob in enumerate(layer.top):
            last_top[blob] = (i, j)
        for j in range(min(len(layer.loss_weight), len(layer.top))):
            top_idx = last_top[layer.top[j]]
            loss_weight[top_idx] = layer.loss_weight[j]
            if layer.loss_weight[j]:
                consumers[top_idx] = consumers.get(top_idx, 0) + 1

    out = caffe_pb2.NetParameter()
    out.CopyFrom(net_param)
    del out.layer[:]
    next_split: dict[tuple[int, int], int] = {}
    for i, source in enumerate(layers):
        layer = out.layer.add()
        layer.CopyFrom(source)
        for j, blob in enumerate(layer.bottom):
            top_idx = source_of_bottom[(i, j)]
            if consumers.get(top_idx, 0) > 1:
                k = next_split.get(top_idx, 0)
                next_split[top_idx] = k + 1
                layer.bottom[j] = split_blob_name(layers[top_idx[0]].name, blob, top_idx[1], k)
        splits = []
        for j, blob in enumerate(layer.top):
            count = consumers.get((i, j), 0)
            if count <= 1:
                continue
            weight = loss_weight.get((i, j), 0.0)
            splits.append(_split_layer(layer.name, blob, j, count, weight))
            if weight:
                # Caffe clears every loss weight of the producer, not just this top's.
                del layer.loss_weight[:]
                next_split[(i, j)] = next_split.get((i, j), 0) + 1
        for split in splits:
            out.layer.add().CopyFrom(split)
    return out
