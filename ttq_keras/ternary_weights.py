"""Reading the ternary weights out of a quantized model, and baking them into a float model."""

import dataclasses
from typing import Any, Iterable, List, NamedTuple, Optional

import numpy as np
from tensorflow_model_optimization.python.core.quantization.keras import quantize_wrapper

from ttq_keras import ops
from ttq_keras._compat import keras, tf
from ttq_keras.quantize_configs import TTQQuantizeConfig
from ttq_keras.quantize_registry import layer_kind

__all__ = [
    "TernaryLayer",
    "is_ttq_wrapper",
    "ternary_layers",
    "to_float_model",
    "initialize_scales_from_weights",
    "wrapped_layer_variables",
    "TernaryVariables",
    "ternary_variables",
]


def is_ttq_wrapper(layer) -> bool:
    """True for a tfmot QuantizeWrapper whose config is TTQ's."""
    return isinstance(layer, quantize_wrapper.QuantizeWrapper) and isinstance(
        layer.quantize_config, TTQQuantizeConfig
    )


@dataclasses.dataclass
class TernaryLayer:
    """The ternary state of one quantized layer, as NumPy arrays.

    `codes` has the Keras kernel's shape and values in {-1, 0, +1}; `wp` and `wn` are the
    scales in use (shape () per layer, or the kernel's trailing channel dimensions).
    """

    name: str
    inner_name: str
    kind: str
    layer: Any
    wrapper: Any
    codes: np.ndarray
    wp: np.ndarray
    wn: np.ndarray
    latent_kernel: np.ndarray
    delta: float

    def ternary_kernel(self) -> np.ndarray:
        """wp where the code is +1, -wn where it is -1, 0 elsewhere (float32)."""
        pos = (self.codes == 1).astype(np.float32)
        neg = (self.codes == -1).astype(np.float32)
        return (self.wp * pos - self.wn * neg).astype(np.float32)

    @property
    def sparsity(self) -> float:
        return float(np.mean(self.codes == 0))

    @property
    def out_channels(self) -> int:
        shape = self.codes.shape
        return int(shape[-1] * shape[-2]) if self.kind == "depthwise_conv2d" else int(shape[-1])

    @property
    def row_length(self) -> int:
        """K of docs/format.md: the number of taps feeding one output channel."""
        return int(self.codes.size // self.out_channels)


def _all_layers(model):
    """Every layer of `model`, looking inside nested and subclassed models but not inside
    tfmot wrappers (the wrapped layer is reported through its wrapper)."""
    result = []

    def _visit(parent):
        for layer in parent._flatten_layers(
            include_self=False, recursive=False
        ):  # pylint: disable=protected-access
            result.append(layer)
            if not isinstance(layer, quantize_wrapper.QuantizeWrapper):
                _visit(layer)

    _visit(model)
    return result


def _short_name(variable):
    return variable.name.split(":")[0].split("/")[-1]


def wrapped_layer_variables(wrapper):
    """{short name: variable} of the layer inside a tfmot wrapper ("kernel", "bias", ...).

    After the wrapper's first call the inner layer's kernel attribute holds the quantized
    tensor and Keras stops listing the variable under the inner layer, so read the wrapper's.
    """
    quantizer_vars = set()
    for _, _, variables in getattr(wrapper, "_weight_vars", []):
        quantizer_vars.update(id(v) for v in variables.values())
    skip = quantizer_vars | {id(getattr(wrapper, "optimizer_step", None))}
    return {_short_name(v): v for v in wrapper.weights if id(v) not in skip}


class TernaryVariables(NamedTuple):
    """The trainable state of one ternarized kernel: tf.Variables, not copies."""

    kernel: Any  # the latent float kernel
    wp: Any  # positive scale (a variable; not trainable in "twn" mode)
    wn: Any  # negative scale, a positive magnitude
    quantizer: Any  # the TTQQuantizer applied to `kernel`


def ternary_variables(layer) -> List[TernaryVariables]:
    """The latent kernel and Wp/Wn variables of a TTQ-quantized layer (one entry per ternarized
    kernel; [] for a layer that is not a TTQ wrapper). For weight decay, custom optimizers or
    inspection, instead of reading tfmot's private `_weight_vars`."""
    if not is_ttq_wrapper(layer):
        return []
    return [
        TernaryVariables(kernel, variables["wp"], variables["wn"], quantizer)
        for kernel, quantizer, variables in _ttq_weight_vars(layer)
    ]


def _ttq_weight_vars(wrapper):
    """(latent kernel variable, quantizer, quantizer variables) triples of a built wrapper."""
    if not wrapper.built:
        raise ValueError(
            f"Layer {wrapper.name!r} is not built yet: call the model on data (or build it) "
            "before reading its ternary weights."
        )
    return wrapper._weight_vars  # pylint: disable=protected-access


def ternary_layers(model) -> List[TernaryLayer]:
    """The ternary layers of a model made by `quantize_model` (or with `quantize_layer`)."""
    result = []
    for layer in _all_layers(model):
        if not is_ttq_wrapper(layer):
            continue
        for kernel_var, quantizer, quantizer_vars in _ttq_weight_vars(layer):
            kernel = tf.convert_to_tensor(kernel_var)
            delta = quantizer.delta(kernel)
            wp, wn = quantizer.effective_scales(kernel, quantizer_vars)
            result.append(
                TernaryLayer(
                    name=layer.name,
                    inner_name=layer.layer.name,
                    kind=layer_kind(layer.layer),
                    layer=layer.layer,
                    wrapper=layer,
                    codes=ops.ternary_codes(kernel, delta).numpy(),
                    wp=np.asarray(wp, dtype=np.float32),
                    wn=np.asarray(wn, dtype=np.float32),
                    latent_kernel=kernel.numpy(),
                    delta=float(delta),
                )
            )
    return result


def initialize_scales_from_weights(model, layer_names: Optional[Iterable[str]] = None) -> None:
    """Sets every TTQ layer's Wp/Wn to the least-squares fit of its current latent kernel.

    Wp = mean(w | w > Δ) and Wn = mean(-w | w < -Δ), per layer or per channel. Call it after
    loading pretrained float weights; `quantize_model(..., scale_init="data")` calls it for you.
    Layers in "twn" mode are skipped (their scales are not variables). `layer_names` restricts
    it to these layers (wrapper names "quant_x" or the original names "x").
    """
    names = None if layer_names is None else set(layer_names)
    for layer in _all_layers(model):
        if not is_ttq_wrapper(layer):
            continue
        if names is not None and layer.name not in names and layer.layer.name not in names:
            continue
        for kernel_var, quantizer, quantizer_vars in _ttq_weight_vars(layer):
            if quantizer.mode != "ttq":
                continue
            kernel = tf.convert_to_tensor(kernel_var)
            wp, wn = ops.fit_scales(kernel, quantizer.delta(kernel), quantizer.scale_rank)
            quantizer_vars["wp"].assign(tf.cast(wp, quantizer_vars["wp"].dtype))
            quantizer_vars["wn"].assign(tf.cast(wn, quantizer_vars["wn"].dtype))


def _unwrapped_layer_config(layer):
    if isinstance(layer, quantize_wrapper.QuantizeWrapper):
        return layer.layer.__class__, layer.layer.get_config()
    return layer.__class__, layer.get_config()


def to_float_model(model):
    """A plain tf_keras model computing what the quantized model computes at inference.

    The graph is the same; every tfmot wrapper is replaced by the layer it wraps (with its
    original name); the kernels of TTQ layers hold their ternary values {+Wp, 0, -Wn}; every
    other weight is copied. This is what the converter hands to TFLite.
    """
    if not isinstance(model, keras.Sequential) and not getattr(model, "_is_graph_network", False):
        raise ValueError(
            f"to_float_model needs a Sequential or Functional model; {model.name!r} is a "
            f"subclassed {type(model).__name__}."
        )
    ternary_by_wrapper = {}
    for info in ternary_layers(model):
        ternary_by_wrapper.setdefault(info.name, []).append(info)

    def _clone(layer):
        klass, config = _unwrapped_layer_config(layer)
        return klass.from_config(config)

    float_model = keras.models.clone_model(model, clone_function=_clone)
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if not isinstance(layer, quantize_wrapper.QuantizeWrapper):
            float_model.get_layer(layer.name).set_weights(layer.get_weights())
            continue
        target = float_model.get_layer(layer.layer.name)
        source = {name: np.asarray(v) for name, v in wrapped_layer_variables(layer).items()}
        if layer.name in ternary_by_wrapper:
            kernel_vars = [v for v, _, _ in _ttq_weight_vars(layer)]
            for info, kernel_var in zip(ternary_by_wrapper[layer.name], kernel_vars):
                source[_short_name(kernel_var)] = info.ternary_kernel()
        values = []
        for variable in target.weights:
            name = _short_name(variable)
            if name not in source:
                raise ValueError(
                    f"to_float_model: layer {layer.name!r} has no weight {name!r} to copy "
                    f"(has {sorted(source)})."
                )
            values.append(source[name])
        target.set_weights(values)
    return float_model
