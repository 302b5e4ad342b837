"""Converts a model made by `ttq_keras.quantize_model` to a .tflite file.

Packed (default, docs/format.md): the quantized model is turned into a plain float model whose
ternary kernels hold {+Wp, 0, -Wn} (`ttq_keras.to_float_model`) and converted with the stock
`tf.lite.TFLiteConverter`, which folds a following BatchNormalization (and other per-channel
factors) into each weight row. Each row of a ternary op's converted weights therefore holds at
most two distinct nonzero values, `s+_c` and `-s-_c`. The converter finds those ops by matching
the Keras codes (`ttq_keras.ternary_layers`, transposed to TFLite's layout) against the
converted weights, reads the per-channel scales from the weights themselves, and rewrites each
op as a TTQ custom op through TF's flatbuffer schema objects. Unused tensors, buffers and
operator codes are then removed so the file shrinks.

Portable (`packed=False`): builtin ops only; the ternary weights stay baked into float kernels
(`weights="float"`) or into int8 kernels with per-channel scales (`weights="int8"`, TFLite
dynamic-range quantization). Any stock TFLite runtime loads it.
"""

import dataclasses
import logging
import os
import sys
import tempfile
import warnings
from typing import List, Optional

import numpy as np
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema_fb
from tensorflow.lite.tools import flatbuffer_utils

from ttq_keras.lite import _tflite, reference
from ttq_keras.lite.packing import pack_trits
from ttq_keras.lite.sizes import OpBytes, op_byte_sizes

__all__ = ["convert", "ConversionReport", "PackedLayer", "FloatLayer", "UnpackableLayerError"]

_log = logging.getLogger("ttq_keras")

_KIND_TO_BUILTIN = {
    "conv2d": "CONV_2D",
    "depthwise_conv2d": "DEPTHWISE_CONV_2D",
    "dense": "FULLY_CONNECTED",
}
_BUILTIN_TO_TTQ = {
    "CONV_2D": reference.TTQ_CONV_2D,
    "DEPTHWISE_CONV_2D": reference.TTQ_DEPTHWISE_CONV_2D,
    "FULLY_CONNECTED": reference.TTQ_FULLY_CONNECTED,
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


class UnpackableLayerError(ValueError):
    """A ternary layer that the converter cannot write as a packed op."""


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


@dataclasses.dataclass
class ConversionReport:
    """What `convert(..., return_report=True)` returns next to the bytes."""

    packed: bool
    file_bytes: int
    packed_layers: List[PackedLayer]
    float_layers: List[FloatLayer]  # ternary layers left float (allow_float_fallback=True)
    op_sizes: List[OpBytes]
    verified: Optional[bool]  # reference run of packed vs float file agreed (None: not run)

    def __str__(self):
        from ttq_keras.lite.sizes import format_op_byte_sizes

        head = (
            f"{'packed' if self.packed else 'portable'} .tflite, {self.file_bytes:,} bytes; "
            f"{len(self.packed_layers)} packed ternary ops"
        )
        if self.float_layers:
            head += "; left float: " + ", ".join(
                f"{f.layer} ({f.reason})" for f in self.float_layers
            )
        return head + "\n" + format_op_byte_sizes(self.op_sizes, self.file_bytes)


# ----------------------------------------------------------------------------------------------
# Entry point


def convert(
    model,
    *,
    packed: bool = True,
    weights: str = "float",
    allow_float_fallback: bool = False,
    verify: bool = True,
    return_report: bool = False,
):
    """Converts a quantized model to .tflite bytes.

    Args:
      model: a model made by `ttq_keras.quantize_model` (trained or not), or a path to one saved
        with `model.save` (loaded under `ttq_keras.quantize_scope()`).
      packed: True writes the packed ternary format (docs/format.md: TTQ_* custom ops, needs
        the ttq delegate or the reference interpreter); False writes builtin ops only.
      weights: for `packed=False`: "float" keeps float32 kernels holding the ternary values;
        "int8" applies TFLite dynamic-range quantization (int8 kernels, per-channel scales;
        TFLite leaves tensors under 1024 elements float).
      allow_float_fallback: a ternary layer that cannot be packed stays a float builtin op, is
        listed in a warning and in the report, instead of raising.
      verify: run the packed and the float file through the NumPy reference interpreter on a
        random input and check they agree (skipped when the graph has an op the reference does
        not implement).
      return_report: return `(bytes, ConversionReport)` instead of bytes.

    Raises:
      ValueError: the model was not made by `quantize_model`, or bad arguments.
      UnpackableLayerError (a ValueError): a ternary layer cannot be packed (names the layer and
        the reason), unless `allow_float_fallback`.
    """
    from ttq_keras._compat import check_is_tf_keras_model  # imports TF/Keras lazily
    from ttq_keras.diagnostics import check_ternary_weights
    from ttq_keras.ternary_weights import is_ttq_wrapper, ternary_layers, to_float_model

    if weights not in ("float", "int8"):
        raise ValueError(f"weights must be 'float' or 'int8'. Received: weights={weights!r}")
    if packed and weights != "float":
        raise ValueError(
            "weights='int8' applies to the portable file only; use packed=False with it "
            "(the packed format stores ternary codes, not int8)."
        )
    model = _load(model)
    check_is_tf_keras_model(model)
    wrappers = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)  # noqa: SLF001
        if is_ttq_wrapper(layer)
    ]
    if not wrappers:
        raise ValueError(
            f"Model {model.name!r} was not made by ttq_keras.quantize_model: it has no TTQ "
            "quantized layer (QuantizeWrapperV2 with a TTQQuantizeConfig). Quantize it first: "
            "`q = ttq_keras.quantize_model(model)`."
        )
    check_ternary_weights(model)  # a diverged model is named here, not blamed on the converter
    infos = ternary_layers(model)
    float_model = to_float_model(model)
    float_bytes = _tflite_convert(float_model, int8=(weights == "int8"))
    if not packed:
        result = float_bytes
        report = ConversionReport(
            False,
            len(result),
            [],
            [],
            op_byte_sizes(result),
            None,
        )
        return (result, report) if return_report else result

    result, packed_layers, failures = pack(float_bytes, infos)
    if failures:
        lines = "; ".join(f"{f.layer}: {f.reason}" for f in failures)
        if not allow_float_fallback:
            raise UnpackableLayerError(
                f"Cannot pack {len(failures)} ternary layer(s) of {model.name!r}: {lines}. "
                "Pass allow_float_fallback=True to keep them as float builtin ops."
            )
        warnings.warn(
            f"Ternary layer(s) left float in the packed file (allow_float_fallback=True): {lines}",
            stacklevel=2,
        )
    verified = _verify(float_bytes, result) if verify else None
    report = ConversionReport(
        True, len(result), packed_layers, failures, op_byte_sizes(result), verified
    )
    return (result, report) if return_report else result


def _load(model):
    if isinstance(model, (str, os.PathLike)):
        from ttq_keras._compat import keras
        from ttq_keras.quantize import quantize_scope

        path = os.fspath(model)
        if not os.path.exists(path):
            raise ValueError(f"No saved model at {path!r}")
        with quantize_scope():
            return keras.models.load_model(path, compile=False)
    return model


def _tflite_convert(float_model, int8=False):
    from ttq_keras._compat import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(float_model)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights
    return bytes(converter.convert())


# ----------------------------------------------------------------------------------------------
# Packing


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


def _op_options(model, sg, op, op_type, w):
    """(options dict, None) for a packable op, or (None, reason)."""
    opt = op.builtinOptions
    act = getattr(opt, "fusedActivationFunction", 0) if opt is not None else 0
    if act not in _ACTIVATIONS:
        return None, (
            f"fused activation {_ACTIVATION_NAMES.get(act, act)} is not supported by the packed "
            "format (NONE, RELU, RELU6)"
        )
    x = sg.tensors[int(op.inputs[0])]
    if x.type != schema_fb.TensorType.FLOAT32 or sg.tensors[int(op.outputs[0])].type != 0:
        return None, "input or output of the op is not float32"
    x_shape = _tflite.ints(x.shape)
    options = {"version": reference.FORMAT_VERSION, "activation": _ACTIVATIONS[act]}
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


def pack(float_tflite, infos):
    """Rewrites the ternary ops of a converted float .tflite as TTQ ops.

    Args:
      float_tflite: bytes from the TFLite converter of `to_float_model(model)`.
      infos: `ttq_keras.ternary_layers(model)`.

    Returns:
      (packed bytes, [PackedLayer], [FloatLayer] for layers that could not be packed).
    """
    model = _tflite.load_model(float_tflite, "converted float model")
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
        op_type = _tflite.op_name(model, op)
        if op_type not in _BUILTIN_TO_TTQ:
            continue
        ins = _tflite.ints(op.inputs)
        if len(ins) < 2 or ins[1] < 0:
            continue
        w = _tflite.tensor_array(model, sg.tensors[ins[1]])
        if w is None or w.dtype != np.float32 or w.ndim < 2:
            continue
        rows = _weight_rows(op_type, w)
        matches = []
        for info, trits in layers:
            if _KIND_TO_BUILTIN[info.kind] != op_type or trits.shape != rows.shape:
                continue
            candidates.setdefault(info.inner_name, []).append(index)
            scales = fit_scales(rows, trits)
            if scales is not None:
                matches.append((info, trits, scales))
        # Layers with identical codes match each other's ops (same packing, scales come from
        # the op): prefer a layer that has no op yet, so that every layer gets reported.
        matches.sort(key=lambda m: bool(found[m[0].inner_name]))
        for info, trits, scales in matches[:1]:
            options, reason = _op_options(model, sg, op, op_type, w)
            if options is None:
                reasons[info.inner_name] = f"op {index} ({op_type}): {reason}"
                break
            bias = None
            if len(ins) > 2 and ins[2] >= 0:
                bias = _tflite.tensor_array(model, sg.tensors[ins[2]])
                if bias is None:
                    reasons[info.inner_name] = f"op {index} ({op_type}): bias is not constant"
                    break
            c_out = rows.shape[0]
            bias = np.zeros([c_out], np.float32) if bias is None else bias.astype(np.float32)
            base = info.inner_name if not found[info.inner_name] else f"{info.inner_name}_{index}"
            codes = pack_trits(trits)
            new_inputs = [
                ins[0],
                editor.const(f"{base}/ttq_codes", codes, schema_fb.TensorType.UINT8),
                editor.const(f"{base}/ttq_pos_scales", scales[0], schema_fb.TensorType.FLOAT32),
                editor.const(f"{base}/ttq_neg_scales", scales[1], schema_fb.TensorType.FLOAT32),
                editor.const(f"{base}/ttq_bias", bias.reshape(-1), schema_fb.TensorType.FLOAT32),
            ]
            ttq_type = _BUILTIN_TO_TTQ[op_type]
            op.opcodeIndex = editor.custom_opcode(ttq_type)
            op.inputs = np.asarray(new_inputs, np.int32)
            op.builtinOptionsType = schema_fb.BuiltinOptions.NONE
            op.builtinOptions = None
            op.builtinOptions2Type = 0
            op.builtinOptions2 = None
            op.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options)), np.uint8)
            op.customOptionsFormat = schema_fb.CustomOptionsFormat.FLEXBUFFERS
            found[info.inner_name].append(index)
            replaced.append((info, op, ttq_type, trits.shape))
            break
    failures = []
    for info, trits in layers:
        if found[info.inner_name]:
            continue
        reason = reasons.get(info.inner_name)
        if reason is None:
            want = _KIND_TO_BUILTIN[info.kind]
            if info.inner_name in candidates:
                reason = (
                    f"the {want} op(s) {candidates[info.inner_name]} with weights of shape "
                    f"{list(trits.shape)} do not hold this layer's codes as {{+s, 0, -s}} per "
                    "output channel (the TFLite converter fused something into the weights "
                    "that is not a per-output-channel factor)"
                )
            else:
                reason = (
                    f"no {want} op with weight rows {list(trits.shape)} [C_out, K] in the "
                    "converted graph (the TFLite converter rewrote or fused the layer)"
                )
        failures.append(FloatLayer(info.inner_name, reason))
    _fuse_dilated_convs(model)
    _remove_unused(model)
    result = flatbuffer_utils.convert_object_to_bytearray(model)
    sizes = {s.index: s for s in op_byte_sizes(result)}
    index_of = {id(op): i for i, op in enumerate(sg.operators)}
    packed_layers = []
    for info, op, ttq, shape in replaced:
        idx = index_of[id(op)]
        packed_layers.append(
            PackedLayer(info.inner_name, idx, ttq, shape[0], shape[1], sizes[idx].const_bytes)
        )
    reference.ternary_ops(result)  # the file must pass its own reader's checks
    return bytes(result), packed_layers, failures


def _fuse_dilated_convs(model):
    """SPACE_TO_BATCH_ND -> TTQ_CONV_2D -> BATCH_TO_SPACE_ND becomes one dilated TTQ_CONV_2D.

    The TFLite converter lowers some dilated convolutions to that pattern (a VALID, stride-1
    convolution on the space-to-batch phases). It equals a convolution with dilation = block
    shape, padding top/left = the space-to-batch paddings and the cropped output size; the op
    is fused when that is exactly TensorFlow's SAME or VALID padding, else left as it is.
    """
    sg = model.subgraphs[0]
    ops = list(sg.operators or [])
    producer = {}
    uses = {}
    for op in ops:
        for t in _tflite.ints(op.outputs):
            producer[t] = op
        for t in _tflite.ints(op.inputs):
            uses[t] = uses.get(t, 0) + 1
    for t in _tflite.ints(sg.outputs):
        uses[t] = uses.get(t, 0) + 1
    consumer = {}
    for op in ops:
        for t in _tflite.ints(op.inputs):
            consumer[t] = op
    drop = set()

    def const(t):
        return _tflite.tensor_array(model, sg.tensors[t]) if t >= 0 else None

    for op in ops:
        if _tflite.op_name(model, op) != reference.TTQ_CONV_2D:
            continue
        options = reference.parse_options(op.customOptions, reference.TTQ_CONV_2D)
        if (options["stride_height"], options["stride_width"]) != (1, 1):
            continue
        if (options["dilation_height"], options["dilation_width"]) != (1, 1):
            continue
        if options["padding"] != "VALID":
            continue
        x_in, y_out = int(op.inputs[0]), int(op.outputs[0])
        s2b, b2s = producer.get(x_in), consumer.get(y_out)
        if s2b is None or b2s is None or uses.get(x_in) != 1 or uses.get(y_out) != 1:
            continue
        if _tflite.op_name(model, s2b) != "SPACE_TO_BATCH_ND":
            continue
        if _tflite.op_name(model, b2s) != "BATCH_TO_SPACE_ND" or int(b2s.inputs[0]) != y_out:
            continue
        block, pads = const(int(s2b.inputs[1])), const(int(s2b.inputs[2]))
        block2, crops = const(int(b2s.inputs[1])), const(int(b2s.inputs[2]))
        if any(a is None for a in (block, pads, block2, crops)):
            continue
        if block.shape != (2,) or list(block) != list(block2) or pads.shape != (2, 2):
            continue
        if crops.shape != (2, 2) or crops[0][0] != 0 or crops[1][0] != 0:
            continue
        x_shape = _tflite.ints(sg.tensors[int(s2b.inputs[0])].shapeSignature) or _tflite.ints(
            sg.tensors[int(s2b.inputs[0])].shape
        )
        if len(x_shape) != 4 or min(x_shape[1:3]) < 1:
            continue
        if not all(int(b) >= 1 for b in block):
            continue
        for padding in ("SAME", "VALID"):
            candidate = dict(
                options,
                padding=padding,
                dilation_height=int(block[0]),
                dilation_width=int(block[1]),
            )
            if _axes_agree(x_shape, candidate, pads, crops, block):
                break
        else:
            continue
        options = candidate
        op.inputs = np.asarray([int(s2b.inputs[0])] + _tflite.ints(op.inputs)[1:], np.int32)
        op.outputs = np.asarray(_tflite.ints(b2s.outputs), np.int32)
        op.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options)), np.uint8)
        drop.update((id(s2b), id(b2s)))
    if drop:
        sg.operators = [op for op in ops if id(op) not in drop]


def _axes_agree(x_shape, options, pads, crops, block):
    """True when the fused op with `options` reproduces the pattern on both spatial axes."""
    for axis, key in ((0, "height"), (1, "width")):
        size = x_shape[1 + axis]
        k, d = options[f"kernel_{key}"], int(block[axis])
        out = size + int(pads[axis][0]) + int(pads[axis][1]) - (k - 1) * d - int(crops[axis][1])
        if reference.conv_output_size(size, k, 1, d, options["padding"]) != (
            out,
            int(pads[axis][0]),
        ):
            return False
    return True


def _remove_unused(model):
    """Drops tensors, buffers and operator codes nothing refers to; renumbers references."""
    used_buffers = {0}
    used_codes = set()
    for s, sg in enumerate(model.subgraphs):
        used = set(_tflite.ints(sg.inputs)) | set(_tflite.ints(sg.outputs))
        for op in sg.operators or []:
            used_codes.add(int(op.opcodeIndex))
            for field in (op.inputs, op.outputs, op.intermediates):
                used.update(i for i in _tflite.ints(field) if i >= 0)
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == s:
                used.update(
                    int(t.tensorIndex) for t in list(sig.inputs or []) + list(sig.outputs or [])
                )
        order = sorted(used)
        remap = {old: new for new, old in enumerate(order)}

        def _re(v):
            if v is None:
                return None
            return np.asarray([remap[i] if i >= 0 else -1 for i in _tflite.ints(v)], np.int32)

        sg.tensors = [sg.tensors[i] for i in order]
        sg.inputs = _re(sg.inputs)
        sg.outputs = _re(sg.outputs)
        for op in sg.operators or []:
            op.inputs = _re(op.inputs)
            op.outputs = _re(op.outputs)
            if op.intermediates is not None:
                op.intermediates = _re(op.intermediates)
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == s:
                for t in list(sig.inputs or []) + list(sig.outputs or []):
                    t.tensorIndex = remap[int(t.tensorIndex)]
        used_buffers.update(int(t.buffer) for t in sg.tensors)
    for md in model.metadata or []:
        used_buffers.add(int(md.buffer))
    used_buffers.update(_tflite.ints(model.metadataBuffer))
    order = sorted(used_buffers)
    bremap = {old: new for new, old in enumerate(order)}
    model.buffers = [model.buffers[i] for i in order]
    for sg in model.subgraphs:
        for t in sg.tensors:
            t.buffer = bremap[int(t.buffer)]
    for md in model.metadata or []:
        md.buffer = bremap[int(md.buffer)]
    if model.metadataBuffer is not None:
        model.metadataBuffer = np.asarray(
            [bremap[i] for i in _tflite.ints(model.metadataBuffer)], np.int32
        )
    order = sorted(used_codes)
    cremap = {old: new for new, old in enumerate(order)}
    model.operatorCodes = [model.operatorCodes[i] for i in order]
    for sg in model.subgraphs:
        for op in sg.operators or []:
            op.opcodeIndex = cremap[int(op.opcodeIndex)]


def _random_feed(model_bytes, seed=0):
    model = _tflite.load_model(model_bytes)
    sg = model.subgraphs[0]
    rng = np.random.default_rng(seed)
    feed = []
    for i in _tflite.ints(sg.inputs):
        t = sg.tensors[i]
        shape = [max(int(d), 1) for d in _tflite.ints(t.shape)]
        dtype = _tflite.tensor_dtype(t)
        if np.issubdtype(dtype, np.floating):
            feed.append(rng.standard_normal(shape).astype(dtype))
        else:
            feed.append(np.zeros(shape, dtype))
    return feed


def _verify(float_bytes, packed_bytes):
    """Reference run of both files on one random input; raises if they disagree."""
    feed = _random_feed(float_bytes)
    try:
        want = reference.run(float_bytes, feed)
    except (NotImplementedError, ValueError) as e:
        _log.info("convert: reference check skipped: %s", e)
        return None
    got = reference.run(packed_bytes, feed)
    for a, b in zip(want, got):
        scale = max(float(np.max(np.abs(a))) if a.size else 0.0, 1e-6)
        err = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
        if err > 1e-4 * scale:
            raise RuntimeError(
                f"internal error: the packed file differs from the float file by {err:g} "
                f"(output scale {scale:g}); please report this model"
            )
    return True


# ----------------------------------------------------------------------------------------------
# Command line


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m ttq_keras.convert",
        description="Convert a model saved after ttq_keras.quantize_model to .tflite.",
    )
    parser.add_argument("model", help="saved quantized model (.keras, .h5 or SavedModel dir)")
    parser.add_argument("output", help="output .tflite path")
    parser.add_argument(
        "--portable", action="store_true", help="builtin ops only (no TTQ custom ops)"
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="with --portable: int8 weights (TFLite dynamic-range quantization)",
    )
    parser.add_argument(
        "--allow-float-fallback",
        action="store_true",
        help="keep ternary layers that cannot be packed as float ops (warns)",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the reference check")
    args = parser.parse_args(argv)
    if args.int8 and not args.portable:
        parser.error("--int8 needs --portable")
    try:
        data, report = convert(
            args.model,
            packed=not args.portable,
            weights="int8" if args.int8 else "float",
            allow_float_fallback=args.allow_float_fallback,
            verify=not args.no_verify,
            return_report=True,
        )
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    directory = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, delete=False) as f:
        f.write(data)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(f.name, 0o666 & ~umask)
    os.replace(f.name, args.output)
    print(report)
    print(f"wrote {args.output} ({len(data):,} bytes)")
    return 0
