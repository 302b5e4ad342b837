"""Entry points: `quantize_model`, `quantize_layer`, `quantize_scope`.

    import ttq_keras
    from ttq_keras import keras

    model = keras.Sequential([...])            # a tf_keras model, trained in float first
    q_model = ttq_keras.quantize_model(model)  # ternary kernels with trained Wp/Wn
    q_model.compile(...); q_model.fit(...)
    ttq_keras.summary(q_model)
"""

import contextlib
import logging

from tensorflow_model_optimization.python.core.quantization.keras import quantize as tfmot_quantize
from tensorflow_model_optimization.python.core.quantization.keras import (
    quantize_annotate,
    quantize_wrapper,
)

from ttq_keras._compat import check_is_tf_keras_model, is_keras3_object, keras
from ttq_keras.batchnorm import normalized_layer_names
from ttq_keras.quantize_configs import TTQQuantizeConfig
from ttq_keras.quantize_registry import (
    SUPPORTED_LAYERS,
    TTQQuantizeRegistry,
    has_kernel_weights,
    unsupported_reason,
)
from ttq_keras.quantize_scheme import TTQQuantizeScheme
from ttq_keras.quantizers import ScaleFloor, TTQQuantizer
from ttq_keras.ternary_weights import initialize_scales_from_weights

__all__ = [
    "quantize_model",
    "quantize_layer",
    "quantize_scope",
    "custom_objects",
    "RECIPES",
    "AUTO_GRADIENTS",
]

# Training recipes: the quantizer settings each one implies. An argument passed explicitly to
# quantize_model / quantize_layer overrides its recipe's value.
#   "paper":  the authors' code, bit-exact: Wp = Wn = 1, scale gradients are sums over the set,
#             scales unconstrained.
#   "robust": chosen by benchmarks/robustness.py (numbers in BENCHMARKS.md): function-preserving
#             Wp/Wn where no normalization follows the layer, scales kept >= min_scale,
#             gradients that follow each layer's init ("auto", see AUTO_GRADIENTS), and
#             Δ = 0.7·mean|w| (TWN's L2-best threshold; it does not jump with one large weight
#             as max|w| does, and the ternarized model starts 12-17 points nearer float).
RECIPES = {
    "paper": dict(
        threshold=0.05,
        threshold_statistic="max",
        scale_init="ones",
        scale_gradient="sum",
        kernel_gradient="scaled",
        positive_scales=False,
    ),
    "robust": dict(
        threshold=0.7,
        threshold_statistic="mean",
        scale_init="auto",
        scale_gradient="auto",
        kernel_gradient="auto",
        positive_scales=True,
    ),
}
# scale_gradient="auto" / kernel_gradient="auto": the gradients of a layer follow its scale init.
#   "data" (Wp, Wn ≈ mean|w|, no normalization after the layer): Wp moves every weight of its set
#     at once, so its gradient is the mean of theirs ("mean": one step shifts the layer's output
#     as much as one float step would; LSQ's 1/sqrt(N) assumes uncorrelated per-weight gradients
#     and is ~sqrt(N)/4 times larger than that here, which drove Wp to the floor and killed every
#     ReLU under momentum SGD); the latent weights get the plain straight-through gradient
#     ("ste": the official Wp·g would make them learn ~1/mean|w| ≈ 15x slower than float).
#   "ones" (Wp = Wn = 1, a normalization follows and absorbs the scale): LSQ scale gradients and
#     the official scaled kernel gradient (identical to "ste" while Wp = Wn = 1).
AUTO_GRADIENTS = {
    "data": dict(scale_gradient="mean", kernel_gradient="ste"),
    "ones": dict(scale_gradient="lsq", kernel_gradient="scaled"),
}
DEFAULT_RECIPE = "robust"


def _recipe_kwargs(recipe, **explicit):
    if recipe not in RECIPES:
        raise ValueError(f"`recipe` must be one of {sorted(RECIPES)}. Received: recipe={recipe!r}")
    kwargs = dict(RECIPES[recipe])
    kwargs.update({k: v for k, v in explicit.items() if v is not None})
    return kwargs


def _resolve_auto_gradients(kwargs, scale_init):
    """kwargs with scale_gradient/kernel_gradient "auto" replaced by the values for a layer
    whose scales start as `scale_init` ("data" or "ones")."""
    kwargs = dict(kwargs)
    for key in ("scale_gradient", "kernel_gradient"):
        if kwargs.get(key) == "auto":
            kwargs[key] = AUTO_GRADIENTS[scale_init][key]
    return kwargs


_log = logging.getLogger("ttq_keras")


def custom_objects():
    """Every class a saved ttq_keras model may refer to, by name."""
    return {
        "TTQQuantizer": TTQQuantizer,
        "TTQQuantizeConfig": TTQQuantizeConfig,
        "ScaleFloor": ScaleFloor,
        "ttq_keras>TTQQuantizer": TTQQuantizer,
        "ttq_keras>TTQQuantizeConfig": TTQQuantizeConfig,
        "ttq_keras>ScaleFloor": ScaleFloor,
    }


@contextlib.contextmanager
def quantize_scope(*extra_custom_objects):
    """Scope for `tf_keras.models.load_model` of a quantized model (.keras, .h5, SavedModel).

    with ttq_keras.quantize_scope():
        model = keras.models.load_model("model.keras")
    """
    objects = custom_objects()
    for extra in extra_custom_objects:
        objects.update(extra)
    with tfmot_quantize.quantize_scope(objects):
        yield


# The quantize_model / quantize_layer arguments that configure each TTQQuantizer.
_QUANTIZER_ARGS = (
    "threshold",
    "per_channel",
    "positive_scales",
    "min_scale",
    "scale_init",
    "mode",
    "recipe",
    "scale_gradient",
    "kernel_gradient",
    "threshold_statistic",
)


def _quantizer_kwargs(args):
    """TTQQuantizer kwargs from the caller's arguments (`args` holds every _QUANTIZER_ARGS
    name, e.g. the caller's locals()): the recipe's values where an argument is None."""
    a = {name: args[name] for name in _QUANTIZER_ARGS}
    return dict(
        per_channel=a.pop("per_channel"),
        min_scale=a.pop("min_scale"),
        mode=a.pop("mode"),
        **_recipe_kwargs(a.pop("recipe"), **a),
    )


def quantize_layer(
    layer,
    *,
    threshold=None,
    per_channel=False,
    positive_scales=None,
    min_scale=1e-3,
    scale_init=None,
    mode="ttq",
    recipe=DEFAULT_RECIPE,
    scale_gradient=None,
    kernel_gradient=None,
    threshold_statistic=None,
):
    """Wraps one Conv2D, DepthwiseConv2D or Dense layer for TTQ training.

    Use it where `quantize_model` cannot go, such as inside a subclassed model:

        class Net(keras.Model):
            def __init__(self):
                super().__init__()
                self.hidden = ttq_keras.quantize_layer(keras.layers.Dense(64, activation="relu"))
                self.out = keras.layers.Dense(10)

    Returns a tfmot `QuantizeWrapperV2`. With scale_init="data" (or "auto", which cannot see the
    graph here and is applied as "data"), call `ttq_keras.initialize_scales_from_weights(model)`
    once the model is built and has its weights. `recipe`, `scale_gradient`: see quantize_model.
    """
    if is_keras3_object(layer):
        raise TypeError(
            f"Layer {getattr(layer, 'name', '?')!r} is a Keras 3 layer; tfmot supports only "
            "Keras 2: build it with `import tf_keras as keras` (or `from ttq_keras import keras`)."
        )
    if not isinstance(layer, keras.layers.Layer) or isinstance(layer, keras.Model):
        raise TypeError(
            f"quantize_layer expects a tf_keras layer; received {type(layer).__module__}."
            f"{type(layer).__name__}."
        )
    reason = unsupported_reason(layer)
    if reason is not None:
        raise ValueError(f"Layer {layer.name!r} cannot be ternarized: {reason}.")
    kwargs = _quantizer_kwargs(locals())
    # Without the graph "auto" init is applied as "data", and so are "auto" gradients.
    kwargs = _resolve_auto_gradients(kwargs, "ones" if kwargs["scale_init"] == "ones" else "data")
    registry = TTQQuantizeRegistry(kwargs)
    return quantize_wrapper.QuantizeWrapperV2(layer, registry.get_quantize_config(layer))


def _check_graph_model(model):
    check_is_tf_keras_model(model)
    if not isinstance(model, keras.Sequential) and not getattr(model, "_is_graph_network", False):
        raise ValueError(
            f"quantize_model needs a Sequential or Functional model; {model.name!r} is a "
            f"subclassed {type(model).__name__}. Inside subclassed models wrap the layers "
            "themselves with ttq_keras.quantize_layer(...)."
        )
    if not model.built:
        raise ValueError(
            f"Model {model.name!r} is not built: give it an Input or call model.build(shape)."
        )
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            raise ValueError(
                f"Model {model.name!r} contains the nested model {layer.name!r}; tfmot cannot "
                "clone nested models. Flatten it into one Functional model first."
            )
        if isinstance(layer, quantize_wrapper.QuantizeWrapper):
            raise ValueError(
                f"Model {model.name!r} is already quantized (layer {layer.name!r} is a "
                "QuantizeWrapper)."
            )


def _choose_layers(model, keep_first_and_last_float, float_layers, allow_unsupported):
    names = {layer.name for layer in model.layers}
    unknown = sorted(set(float_layers) - names)
    if unknown:
        raise ValueError(f"`float_layers` names layers that are not in the model: {unknown}")
    candidates, unsupported = [], []
    for layer in model.layers:
        reason = unsupported_reason(layer)
        if reason is None:
            candidates.append(layer)
        elif has_kernel_weights(layer):
            unsupported.append(f"{layer.name!r}: {reason}")
    if unsupported:
        message = "These layers have kernels that TTQ cannot ternarize: " + "; ".join(unsupported)
        if not allow_unsupported:
            raise ValueError(
                message + ". Pass allow_unsupported=True to keep them float, or replace them."
            )
        _log.warning("%s. They stay float (allow_unsupported=True).", message)
    if not candidates:
        raise ValueError(
            f"Model {model.name!r} has no layer TTQ can ternarize (supported: "
            f"{', '.join(k.__name__ for k in SUPPORTED_LAYERS)})."
        )
    kept_float = set(float_layers)
    if keep_first_and_last_float:
        kept_float |= {candidates[0].name, candidates[-1].name}
    chosen = [layer for layer in candidates if layer.name not in kept_float]
    if not chosen:
        raise ValueError(
            f"Nothing left to ternarize in {model.name!r}: its only supported layers "
            f"{[layer.name for layer in candidates]} are kept float (keep_first_and_last_float="
            f"{keep_first_and_last_float}, float_layers={list(float_layers)})."
        )
    return chosen


def quantize_model(
    model,
    *,
    threshold=None,
    keep_first_and_last_float=True,
    float_layers=(),
    per_channel=False,
    positive_scales=None,
    min_scale=1e-3,
    scale_init=None,
    mode="ttq",
    allow_unsupported=False,
    recipe=DEFAULT_RECIPE,
    scale_gradient=None,
    kernel_gradient=None,
    threshold_statistic=None,
):
    """Returns a copy of `model` whose Conv2D, DepthwiseConv2D and Dense kernels train with TTQ.

    The copy keeps the model's weights; every ternarized layer is wrapped by tfmot's
    `QuantizeWrapperV2` (named "quant_<name>") with a `TTQQuantizeConfig`, and gets two trainable
    scales Wp and Wn. Activations stay float, as in the paper. Compile the returned model anew.

    Args:
      model: a built tf_keras Sequential or Functional model (not Keras 3, not subclassed).
      threshold, threshold_statistic: Δ = t·max|w| ("max", the paper, t = 0.05) or t·mean|w|
        ("mean"); None takes the recipe's values.
      keep_first_and_last_float: keep the first and the last supported layer float, as the
        paper does for the first convolution and the last fully connected layer.
      float_layers: names of more layers to keep float.
      per_channel, positive_scales, min_scale, scale_init, mode, scale_gradient,
        kernel_gradient: see
        `TTQQuantizer`. scale_init="data" fits Wp/Wn to the copied weights before returning;
        "auto" does so for the layers whose output does not go straight into a
        BatchNormalization/LayerNormalization. None takes the value of `recipe`.
      recipe: "robust" (default: threshold 0.7·mean|w|, scale_init="auto", scale_gradient
        and kernel_gradient "auto" (AUTO_GRADIENTS), positive_scales=True; chosen by
        benchmarks/robustness.py, see README) or "paper" (the official code bit-exact:
        0.05·max|w|, "ones", "sum", "scaled", False). Explicit arguments override it.
      allow_unsupported: keep layers with kernels TTQ does not support (Conv1D, LSTM, ...) float
        with a warning instead of raising.

    Raises:
      TypeError: for a Keras 3 model. ValueError: for subclassed or nested models, unknown
      `float_layers`, unsupported layers (unless allowed), or nothing to ternarize.
    """
    _check_graph_model(model)
    quantizer_kwargs = _quantizer_kwargs(locals())
    scale_init = quantizer_kwargs["scale_init"]
    for init in ("data", "ones"):  # validates the arguments before any cloning
        TTQQuantizer(**_resolve_auto_gradients(quantizer_kwargs, init))
    chosen = _choose_layers(
        model, keep_first_and_last_float, tuple(float_layers), allow_unsupported
    )
    chosen_names = {layer.name for layer in chosen}
    normalized = normalized_layer_names(model) if scale_init == "auto" else set()
    data_init = {
        name
        for name in chosen_names
        if scale_init == "data" or (scale_init == "auto" and name not in normalized)
    }
    per_layer = {
        name: _resolve_auto_gradients(quantizer_kwargs, "data" if name in data_init else "ones")
        for name in chosen_names
    }
    registry = TTQQuantizeRegistry(
        quantizer_kwargs, layer_names=chosen_names, layer_kwargs=per_layer
    )

    def _annotate(layer):
        if layer.name in chosen_names:
            return quantize_annotate.QuantizeAnnotate(
                layer, quantize_config=registry.get_quantize_config(layer)
            )
        return layer

    annotated = keras.models.clone_model(model, clone_function=_annotate)
    with quantize_scope():
        quantized = tfmot_quantize.quantize_apply(
            annotated, scheme=TTQQuantizeScheme(quantizer_kwargs, chosen_names, per_layer)
        )
    if data_init:
        initialize_scales_from_weights(quantized, data_init)
    return quantized
