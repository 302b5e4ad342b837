"""`TTQQuantizeConfig`: which weights of a layer TTQ ternarizes. Activations stay float."""

from tensorflow_model_optimization.python.core.quantization.keras import quantize_config

from ttq_keras._compat import keras
from ttq_keras.quantizers import TTQQuantizer

__all__ = ["TTQQuantizeConfig"]


@keras.utils.register_keras_serializable(package="ttq_keras")
class TTQQuantizeConfig(quantize_config.QuantizeConfig):
    """Ternarizes the named kernel attributes of a layer; activations and outputs stay float.

    Args:
      weight_attrs: names of the layer attributes holding the kernels, e.g. ("kernel",) for
        Conv2D and Dense, ("depthwise_kernel",) for DepthwiseConv2D.
      quantizer: the `TTQQuantizer` (or its config dict) applied to each of them.
    """

    def __init__(self, weight_attrs, quantizer=None):
        if isinstance(weight_attrs, str):
            weight_attrs = [weight_attrs]
        self.weight_attrs = list(weight_attrs)
        if not self.weight_attrs:
            raise ValueError("`weight_attrs` must name at least one kernel attribute.")
        if quantizer is None:
            quantizer = TTQQuantizer()
        elif isinstance(quantizer, dict):
            quantizer = TTQQuantizer.from_config(quantizer.get("config", quantizer))
        if not isinstance(quantizer, TTQQuantizer):
            raise TypeError(
                f"`quantizer` must be a TTQQuantizer. Received: {type(quantizer).__name__}"
            )
        self.quantizer = quantizer

    def get_weights_and_quantizers(self, layer):
        pairs = []
        for attr in self.weight_attrs:
            if not hasattr(layer, attr):
                raise ValueError(
                    f"Layer {layer.name!r} ({type(layer).__name__}) has no weight attribute "
                    f"{attr!r} to ternarize."
                )
            pairs.append((getattr(layer, attr), self.quantizer))
        return pairs

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        if len(quantize_weights) != len(self.weight_attrs):
            raise ValueError(
                f"Layer {layer.name!r}: expected {len(self.weight_attrs)} quantized weights, "
                f"received {len(quantize_weights)}."
            )
        for attr, weight in zip(self.weight_attrs, quantize_weights):
            setattr(layer, attr, weight)

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {
            "weight_attrs": list(self.weight_attrs),
            "quantizer": self.quantizer.get_config(),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, TTQQuantizeConfig) and self.get_config() == other.get_config()

    def __ne__(self, other):
        return not self.__eq__(other)
