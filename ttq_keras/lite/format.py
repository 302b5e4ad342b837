"""The packed ternary format, version 1, in Python: the mirror of docs/format.md.

Every name and rule of the format that Python code needs is defined here once: the custom op
names, the format version, the FlexBuffer option keys and their types, the checks on them
(section 4), the output-size rules of the convolutions and the bytes of a packed row
(section 3). The writer (`ttq_keras.lite.rewrite`), the readers (`ttq_keras.lite.interpreter`,
`ttq_keras.runtime.delegate`) and the tests import them from here.

    options = parse_options(op.customOptions, TTQ_CONV_2D)   # dict, checked; ValueError if not
    custom_options = encode_options(options)                 # FlexBuffer map bytes
"""

import numpy as np
from flatbuffers import flexbuffers

__all__ = [
    "FORMAT_VERSION",
    "TTQ_CONV_2D",
    "TTQ_DEPTHWISE_CONV_2D",
    "TTQ_FULLY_CONNECTED",
    "TTQ_OPS",
    "TTQ_PREFIX",
    "ACTIVATIONS",
    "PADDINGS",
    "OPTION_KEYS",
    "POSITIVE_KEYS",
    "TRITS_PER_BYTE",
    "MAX_CODE_BYTE",
    "INT32_MAX",
    "MAX_ACTIVATION_ELEMENTS",
    "INPUT_NAMES",
    "check_options",
    "parse_options",
    "encode_options",
    "row_length_and_channels",
    "packed_row_bytes",
    "conv_output_size",
    "check_input_shape",
    "check_activation_size",
    "check_output_size",
]

FORMAT_VERSION = 1
# Every custom op of the format starts with it; an unknown TTQ_* op is an error, not a foreign op.
TTQ_PREFIX = "TTQ_"
TTQ_CONV_2D = "TTQ_CONV_2D"
TTQ_DEPTHWISE_CONV_2D = "TTQ_DEPTHWISE_CONV_2D"
TTQ_FULLY_CONNECTED = "TTQ_FULLY_CONNECTED"
TTQ_OPS = (TTQ_CONV_2D, TTQ_DEPTHWISE_CONV_2D, TTQ_FULLY_CONNECTED)
ACTIVATIONS = ("NONE", "RELU", "RELU6")
PADDINGS = ("SAME", "VALID")
# The five inputs of every TTQ op, in order (section 2).
INPUT_NAMES = ("input", "codes", "pos_scales", "neg_scales", "bias")

# Sizes are TFLite tensor dimensions: int32.
INT32_MAX = 2**31 - 1
# Largest activation tensor (input or output of a TTQ op) a reader accepts, in elements: 2^28
# (1 GiB of float32), as the delegate (section 5, "memory bounds").
MAX_ACTIVATION_ELEMENTS = 1 << 28

# Section 3: 5 trits per byte, base 3; a byte is at most 3**5 - 1.
TRITS_PER_BYTE = 5
MAX_CODE_BYTE = 242

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
POSITIVE_KEYS = (
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


def packed_row_bytes(k):
    """Bytes that one row of `k` trits takes: `ceil(k / 5)`."""
    k = int(k)
    if k < 1:
        raise ValueError(f"A row needs at least one trit. Received: k={k}")
    return -(-k // TRITS_PER_BYTE)


def check_options(options, op_type, where):
    """Checks a decoded options dict against section 4; returns it. `where` prefixes errors."""
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
    for key in POSITIVE_KEYS:
        if key in options and options[key] < 1:
            raise ValueError(f"{where}: {key} must be >= 1. Received: {options[key]}")
        if key in options and options[key] > INT32_MAX:
            raise ValueError(
                f"{where}: {key} must be in [1, {INT32_MAX}]. Received: {options[key]}"
            )
    if op_type != TTQ_FULLY_CONNECTED:
        # As the delegate: effective (dilated) kernel sizes and the row length K within int32.
        for axis in ("height", "width"):
            ek = (options[f"kernel_{axis}"] - 1) * options[f"dilation_{axis}"] + 1
            if ek > INT32_MAX:
                raise ValueError(f"{where}: the dilated kernel {axis} {ek} is larger than 2^31 - 1")
        if row_length_and_channels(options, op_type)[0] > INT32_MAX:
            raise ValueError(f"{where}: the row length K is larger than 2^31 - 1")
    if op_type == TTQ_DEPTHWISE_CONV_2D:
        if options["out_channels"] != options["in_channels"] * options["depth_multiplier"]:
            raise ValueError(
                f"{where}: out_channels ({options['out_channels']}) must equal in_channels "
                f"({options['in_channels']}) * depth_multiplier ({options['depth_multiplier']})"
            )
    return options


def parse_options(custom_options, op_type, where=None):
    """Decodes (with the `flatbuffers.flexbuffers` library) and checks the FlexBuffer map of a TTQ op.

    Returns:
      a plain dict {key: int | bool | str | ...}.

    Raises:
      ValueError: empty or undecodable bytes, a root that is not a map, or an option that
        breaks section 4 (the message starts with `where`, default the op type).
    """
    where = where or op_type
    data = bytes(np.asarray(custom_options if custom_options is not None else [], np.uint8))
    if not data:
        raise ValueError(f"{where}: custom options are missing (expected a FlexBuffer map)")
    invalid = f"{where}: custom options are not a valid FlexBuffer map"
    try:
        root = flexbuffers.GetRoot(bytearray(data))
        options = root.Value
        # Loads keeps the last of two equal keys; the delegate rejects the map, so must we.
        keys = [k.AsKey for k in root.AsMap.Keys] if isinstance(options, dict) else []
    except Exception as e:  # the decoder raises ValueError, IndexError, struct.error, ...
        detail = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
        raise ValueError(f"{invalid}: {detail}") from None
    if not isinstance(options, dict):
        raise ValueError(f"{invalid}: the root is not a map")
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"{invalid}: duplicate key {duplicates[0]!r}")
    return check_options(options, op_type, where)


def encode_options(options):
    """The FlexBuffer map bytes of an options dict (the writer's side of `parse_options`)."""
    return bytes(flexbuffers.Dumps(options))


def row_length_and_channels(options, op_type):
    """(K, C_out) of a TTQ op: the trits per codes row and the number of rows (section 2)."""
    if op_type == TTQ_FULLY_CONNECTED:
        return options["in_features"], options["out_features"]
    k = options["kernel_height"] * options["kernel_width"]
    if op_type == TTQ_CONV_2D:
        k *= options["in_channels"]
    return k, options["out_channels"]


def conv_output_size(in_size, kernel, stride, dilation, padding):
    """Output size and padding before (TensorFlow's SAME/VALID rules, format.md section 4)."""
    ek = (kernel - 1) * dilation + 1
    if padding == "VALID":
        out = (in_size - ek) // stride + 1
        return out, 0
    out = -(-in_size // stride)
    pad_total = max((out - 1) * stride + ek - in_size, 0)
    return out, pad_total // 2


def check_input_shape(where, op_type, options, shape, name="input"):
    """Section 5 rules on the activation's shape; -1 dims (dynamic) are not checked."""
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


def check_activation_size(where, label, shape):
    """A TTQ op's activation shape: no negative dim, at most MAX_ACTIVATION_ELEMENTS elements."""
    shape = [int(d) for d in shape]
    if any(d < 0 for d in shape) or int(np.prod(shape, dtype=object)) > MAX_ACTIVATION_ELEMENTS:
        raise ValueError(
            f"{where}: {label} shape {shape} has a negative dimension or more than 2^28 elements "
            "(the bound on one activation tensor, docs/format.md section 5)"
        )


def check_output_size(where, op_type, options, shape):
    """The output the op would write for input `shape` stays within MAX_ACTIVATION_ELEMENTS."""
    o = options
    shape = [int(d) for d in shape]
    if op_type == TTQ_FULLY_CONNECTED:
        out = [int(np.prod(shape, dtype=object)) // o["in_features"], o["out_features"]]
    else:
        out = [
            shape[0],
            conv_output_size(
                shape[1], o["kernel_height"], o["stride_height"], o["dilation_height"], o["padding"]
            )[0],
            conv_output_size(
                shape[2], o["kernel_width"], o["stride_width"], o["dilation_width"], o["padding"]
            )[0],
            o["out_channels"],
        ]
    check_activation_size(where, "output", [max(d, 0) for d in out])
