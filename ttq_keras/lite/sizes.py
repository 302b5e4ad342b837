"""Byte accounting of packed ternary files: the formula the summary uses, and the real sizes.

`packed_layer_bytes` is what one packed op's constants take (docs/format.md section 2):
codes `C_out * ceil(K/5)` bytes plus pos_scales, neg_scales and bias, 4 bytes per channel each.
`op_byte_sizes` reads a real .tflite and reports the constant bytes of every operator, so a test
can check the formula (and `ttq_keras.summary`) against the file.
"""

import dataclasses
from typing import List

import numpy as np

from ttq_keras.lite import flatbuffer_io as fbio
from ttq_keras.lite.format import packed_row_bytes

__all__ = ["packed_layer_bytes", "OpBytes", "op_byte_sizes", "format_op_byte_sizes"]

FLOAT_BYTES = 4


def packed_layer_bytes(c_out, k):
    """Constant bytes of one packed op: `c_out * ceil(k / 5) + 3 * 4 * c_out`."""
    c_out = int(c_out)
    if c_out < 1:
        raise ValueError(f"c_out must be >= 1. Received: c_out={c_out}")
    return c_out * packed_row_bytes(k) + 3 * FLOAT_BYTES * c_out


@dataclasses.dataclass
class OpBytes:
    """Constant bytes of one operator of a .tflite file."""

    index: int
    op: str  # builtin name or custom code
    output: str  # name of the first output tensor
    const_bytes: int  # bytes of the buffers of its constant inputs (shared buffers counted here)
    weight_shape: List[int]  # shape of input 1 when constant (weights or codes), else []


def op_byte_sizes(model) -> List[OpBytes]:
    """Per-operator constant bytes of subgraph 0 of a .tflite (bytes, path or ModelT).

    A buffer shared by several operators (constant deduplication) is counted for the first one
    only, so the sum over operators is the model's constant data.
    """
    model = fbio.load_model(model)
    sg = model.subgraphs[0]
    seen = set()
    out = []
    for i, op in enumerate(sg.operators or []):
        total = 0
        wshape = []
        ins = fbio.ints(op.inputs)
        for j, t_idx in enumerate(ins):
            if t_idx < 0:
                continue
            t = sg.tensors[t_idx]
            buf = model.buffers[t.buffer]
            n = 0 if buf.data is None else int(np.asarray(buf.data).size)
            if n and j == 1:
                wshape = fbio.ints(t.shape)
            if n and t.buffer not in seen:
                seen.add(t.buffer)
                total += n
        outs = fbio.ints(op.outputs)
        name = fbio.tensor_name(sg.tensors[outs[0]]) if outs else ""
        out.append(OpBytes(i, fbio.op_name(model, op), name, total, wshape))
    return out


def format_op_byte_sizes(sizes, file_bytes=None):
    """A printable table of `op_byte_sizes` output."""
    lines = [f"{'#':>4}  {'op':<24} {'const bytes':>12}  {'weights':<18} output"]
    for s in sizes:
        lines.append(
            f"{s.index:>4}  {s.op:<24} {s.const_bytes:>12,}  {str(s.weight_shape):<18} {s.output}"
        )
    total = sum(s.const_bytes for s in sizes)
    lines.append(f"      {'constants':<24} {total:>12,}")
    if file_bytes is not None:
        lines.append(f"      {'file':<24} {file_bytes:>12,}")
    return "\n".join(lines)
