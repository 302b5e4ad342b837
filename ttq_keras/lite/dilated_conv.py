"""Fusion of the dilated convolutions that the TFLite converter splits into three ops.

The converter lowers some dilated convolutions to SPACE_TO_BATCH_ND -> CONV_2D ->
BATCH_TO_SPACE_ND (a VALID, stride-1 convolution on the space-to-batch phases). After the
packed rewrite that middle op is a TTQ_CONV_2D; this pass makes the three one dilated
TTQ_CONV_2D, which the format supports directly.
"""

import numpy as np

from ttq_keras.lite import flatbuffer_io as fbio
from ttq_keras.lite import format as fmt

__all__ = ["fuse_dilated_convs"]


def fuse_dilated_convs(model):
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
        for t in fbio.ints(op.outputs):
            producer[t] = op
        for t in fbio.ints(op.inputs):
            uses[t] = uses.get(t, 0) + 1
    for t in fbio.ints(sg.outputs):
        uses[t] = uses.get(t, 0) + 1
    consumer = {}
    for op in ops:
        for t in fbio.ints(op.inputs):
            consumer[t] = op
    drop = set()

    def const(t):
        return fbio.tensor_array(model, sg.tensors[t]) if t >= 0 else None

    for op in ops:
        if fbio.op_name(model, op) != fmt.TTQ_CONV_2D:
            continue
        options = fmt.parse_options(op.customOptions, fmt.TTQ_CONV_2D)
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
        if fbio.op_name(model, s2b) != "SPACE_TO_BATCH_ND":
            continue
        if fbio.op_name(model, b2s) != "BATCH_TO_SPACE_ND" or int(b2s.inputs[0]) != y_out:
            continue
        block, pads = const(int(s2b.inputs[1])), const(int(s2b.inputs[2]))
        block2, crops = const(int(b2s.inputs[1])), const(int(b2s.inputs[2]))
        if any(a is None for a in (block, pads, block2, crops)):
            continue
        if block.shape != (2,) or list(block) != list(block2) or pads.shape != (2, 2):
            continue
        if crops.shape != (2, 2) or crops[0][0] != 0 or crops[1][0] != 0:
            continue
        x_shape = fbio.ints(sg.tensors[int(s2b.inputs[0])].shapeSignature) or fbio.ints(
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
        op.inputs = np.asarray([int(s2b.inputs[0])] + fbio.ints(op.inputs)[1:], np.int32)
        op.outputs = np.asarray(fbio.ints(b2s.outputs), np.int32)
        op.customOptions = np.frombuffer(fmt.encode_options(options), np.uint8)
        drop.update((id(s2b), id(b2s)))
    if drop:
        sg.operators = [op for op in ops if id(op) not in drop]


def _axes_agree(x_shape, options, pads, crops, block):
    """True when the fused op with `options` reproduces the pattern on both spatial axes."""
    for axis, key in ((0, "height"), (1, "width")):
        size = x_shape[1 + axis]
        k, d = options[f"kernel_{key}"], int(block[axis])
        out = size + int(pads[axis][0]) + int(pads[axis][1]) - (k - 1) * d - int(crops[axis][1])
        if fmt.conv_output_size(size, k, 1, d, options["padding"]) != (
            out,
            int(pads[axis][0]),
        ):
            return False
    return True
