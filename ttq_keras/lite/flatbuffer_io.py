"""Reading and writing .tflite flatbuffers with TF's own tools (`flatbuffer_utils`).

The parsing is `tensorflow.lite.tools.flatbuffer_utils.read_model_from_bytearray` (the
generated schema objects, plus the buffers stored past 2 GB); this module adds what a reader
of untrusted files needs on top: a check of the file identifier, errors that say the file is
truncated or corrupted instead of a `struct.error`, and a check that every index in the graph
is in range. Shared by the rewrite, the NumPy interpreter and the size report.
"""

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema_fb
from tensorflow.lite.tools import flatbuffer_utils

__all__ = [
    "FILE_IDENTIFIER",
    "load_model",
    "write_model",
    "ints",
    "op_name",
    "type_name",
    "tensor_name",
    "tensor_dtype",
    "tensor_array",
]

FILE_IDENTIFIER = b"TFL3"
_TENSOR_DTYPES = {
    schema_fb.TensorType.FLOAT32: np.dtype(np.float32),
    schema_fb.TensorType.FLOAT16: np.dtype(np.float16),
    schema_fb.TensorType.FLOAT64: np.dtype(np.float64),
    schema_fb.TensorType.INT32: np.dtype(np.int32),
    schema_fb.TensorType.UINT8: np.dtype(np.uint8),
    schema_fb.TensorType.INT64: np.dtype(np.int64),
    schema_fb.TensorType.BOOL: np.dtype(np.bool_),
    schema_fb.TensorType.INT16: np.dtype(np.int16),
    schema_fb.TensorType.INT8: np.dtype(np.int8),
    schema_fb.TensorType.UINT32: np.dtype(np.uint32),
}


def load_model(model, what="model"):
    """Parses TFLite flatbuffer bytes into a `schema_py_generated.ModelT`.

    Accepts bytes/bytearray/memoryview, a path to a .tflite file, or a ModelT (returned as is).

    Raises:
      ValueError: if the bytes are not a complete, consistent TFLite flatbuffer (truncated,
        wrong file identifier, indices out of range).
    """
    if isinstance(model, schema_fb.ModelT):
        return model
    if isinstance(model, str):
        with open(model, "rb") as f:
            model = f.read()
    if not isinstance(model, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what}: expected TFLite flatbuffer bytes. Received: {type(model)}")
    data = bytearray(model)
    if len(data) < 8:
        raise ValueError(f"{what}: {len(data)} bytes is too short to be a TFLite flatbuffer")
    if bytes(data[4:8]) != FILE_IDENTIFIER:
        raise ValueError(
            f"{what}: not a TFLite flatbuffer: file identifier is {bytes(data[4:8])!r}, "
            f"expected {FILE_IDENTIFIER!r}"
        )
    try:
        _check_external_buffers(data, what)
        obj = flatbuffer_utils.read_model_from_bytearray(data)
    except ValueError as e:
        if str(e).startswith(what):
            raise
        raise _corrupted(what, data, e) from None
    except Exception as e:  # flatbuffers raises struct.error / IndexError ...
        raise _corrupted(what, data, e) from None
    _check_consistent(obj, what)
    _check_custom_codes_terminated(schema_fb.Model.GetRootAsModel(data, 0), data, what)
    return obj


def _corrupted(what, data, error):
    return ValueError(
        f"{what}: cannot parse the TFLite flatbuffer ({len(data)} bytes); it is truncated "
        f"or corrupted: {type(error).__name__}: {error}"
    )


def _check_external_buffers(data, what):
    """Buffers stored after the flatbuffer (files > 2 GB) must lie inside the file."""
    root = schema_fb.Model.GetRootAsModel(data, 0)
    for i in range(root.BuffersLength()):
        b = root.Buffers(i)
        if b.Offset() and b.Offset() + b.Size() > len(data):
            raise ValueError(f"{what}: buffer {i} points past the end of the file (truncated)")


def _check_custom_codes_terminated(root, data, what):
    """Every operator code's custom_code string ends with its NUL inside the file.

    The Python flatbuffers reader slices strings without checking it; TFLite's verifier does,
    so without this a file cut just before that NUL would be read here and rejected there.
    """
    for i in range(root.OperatorCodesLength()):
        tab = root.OperatorCodes(i)._tab  # noqa: SLF001
        o = tab.Offset(6)  # vtable slot of OperatorCode.custom_code
        if not o:
            continue
        pos = tab.Indirect(o + tab.Pos)
        length = int.from_bytes(bytes(data[pos : pos + 4]), "little")
        end = pos + 4 + length
        if end >= len(data) or data[end] != 0:
            raise ValueError(
                f"{what}: operator code {i}'s custom_code runs past the end of the file "
                "(truncated or corrupted)"
            )


def write_model(model):
    """The flatbuffer bytes of a ModelT."""
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _check_consistent(model, what):
    if not model.subgraphs:
        raise ValueError(f"{what}: the model has no subgraph")
    buffers = model.buffers or []
    n_codes = len(model.operatorCodes or [])
    for s, sg in enumerate(model.subgraphs):
        tensors = sg.tensors or []
        for t in tensors:
            if not 0 <= t.buffer < max(len(buffers), 1):
                raise ValueError(
                    f"{what}: tensor {tensor_name(t)!r} refers to buffer {t.buffer}, "
                    f"but the model has {len(buffers)} buffers"
                )
        for o, op in enumerate(sg.operators or []):
            if not 0 <= op.opcodeIndex < n_codes:
                raise ValueError(
                    f"{what}: operator {o} of subgraph {s} has opcode index {op.opcodeIndex}, "
                    f"but the model has {n_codes} operator codes"
                )
            for idx in ints(op.inputs) + ints(op.outputs):
                if idx != -1 and not 0 <= idx < len(tensors):
                    raise ValueError(
                        f"{what}: operator {o} ({op_name(model, op)}) of subgraph {s} refers to "
                        f"tensor {idx}, but the subgraph has {len(tensors)} tensors"
                    )
        for idx in ints(sg.inputs) + ints(sg.outputs):
            if not 0 <= idx < len(tensors):
                raise ValueError(f"{what}: subgraph {s} input/output tensor {idx} is out of range")


def ints(v):
    """A flatbuffer int vector (NumPy array, list or None) as a list of Python ints."""
    return [] if v is None else [int(i) for i in v]


def _text(v):
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v)


def tensor_name(tensor):
    return _text(tensor.name)


def op_name(model, op):
    """The builtin operator name ('CONV_2D') or the custom code ('TTQ_CONV_2D') of `op`."""
    name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
    if name == "CUSTOM":
        return _text(model.operatorCodes[op.opcodeIndex].customCode)
    if name is None:
        oc = model.operatorCodes[op.opcodeIndex]
        return f"BUILTIN_{max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))}"
    return name


def type_name(tensor_type):
    """'FLOAT32' for schema TensorType.FLOAT32; the number itself if it is unknown."""
    return flatbuffer_utils.type_to_name(tensor_type) or tensor_type


def tensor_dtype(tensor):
    try:
        return _TENSOR_DTYPES[tensor.type]
    except KeyError:
        raise ValueError(
            f"tensor {tensor_name(tensor)!r}: unsupported dtype {type_name(tensor.type)}"
        ) from None


def tensor_array(model, tensor, what=None, trailing_bytes_ok=False):
    """The constant data of `tensor` as a NumPy array of its shape, or None if it has no data.

    Args:
      trailing_bytes_ok: accept a buffer longer than the shape needs (the packed format only
        requires enough bytes, section 5); by default the sizes must be equal.

    Raises:
      ValueError: if the buffer is shorter (or, by default, longer) than the shape needs.
    """
    buf = model.buffers[tensor.buffer] if model.buffers else None
    if buf is None or buf.data is None or len(buf.data) == 0:
        return None
    dtype = tensor_dtype(tensor)
    shape = ints(tensor.shape)
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.asarray(buf.data, dtype=np.uint8)
    if raw.size < need or (raw.size > need and not trailing_bytes_ok):
        raise ValueError(
            f"{what or 'tensor'} {tensor_name(tensor)!r}: buffer has {raw.size} bytes, shape "
            f"{shape} of {dtype} needs {need}"
        )
    return raw[:need].view(dtype).reshape(shape)
