"""Reading TFLite flatbuffers through TF's generated schema objects (no byte surgery).

Shared by the converter, the reference interpreter and the size report.
"""

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema_fb

__all__ = [
    "BUILTIN_NAMES",
    "CUSTOM",
    "TENSOR_DTYPES",
    "load_model",
    "op_name",
    "tensor_array",
    "tensor_dtype",
]

CUSTOM = schema_fb.BuiltinOperator.CUSTOM
BUILTIN_NAMES = {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if not k.startswith("_")}
TENSOR_DTYPES = {
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
TENSOR_TYPE_NAMES = {v: k for k, v in vars(schema_fb.TensorType).items() if not k.startswith("_")}
_IDENTIFIER = b"TFL3"


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
    if bytes(data[4:8]) != _IDENTIFIER:
        raise ValueError(
            f"{what}: not a TFLite flatbuffer: file identifier is {bytes(data[4:8])!r}, "
            f"expected {_IDENTIFIER!r}"
        )
    try:
        root = schema_fb.Model.GetRootAsModel(data, 0)
        obj = schema_fb.ModelT.InitFromObj(root)
    except Exception as e:  # flatbuffers raises struct.error / IndexError / ValueError ...
        raise ValueError(
            f"{what}: cannot parse the TFLite flatbuffer ({len(data)} bytes); it is truncated "
            f"or corrupted: {type(e).__name__}: {e}"
        ) from None
    _check_consistent(obj, data, what)
    _check_custom_codes_terminated(root, data, what)
    return obj


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


def _check_consistent(model, data, what):
    if not model.subgraphs:
        raise ValueError(f"{what}: the model has no subgraph")
    buffers = model.buffers or []
    for i, b in enumerate(buffers):
        if b.offset:  # large-model layout: data after the flatbuffer
            if b.offset + b.size > len(data):
                raise ValueError(f"{what}: buffer {i} points past the end of the file (truncated)")
            b.data = np.frombuffer(bytes(data[b.offset : b.offset + b.size]), np.uint8)
            b.offset = 0
            b.size = 0
    n_codes = len(model.operatorCodes or [])
    for s, sg in enumerate(model.subgraphs):
        tensors = sg.tensors or []
        for t in tensors:
            if not 0 <= t.buffer < max(len(buffers), 1):
                raise ValueError(
                    f"{what}: tensor {_name(t)!r} refers to buffer {t.buffer}, "
                    f"but the model has {len(buffers)} buffers"
                )
        for o, op in enumerate(sg.operators or []):
            if not 0 <= op.opcodeIndex < n_codes:
                raise ValueError(
                    f"{what}: operator {o} of subgraph {s} has opcode index {op.opcodeIndex}, "
                    f"but the model has {n_codes} operator codes"
                )
            for idx in list(_ints(op.inputs)) + list(_ints(op.outputs)):
                if idx != -1 and not 0 <= idx < len(tensors):
                    raise ValueError(
                        f"{what}: operator {o} ({op_name(model, op)}) of subgraph {s} refers to "
                        f"tensor {idx}, but the subgraph has {len(tensors)} tensors"
                    )
        for idx in list(_ints(sg.inputs)) + list(_ints(sg.outputs)):
            if not 0 <= idx < len(tensors):
                raise ValueError(f"{what}: subgraph {s} input/output tensor {idx} is out of range")


def _ints(v):
    return [] if v is None else [int(i) for i in v]


def _name(tensor):
    n = tensor.name
    return n.decode("utf-8", "replace") if isinstance(n, (bytes, bytearray)) else str(n)


tensor_name = _name
ints = _ints


def op_name(model, op):
    """The builtin operator name ('CONV_2D') or the custom code ('TTQ_CONV_2D') of `op`."""
    oc = model.operatorCodes[op.opcodeIndex]
    code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
    if code == CUSTOM:
        cc = oc.customCode
        return cc.decode("utf-8", "replace") if isinstance(cc, (bytes, bytearray)) else str(cc)
    return BUILTIN_NAMES.get(code, f"BUILTIN_{code}")


def tensor_dtype(tensor):
    try:
        return TENSOR_DTYPES[tensor.type]
    except KeyError:
        raise ValueError(
            f"tensor {_name(tensor)!r}: unsupported dtype "
            f"{TENSOR_TYPE_NAMES.get(tensor.type, tensor.type)}"
        ) from None


def tensor_array(model, tensor, what=None):
    """The constant data of `tensor` as a NumPy array of its shape, or None if it has no data.

    Raises:
      ValueError: if the buffer is shorter (or longer) than the shape needs.
    """
    buf = model.buffers[tensor.buffer] if model.buffers else None
    if buf is None or buf.data is None or len(buf.data) == 0:
        return None
    dtype = tensor_dtype(tensor)
    shape = [int(d) for d in _ints(tensor.shape)]
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.asarray(buf.data, dtype=np.uint8)
    if raw.size != need:
        raise ValueError(
            f"{what or 'tensor'} {_name(tensor)!r}: buffer has {raw.size} bytes, shape {shape} "
            f"of {dtype} needs {need}"
        )
    return raw.view(dtype).reshape(shape)
