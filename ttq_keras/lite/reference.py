"""NumPy reference interpreter for packed ternary TFLite files (docs/format.md).

This is the oracle of the test suites (Python and the C++ delegate): plain, readable NumPy,
float64 accumulation, no speed tricks.

    from ttq_keras.lite import reference
    reference.validate(model_bytes)                  # raises ValueError on a bad TTQ op
    (y,) = reference.run(model_bytes, x)             # whole model, builtin ops included

`run` walks subgraph 0 in order. It implements the three TTQ custom ops and the builtin ops
listed in `SUPPORTED_BUILTINS` (the ones the converter emits for common CNNs and MLPs); any
other op raises `NotImplementedError` naming it.
"""

import numpy as np
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema_fb

from ttq_keras.lite import _tflite
from ttq_keras.lite.packing import packed_row_bytes, unpack_codes

__all__ = [
    "FORMAT_VERSION",
    "TTQ_OPS",
    "SUPPORTED_BUILTINS",
    "TernaryOp",
    "parse_options",
    "ternary_ops",
    "validate",
    "run",
    "ttq_conv_2d",
    "ttq_depthwise_conv_2d",
    "ttq_fully_connected",
    "conv_output_size",
]

FORMAT_VERSION = 1
TTQ_CONV_2D = "TTQ_CONV_2D"
TTQ_DEPTHWISE_CONV_2D = "TTQ_DEPTHWISE_CONV_2D"
TTQ_FULLY_CONNECTED = "TTQ_FULLY_CONNECTED"
TTQ_OPS = (TTQ_CONV_2D, TTQ_DEPTHWISE_CONV_2D, TTQ_FULLY_CONNECTED)
ACTIVATIONS = ("NONE", "RELU", "RELU6")
PADDINGS = ("SAME", "VALID")

_CONV_KEYS = {
    "version": int,
    "activation": str,
    "in_channels": int,
    "out_channels": int,
    "kernel_height": int,
    "kernel_width": int,
    "stride_height": int,
    "stride_width": int,
    "dilation_height": int,
    "dilation_width": int,
    "padding": str,
}
OPTION_KEYS = {
    TTQ_CONV_2D: dict(_CONV_KEYS),
    TTQ_DEPTHWISE_CONV_2D: dict(_CONV_KEYS, depth_multiplier=int),
    TTQ_FULLY_CONNECTED: {
        "version": int,
        "activation": str,
        "in_features": int,
        "out_features": int,
        "keep_num_dims": bool,
    },
}
_POSITIVE_KEYS = (
    "in_channels",
    "out_channels",
    "kernel_height",
    "kernel_width",
    "stride_height",
    "stride_width",
    "dilation_height",
    "dilation_width",
    "depth_multiplier",
    "in_features",
    "out_features",
)


# ----------------------------------------------------------------------------------------------
# Options and static validation (format.md sections 4 and 5)


def _check_options(options, op_type, where):
    if op_type not in OPTION_KEYS:
        raise ValueError(f"{where}: unknown ternary op {op_type!r}; expected one of {TTQ_OPS}")
    for key, typ in OPTION_KEYS[op_type].items():
        if key not in options:
            raise ValueError(f"{where}: custom option {key!r} is missing")
        v = options[key]
        ok = isinstance(v, bool) if typ is bool else isinstance(v, typ) and not isinstance(v, bool)
        if not ok:
            raise ValueError(
                f"{where}: custom option {key!r} must be {typ.__name__}. Received: {v!r}"
            )
    if options["version"] != FORMAT_VERSION:
        raise ValueError(
            f"{where}: format version {options['version']} is not supported "
            f"(this reader implements version {FORMAT_VERSION})"
        )
    if options["activation"] not in ACTIVATIONS:
        raise ValueError(
            f"{where}: activation must be one of {ACTIVATIONS}. "
            f"Received: {options['activation']!r}"
        )
    if "padding" in options and options["padding"] not in PADDINGS:
        raise ValueError(
            f"{where}: padding must be one of {PADDINGS}. Received: {options['padding']!r}"
        )
    for key in _POSITIVE_KEYS:
        if key in options and options[key] < 1:
            raise ValueError(f"{where}: {key} must be >= 1. Received: {options[key]}")
    for key in _POSITIVE_KEYS:
        if key in options and options[key] > _MAX_COORDINATE:
            raise ValueError(f"{where}: {key} must be <= 2^31 - 1. Received: {options[key]}")
    if op_type != TTQ_FULLY_CONNECTED:
        # As the delegate: effective (dilated) kernel sizes and the row length K within int32.
        for axis in ("height", "width"):
            ek = (options[f"kernel_{axis}"] - 1) * options[f"dilation_{axis}"] + 1
            if ek > _MAX_COORDINATE:
                raise ValueError(
                    f"{where}: the dilated kernel {axis} {ek} is larger than 2^31 - 1"
                )
        if _k_and_cout(options, op_type)[0] > _MAX_COORDINATE:
            raise ValueError(f"{where}: the row length K is larger than 2^31 - 1")
    if op_type == TTQ_DEPTHWISE_CONV_2D:
        if options["out_channels"] != options["in_channels"] * options["depth_multiplier"]:
            raise ValueError(
                f"{where}: out_channels ({options['out_channels']}) must equal in_channels "
                f"({options['in_channels']}) * depth_multiplier ({options['depth_multiplier']})"
            )
    return options


def parse_options(custom_options, op_type, where=None):
    """Decodes and checks the FlexBuffer map of a TTQ op; returns a plain dict."""
    where = where or op_type
    data = bytes(np.asarray(custom_options if custom_options is not None else [], np.uint8))
    if not data:
        raise ValueError(f"{where}: custom options are missing (expected a FlexBuffer map)")
    try:
        root = flexbuffers.GetRoot(bytearray(data))
        if not root.IsMap:
            raise ValueError("the root is not a map")
        m = root.AsMap
        options = {}
        for key, value in zip(m.Keys, m.Values):
            k = key.AsKey
            if value.IsBool:
                options[k] = value.AsBool
            elif value.IsInt:
                options[k] = int(value.AsInt)
            elif value.IsString:
                options[k] = value.AsString
            else:
                options[k] = value.Value
    except ValueError as e:
        raise ValueError(f"{where}: custom options are not a valid FlexBuffer map: {e}") from None
    except Exception as e:
        raise ValueError(
            f"{where}: custom options are not a valid FlexBuffer map: {type(e).__name__}: {e}"
        ) from None
    return _check_options(options, op_type, where)


def _k_and_cout(options, op_type):
    if op_type == TTQ_FULLY_CONNECTED:
        return options["in_features"], options["out_features"]
    k = options["kernel_height"] * options["kernel_width"]
    if op_type == TTQ_CONV_2D:
        k *= options["in_channels"]
    return k, options["out_channels"]


class TernaryOp:
    """One validated TTQ op: options, trits `[C_out, K]` (int8 in {-1,0,1}) and the scales."""

    def __init__(self, index, op_type, options, trits, pos, neg, bias, tensor_names):
        self.index = index
        self.op_type = op_type
        self.options = options
        self.trits = trits
        self.pos_scales = pos
        self.neg_scales = neg
        self.bias = bias
        self.tensor_names = tensor_names

    def __repr__(self):
        return (
            f"TernaryOp(#{self.index} {self.op_type}, out={self.trits.shape[0]}, "
            f"K={self.trits.shape[1]})"
        )


def _check_weights(where, op_type, options, codes, pos, neg, bias):
    """Checks the constant inputs (section 5) and unpacks the codes."""
    k, c_out = _k_and_cout(options, op_type)
    want = [c_out, packed_row_bytes(k)]
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
    for name, t in (("pos_scales", pos), ("neg_scales", neg), ("bias", bias)):
        _check_finite(where, name, t)
    trits = unpack_codes(codes, k, name=f"{where}: codes")
    return trits


def ternary_ops(model):
    """Validates every TTQ op of `model` (bytes or ModelT) statically; returns `TernaryOp`s.

    Raises:
      ValueError: naming the op and the tensor, for every rule of format.md section 5 that can
        be checked without running the model.
    """
    model = _tflite.load_model(model)
    out = []
    for s, sg in enumerate(model.subgraphs):
        for i, op in enumerate(sg.operators or []):
            name = _tflite.op_name(model, op)
            if name.startswith("TTQ_"):
                out.append(_parse_ttq_op(model, sg, i, op, name))
    return out


def _parse_ttq_op(model, sg, index, op, op_type):
    where = f"operator {index} ({op_type})"
    if op_type not in TTQ_OPS:
        raise ValueError(f"{where}: unknown ternary op; this reader implements {TTQ_OPS}")
    # The operator code's version and custom_options_format are not checked: a TFLite delegate
    # is never shown them, so both readers go by the options' own `version` (format.md §5).
    options = parse_options(op.customOptions, op_type, where)
    inputs = _tflite.ints(op.inputs)
    outputs = _tflite.ints(op.outputs)
    if len(inputs) != 5 or len(outputs) != 1 or -1 in inputs:
        raise ValueError(
            f"{where}: expected 5 inputs (input, codes, pos_scales, neg_scales, bias) and 1 "
            f"output. Received: {len(inputs)} inputs {inputs}, {len(outputs)} outputs"
        )
    if outputs[0] in inputs:
        raise ValueError(
            f"{where}: the output tensor {outputs[0]} is also an input. Received inputs {inputs}"
        )
    if any(i < 0 or i >= len(sg.tensors) for i in inputs + outputs):
        raise ValueError(
            f"{where}: a tensor index is out of range: inputs {inputs}, outputs {outputs}"
        )
    tensors = [sg.tensors[i] for i in inputs]
    names = [_tflite.tensor_name(t) for t in tensors]
    for t, label in ((tensors[0], "input"), (sg.tensors[outputs[0]], "output")):
        _check_activation_size(where, label, _tflite.ints(t.shape))
    for t, label in ((tensors[0], "input"), (sg.tensors[outputs[0]], "output")):
        if t.type != schema_fb.TensorType.FLOAT32:
            raise ValueError(
                f"{where}: {label} tensor {_tflite.tensor_name(t)!r} must be float32. "
                f"Received: {_tflite.TENSOR_TYPE_NAMES.get(t.type, t.type)}"
            )
    arrays = []
    for t, label in zip(tensors[1:], ("codes", "pos_scales", "neg_scales", "bias")):
        want = schema_fb.TensorType.UINT8 if label == "codes" else schema_fb.TensorType.FLOAT32
        if t.type != want:
            raise ValueError(
                f"{where}: {label} tensor {_tflite.tensor_name(t)!r} must be "
                f"{_tflite.TENSOR_TYPE_NAMES[want]}. Received: "
                f"{_tflite.TENSOR_TYPE_NAMES.get(t.type, t.type)}"
            )
        try:
            arrays.append(_const(model, t, f"{where}: {label}"))
        except ValueError as e:
            raise ValueError(str(e)) from None
    trits = _check_weights(where, op_type, options, *arrays)
    # Static check of the input shape where the file knows it: dims that are -1 in the
    # shape_signature are dynamic (the converter writes 1 in `shape` for them).
    in_shape = _tflite.ints(tensors[0].shape)
    signature = _tflite.ints(tensors[0].shapeSignature) or in_shape
    if in_shape and len(signature) == len(in_shape):
        _check_input_shape(where, op_type, options, signature, names[0], static=True)
    return TernaryOp(index, op_type, options, trits, *arrays[1:], names)


# Largest activation tensor (input or output of a TTQ op) a reader accepts, in elements: 2^28
# (1 GiB of float32), as the delegate (format.md §5, "memory bounds").
MAX_ACTIVATION_ELEMENTS = 1 << 28
_MAX_COORDINATE = 2**31 - 1


def _check_activation_size(where, label, shape):
    """A TTQ op's activation shape: no negative dim, at most MAX_ACTIVATION_ELEMENTS."""
    shape = [int(d) for d in shape]
    if any(d < 0 for d in shape) or int(np.prod(shape, dtype=object)) > MAX_ACTIVATION_ELEMENTS:
        raise ValueError(
            f"{where}: {label} shape {shape} has a negative dimension or more than 2^28 elements "
            "(the bound on one activation tensor, docs/format.md section 5)"
        )


def _check_finite(where, name, values):
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"{where}: {name} holds a non-finite value at channel {int(np.argmax(bad))}"
        )


def _const(model, tensor, what):
    """Constant data of a tensor; a short buffer is an error."""
    buf = model.buffers[tensor.buffer] if model.buffers else None
    if buf is None or buf.data is None or len(buf.data) == 0:
        return None
    dtype = _tflite.tensor_dtype(tensor)
    shape = _tflite.ints(tensor.shape)
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.asarray(buf.data, dtype=np.uint8)
    if raw.size < need:
        raise ValueError(
            f"{what} tensor {_tflite.tensor_name(tensor)!r}: buffer has {raw.size} bytes, "
            f"shape {shape} needs {need}"
        )
    return raw[:need].view(dtype).reshape(shape)


def _check_input_shape(where, op_type, options, shape, name="input", static=False):
    """Format.md section 5 rules on the activation's shape. With `static`, -1 dims are unknown."""
    shape = [int(d) for d in shape]
    known = all(d >= 0 for d in shape)
    if op_type == TTQ_FULLY_CONNECTED:
        k = options["in_features"]
        if options["keep_num_dims"] and shape and shape[-1] >= 0 and shape[-1] != k:
            raise ValueError(
                f"{where}: input {name!r} last dimension must be in_features={k} with "
                f"keep_num_dims. Received shape {shape}"
            )
        size = int(np.prod(shape)) if shape else 0
        if known and (size % k or size == 0):
            raise ValueError(
                f"{where}: input {name!r} has {size} elements, not a multiple of in_features={k}. "
                f"Received shape {shape}"
            )
    else:
        if len(shape) != 4:
            raise ValueError(f"{where}: input {name!r} must be 4-D NHWC. Received shape {shape}")
        if shape[-1] >= 0 and shape[-1] != options["in_channels"]:
            raise ValueError(
                f"{where}: input {name!r} last dimension must be in_channels="
                f"{options['in_channels']}. Received shape {shape}"
            )


def _check_output_size(where, op_type, o, shape):
    """The output the op would write stays within MAX_ACTIVATION_ELEMENTS (as the delegate)."""
    if op_type == TTQ_FULLY_CONNECTED:
        out = [int(np.prod(shape, dtype=object)) // o["in_features"], o["out_features"]]
    else:
        out = [
            shape[0],
            conv_output_size(shape[1], o["kernel_height"], o["stride_height"],
                             o["dilation_height"], o["padding"])[0],
            conv_output_size(shape[2], o["kernel_width"], o["stride_width"],
                             o["dilation_width"], o["padding"])[0],
            o["out_channels"],
        ]
    _check_activation_size(where, "output", [max(int(d), 0) for d in out])


def validate(model):
    """Checks that `model` is a well-formed packed file; returns the list of `TernaryOp`s."""
    return ternary_ops(model)


# ----------------------------------------------------------------------------------------------
# Kernels


def conv_output_size(in_size, kernel, stride, dilation, padding):
    """Output size and padding before (TensorFlow's SAME/VALID rules, format.md section 4)."""
    ek = (kernel - 1) * dilation + 1
    if padding == "VALID":
        out = (in_size - ek) // stride + 1
        return out, 0
    out = -(-in_size // stride)
    pad_total = max((out - 1) * stride + ek - in_size, 0)
    return out, pad_total // 2


def _patches(x, kh, kw, sh, sw, dh, dw, padding):
    """[N, OH, OW, KH*KW, C] input taps, padding reads 0.

    Taps are gathered by index (no padded copy of the input), so memory is that of the result
    whatever the padding a huge dilation implies."""
    n, h, w, c = x.shape
    oh, pt = conv_output_size(h, kh, sh, dh, padding)
    ow, pl = conv_output_size(w, kw, sw, dw, padding)
    if oh < 1 or ow < 1:
        raise ValueError(
            f"input {h}x{w} is smaller than the effective kernel "
            f"{(kh - 1) * dh + 1}x{(kw - 1) * dw + 1} with {padding} padding"
        )
    if (oh - 1) * sh + (kh - 1) * dh + 1 > _MAX_COORDINATE or (
        (ow - 1) * sw + (kw - 1) * dw + 1 > _MAX_COORDINATE
    ):
        raise ValueError(
            "the dilated kernel with these strides reaches past coordinate 2^31 - 1 of the "
            "padded input"
        )
    _check_activation_size("conv", "patches", [n, oh, ow, kh * kw, c])
    xz = np.concatenate([x, np.zeros((n, 1, w, c), x.dtype)], axis=1)  # row h reads 0
    xz = np.concatenate([xz, np.zeros((n, h + 1, 1, c), x.dtype)], axis=2)  # column w reads 0

    def taps(out, stride, kernel, dilation, pad, size):
        idx = np.arange(out)[:, None] * stride + np.arange(kernel)[None, :] * dilation - pad
        return np.where((idx >= 0) & (idx < size), idx, size)  # [out, kernel]

    rows = taps(oh, sh, kh, dh, pt, h)
    cols = taps(ow, sw, kw, dw, pl, w)
    g = xz[:, rows[:, None, :, None], cols[None, :, None, :], :]  # [N, OH, OW, KH, KW, C]
    return g.reshape(n, oh, ow, kh * kw, c)


def _activation(y, activation):
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
    """`_patches` with the geometry of a validated conv/depthwise options dict `o`."""
    return _patches(
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
    options = _check_options(dict(options), op_type, where)
    return options, _check_weights(where, op_type, options, codes, pos, neg, bias)


def ttq_conv_2d(x, codes, pos_scales, neg_scales, bias, options):
    """TTQ_CONV_2D on NHWC float input `x`; returns float32 `[N, OH, OW, C_out]`."""
    where = TTQ_CONV_2D
    o, trits = _unpack_for(options, where, codes, pos_scales, neg_scales, bias, where)
    x = np.asarray(x, np.float32)
    _check_input_shape(where, where, o, x.shape)
    cols = _op_patches(x, o)
    n, oh, ow = cols.shape[:3]
    y = _ternary_matmul(cols.reshape(n, oh, ow, -1), trits, pos_scales, neg_scales, bias)
    return _activation(y, o["activation"]).astype(np.float32)


def ttq_depthwise_conv_2d(x, codes, pos_scales, neg_scales, bias, options):
    """TTQ_DEPTHWISE_CONV_2D on NHWC float input `x`; returns float32 `[N, OH, OW, C_out]`."""
    where = TTQ_DEPTHWISE_CONV_2D
    o, trits = _unpack_for(options, where, codes, pos_scales, neg_scales, bias, where)
    x = np.asarray(x, np.float32)
    _check_input_shape(where, where, o, x.shape)
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
    return _activation(y, o["activation"]).astype(np.float32)


def ttq_fully_connected(x, codes, pos_scales, neg_scales, bias, options):
    """TTQ_FULLY_CONNECTED; returns `[rows, C_out]` or `[..., C_out]` with keep_num_dims."""
    where = TTQ_FULLY_CONNECTED
    o, trits = _unpack_for(options, where, codes, pos_scales, neg_scales, bias, where)
    x = np.asarray(x, np.float32)
    _check_input_shape(where, where, o, x.shape)
    k = o["in_features"]
    y = _ternary_matmul(x.reshape(-1, k), trits, pos_scales, neg_scales, bias)
    if o["keep_num_dims"]:
        y = y.reshape(tuple(x.shape[:-1]) + (o["out_features"],))
    return _activation(y, o["activation"]).astype(np.float32)


_TTQ_KERNELS = {
    TTQ_CONV_2D: ttq_conv_2d,
    TTQ_DEPTHWISE_CONV_2D: ttq_depthwise_conv_2d,
    TTQ_FULLY_CONNECTED: ttq_fully_connected,
}


# ----------------------------------------------------------------------------------------------
# Builtin ops (float32 graphs as produced by tf.lite.TFLiteConverter)

_PAD = {schema_fb.Padding.SAME: "SAME", schema_fb.Padding.VALID: "VALID"}


def _conv_builtin(x, w, b, opt):
    o_, kh, kw, i_ = w.shape
    cols = _patches(
        x,
        kh,
        kw,
        opt.strideH,
        opt.strideW,
        opt.dilationHFactor or 1,
        opt.dilationWFactor or 1,
        _PAD[opt.padding],
    )
    n, oh, ow = cols.shape[:3]
    if cols.shape[-1] != i_:
        if x.shape[-1] % i_ == 0:
            raise NotImplementedError("grouped CONV_2D")
        raise ValueError(f"CONV_2D: input has {x.shape[-1]} channels, filter expects {i_}")
    y = cols.reshape(n, oh, ow, -1).astype(np.float64) @ w.reshape(o_, -1).T.astype(np.float64)
    if b is not None:
        y = y + b
    return _activation(y, opt.fusedActivationFunction)


def _depthwise_builtin(x, w, b, opt):
    _, kh, kw, c_out = w.shape
    cols = _patches(
        x,
        kh,
        kw,
        opt.strideH,
        opt.strideW,
        opt.dilationHFactor or 1,
        opt.dilationWFactor or 1,
        _PAD[opt.padding],
    ).astype(np.float64)
    mult = c_out // x.shape[-1]
    cols = cols[..., np.arange(c_out) // mult]
    y = (cols * w.reshape(kh * kw, c_out)).sum(axis=3)
    if b is not None:
        y = y + b
    return _activation(y, opt.fusedActivationFunction)


def _fc_builtin(x, w, b, opt):
    k = w.shape[1]
    y = x.reshape(-1, k).astype(np.float64) @ w.T.astype(np.float64)
    if b is not None:
        y = y + b
    if opt is not None and opt.keepNumDims:
        y = y.reshape(tuple(x.shape[:-1]) + (w.shape[0],))
    return _activation(y, opt.fusedActivationFunction if opt is not None else 0)


def _pool(x, opt, kind):
    pad = _PAD[opt.padding]
    geo = (opt.filterHeight, opt.filterWidth, opt.strideH, opt.strideW, 1, 1, pad)
    cols = _patches(x, *geo).astype(np.float64)
    mask = _patches(np.ones_like(x[..., :1]), *geo)  # 1 where a tap is inside the input
    if kind == "max":
        y = np.where(mask > 0, cols, -np.inf).max(axis=3)
    else:  # TFLite's average pool divides by the number of taps inside the input
        y = cols.sum(axis=3) / mask.sum(axis=3)
    return _activation(y, opt.fusedActivationFunction)


def _reshape(x, shape_in, opt):
    if shape_in is not None:
        shape = [int(d) for d in np.asarray(shape_in).reshape(-1)]
    elif opt is not None and opt.newShape is not None:
        shape = [int(d) for d in opt.newShape]
    else:
        raise ValueError("RESHAPE without a shape")
    if shape.count(-1) == 0 and int(np.prod(shape)) != x.size and shape and shape[0] == 1:
        shape[0] = -1  # shapes baked with batch 1 by the converter
    return x.reshape(shape)


def _space_to_batch(x, block, pads):
    n, h, w, c = x.shape
    bh, bw = (int(v) for v in block)
    xp = np.pad(x, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)))
    hp, wp = xp.shape[1:3]
    y = xp.reshape(n, hp // bh, bh, wp // bw, bw, c).transpose(2, 4, 0, 1, 3, 5)
    return y.reshape(bh * bw * n, hp // bh, wp // bw, c)


def _batch_to_space(x, block, crops):
    bn, h, w, c = x.shape
    bh, bw = (int(v) for v in block)
    n = bn // (bh * bw)
    y = x.reshape(bh, bw, n, h, w, c).transpose(2, 3, 0, 4, 1, 5).reshape(n, h * bh, w * bw, c)
    (ct, cb), (cl, cr) = crops
    return y[:, ct : h * bh - cb, cl : w * bw - cr, :]


def _strided_slice(x, begin, end, strides, opt):
    idx = []
    for d in range(len(begin)):
        b = None if (opt.beginMask >> d) & 1 else int(begin[d])
        e = None if (opt.endMask >> d) & 1 else int(end[d])
        if (opt.shrinkAxisMask >> d) & 1:
            idx.append(int(begin[d]))
        else:
            idx.append(slice(b, e, int(strides[d])))
    if opt.ellipsisMask or opt.newAxisMask:
        raise NotImplementedError("STRIDED_SLICE with ellipsis/new-axis masks")
    return np.asarray(x[tuple(idx)])


def _dequantize(x, t):
    q = t.quantization
    if x.dtype in (np.float16, np.float32):
        return x.astype(np.float32)
    scale = np.asarray(q.scale, np.float32)
    zp = np.asarray(q.zeroPoint, np.int64)
    if scale.size > 1:
        shape = [1] * x.ndim
        shape[q.quantizedDimension] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((x.astype(np.int64) - zp) * scale).astype(np.float32)


def _binary(fn):
    def op(args, opt):
        y = fn(args[0].astype(np.float64), args[1].astype(np.float64))
        act = getattr(opt, "fusedActivationFunction", 0) if opt is not None else 0
        return _activation(y, act)

    return op


def _mean(args, opt, fn=np.mean):
    axes = tuple(int(a) % args[0].ndim for a in np.asarray(args[1]).reshape(-1))
    return fn(args[0].astype(np.float64), axis=axes, keepdims=bool(opt.keepDims if opt else 0))


def _softmax(args, opt):
    x = args[0].astype(np.float64) * (opt.beta if opt is not None else 1.0)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _concat(args, opt):
    return _activation(np.concatenate(args, axis=opt.axis), opt.fusedActivationFunction)


_BUILTINS = {
    "ADD": _binary(np.add),
    "SUB": _binary(np.subtract),
    "MUL": _binary(np.multiply),
    "DIV": _binary(np.divide),
    "MAXIMUM": _binary(np.maximum),
    "MINIMUM": _binary(np.minimum),
    "RELU": lambda a, o: np.maximum(a[0], 0),
    "RELU6": lambda a, o: np.clip(a[0], 0, 6),
    "RELU_N1_TO_1": lambda a, o: np.clip(a[0], -1, 1),
    "LEAKY_RELU": lambda a, o: np.where(a[0] >= 0, a[0], a[0] * o.alpha),
    "LOGISTIC": lambda a, o: 1.0 / (1.0 + np.exp(-a[0].astype(np.float64))),
    "TANH": lambda a, o: np.tanh(a[0].astype(np.float64)),
    "HARD_SWISH": lambda a, o: a[0] * np.clip(a[0] + 3.0, 0, 6) / 6.0,
    "SOFTMAX": _softmax,
    "MEAN": _mean,
    "SUM": lambda a, o: _mean(a, o, np.sum),
    "REDUCE_MAX": lambda a, o: _mean(a, o, np.max),
    "REDUCE_PROD": lambda a, o: _mean(a, o, np.prod),
    "GATHER": lambda a, o: np.take(a[0], np.asarray(a[1]).astype(np.int64), axis=o.axis),
    "CAST": lambda a, o: a[0],
    "CONCATENATION": _concat,
    "PAD": lambda a, o: np.pad(a[0], np.asarray(a[1]).astype(np.int64)),
    "PADV2": lambda a, o: np.pad(
        a[0], np.asarray(a[1]).astype(np.int64), constant_values=a[2].reshape(())
    ),
    "RESHAPE": lambda a, o: _reshape(a[0], a[1] if len(a) > 1 else None, o),
    "SQUEEZE": lambda a, o: np.squeeze(
        a[0], axis=tuple(int(d) for d in o.squeezeDims) if o.squeezeDims is not None else None
    ),
    "EXPAND_DIMS": lambda a, o: np.expand_dims(a[0], int(np.asarray(a[1]).reshape(()))),
    "TRANSPOSE": lambda a, o: np.transpose(a[0], [int(p) for p in a[1]]),
    "SHAPE": lambda a, o: np.asarray(a[0].shape, np.int32),
    "PACK": lambda a, o: np.stack(a, axis=o.axis),
    "STRIDED_SLICE": lambda a, o: _strided_slice(a[0], a[1], a[2], a[3], o),
    "SPACE_TO_BATCH_ND": lambda a, o: _space_to_batch(a[0], a[1], np.asarray(a[2])),
    "BATCH_TO_SPACE_ND": lambda a, o: _batch_to_space(a[0], a[1], np.asarray(a[2])),
    "CONV_2D": lambda a, o: _conv_builtin(a[0], a[1], a[2] if len(a) > 2 else None, o),
    "DEPTHWISE_CONV_2D": lambda a, o: _depthwise_builtin(
        a[0], a[1], a[2] if len(a) > 2 else None, o
    ),
    "FULLY_CONNECTED": lambda a, o: _fc_builtin(a[0], a[1], a[2] if len(a) > 2 else None, o),
    "AVERAGE_POOL_2D": lambda a, o: _pool(a[0], o, "avg"),
    "MAX_POOL_2D": lambda a, o: _pool(a[0], o, "max"),
}
SUPPORTED_BUILTINS = tuple(sorted(_BUILTINS)) + ("DEQUANTIZE", "QUANTIZE (float16 only)")


# ----------------------------------------------------------------------------------------------
# Interpreter


def _signature_inputs(model):
    if model.signatureDefs:
        sig = model.signatureDefs[0]
        return {
            (t.name.decode() if isinstance(t.name, bytes) else t.name): t.tensorIndex
            for t in sig.inputs
        }
    return {}


def run(model, inputs):
    """Runs subgraph 0 of a (packed or float) .tflite in NumPy; returns the list of outputs.

    Args:
      model: .tflite bytes, a path, or a ModelT.
      inputs: one array (single-input models), a list in subgraph input order, or a dict keyed
        by signature input name or input tensor name. The batch size may differ from the one in
        the file.

    Returns:
      list of float32 (or the output dtype) NumPy arrays, in subgraph output order.

    Raises:
      ValueError: malformed model, bad TTQ op (format.md section 5), wrong inputs.
      NotImplementedError: an operator this reference does not implement (named).
    """
    model = _tflite.load_model(model)
    sg = model.subgraphs[0]
    in_idx = _tflite.ints(sg.inputs)
    if isinstance(inputs, dict):
        by_name = _signature_inputs(model)
        for i in in_idx:
            by_name.setdefault(_tflite.tensor_name(sg.tensors[i]), i)
        feed = {}
        for name, value in inputs.items():
            if name not in by_name:
                raise ValueError(f"unknown input {name!r}; the model's inputs are {list(by_name)}")
            feed[by_name[name]] = value
    else:
        arrays = [inputs] if not isinstance(inputs, (list, tuple)) else list(inputs)
        if len(arrays) != len(in_idx):
            raise ValueError(f"the model has {len(in_idx)} inputs, received {len(arrays)}")
        feed = dict(zip(in_idx, arrays))
    values = {}
    for i in in_idx:
        if i not in feed:
            raise ValueError(f"input {_tflite.tensor_name(sg.tensors[i])!r} is not given")
        t = sg.tensors[i]
        want = _tflite.tensor_dtype(t)
        x = np.asarray(feed[i])
        if x.dtype != want:
            x = x.astype(want)
        # -1 in the shape signature is a dynamic dimension; the batch is always free here.
        shape = _tflite.ints(t.shapeSignature) or _tflite.ints(t.shape)
        if shape:
            shape[0] = -1
        if len(shape) != x.ndim or any(s not in (-1, d) for s, d in zip(shape, x.shape)):
            raise ValueError(
                f"input {_tflite.tensor_name(t)!r}: expected shape {shape} (-1: any). "
                f"Received {list(x.shape)}"
            )
        values[i] = x

    def get(idx):
        if idx in values:
            return values[idx]
        t = sg.tensors[idx]
        arr = _tflite.tensor_array(model, t)
        if arr is None:
            raise ValueError(f"tensor {_tflite.tensor_name(t)!r} is read before it is computed")
        values[idx] = arr
        return arr

    for index, op in enumerate(sg.operators or []):
        name = _tflite.op_name(model, op)
        ins = _tflite.ints(op.inputs)
        outs = _tflite.ints(op.outputs)
        if name.startswith("TTQ_"):
            t = _parse_ttq_op(model, sg, index, op, name)
            x = get(ins[0])
            _check_activation_size(f"operator {index} ({name})", "input", x.shape)
            _check_input_shape(f"operator {index} ({name})", name, t.options, x.shape)
            _check_output_size(f"operator {index} ({name})", name, t.options, x.shape)
            kernel = _TTQ_KERNELS[name]
            codes = _tflite.tensor_array(model, sg.tensors[ins[1]])
            y = kernel(x, codes, t.pos_scales, t.neg_scales, t.bias, t.options)
            values[outs[0]] = y
            continue
        if name == "DEQUANTIZE":
            values[outs[0]] = _dequantize(get(ins[0]), sg.tensors[ins[0]])
            continue
        if name == "QUANTIZE" and sg.tensors[outs[0]].type == schema_fb.TensorType.FLOAT16:
            values[outs[0]] = get(ins[0]).astype(np.float16)
            continue
        fn = _BUILTINS.get(name)
        if fn is None:
            raise NotImplementedError(
                f"operator {index} ({name}) is not implemented by the reference interpreter; "
                f"supported builtins: {', '.join(SUPPORTED_BUILTINS)}"
            )
        args = [get(i) for i in ins if i != -1]
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(ins) > 2:
            if ins[2] == -1:
                args.append(None)
        try:
            y = fn(args, op.builtinOptions)
        except (NotImplementedError, ValueError) as e:
            raise type(e)(f"operator {index} ({name}): {e}") from None
        out_t = sg.tensors[outs[0]]
        want = _tflite.tensor_dtype(out_t)
        values[outs[0]] = np.asarray(y).astype(want)
    return [values[i] for i in _tflite.ints(sg.outputs)]


def main(argv=None):
    """`python -m ttq_keras.lite.reference MODEL.tflite [--input X.npy --output Y.npy]`"""
    import argparse

    from ttq_keras.lite.sizes import format_op_byte_sizes, op_byte_sizes

    parser = argparse.ArgumentParser(
        prog="python -m ttq_keras.lite.reference",
        description="Validate a packed ternary .tflite (docs/format.md) and optionally run it.",
    )
    parser.add_argument("model")
    parser.add_argument("--input", help=".npy input for a single-input model")
    parser.add_argument("--output", help="where to save output 0 as .npy")
    args = parser.parse_args(argv)
    with open(args.model, "rb") as f:
        data = f.read()
    for op in validate(data):
        print(f"{op!r} {op.options}")
    print(format_op_byte_sizes(op_byte_sizes(data), len(data)))
    if args.input:
        outputs = run(data, np.load(args.input))
        for i, y in enumerate(outputs):
            print(f"output {i}: shape {list(y.shape)}, max |y| {float(np.abs(y).max()):g}")
        if args.output:
            np.save(args.output, outputs[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
