"""`TTQQuantizeRegistry`: the declarative table of layers TTQ ternarizes."""

import collections

from tensorflow_model_optimization.python.core.quantization.keras import quantize_registry

from ttq_keras._compat import keras
from ttq_keras.quantize_configs import TTQQuantizeConfig
from ttq_keras.quantizers import TTQQuantizer

__all__ = ["TTQQuantizeRegistry", "SUPPORTED_LAYERS", "layer_kind", "unsupported_reason"]

_LayerInfo = collections.namedtuple("_LayerInfo", ["kind", "weight_attrs", "channel_dims"])

# Exact classes only: Conv2DTranspose subclasses Conv2D but is a different operation.
SUPPORTED_LAYERS = {
    keras.layers.Conv2D: _LayerInfo("conv2d", ("kernel",), 1),
    keras.layers.DepthwiseConv2D: _LayerInfo("depthwise_conv2d", ("depthwise_kernel",), 2),
    keras.layers.Dense: _LayerInfo("dense", ("kernel",), 1),
}

# Layers whose weights are not kernels: they stay float without comment.
_FLOAT_BY_DESIGN = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.PReLU,
)


def _supported_names():
    return ", ".join(klass.__name__ for klass in SUPPORTED_LAYERS)


def unsupported_reason(layer):
    """None if TTQ can ternarize `layer`, else a sentence saying why not."""
    info = SUPPORTED_LAYERS.get(type(layer))
    if info is None:
        return (
            f"{type(layer).__name__} is not supported by TTQ (supported layers: "
            f"{_supported_names()})"
        )
    if info.kind == "conv2d" and getattr(layer, "groups", 1) != 1:
        return f"grouped Conv2D (groups={layer.groups}) is not supported; split it into groups"
    data_format = getattr(layer, "data_format", "channels_last")
    if data_format not in (None, "channels_last"):
        return f"data_format={data_format!r} is not supported; use channels_last"
    return None


def has_kernel_weights(layer):
    """True for layers whose weights TTQ would be expected to ternarize (a matrix or more)."""
    if isinstance(layer, _FLOAT_BY_DESIGN):
        return False
    return any(len(w.shape) >= 2 for w in layer.weights)


def layer_kind(layer):
    """'conv2d', 'depthwise_conv2d' or 'dense' for a supported layer, else None."""
    info = SUPPORTED_LAYERS.get(type(layer))
    return info.kind if info else None


class TTQQuantizeRegistry(quantize_registry.QuantizeRegistry):
    """Maps each supported layer to a `TTQQuantizeConfig`.

    Args:
      quantizer_kwargs: arguments of `TTQQuantizer` (threshold, per_channel, ...), shared by
        every layer; `channel_dims` is set per layer type.
      layer_names: if given, only layers with these names are supported (quantize_model passes
        the layers it chose, so that tfmot never wraps the float layers around them).
      layer_kwargs: {layer name: quantizer kwargs} replacing `quantizer_kwargs` for that layer
        (quantize_model resolves the "auto" gradients per layer).
    """

    def __init__(self, quantizer_kwargs=None, layer_names=None, layer_kwargs=None):
        self.quantizer_kwargs = dict(quantizer_kwargs or {})
        self.quantizer_kwargs.pop("channel_dims", None)
        self.layer_names = None if layer_names is None else set(layer_names)
        self.layer_kwargs = {
            name: {k: v for k, v in kwargs.items() if k != "channel_dims"}
            for name, kwargs in (layer_kwargs or {}).items()
        }

    def supports(self, layer):
        if self.layer_names is not None and layer.name not in self.layer_names:
            return False
        return unsupported_reason(layer) is None

    def get_quantize_config(self, layer):
        reason = unsupported_reason(layer)
        if reason is not None:
            raise ValueError(f"Layer {layer.name!r} cannot be ternarized: {reason}.")
        info = SUPPORTED_LAYERS[type(layer)]
        kwargs = self.layer_kwargs.get(layer.name, self.quantizer_kwargs)
        quantizer = TTQQuantizer(channel_dims=info.channel_dims, **kwargs)
        return TTQQuantizeConfig(info.weight_attrs, quantizer)
