"""The three TTQ kernels in plain NumPy: the oracle of the Python and C++ test suites.

Readable, float64 accumulation, no speed tricks (docs/format.md section 6 is the maths):

    y[c] = pos_scales[c] * sum(x where trit = +1) - neg_scales[c] * sum(x where trit = -1) + bias[c]

Each kernel checks its options and constant inputs against the format before it computes, so
it can be called on its own:

    y = ttq_conv_2d(x, codes, pos_scales, neg_scales, bias, options)
"""

import numpy as np

from ttq_keras.lite import format as fmt
from ttq_keras.lite.packing import unpack_codes

__all__ = [
    "check_weights",
    "ttq_conv_2d",
    "ttq_depthwise_conv_2d",
    "ttq_fully_connected",
    "TTQ_KERNELS",
    "patches",
    "apply_activation",
]


def check_weights(where, op_type, options, codes, pos, neg, bias):
    """Checks the constant inputs (section 5) and unpacks the codes."""
    k, c_out = fmt.row_length_and_channels(options, op_type)
    want = [c_out, fmt.packed_row_bytes(k)]
    if codes is None:
        raise ValueError(f"{where}: input 1 (codes) must be a constant tensor with a buffer")
    if codes.dtype != np.uint8:
        raise ValueError(f"{where}: codes must be uint8. Received: {codes.dtype}")
    if list(codes.shape) != want:
        raise ValueError(
            f"{where}: codes must have shape [C_out, ceil(K/5)] = {want}. "
            f"Received: {list(codes.shape)}"
        )
    for i, (name, t) in enumerate((("pos_scales", pos), ("neg_scales", neg), ("bias", bias))):
        if t is None:
            raise ValueError(f"{where}: input {i + 2} ({name}) must be a constant tensor")
        if t.dtype != np.float32:
            raise ValueError(f"{where}: {name} must be float32. Received: {t.dtype}")
        if list(t.shape) != [c_out]:
            raise ValueError(
                f"{where}: {name} must have shape [{c_out}]. Received: {list(t.shape)}"
            )
    # A NaN or Inf there is a corrupt file, not a model (the delegate rejects it too).
    for name, t in (("pos_scales", pos), ("neg_scales", neg), ("bias", bias)):
        bad = ~np.isfinite(t)
        if bad.any():
            raise ValueError(
                f"{where}: {name} holds a non-finite value at channel {int(np.argmax(bad))}"
            )
    trits = unpack_codes(codes, k, name=f"{where}: codes")
    return trits


def patches(x, kh, kw, sh, sw, dh, dw, padding):
    """[N, OH, OW, KH*KW, C] input taps, padding reads 0.

    Taps are gathered by index (no padded copy of the input), so the memory is that of the
    result whatever padding a huge dilation implies."""
    n, h, w, c = x.shape
    oh, pt = fmt.conv_output_size(h, kh, sh, dh, padding)
    ow, pl = fmt.conv_output_size(w, kw, sw, dw, padding)
    if oh < 1 or ow < 1:
        raise ValueError(
            f"input {h}x{w} is smaller than the effective kernel "
            f"{(kh - 1) * dh + 1}x{(kw - 1) * dw + 1} with {padding} padding"
        )
    # As the delegate's geometry: the last tap must have an int32 coordinate.
    if (oh - 1) * sh + (kh - 1) * dh + 1 > fmt.INT32_MAX or (
        (ow - 1) * sw + (kw - 1) * dw + 1 > fmt.INT32_MAX
    ):
        raise ValueError(
            "the dilated kernel with these strides reaches past coordinate 2^31 - 1 of the "
            "padded input"
        )
    fmt.check_activation_size("conv", "patches", [n, oh, ow, kh * kw, c])
    xz = np.concatenate([x, np.zeros((n, 1, w, c), x.dtype)], axis=1)  # row h reads 0
    xz = np.concatenate([xz, np.zeros((n, h + 1, 1, c), x.dtype)], axis=2)  # column w reads 0

    def taps(out, stride, kernel, dilation, pad, size):
        idx = np.arange(out)[:, None] * stride + np.arange(kernel)[None, :] * dilation - pad
        return np.where((idx >= 0) & (idx < size), idx, size)  # [out, kernel]; size reads 0

    rows = taps(oh, sh, kh, dh, pt, h)
    cols = taps(ow, sw, kw, dw, pl, w)
    g = xz[:, rows[:, None, :, None], cols[None, :, None, :], :]  # [N, OH, OW, KH, KW, C]
    return g.reshape(n, oh, ow, kh * kw, c)


def apply_activation(y, activation):
    if activation in ("NONE", 0):
        return y
    if activation in ("RELU", 1):
        return np.maximum(y, 0)
    if activation in ("RELU_N1_TO_1", 2):
        return np.clip(y, -1, 1)
    if activation in ("RELU6", 3):
        return np.clip(y, 0, 6)
    if activation in ("TANH", 4):
        return np.tanh(y)
    if activation in ("SIGN_BIT", 5):
        return np.signbit(y).astype(y.dtype)
    raise NotImplementedError(f"fused activation {activation!r}")


def _ternary_matmul(cols, trits, pos, neg, bias):
    """y_c = s+_c * sum_{P_c} x - s-_c * sum_{N_c} x + b_c over the last axis of `cols`."""
    cols = cols.astype(np.float64)
    p = (trits == 1).astype(np.float64)
    m = (trits == -1).astype(np.float64)
    return (
        (cols @ p.T) * pos.astype(np.float64)
        - (cols @ m.T) * neg.astype(np.float64)
        + bias.astype(np.float64)
    )


def _op_patches(x, o):
    """`patches` with the geometry of a validated conv/depthwise options dict `o`."""
    return patches(
        x,
        o["kernel_height"],
        o["kernel_width"],
        o["stride_height"],
        o["stride_width"],
        o["dilation_height"],
        o["dilation_width"],
        o["padding"],
    )


def _unpack_for(options, op_type, codes, pos, neg, bias, where):
    options = fmt.check_options(dict(options), op_type, where)
    return options, check_weights(where, op_type, options, codes, pos, neg, bias)


def ttq_conv_2d(x, codes, pos_scales, neg_scales, bias, options):
    """TTQ_CONV_2D on NHWC float input `x`; returns float32 `[N, OH, OW, C_out]`."""
    where = fmt.TTQ_CONV_2D
    o, trits = _unpack_for(options, where, codes, pos_scales, neg_scales, bias, where)
    x = np.asarray(x, np.float32)
    fmt.check_input_shape(where, where, o, x.shape)
    cols = _op_patches(x, o)
    n, oh, ow = cols.shape[:3]
    y = _ternary_matmul(cols.reshape(n, oh, ow, -1), trits, pos_scales, neg_scales, bias)
    return apply_activation(y, o["activation"]).astype(np.float32)


def ttq_depthwise_conv_2d(x, codes, pos_scales, neg_scales, bias, options):
    """TTQ_DEPTHWISE_CONV_2D on NHWC float input `x`; returns float32 `[N, OH, OW, C_out]`."""
    where = fmt.TTQ_DEPTHWISE_CONV_2D
    o, trits = _unpack_for(options, where, codes, pos_scales, neg_scales, bias, where)
    x = np.asarray(x, np.float32)
    fmt.check_input_shape(where, where, o, x.shape)
    cols = _op_patches(x, o).astype(np.float64)
    # Output channel c reads input channel c // depth_multiplier.
    cols = cols[..., np.arange(o["out_channels"]) // o["depth_multiplier"]]  # [N,OH,OW,K,Cout]
    p = (trits == 1).T.astype(np.float64)  # [K, Cout]
    m = (trits == -1).T.astype(np.float64)
    y = (
        (cols * p).sum(axis=3) * pos_scales.astype(np.float64)
        - (cols * m).sum(axis=3) * neg_scales.astype(np.float64)
        + bias.astype(np.float64)
    )
    return apply_activation(y, o["activation"]).astype(np.float32)


def ttq_fully_connected(x, codes, pos_scales, neg_scales, bias, options):
    """TTQ_FULLY_CONNECTED; returns `[rows, C_out]` or `[..., C_out]` with keep_num_dims."""
    where = fmt.TTQ_FULLY_CONNECTED
    o, trits = _unpack_for(options, where, codes, pos_scales, neg_scales, bias, where)
    x = np.asarray(x, np.float32)
    fmt.check_input_shape(where, where, o, x.shape)
    k = o["in_features"]
    y = _ternary_matmul(x.reshape(-1, k), trits, pos_scales, neg_scales, bias)
    if o["keep_num_dims"]:
        y = y.reshape(tuple(x.shape[:-1]) + (o["out_features"],))
    return apply_activation(y, o["activation"]).astype(np.float32)


TTQ_KERNELS = {
    fmt.TTQ_CONV_2D: ttq_conv_2d,
    fmt.TTQ_DEPTHWISE_CONV_2D: ttq_depthwise_conv_2d,
    fmt.TTQ_FULLY_CONNECTED: ttq_fully_connected,
}


# ----------------------------------------------------------------------------------------------
