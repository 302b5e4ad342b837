"""Normalization around ternary layers: which layers have one after them, and BN re-estimation.

TTQ's official init (Wp = Wn = 1) multiplies a layer's output by about 1/mean|w| (often 10x).
A BatchNormalization or LayerNormalization right after the layer absorbs that in training; a
layer without one passes it on, compounding over layers. `normalized_layer_names` finds the
layers that have one (quantize_model's scale_init="auto" uses it), and `reestimate_batchnorm`
refreshes the BN moving statistics after ternarization, since the ones learnt on the float
model describe a different function.
"""

from typing import Iterable, Optional, Set

from ttq_keras._compat import keras, tf

__all__ = ["NORMALIZATION_LAYERS", "normalized_layer_names", "reestimate_batchnorm"]

NORMALIZATION_LAYERS = (keras.layers.BatchNormalization, keras.layers.LayerNormalization)


def _consumers(model):
    """{layer name: [layers reading its output]} over `model`'s own graph."""
    consumers = {}
    if not getattr(model, "_is_graph_network", False):
        layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        for producer, consumer in zip(layers, layers[1:]):  # a Sequential is a chain
            consumers[producer.name] = [consumer]
        return consumers
    keys = getattr(model, "_network_nodes", set())
    for layer in model.layers:
        for i, node in enumerate(layer._inbound_nodes):  # pylint: disable=protected-access
            if f"{layer.name}_ib-{i}" not in keys:  # nodes of other models sharing the layer
                continue
            inbound = node.inbound_layers
            for producer in inbound if isinstance(inbound, (list, tuple)) else [inbound]:
                consumers.setdefault(producer.name, []).append(layer)
    return consumers


def normalized_layer_names(model) -> Set[str]:
    """Names of the layers of `model` whose output goes only into BatchNormalization or
    LayerNormalization layers (the next op normalizes it; a fused activation counts as part of
    the layer). A layer feeding an Add, a pooling, another conv, or the model output is not
    normalized."""
    output_names = {
        t.node.layer.name for t in getattr(model, "outputs", None) or [] if hasattr(t, "node")
    }
    result = set()
    for name, users in _consumers(model).items():
        if name in output_names or not users:
            continue
        if all(isinstance(user, NORMALIZATION_LAYERS) for user in users):
            result.add(name)
    return result


def _batchnorm_layers(model):
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)  # noqa: SLF001
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def _forward(model, x):
    """model(x, training=True), once per replica when the model lives under a strategy (each
    replica sees the same batch, so the replicas' statistics stay equal)."""
    if tf.distribute.has_strategy() and tf.distribute.get_replica_context() is not None:
        return model(x, training=True)  # already running inside one replica
    # The default strategy's run() simply calls the function.
    return model.distribute_strategy.run(lambda inputs: model(inputs, training=True), args=(x,))


def reestimate_batchnorm(model, data: Iterable, steps: Optional[int] = None) -> int:
    """Recomputes every BatchNormalization's moving mean and variance on `data`.

    Runs `model(x, training=True)` on up to `steps` batches (all of `data` if None) with each BN's
    momentum set so that the moving statistics become the plain average over those batches;
    nothing else is trained (no optimizer step; dropout is active during the passes but changes
    no weight). The momenta are restored afterwards. Call it right after `quantize_model` (the
    statistics learnt on the float model describe a different function) or after training.

    Args:
      model: any tf_keras model (quantized or not).
      data: an iterable of batches, either `x` or `(x, y, ...)` tuples (a tf.data.Dataset works).
      steps: number of batches to use.

    Returns:
      The number of batches used. Raises ValueError when the model has no BatchNormalization or
      `data` yields no batch.
    """
    bns = _batchnorm_layers(model)
    if not bns:
        raise ValueError(f"Model {model.name!r} has no BatchNormalization layer to re-estimate.")
    if steps is not None and steps < 1:
        raise ValueError(f"`steps` must be a positive integer or None. Received: steps={steps}")
    momenta = [bn.momentum for bn in bns]
    used = 0
    try:
        for batch in data:
            if steps is not None and used >= steps:
                break
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            # Moving average m <- momentum * m + (1 - momentum) * batch_stat; with
            # 1 - momentum = 1 / k on batch k it is the running mean of the k batch statistics.
            for bn in bns:
                bn.momentum = 1.0 - 1.0 / (used + 1)
            _forward(model, x)
            used += 1
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
    if used == 0:
        raise ValueError("reestimate_batchnorm: `data` yielded no batch.")
    return used
