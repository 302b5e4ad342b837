"""Test-only builder of small packed ternary .tflite files (docs/format.md), independent of the
converter, so the delegate tests control every byte (including the corrupt ones).

A model is a chain: input -> op -> op -> ... -> output, where each op is a TTQ op (`TtqOp`) or
a unary builtin (`"TANH"`). Weights come from float Keras layers whose kernels hold ternary
values, so the expected output is simply the Keras model's output.
"""

import ttq_keras  # noqa: F401  isort: skip  (sets TF_USE_LEGACY_KERAS before TF loads)

import dataclasses
from typing import List, Optional, Sequence

import numpy as np
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema_fb
from tensorflow.lite.tools import flatbuffer_utils

from ttq_keras.lite.packing import pack_trits

CUSTOM_CODES = {
    "conv2d": "TTQ_CONV_2D",
    "depthwise_conv2d": "TTQ_DEPTHWISE_CONV_2D",
    "dense": "TTQ_FULLY_CONNECTED",
}
_PADDING = {"same": "SAME", "valid": "VALID"}
_ACTIVATION = {"linear": "NONE", "relu": "RELU", "relu6": "RELU6"}


@dataclasses.dataclass
class TtqOp:
    """One TTQ op. `rows` are the trits [C_out, K] in the format's tap order."""

    kind: str  # 'conv2d' | 'depthwise_conv2d' | 'dense'
    rows: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    bias: np.ndarray
    options: dict
    output_shape: Sequence[int]
    # Corruption hooks for the error tests.
    codes: Optional[np.ndarray] = None  # replaces the packed codes (any shape / dtype)
    custom_options: Optional[bytes] = None  # replaces the FlexBuffer options
    drop_bias: bool = False  # 4 inputs instead of 5
    non_constant_codes: bool = False  # codes become a graph input with no buffer
    codes_dtype: Optional[int] = None  # a schema TensorType for the codes tensor
    codes_shape: Optional[Sequence[int]] = None  # declared shape, if not the array's


def ternary_kernel(shape, rng, sparsity=0.4, per_channel=True):
    """Random trits of `shape` and positive scales per last axis (or a scalar)."""
    trits = rng.choice([-1, 0, 1], size=shape, p=[(1 - sparsity) / 2, sparsity, (1 - sparsity) / 2])
    n = shape[-1] if per_channel else 1
    wp = rng.uniform(0.2, 1.5, size=n).astype(np.float32)
    wn = rng.uniform(0.2, 1.5, size=n).astype(np.float32)
    return trits.astype(np.int8), wp, wn


def _conv_options(cfg, act, cin, c_out, kh, kw):
    """Custom options shared by TTQ_CONV_2D and TTQ_DEPTHWISE_CONV_2D, from a Keras config."""
    return dict(
        version=1,
        activation=act,
        in_channels=cin,
        out_channels=c_out,
        kernel_height=kh,
        kernel_width=kw,
        stride_height=cfg["strides"][0],
        stride_width=cfg["strides"][1],
        dilation_height=cfg["dilation_rate"][0],
        dilation_width=cfg["dilation_rate"][1],
        padding=_PADDING[cfg["padding"]],
    )


def op_from_keras_layer(layer, trits, wp, wn, output_shape):
    """A TtqOp for a Keras Conv2D / DepthwiseConv2D / Dense whose kernel is
    `wp*(trits==1) - wn*(trits==-1)` (wp, wn broadcast over the kernel's last axis)."""
    cfg = layer.get_config()
    act = _ACTIVATION[cfg["activation"]]
    bias = layer.bias.numpy() if layer.use_bias else None
    if type(layer).__name__ == "DepthwiseConv2D":
        kh, kw, cin, mult = trits.shape
        rows = trits.transpose(2, 3, 0, 1).reshape(cin * mult, kh * kw)
        c_out = cin * mult
        per_c = lambda v: np.broadcast_to(v, (cin, mult)).reshape(-1)  # noqa: E731
        options = dict(_conv_options(cfg, act, cin, c_out, kh, kw), depth_multiplier=mult)
        kind = "depthwise_conv2d"
    elif type(layer).__name__ == "Conv2D":
        kh, kw, cin, c_out = trits.shape
        rows = trits.transpose(3, 0, 1, 2).reshape(c_out, -1)
        per_c = lambda v: np.broadcast_to(v, (c_out,))  # noqa: E731
        options = _conv_options(cfg, act, cin, c_out, kh, kw)
        kind = "conv2d"
    else:
        k, c_out = trits.shape
        rows = trits.T
        per_c = lambda v: np.broadcast_to(v, (c_out,))  # noqa: E731
        options = dict(
            version=1, activation=act, in_features=k, out_features=c_out, keep_num_dims=False
        )
        kind = "dense"
    c_out = rows.shape[0]
    return TtqOp(
        kind=kind,
        rows=np.ascontiguousarray(rows),
        pos=np.ascontiguousarray(per_c(wp), np.float32),
        neg=np.ascontiguousarray(per_c(wn), np.float32),
        bias=np.zeros(c_out, np.float32) if bias is None else np.asarray(bias, np.float32),
        options=options,
        output_shape=list(output_shape),
    )


def build_model(input_shape, ops: List) -> bytes:
    """A .tflite flatbuffer running `ops` (TtqOp or the string 'TANH') in a chain."""
    model = schema_fb.ModelT()
    model.version = 3
    model.description = "ttq delegate test model"
    model.buffers = [schema_fb.BufferT()]  # buffer 0 is the empty sentinel
    sg = schema_fb.SubGraphT()
    sg.tensors, sg.operators = [], []
    model.operatorCodes = []
    code_index = {}

    def add_buffer(array):
        b = schema_fb.BufferT()
        b.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
        model.buffers.append(b)
        return len(model.buffers) - 1

    def add_tensor(name, shape, ttype, array=None):
        # `shape` may differ from the array's (the truncated-buffer test).
        t = schema_fb.TensorT()
        t.name = name
        t.shape = np.array(shape, np.int32)
        t.type = ttype
        t.buffer = 0 if array is None else add_buffer(array)
        sg.tensors.append(t)
        return len(sg.tensors) - 1

    def op_code(builtin, custom=None):
        key = (builtin, custom)
        if key not in code_index:
            oc = schema_fb.OperatorCodeT()
            oc.builtinCode = builtin
            oc.deprecatedBuiltinCode = min(builtin, 127)
            oc.customCode = custom
            oc.version = 1
            model.operatorCodes.append(oc)
            code_index[key] = len(model.operatorCodes) - 1
        return code_index[key]

    f32 = schema_fb.TensorType.FLOAT32
    current = add_tensor("input", input_shape, f32)
    graph_inputs = [current]
    for i, op in enumerate(ops):
        o = schema_fb.OperatorT()
        if op == "TANH":
            out = add_tensor(f"tanh_{i}", sg.tensors[current].shape.tolist(), f32)
            o.opcodeIndex = op_code(schema_fb.BuiltinOperator.TANH)
            o.inputs, o.outputs = [current], [out]
        else:
            codes = pack_trits(op.rows) if op.codes is None else np.asarray(op.codes)
            ctype = schema_fb.TensorType.UINT8 if op.codes_dtype is None else op.codes_dtype
            if op.non_constant_codes:
                codes_t = add_tensor(f"op{i}/codes", codes.shape, ctype)
                graph_inputs.append(codes_t)
            else:
                shape = codes.shape if op.codes_shape is None else op.codes_shape
                codes_t = add_tensor(f"op{i}/codes", shape, ctype, codes)
            inputs = [
                current,
                codes_t,
                add_tensor(f"op{i}/pos_scales", op.pos.shape, f32, op.pos),
                add_tensor(f"op{i}/neg_scales", op.neg.shape, f32, op.neg),
            ]
            if not op.drop_bias:
                inputs.append(add_tensor(f"op{i}/bias", op.bias.shape, f32, op.bias))
            out = add_tensor(f"op{i}/output", op.output_shape, f32)
            o.opcodeIndex = op_code(schema_fb.BuiltinOperator.CUSTOM, CUSTOM_CODES[op.kind])
            o.inputs, o.outputs = inputs, [out]
            opts = op.custom_options
            if opts is None:
                opts = bytes(flexbuffers.Dumps(op.options))
            o.customOptions = np.frombuffer(opts, np.uint8)
            o.customOptionsFormat = schema_fb.CustomOptionsFormat.FLEXBUFFERS
        sg.operators.append(o)
        current = out
    sg.inputs = graph_inputs
    sg.outputs = [current]
    sg.name = "main"
    model.subgraphs = [sg]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
