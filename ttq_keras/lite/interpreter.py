"""The NumPy interpreter of packed ternary .tflite files (docs/format.md): the test oracle.

    from ttq_keras.lite import interpreter
    interpreter.validate(model_bytes)                # raises ValueError on a bad TTQ op
    (y,) = interpreter.run(model_bytes, x)           # whole model, builtin ops included

`validate` checks every TTQ op of the file statically (format.md section 5). `run` walks
subgraph 0 in order: the TTQ ops through `ttq_keras.lite.reference_kernels`, the builtin ops
listed in `SUPPORTED_BUILTINS` through `ttq_keras.lite.builtin_kernels`; any other op raises
`NotImplementedError` naming it.

Command line: `python -m ttq_keras.lite.interpreter MODEL.tflite [--input X.npy --output Y.npy]`.
"""

import argparse

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema_fb

from ttq_keras.lite import flatbuffer_io as fbio
from ttq_keras.lite import format as fmt
from ttq_keras.lite.builtin_kernels import BUILTIN_KERNELS, SUPPORTED_BUILTINS, dequantize
from ttq_keras.lite.reference_kernels import TTQ_KERNELS, check_weights
from ttq_keras.lite.sizes import format_op_byte_sizes, op_byte_sizes

__all__ = ["SUPPORTED_BUILTINS", "TernaryOp", "ternary_ops", "validate", "run", "main"]


class TernaryOp:
    """One validated TTQ op: options, codes, trits `[C_out, K]` (int8 in {-1,0,1}), scales."""

    def __init__(self, index, op_type, options, codes, trits, pos, neg, bias, tensor_names):
        self.index = index
        self.op_type = op_type
        self.options = options
        self.codes = codes
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


def ternary_ops(model):
    """Validates every TTQ op of `model` (bytes or ModelT) statically; returns `TernaryOp`s.

    Raises:
      ValueError: naming the op and the tensor, for every rule of format.md section 5 that can
        be checked without running the model.
    """
    model = fbio.load_model(model)
    out = []
    for sg in model.subgraphs:
        for i, op in enumerate(sg.operators or []):
            name = fbio.op_name(model, op)
            if name.startswith(fmt.TTQ_PREFIX):
                out.append(_parse_ttq_op(model, sg, i, op, name))
    return out


def _parse_ttq_op(model, sg, index, op, op_type):
    where = f"operator {index} ({op_type})"
    if op_type not in fmt.TTQ_OPS:
        raise ValueError(f"{where}: unknown ternary op; this reader implements {fmt.TTQ_OPS}")
    # The operator code's version and custom_options_format are not checked: a TFLite delegate
    # is never shown them, so both readers go by the options' own `version` (format.md 1 and 4).
    options = fmt.parse_options(op.customOptions, op_type, where)
    inputs = fbio.ints(op.inputs)
    outputs = fbio.ints(op.outputs)
    if len(inputs) != 5 or len(outputs) != 1 or -1 in inputs:
        raise ValueError(
            f"{where}: expected 5 inputs (input, codes, pos_scales, neg_scales, bias) and 1 "
            f"output. Received: {len(inputs)} inputs {inputs}, {len(outputs)} outputs"
        )
    if outputs[0] in inputs:
        raise ValueError(
            f"{where}: the output tensor {outputs[0]} is also an input. Received inputs {inputs}"
        )
    if any(i < 0 or i >= len(sg.tensors or []) for i in inputs + outputs):
        raise ValueError(
            f"{where}: a tensor index is out of range: inputs {inputs}, outputs {outputs}"
        )
    tensors = [sg.tensors[i] for i in inputs]
    names = [fbio.tensor_name(t) for t in tensors]
    for t, label in ((tensors[0], "input"), (sg.tensors[outputs[0]], "output")):
        fmt.check_activation_size(where, label, fbio.ints(t.shape))
    for t, label in ((tensors[0], "input"), (sg.tensors[outputs[0]], "output")):
        if t.type != schema_fb.TensorType.FLOAT32:
            raise ValueError(
                f"{where}: {label} tensor {fbio.tensor_name(t)!r} must be float32. "
                f"Received: {fbio.type_name(t.type)}"
            )
    arrays = []
    for t, label in zip(tensors[1:], ("codes", "pos_scales", "neg_scales", "bias")):
        want = schema_fb.TensorType.UINT8 if label == "codes" else schema_fb.TensorType.FLOAT32
        if t.type != want:
            raise ValueError(
                f"{where}: {label} tensor {fbio.tensor_name(t)!r} must be "
                f"{fbio.type_name(want)}. Received: {fbio.type_name(t.type)}"
            )
        what = f"{where}: {label} tensor"
        arrays.append(fbio.tensor_array(model, t, what, trailing_bytes_ok=True))
    trits = check_weights(where, op_type, options, *arrays)
    # Static check of the input shape where the file knows it: dims that are -1 in the
    # shape_signature are dynamic (the converter writes 1 in `shape` for them).
    in_shape = fbio.ints(tensors[0].shape)
    signature = fbio.ints(tensors[0].shapeSignature) or in_shape
    if in_shape and len(signature) == len(in_shape):
        fmt.check_input_shape(where, op_type, options, signature, names[0])
    return TernaryOp(index, op_type, options, arrays[0], trits, *arrays[1:], names)


def validate(model):
    """Checks that `model` is a well-formed packed file; returns the list of `TernaryOp`s."""
    return ternary_ops(model)


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
      NotImplementedError: an operator this interpreter does not implement (named).
    """
    model = fbio.load_model(model)
    sg = model.subgraphs[0]
    in_idx = fbio.ints(sg.inputs)
    if isinstance(inputs, dict):
        by_name = _signature_inputs(model)
        for i in in_idx:
            by_name.setdefault(fbio.tensor_name(sg.tensors[i]), i)
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
            raise ValueError(f"input {fbio.tensor_name(sg.tensors[i])!r} is not given")
        t = sg.tensors[i]
        want = fbio.tensor_dtype(t)
        x = np.asarray(feed[i])
        if x.dtype != want:
            x = x.astype(want)
        # -1 in the shape signature is a dynamic dimension; the batch is always free here.
        shape = fbio.ints(t.shapeSignature) or fbio.ints(t.shape)
        if shape:
            shape[0] = -1
        if len(shape) != x.ndim or any(s not in (-1, d) for s, d in zip(shape, x.shape)):
            raise ValueError(
                f"input {fbio.tensor_name(t)!r}: expected shape {shape} (-1: any). "
                f"Received {list(x.shape)}"
            )
        values[i] = x

    def get(idx):
        if idx in values:
            return values[idx]
        t = sg.tensors[idx]
        arr = fbio.tensor_array(model, t)
        if arr is None:
            raise ValueError(f"tensor {fbio.tensor_name(t)!r} is read before it is computed")
        values[idx] = arr
        return arr

    for index, op in enumerate(sg.operators or []):
        name = fbio.op_name(model, op)
        ins = fbio.ints(op.inputs)
        outs = fbio.ints(op.outputs)
        if name.startswith(fmt.TTQ_PREFIX):
            t = _parse_ttq_op(model, sg, index, op, name)
            x = get(ins[0])
            where = f"operator {index} ({name})"
            fmt.check_activation_size(where, "input", x.shape)
            fmt.check_input_shape(where, name, t.options, x.shape)
            fmt.check_output_size(where, name, t.options, x.shape)
            kernel = TTQ_KERNELS[name]
            y = kernel(x, t.codes, t.pos_scales, t.neg_scales, t.bias, t.options)
            values[outs[0]] = y
            continue
        if name == "DEQUANTIZE":
            values[outs[0]] = dequantize(get(ins[0]), sg.tensors[ins[0]])
            continue
        if name == "QUANTIZE" and sg.tensors[outs[0]].type == schema_fb.TensorType.FLOAT16:
            values[outs[0]] = get(ins[0]).astype(np.float16)
            continue
        fn = BUILTIN_KERNELS.get(name)
        if fn is None:
            raise NotImplementedError(
                f"operator {index} ({name}) is not implemented by the NumPy interpreter; "
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
        want = fbio.tensor_dtype(out_t)
        values[outs[0]] = np.asarray(y).astype(want)
    return [values[i] for i in fbio.ints(sg.outputs)]


def main(argv=None):
    """`python -m ttq_keras.lite.interpreter MODEL.tflite [--input X.npy --output Y.npy]`"""
    parser = argparse.ArgumentParser(
        prog="python -m ttq_keras.lite.interpreter",
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
