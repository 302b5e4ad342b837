"""The packed rewrite: a float .tflite plus each ternary layer's codes in, packed bytes out.

The stock TFLite converter, run on the float model whose ternary kernels hold {+Wp, 0, -Wn}
(`ttq_keras.to_float_model`), folds a following BatchNormalization (and other per-channel
factors) into each weight row, so each row of a ternary op's converted weights holds at most
two distinct nonzero values, `s+_c` and `-s-_c`. This module

1. matches each ternary layer's codes (in TFLite's tap order) against the weights of the
   CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED ops and reads the scales off the weights,
2. rewrites each matched op as a TTQ custom op (docs/format.md) through TF's schema objects,
3. explains, for every layer left unmatched, why,

then fuses the dilated convolutions the converter split (`dilated_conv`) and drops what is no
longer used (`prune`). No Keras here: a layer is any object with `inner_name`, `kind`
("conv2d" | "depthwise_conv2d" | "dense") and `codes` in the Keras kernel layout, as in
`ttq_keras.ternary_layers(model)`.
"""

import dataclasses
import logging

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema_fb

from ttq_keras.lite import flatbuffer_io as fbio
from ttq_keras.lite import format as fmt
from ttq_keras.lite import interpreter
from ttq_keras.lite.dilated_conv import fuse_dilated_convs
from ttq_keras.lite.packing import pack_trits
from ttq_keras.lite.prune import remove_unused
from ttq_keras.lite.sizes import op_byte_sizes

__all__ = ["PackedLayer", "FloatLayer", "pack", "keras_codes_to_rows", "fit_scales"]

_log = logging.getLogger("ttq_keras")

KIND_TO_BUILTIN = {
    "conv2d": "CONV_2D",
    "depthwise_conv2d": "DEPTHWISE_CONV_2D",
    "dense": "FULLY_CONNECTED",
}
BUILTIN_TO_TTQ = {
    "CONV_2D": fmt.TTQ_CONV_2D,
    "DEPTHWISE_CONV_2D": fmt.TTQ_DEPTHWISE_CONV_2D,
    "FULLY_CONNECTED": fmt.TTQ_FULLY_CONNECTED,
}
_ACTIVATIONS = {
    schema_fb.ActivationFunctionType.NONE: "NONE",
    schema_fb.ActivationFunctionType.RELU: "RELU",
    schema_fb.ActivationFunctionType.RELU6: "RELU6",
}
_ACTIVATION_NAMES = {
    v: k for k, v in vars(schema_fb.ActivationFunctionType).items() if not k.startswith("_")
}
_PADDINGS = {schema_fb.Padding.SAME: "SAME", schema_fb.Padding.VALID: "VALID"}
# Relative tolerance when checking that a weight row is {s+, 0, -s-}: TFLite folds per-channel
# factors by one float32 multiplication per weight, so equal weights stay exactly equal.
_RTOL = 1e-5


@dataclasses.dataclass
class PackedLayer:
    layer: str  # the Keras layer's original name
    op_index: int  # index of the TTQ op in the written file
    op: str  # TTQ_CONV_2D, ...
    out_channels: int
    row_length: int  # K
    const_bytes: int


@dataclasses.dataclass
class FloatLayer:
    layer: str
    reason: str


def keras_codes_to_rows(kind, codes):
    """Keras kernel-shaped codes -> `[C_out, K]` rows in TFLite's tap order (format.md s.2)."""
    codes = np.asarray(codes)
    if kind == "conv2d":  # (KH, KW, Cin, Cout) -> OHWI
        return codes.transpose(3, 0, 1, 2).reshape(codes.shape[3], -1)
    if kind == "depthwise_conv2d":  # (KH, KW, Cin, m) -> [Cin*m, KH*KW]
        kh, kw, cin, m = codes.shape
        return codes.reshape(kh * kw, cin * m).T
    if kind == "dense":  # (in, out) -> [out, in]
        return codes.T
    raise ValueError(f"unknown ternary layer kind {kind!r}")


def _weight_rows(op_type, w):
    """TFLite weights -> `[C_out, K]` rows."""
    if op_type == "DEPTHWISE_CONV_2D":  # [1, KH, KW, C]
        return w.reshape(-1, w.shape[-1]).T
    return w.reshape(w.shape[0], -1)


def fit_scales(rows, trits, rtol=_RTOL):
    """Per-row (s+, s-) such that rows == s+·[t=+1] − s-·[t=−1], or None if impossible."""
    w = rows.astype(np.float64)
    pos = trits == 1
    neg = trits == -1
    if np.any(w[~(pos | neg)] != 0):
        return None
    n_pos = pos.sum(axis=1)
    n_neg = neg.sum(axis=1)
    sp = np.where(n_pos > 0, (w * pos).sum(axis=1) / np.maximum(n_pos, 1), 0.0)
    sn = np.where(n_neg > 0, -(w * neg).sum(axis=1) / np.maximum(n_neg, 1), 0.0)
    if np.any(np.abs(w - sp[:, None]) * pos > rtol * np.abs(sp)[:, None] + 1e-37):
        return None
    if np.any(np.abs(w + sn[:, None]) * neg > rtol * np.abs(sn)[:, None] + 1e-37):
        return None
    return sp.astype(np.float32), sn.astype(np.float32)


class _Editor:
    """Adds tensors/buffers/opcodes to a ModelT."""

    def __init__(self, model):
        self.model = model
        self.sg = model.subgraphs[0]
        self._opcodes = {}

    def const(self, name, array, tensor_type):
        buf = schema_fb.BufferT()
        buf.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
        self.model.buffers.append(buf)
        t = schema_fb.TensorT()
        t.name = name.encode()
        t.shape = np.asarray(array.shape, np.int32)
        t.type = tensor_type
        t.buffer = len(self.model.buffers) - 1
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def custom_opcode(self, custom_code):
        if custom_code not in self._opcodes:
            oc = schema_fb.OperatorCodeT()
            oc.builtinCode = schema_fb.BuiltinOperator.CUSTOM
            oc.deprecatedBuiltinCode = schema_fb.BuiltinOperator.CUSTOM
            oc.customCode = custom_code.encode()
            oc.version = 1
            self.model.operatorCodes.append(oc)
            self._opcodes[custom_code] = len(self.model.operatorCodes) - 1
        return self._opcodes[custom_code]


# ----------------------------------------------------------------------------------------------
# 1. Match


def _weights(model, sg, op, op_type):
    """The constant float weights of a candidate op, or None."""
    if op_type not in BUILTIN_TO_TTQ:
        return None
    ins = fbio.ints(op.inputs)
    if len(ins) < 2 or ins[1] < 0:
        return None
    w = fbio.tensor_array(model, sg.tensors[ins[1]])
    if w is None or w.dtype != np.float32 or w.ndim < 2:
        return None
    return w


def _match(op_type, rows, layers, found, candidates, index):
    """The layer whose codes `rows` hold as {+s, 0, -s}: (info, trits, scales), or None.

    Layers with identical codes match each other's ops (same packing, scales come from the op):
    a layer that has no op yet is preferred, so that every layer gets reported.
    """
    matches = []
    for info, trits in layers:
        if KIND_TO_BUILTIN[info.kind] != op_type or trits.shape != rows.shape:
            continue
        candidates.setdefault(info.inner_name, []).append(index)
        scales = fit_scales(rows, trits)
        if scales is not None:
            matches.append((info, trits, scales))
    matches.sort(key=lambda m: bool(found[m[0].inner_name]))
    return matches[0] if matches else None


# ----------------------------------------------------------------------------------------------
# 2. Rewrite


def _op_options(sg, op, op_type, w):
    """(options dict, None) for a packable op, or (None, reason)."""
    opt = op.builtinOptions
    act = getattr(opt, "fusedActivationFunction", 0) if opt is not None else 0
    if act not in _ACTIVATIONS:
        return None, (
            f"fused activation {_ACTIVATION_NAMES.get(act, act)} is not supported by the packed "
            f"format {fmt.ACTIVATIONS}"
        )
    x = sg.tensors[int(op.inputs[0])]
    if x.type != schema_fb.TensorType.FLOAT32 or sg.tensors[int(op.outputs[0])].type != 0:
        return None, "input or output of the op is not float32"
    x_shape = fbio.ints(x.shape)
    options = {"version": fmt.FORMAT_VERSION, "activation": _ACTIVATIONS[act]}
    if op_type == "FULLY_CONNECTED":
        if (
            opt is not None
            and opt.weightsFormat != schema_fb.FullyConnectedOptionsWeightsFormat.DEFAULT
        ):
            return None, "FULLY_CONNECTED with shuffled weights"
        options.update(
            in_features=int(w.shape[1]),
            out_features=int(w.shape[0]),
            keep_num_dims=bool(opt.keepNumDims) if opt is not None else False,
        )
        return options, None
    if len(x_shape) != 4:
        return None, f"input is not 4-D (shape {x_shape})"
    c_in = int(x_shape[-1])
    if op_type == "CONV_2D":
        if int(w.shape[3]) != c_in:
            return None, f"grouped convolution (input has {c_in} channels, filter {w.shape[3]})"
        c_out, kh, kw = int(w.shape[0]), int(w.shape[1]), int(w.shape[2])
    else:
        c_out, kh, kw = int(w.shape[3]), int(w.shape[1]), int(w.shape[2])
        if c_out % c_in:
            return None, f"depthwise output channels {c_out} not a multiple of input {c_in}"
        options["depth_multiplier"] = c_out // c_in
    options.update(
        in_channels=c_in,
        out_channels=c_out,
        kernel_height=kh,
        kernel_width=kw,
        stride_height=int(opt.strideH),
        stride_width=int(opt.strideW),
        dilation_height=int(opt.dilationHFactor or 1),
        dilation_width=int(opt.dilationWFactor or 1),
        padding=_PADDINGS[opt.padding],
    )
    return options, None


def _rewrite_op(editor, op, op_type, w, trits, scales, tensor_prefix):
    """Turns `op` into its TTQ op in place; returns None, or why it cannot be packed."""
    sg = editor.sg
    options, reason = _op_options(sg, op, op_type, w)
    if options is None:
        return reason
    ins = fbio.ints(op.inputs)
    bias = None
    if len(ins) > 2 and ins[2] >= 0:
        bias = fbio.tensor_array(editor.model, sg.tensors[ins[2]])
        if bias is None:
            return "bias is not constant"
    c_out = trits.shape[0]
    bias = np.zeros([c_out], np.float32) if bias is None else bias.astype(np.float32)
    f32 = schema_fb.TensorType.FLOAT32
    op.inputs = np.asarray(
        [
            ins[0],
            editor.const(
                f"{tensor_prefix}/ttq_codes", pack_trits(trits), schema_fb.TensorType.UINT8
            ),
            editor.const(f"{tensor_prefix}/ttq_pos_scales", scales[0], f32),
            editor.const(f"{tensor_prefix}/ttq_neg_scales", scales[1], f32),
            editor.const(f"{tensor_prefix}/ttq_bias", bias.reshape(-1), f32),
        ],
        np.int32,
    )
    op.opcodeIndex = editor.custom_opcode(BUILTIN_TO_TTQ[op_type])
    op.builtinOptionsType = schema_fb.BuiltinOptions.NONE
    op.builtinOptions = None
    op.builtinOptions2Type = 0
    op.builtinOptions2 = None
    op.customOptions = np.frombuffer(fmt.encode_options(options), np.uint8)
    op.customOptionsFormat = schema_fb.CustomOptionsFormat.FLEXBUFFERS
    return None


# ----------------------------------------------------------------------------------------------
# 3. Explain


def _explain_failure(info, shape, candidates, reasons):
    """Why layer `info` (codes rows of `shape`) was not packed, for the error message."""
    if info.inner_name in reasons:
        return reasons[info.inner_name]
    want = KIND_TO_BUILTIN[info.kind]
    if info.inner_name in candidates:
        return (
            f"the {want} op(s) {candidates[info.inner_name]} with weights of shape "
            f"{list(shape)} do not hold this layer's codes as {{+s, 0, -s}} per "
            "output channel (the TFLite converter fused something into the weights "
            "that is not a per-output-channel factor)"
        )
    return (
        f"no {want} op with weight rows {list(shape)} [C_out, K] in the "
        "converted graph (the TFLite converter rewrote or fused the layer)"
    )


def pack(float_tflite, infos):
    """Rewrites the ternary ops of a converted float .tflite as TTQ ops.

    Args:
      float_tflite: bytes from the TFLite converter of `to_float_model(model)`.
      infos: `ttq_keras.ternary_layers(model)` (or objects with inner_name, kind, codes).

    Returns:
      (packed bytes, [PackedLayer], [FloatLayer] for layers that could not be packed).
    """
    model = fbio.load_model(float_tflite, "converted float model")
    if len(model.subgraphs) != 1:
        _log.info("packing subgraph 0 of %d", len(model.subgraphs))
    sg = model.subgraphs[0]
    editor = _Editor(model)
    layers = [(info, keras_codes_to_rows(info.kind, info.codes)) for info in infos]
    found = {info.inner_name: [] for info in infos}
    reasons = {}
    candidates = {}  # per layer: ops of the right type and shape (for the error message)
    replaced = []
    for index, op in enumerate(sg.operators or []):
        op_type = fbio.op_name(model, op)
        w = _weights(model, sg, op, op_type)
        if w is None:
            continue
        match = _match(op_type, _weight_rows(op_type, w), layers, found, candidates, index)
        if match is None:
            continue
        info, trits, scales = match
        name = info.inner_name
        prefix = name if not found[name] else f"{name}_{index}"
        reason = _rewrite_op(editor, op, op_type, w, trits, scales, prefix)
        if reason is not None:
            reasons[name] = f"op {index} ({op_type}): {reason}"
            continue
        found[name].append(index)
        replaced.append((info, op, BUILTIN_TO_TTQ[op_type], trits.shape))
    failures = [
        FloatLayer(info.inner_name, _explain_failure(info, trits.shape, candidates, reasons))
        for info, trits in layers
        if not found[info.inner_name]
    ]
    fuse_dilated_convs(model)
    remove_unused(model)
    result = fbio.write_model(model)
    sizes = {s.index: s for s in op_byte_sizes(result)}
    index_of = {id(op): i for i, op in enumerate(sg.operators)}
    packed_layers = []
    for info, op, ttq, shape in replaced:
        idx = index_of[id(op)]
        packed_layers.append(
            PackedLayer(info.inner_name, idx, ttq, shape[0], shape[1], sizes[idx].const_bytes)
        )
    interpreter.validate(result)  # the file must pass its own reader's checks
    return result, packed_layers, failures
