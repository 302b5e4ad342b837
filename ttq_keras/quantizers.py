"""`TTQQuantizer`: the tfmot `Quantizer` that ternarizes a kernel with trained scales."""

from tensorflow_model_optimization.python.core.quantization.keras import (
    quantizers as tfmot_quantizers,
)

from ttq_keras import ops
from ttq_keras._compat import keras, tf

__all__ = ["TTQQuantizer", "ScaleFloor", "MODES", "SCALE_INITS", "SCALE_GRADIENTS"]

MODES = ("ttq", "twn")
SCALE_INITS = ("ones", "data", "auto")
SCALE_GRADIENTS = ops.SCALE_GRADIENTS
KERNEL_GRADIENTS = ops.KERNEL_GRADIENTS
THRESHOLD_STATISTICS = ops.THRESHOLD_STATISTICS


@keras.utils.register_keras_serializable(package="ttq_keras")
class ScaleFloor(keras.constraints.Constraint):
    """Keeps a scale at or above `min_value` after every optimizer step.

    Users of the official code saw Wp/Wn change sign (czhu95/ternarynet#7), which makes both
    ternary levels share a sign; this constraint is the `positive_scales=True` option.
    """

    def __init__(self, min_value=1e-3):
        self.min_value = float(min_value)

    def __call__(self, w):
        return tf.maximum(w, tf.cast(self.min_value, w.dtype))

    def get_config(self):
        return {"min_value": self.min_value}


@keras.utils.register_keras_serializable(package="ttq_keras")
class TTQQuantizer(tfmot_quantizers.Quantizer):
    r"""Trained Ternary Quantization of a kernel (Zhu et al., ICLR 2017).

    Forward: $w_t = W_p$ where $w > \Delta$, $0$ where $|w| \le \Delta$, $-W_n$ where
    $w < -\Delta$, with $\Delta = t \cdot \max|w|$ recomputed every call (no gradient).
    Backward (the authors' code): scaled straight-through gradient to $w$; $\sum_{w>\Delta} g$
    to $W_p$; $-\sum_{w<-\Delta} g$ to $W_n$. See `ttq_keras.ops.ternarize`.

    `build()` creates the trainable scales `<name>_wp` and `<name>_wn` on the tfmot wrapper with
    `layer.add_weight`, so they are ordinary trainable weights of the quantized model.

    Args:
      threshold: t in Δ = t·max|w| (or t·mean|w|, see `threshold_statistic`). The paper uses
        t = 0.05 with the max.
      threshold_statistic: "max" (the paper: Δ = t·max|w|) or "mean" (Δ = t·mean|w|, which
        does not jump when a single weight grows; t = 0.7 is TWN's rule).
      per_channel: one (Wp, Wn) pair per output channel instead of per layer. Δ stays per layer.
      channel_dims: how many trailing kernel dimensions index output channels (1 for Conv2D and
        Dense, 2 for DepthwiseConv2D, whose kernel is (KH, KW, C_in, multiplier)).
      positive_scales: clip Wp and Wn to at least `min_scale` after each optimizer step.
      min_scale: the floor used by `positive_scales`.
      scale_init: "ones" (the official code), "data": least-squares fit of Wp/Wn to the latent
        weights, applied by `ttq_keras.initialize_scales_from_weights` (quantize_model does it),
        or "auto": "data" for a layer whose output does not go straight into a
        BatchNormalization/LayerNormalization (found in the graph by quantize_model), "ones"
        for one that does (the normalization absorbs the scale).
      scale_gradient: "sum" (the official code), "mean" or "lsq": how the gradients of Wp and Wn
        are normalised, see `ttq_keras.ops.ternarize`.
      kernel_gradient: "scaled" (the official code) or "ste" (plain straight-through to the
        latent kernel), see `ttq_keras.ops.ternarize`.
      mode: "ttq" (trained scales) or "twn": Ternary Weight Networks' fixed scale
        α = mean(|w| over |w| > 0.7·mean|w|), not trained, the ablation baseline. In "twn" mode
        the wp/wn weights still exist (so the model layout is identical) but are not trainable
        and not used; `effective_scales` gives the α in use.
    """

    def __init__(
        self,
        threshold=0.05,
        per_channel=False,
        channel_dims=1,
        positive_scales=False,
        min_scale=1e-3,
        scale_init="ones",
        mode="ttq",
        scale_gradient="sum",
        kernel_gradient="scaled",
        threshold_statistic="max",
    ):
        threshold = float(threshold)
        if threshold_statistic not in THRESHOLD_STATISTICS:
            raise ValueError(
                f"`threshold_statistic` must be one of {THRESHOLD_STATISTICS}. "
                f"Received: threshold_statistic={threshold_statistic!r}"
            )
        # t·max|w| >= max|w| zeroes every weight; t·mean|w| may exceed 1 (up to ~2 is sane).
        limit = 1.0 if threshold_statistic == "max" else 3.0
        if not 0.0 <= threshold < limit:
            raise ValueError(
                f"`threshold` must be in [0, {limit:g}) with threshold_statistic="
                f"{threshold_statistic!r}. Received: threshold={threshold}"
            )
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
        if scale_init not in SCALE_INITS:
            raise ValueError(
                f"`scale_init` must be one of {SCALE_INITS}. Received: scale_init={scale_init!r}"
            )
        if scale_gradient not in SCALE_GRADIENTS:
            raise ValueError(
                f"`scale_gradient` must be one of {SCALE_GRADIENTS}. "
                f"Received: scale_gradient={scale_gradient!r}"
            )
        if kernel_gradient not in KERNEL_GRADIENTS:
            raise ValueError(
                f"`kernel_gradient` must be one of {KERNEL_GRADIENTS}. "
                f"Received: kernel_gradient={kernel_gradient!r}"
            )
        if int(channel_dims) not in (1, 2):
            raise ValueError(
                f"`channel_dims` must be 1 or 2. Received: channel_dims={channel_dims}"
            )
        if positive_scales and not min_scale > 0:
            raise ValueError(f"`min_scale` must be > 0. Received: min_scale={min_scale}")
        self.threshold = threshold
        self.per_channel = bool(per_channel)
        self.channel_dims = int(channel_dims)
        self.positive_scales = bool(positive_scales)
        self.min_scale = float(min_scale)
        self.scale_init = scale_init
        self.mode = mode
        self.scale_gradient = scale_gradient
        self.kernel_gradient = kernel_gradient
        self.threshold_statistic = threshold_statistic

    @property
    def scale_rank(self):
        return self.channel_dims if self.per_channel else 0

    def scale_shape(self, kernel_shape):
        kernel_shape = tf.TensorShape(kernel_shape).as_list()
        return kernel_shape[len(kernel_shape) - self.scale_rank :] if self.scale_rank else []

    def build(self, tensor_shape, name, layer):
        # tfmot's QuantizeWrapperV2.build collects the inner layer's weights into the wrapper
        # before building the inner layer; when the wrapper is rebuilt from a config (loading),
        # the inner layer is not built yet, so that list is empty and Wp/Wn would come *before*
        # the kernel. Saved files store weights by position, so the order must not depend on how
        # the wrapper was made: put the inner weights first, as in the freshly wrapped case.
        own = layer._trainable_weights  # pylint: disable=protected-access
        for weight in layer.layer.trainable_weights:
            if not any(weight is w for w in own):
                own.append(weight)
        constraint = ScaleFloor(self.min_scale) if self.positive_scales else None
        shape = self.scale_shape(tensor_shape)
        trainable = self.mode == "ttq"
        wp = layer.add_weight(
            f"{name}_wp",
            shape=shape,
            initializer=keras.initializers.Ones(),
            trainable=trainable,
            constraint=constraint,
        )
        wn = layer.add_weight(
            f"{name}_wn",
            shape=shape,
            initializer=keras.initializers.Ones(),
            trainable=trainable,
            constraint=constraint,
        )
        return {"wp": wp, "wn": wn}

    def __call__(self, inputs, training, weights, **kwargs):
        if self.mode == "twn":
            ternary, _, _ = ops.twn_ternarize(inputs, scale_rank=self.scale_rank)
            return ternary
        delta = ops.ttq_threshold(inputs, self.threshold, self.threshold_statistic)
        return ops.ternarize(
            inputs, weights["wp"], weights["wn"], delta, self.scale_gradient, self.kernel_gradient
        )

    def delta(self, kernel):
        """The threshold Δ this quantizer applies to `kernel` (a tensor or array)."""
        kernel = tf.convert_to_tensor(kernel)
        if self.mode == "twn":
            return 0.7 * tf.reduce_mean(tf.abs(kernel))
        return ops.ttq_threshold(kernel, self.threshold, self.threshold_statistic)

    def effective_scales(self, kernel, weights):
        """(Wp, Wn) as used in the forward pass: the trained variables, or TWN's α."""
        if self.mode == "twn":
            _, alpha, _ = ops.twn_ternarize(kernel, scale_rank=self.scale_rank)
            return alpha, alpha
        return tf.convert_to_tensor(weights["wp"]), tf.convert_to_tensor(weights["wn"])

    def get_config(self):
        return {
            "threshold": self.threshold,
            "per_channel": self.per_channel,
            "channel_dims": self.channel_dims,
            "positive_scales": self.positive_scales,
            "min_scale": self.min_scale,
            "scale_init": self.scale_init,
            "mode": self.mode,
            "scale_gradient": self.scale_gradient,
            "kernel_gradient": self.kernel_gradient,
            "threshold_statistic": self.threshold_statistic,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, TTQQuantizer) and self.get_config() == other.get_config()

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"TTQQuantizer({args})"
