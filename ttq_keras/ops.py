"""Pure TensorFlow maths of Trained Ternary Quantization; no Keras state lives here.

TTQ (Zhu, Han, Mao, Dally, "Trained Ternary Quantization", ICLR 2017) replaces a layer's
latent float kernel w by

    w_t = +Wp   where w >  Δ
           0    where |w| <= Δ
          -Wn   where w < -Δ          with Δ = t · max|w| (per layer, no gradient),

and trains Wp and Wn (stored as positive magnitudes) together with w. The gradients are those
of the authors' code (not the paper's printed eq. 7, which lacks the minus sign on Wn):

    dL/dw  = g · (Wp on w>Δ, 1 in the dead zone, Wn on w<-Δ)     (scaled straight-through)
    dL/dWp =  Σ_{w>Δ}  g
    dL/dWn = -Σ_{w<-Δ} g

where g = dL/dw_t. With per-channel scales the sums run per output channel.

Beyond the paper, `scale_gradient` can rescale the two scale gradients (the latent-kernel
gradient never changes):

    "sum"   the authors' code above (recipe="paper");
    "mean"  divided by the size of the set (|w>Δ| for Wp, |w<-Δ| for Wn);
    "lsq"   divided by sqrt(n), n = kernel weights per scale (LSQ, Esser et al. 2020, with
            Q_P = 1), so that one step moves a scale about as far as it moves a weight.
"""

from ttq_keras._compat import tf

__all__ = [
    "ttq_threshold",
    "ternarize",
    "ternary_codes",
    "fit_scales",
    "twn_ternarize",
    "SCALE_GRADIENTS",
    "KERNEL_GRADIENTS",
    "THRESHOLD_STATISTICS",
]

SCALE_GRADIENTS = ("sum", "mean", "lsq")
KERNEL_GRADIENTS = ("scaled", "ste")
THRESHOLD_STATISTICS = ("max", "mean")


def ttq_threshold(w, threshold, statistic="max"):
    """Δ = threshold · max|w| (the paper) or threshold · mean|w| over the whole tensor, as a
    constant for autodiff. The mean does not jump when one weight grows (TWN's rule is
    0.7 · mean|w|, the L2-best threshold for uniform and Gaussian weights)."""
    if statistic not in THRESHOLD_STATISTICS:
        raise ValueError(
            f"`threshold_statistic` must be one of {THRESHOLD_STATISTICS}. "
            f"Received: {statistic!r}"
        )
    reduce = tf.reduce_max if statistic == "max" else tf.reduce_mean
    return tf.stop_gradient(threshold * reduce(tf.abs(w)))


def _sum_to_scale_shape(x, scale_rank):
    """Sums x over its leading axes so that it has the (trailing) shape of a scale tensor."""
    axes = list(range(x.shape.rank - scale_rank))
    return tf.reduce_sum(x, axis=axes) if axes else x


def ternarize(w, wp, wn, delta, scale_gradient="sum", kernel_gradient="scaled"):
    """Ternarizes `w` to {+wp, 0, -wn} with the official TTQ gradients.

    Args:
      w: the latent float kernel.
      wp, wn: positive and negative scales (positive magnitudes), either scalars or tensors
        whose shape equals the trailing dimensions of `w` (per output channel).
      delta: the threshold Δ, a scalar tensor; treated as a constant.
      scale_gradient: "sum" (the official code), "mean" or "lsq"; see the module docstring.
      kernel_gradient: "scaled" (the official code: Wp·g, g, Wn·g on the three sets) or "ste":
        the plain straight-through g everywhere, which suits scales fitted to the weights
        (Wp ≈ mean|w| makes the scaled gradient of the non-zero weights that much smaller).

    Returns:
      A tensor shaped like `w`.
    """
    w = tf.convert_to_tensor(w)
    wp = tf.cast(wp, w.dtype)
    wn = tf.cast(wn, w.dtype)
    delta = tf.stop_gradient(tf.cast(delta, w.dtype))
    scale_rank = wp.shape.rank
    if kernel_gradient not in KERNEL_GRADIENTS:
        raise ValueError(
            f"`kernel_gradient` must be one of {KERNEL_GRADIENTS}. "
            f"Received: {kernel_gradient!r}"
        )
    if scale_gradient not in SCALE_GRADIENTS:
        raise ValueError(
            f"`scale_gradient` must be one of {SCALE_GRADIENTS}. Received: {scale_gradient!r}"
        )

    @tf.custom_gradient
    def _ternarize(w, wp, wn):
        pos = tf.cast(w > delta, w.dtype)
        neg = tf.cast(w < -delta, w.dtype)
        out = wp * pos - wn * neg

        def grad(g):
            if kernel_gradient == "ste":
                grad_w = g
            else:
                grad_w = g * (wp * pos + wn * neg + (1.0 - pos - neg))
            grad_wp = _sum_to_scale_shape(g * pos, scale_rank)
            grad_wn = -_sum_to_scale_shape(g * neg, scale_rank)
            if scale_gradient == "mean":
                grad_wp /= tf.maximum(_sum_to_scale_shape(pos, scale_rank), 1.0)
                grad_wn /= tf.maximum(_sum_to_scale_shape(neg, scale_rank), 1.0)
            elif scale_gradient == "lsq":
                weights_per_scale = tf.cast(tf.size(w) // tf.maximum(tf.size(wp), 1), w.dtype)
                grad_wp *= tf.math.rsqrt(weights_per_scale)
                grad_wn *= tf.math.rsqrt(weights_per_scale)
            return grad_w, grad_wp, grad_wn

        return out, grad

    return _ternarize(w, wp, wn)


def ternary_codes(w, delta):
    """The ternary assignment of `w` as int8 codes in {-1, 0, +1} (strict inequalities)."""
    w = tf.convert_to_tensor(w)
    delta = tf.cast(delta, w.dtype)
    return tf.cast(w > delta, tf.int8) - tf.cast(w < -delta, tf.int8)


def fit_scales(w, delta, scale_rank=0):
    """Least-squares scales for a fixed assignment: Wp = mean(w | w>Δ), Wn = mean(-w | w<-Δ).

    This is the data-dependent initialisation of Wp/Wn (the official code starts from 1.0).
    A set with no member gets scale 1.0. `scale_rank` 0 gives scalars, 1 or 2 gives per-channel
    scales over the trailing dimensions.
    """
    w = tf.convert_to_tensor(w)
    pos = tf.cast(w > delta, w.dtype)
    neg = tf.cast(w < -delta, w.dtype)

    def _mean(values, mask):
        total = _sum_to_scale_shape(values * mask, scale_rank)
        count = _sum_to_scale_shape(mask, scale_rank)
        return tf.where(count > 0, total / tf.maximum(count, 1.0), tf.ones_like(total))

    return _mean(w, pos), _mean(-w, neg)


def twn_ternarize(w, scale_rank=0, delta_factor=0.7):
    """Ternary Weight Networks (Li & Liu 2016): the fixed-scale ablation baseline.

    Δ = delta_factor · mean|w| and α = mean(|w| over |w| > Δ), both recomputed from w at every
    call and not trained; the output is α·sign(w) outside the dead zone. The gradient to w is the
    plain straight-through estimator (identity). `scale_rank` > 0 computes α per output channel.
    Returns (ternary tensor, α).
    """
    w = tf.convert_to_tensor(w)
    abs_w = tf.abs(w)
    delta = tf.stop_gradient(delta_factor * tf.reduce_mean(abs_w))
    mask = tf.cast(abs_w > delta, w.dtype)
    total = _sum_to_scale_shape(abs_w * mask, scale_rank)
    count = _sum_to_scale_shape(mask, scale_rank)
    alpha = tf.stop_gradient(
        tf.where(count > 0, total / tf.maximum(count, 1.0), tf.zeros_like(total))
    )
    ternary = alpha * tf.sign(w) * mask
    return w + tf.stop_gradient(ternary - w), alpha, delta
