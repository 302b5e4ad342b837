"""`TTQQuantizeScheme`: TTQ's registry, and none of tfmot's default 8-bit layout rewrites."""

from tensorflow_model_optimization.python.core.quantization.keras import (
    quantize_layout_transform,
    quantize_scheme,
)

from ttq_keras.quantize_registry import TTQQuantizeRegistry

__all__ = ["TTQQuantizeScheme", "TTQLayoutTransform"]


class TTQLayoutTransform(quantize_layout_transform.QuantizeLayoutTransform):
    """Leaves the graph as it is.

    tfmot's default 8-bit transform inserts input quantizers and rewrites Conv+BN+ReLU patterns
    for fake-quantized activations; TTQ keeps activations float, so it needs none of that.
    The only change is to drop tfmot's placeholder entries (model inputs it marks for 8-bit
    input quantization), which carry no QuantizeConfig.
    """

    def apply(self, model, layer_quantize_map):
        kept = {
            name: entry
            for name, entry in layer_quantize_map.items()
            if entry.get("quantize_config")
        }
        return model, kept


class TTQQuantizeScheme(quantize_scheme.QuantizeScheme):
    """Use with `tfmot.quantization.keras.quantize_apply(annotated, scheme=TTQQuantizeScheme())`.

    Args: as `TTQQuantizeRegistry`.
    """

    def __init__(self, quantizer_kwargs=None, layer_names=None, layer_kwargs=None):
        self._registry = TTQQuantizeRegistry(quantizer_kwargs, layer_names, layer_kwargs)

    def get_layout_transformer(self):
        return TTQLayoutTransform()

    def get_quantize_registry(self):
        return self._registry
