"""`ttq_keras.summary`: bits, sparsity, scales and bytes per layer of a quantized model."""

import dataclasses
from typing import Callable, List, Optional

import numpy as np
from tensorflow_model_optimization.python.core.quantization.keras import quantize_wrapper

from ttq_keras._compat import keras
from ttq_keras.diagnostics import check_ternary_weights
from ttq_keras.lite.format import packed_row_bytes
from ttq_keras.lite.sizes import packed_layer_bytes
from ttq_keras.ternary_weights import (
    _all_layers,
    is_ttq_wrapper,
    ternary_layers,
    wrapped_layer_variables,
)

__all__ = ["LayerStats", "summary", "layer_stats"]

FLOAT_BYTES = 4


@dataclasses.dataclass
class LayerStats:
    name: str
    layer_type: str
    params: int
    bits_per_weight: float  # storage bits per kernel weight in the packed file
    sparsity: float  # fraction of zeros among the (ternary or float) kernel weights
    wp: Optional[float]  # mean over channels when per-channel
    wn: Optional[float]
    float_bytes: int
    packed_bytes: int
    ternary: bool


def _model_nodes(model, layer):
    """The inbound nodes of `layer` that belong to `model`'s own graph.

    Layers are shared between the models tfmot clones on the way, so a layer can have nodes in
    several graphs; Functional models list theirs in `_network_nodes`.
    """
    keys = getattr(model, "_network_nodes", None)
    nodes = layer._inbound_nodes  # pylint: disable=protected-access
    if keys is None:
        return nodes
    return [n for i, n in enumerate(nodes) if f"{layer.name}_ib-{i}" in keys]


def _folded_batchnorms(model, ternary_names):
    """BatchNormalization layers that directly follow a ternary layer with no other consumer.

    The converter folds them into the packed op's per-channel scales, so they cost no bytes.
    """
    if not getattr(model, "_is_graph_network", False):
        return set()
    consumers = {}
    for layer in model.layers:
        for node in _model_nodes(model, layer):
            for producer in (
                node.inbound_layers
                if isinstance(node.inbound_layers, (list, tuple))
                else [node.inbound_layers]
            ):
                consumers.setdefault(producer.name, []).append(layer)
    folded = set()
    for name in ternary_names:
        users = consumers.get(name, [])
        if len(users) == 1 and isinstance(users[0], keras.layers.BatchNormalization):
            folded.add(users[0].name)
    return folded


def layer_stats(model) -> List[LayerStats]:
    """One LayerStats per layer that has weights, in model order."""
    ternary_by_name = {t.name: t for t in ternary_layers(model)}
    folded = _folded_batchnorms(model, set(ternary_by_name))
    rows = []
    for layer in _all_layers(model):
        if isinstance(layer, keras.Model):
            continue
        if is_ttq_wrapper(layer):
            info = ternary_by_name[layer.name]
            inner = layer.layer
            params = int(sum(np.prod(w.shape) for w in wrapped_layer_variables(layer).values()))
            kernel_size = int(info.codes.size)
            packed = packed_layer_bytes(info.out_channels, info.row_length)
            rows.append(
                LayerStats(
                    name=layer.name,
                    layer_type=type(inner).__name__,
                    params=params,
                    bits_per_weight=8.0
                    * info.out_channels
                    * packed_row_bytes(info.row_length)
                    / kernel_size,
                    sparsity=info.sparsity,
                    wp=float(np.mean(info.wp)),
                    wn=float(np.mean(info.wn)),
                    float_bytes=FLOAT_BYTES * params,
                    packed_bytes=packed,
                    ternary=True,
                )
            )
            continue
        if isinstance(layer, quantize_wrapper.QuantizeWrapper):
            weights = list(wrapped_layer_variables(layer).values())
            layer = layer.layer
        else:
            weights = layer.weights
        if not weights:
            continue
        params = int(sum(np.prod(w.shape) for w in weights))
        kernels = [np.asarray(w) for w in weights if len(w.shape) >= 2]
        zeros = sum(int(np.sum(k == 0)) for k in kernels)
        total = sum(k.size for k in kernels)
        if layer.name in folded:
            packed = 0
        elif isinstance(layer, keras.layers.BatchNormalization):
            # TFLite stores an inference-mode BN that it cannot fold as a multiply and an add.
            packed = 2 * FLOAT_BYTES * int(weights[0].shape[-1])
        else:
            packed = FLOAT_BYTES * params
        rows.append(
            LayerStats(
                name=layer.name,
                layer_type=type(layer).__name__,
                params=params,
                bits_per_weight=32.0,
                sparsity=(zeros / total) if total else 0.0,
                wp=None,
                wn=None,
                float_bytes=FLOAT_BYTES * params,
                packed_bytes=packed,
                ternary=False,
            )
        )
    return rows


def _fmt_bytes(n):
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def summary(model, print_fn: Callable[[str], None] = print) -> List[LayerStats]:
    """Prints, per layer: bits per weight, sparsity, Wp/Wn, float and packed bytes; and totals.

    "packed" is the layer's size in the packed .tflite that `ttq_keras.convert` writes
    (5 trits per byte plus per-channel scales and bias; a BatchNormalization right after a
    ternary layer is folded into it). Returns the rows as `LayerStats`.
    """
    check_ternary_weights(model)  # NaN/Inf weights: name the layer before reporting anything
    rows = layer_stats(model)
    header = (
        f"{'layer':<28} {'type':<18} {'params':>9} {'bits/w':>6} {'sparsity':>8} "
        f"{'Wp':>8} {'Wn':>8} {'float':>11} {'packed':>11}"
    )
    lines = [f"ttq_keras summary of model {model.name!r}", header, "-" * len(header)]
    for r in rows:
        wp = f"{r.wp:8.4f}" if r.wp is not None else f"{'-':>8}"
        wn = f"{r.wn:8.4f}" if r.wn is not None else f"{'-':>8}"
        lines.append(
            f"{r.name[:28]:<28} {r.layer_type[:18]:<18} {r.params:>9} {r.bits_per_weight:>6.2f} "
            f"{r.sparsity:>8.3f} {wp} {wn} {_fmt_bytes(r.float_bytes):>11} "
            f"{_fmt_bytes(r.packed_bytes):>11}"
        )
    float_total = sum(r.float_bytes for r in rows)
    packed_total = sum(r.packed_bytes for r in rows)
    ternary_rows = [r for r in rows if r.ternary]
    ternary_weights = sum(r.params for r in ternary_rows)
    zeros = sum(r.sparsity * (r.params) for r in ternary_rows)
    lines.append("-" * len(header))
    lines.append(
        f"{'total':<28} {'':<18} {sum(r.params for r in rows):>9} {'':>6} "
        f"{(zeros / ternary_weights if ternary_weights else 0):>8.3f} {'':>8} {'':>8} "
        f"{_fmt_bytes(float_total):>11} {_fmt_bytes(packed_total):>11}"
    )
    ratio = float_total / packed_total if packed_total else float("inf")
    lines.append(
        f"{len(ternary_rows)} ternary layers; weights {ratio:.1f}x smaller packed than float "
        "(sparsity total is over ternary layers)."
    )
    for line in lines:
        print_fn(line)
    return rows
