"""The one test-helpers module: small models, randomizers and a builder of packed .tflite files.

- Float tf_keras models covering every supported layer type (`small_cnn`, `mlp`, `resnet_like`,
  `mobilenet_block`, `mlp_3d_input`, `dilated_conv`, `alexnet_fc`); CIFAR ResNet-20 is
  `examples.common.models.resnet_cifar(20)`, the one definition of the repository.
- `randomize_scales`, `randomize_batchnorm`, `randomize_quantized`: non-trivial Wp/Wn and
  BatchNorm statistics, so that the converter's folding is really exercised.
- `build_packed_model`: small packed ternary .tflite files built op by op, independent of the
  converter, so the delegate and interpreter tests control every byte (including corrupt ones).
  Weights come from float Keras layers whose kernels hold ternary values, so the expected
  output is simply the Keras model's output.
- `packed_case(name)`: the packed models every runtime of the matrix runs (LiteRT, tflite_runtime,
  TFLite's C API on aarch64, the JVM), with their inputs and the Keras outputs.

benchmarks/ imports `randomize_batchnorm`, `randomize_quantized` and `alexnet_fc` from here
(run them from the repository root: `python -m benchmarks.<name>`).
"""

import ttq_keras  # noqa: F401  isort: skip  (sets TF_USE_LEGACY_KERAS before TF loads)

import dataclasses
import functools
from typing import List, Optional, Sequence, Tuple

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema_fb

from ttq_keras import keras
from ttq_keras.lite import flatbuffer_io as fbio
from ttq_keras.lite import format as fmt
from ttq_keras.lite.packing import pack_trits

L = keras.layers

# ----------------------------------------------------------------------------------------------
# Float models


def small_cnn(seed=0, input_shape=(10, 10, 3), classes=5):
    """Conv-BN-ReLU x2, depthwise, dense head: every supported layer type, with BN to fold."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv0")(inputs)
    x = keras.layers.BatchNormalization(name="bn0")(x)
    x = keras.layers.ReLU(name="relu0")(x)
    x = keras.layers.Conv2D(12, 3, strides=2, padding="valid", name="conv1")(x)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(16, activation="relu", name="fc0")(x)
    outputs = keras.layers.Dense(classes, name="head")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def mlp(seed=0, features=20, hidden=(32, 24), classes=4):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,), name="features")
    x = inputs
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"dense{i}")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="mlp")


def classification_data(n=256, features=20, classes=4, seed=0):
    """A linearly separable-ish problem: labels from a random linear map."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    w = rng.normal(size=(features, classes)).astype(np.float32)
    y = np.argmax(x @ w, axis=1).astype(np.int32)
    return x, y


def _conv_bn(x, filters, kernel, strides=1, padding="same", relu=True, name=None):
    x = L.Conv2D(filters, kernel, strides, padding=padding, use_bias=False, name=name)(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x) if relu else x


def _basic_block(x, filters, strides, name, projection_padding="same"):
    shortcut = x
    y = _conv_bn(x, filters, 3, strides, name=f"{name}_a")
    y = _conv_bn(y, filters, 3, 1, relu=False, name=f"{name}_b")
    if strides != 1 or x.shape[-1] != filters:
        shortcut = L.Conv2D(filters, 1, strides, padding=projection_padding, name=f"{name}_proj")(x)
    return L.ReLU(name=f"{name}_out")(L.Add(name=f"{name}_add")([y, shortcut]))


def resnet_like(input_shape=(12, 12, 3), classes=10):
    """ResNet-20-style functional model: Conv+BN+ReLU, residual adds, stride 2, 'same' and
    'valid' padding, Dense head."""
    inp = keras.Input(input_shape, name="image")
    x = _conv_bn(inp, 8, 3, name="stem")
    x = _basic_block(x, 8, 1, "block1")
    x = _basic_block(x, 12, 2, "block2", projection_padding="valid")
    x = L.Conv2D(12, 3, padding="valid", name="valid_conv")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(classes, name="logits")(x)
    return keras.Model(inp, out, name="resnet_like")


def mobilenet_block(input_shape=(10, 10, 4), classes=5):
    """MobileNet-like: depthwise conv with depth multiplier 2, BN, ReLU6, pointwise conv."""
    inp = keras.Input(input_shape, name="image")
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu6")(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", use_bias=False, name="dw")(x)
    x = L.BatchNormalization(name="dw_bn")(x)
    x = L.ReLU(6.0, name="dw_relu6")(x)
    x = L.Conv2D(12, 1, use_bias=False, name="pw")(x)
    x = L.BatchNormalization(name="pw_bn")(x)
    x = L.ReLU(6.0, name="pw_relu6")(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="valid", name="dw2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(classes, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="mobilenet_block")


def mlp_3d_input(input_shape=(4, 12), classes=6):
    """MLP: Dense on a 3-D input (keep_num_dims), Flatten, Dense+BN+ReLU, Dense head."""
    inp = keras.Input(input_shape, name="features")
    x = L.Dense(10, activation="relu", name="per_step")(inp)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(24, use_bias=False, name="hidden")(x)
    x = L.BatchNormalization(name="hidden_bn")(x)
    x = L.ReLU(name="hidden_relu")(x)
    out = L.Dense(classes, name="logits")(x)
    return keras.Model(inp, out, name="mlp_3d_input")


def dilated_conv(input_shape=(14, 14, 3)):
    """Conv2D with dilation (same and valid padding) and with use_bias=False."""
    inp = keras.Input(input_shape, name="image")
    x = L.Conv2D(6, 3, dilation_rate=2, padding="same", use_bias=False, name="dilated_same")(inp)
    x = L.ReLU(name="relu")(x)
    x = L.Conv2D(5, 3, dilation_rate=(2, 3), padding="valid", name="dilated_valid")(x)
    x = L.Conv2D(4, 3, padding="same", use_bias=False, name="plain_nobias")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    out = L.Dense(3, name="logits")(x)
    return keras.Model(inp, out, name="dilated_conv")


def alexnet_fc(classes=1000):
    """AlexNet's fully connected stack 9216 -> 4096 -> 4096 -> 1000."""
    inp = keras.Input((9216,), name="features")
    x = L.Dense(4096, activation="relu", name="fc6")(inp)
    x = L.Dense(4096, activation="relu", name="fc7")(x)
    out = L.Dense(classes, name="fc8")(x)
    return keras.Model(inp, out, name="alexnet_fc")


# ----------------------------------------------------------------------------------------------
# Randomizers


def randomize_scales(model, seed=0):
    """Gives every TTQ layer distinct, non-trivial Wp/Wn (and returns them by variable name)."""
    rng = np.random.default_rng(seed)
    values = {}
    for variable in model.weights:
        if variable.name.endswith(("_wp:0", "_wn:0")):
            value = rng.uniform(0.3, 2.0, size=variable.shape).astype(np.float32)
            variable.assign(value)
            values[variable.name] = value
    return values


def randomize_batchnorm(model, seed=0):
    """Random gamma (some negative), beta, moving mean and variance for every BN layer."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False, recursive=True):  # noqa: SLF001
        if isinstance(layer, L.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            n = gamma.shape
            gamma = rng.uniform(0.3, 2.0, n) * rng.choice([1.0, -1.0], n, p=[0.8, 0.2])
            gamma.reshape(-1)[0] *= -np.sign(gamma.reshape(-1)[0])  # at least one negative
            layer.set_weights(
                [
                    gamma.astype(np.float32),
                    rng.normal(0, 0.5, n).astype(np.float32),
                    rng.normal(0, 0.5, n).astype(np.float32),
                    rng.uniform(0.2, 3.0, n).astype(np.float32),
                ]
            )


def randomize_quantized(q_model, seed=0):
    """Different Wp/Wn per TTQ layer (and channel) and random BN statistics, in place."""
    rng = np.random.default_rng(seed)
    for layer in q_model._flatten_layers(include_self=False, recursive=True):  # noqa: SLF001
        for w in layer.weights if hasattr(layer, "quantize_config") else []:
            if w.name.endswith(("_wp:0", "_wn:0")) and w.trainable:
                w.assign(rng.uniform(0.2, 1.5, w.shape).astype(np.float32))
    randomize_batchnorm(q_model, seed + 1)
    return q_model


# ----------------------------------------------------------------------------------------------
# Hand-built packed files

CUSTOM_CODES = {
    "conv2d": fmt.TTQ_CONV_2D,
    "depthwise_conv2d": fmt.TTQ_DEPTHWISE_CONV_2D,
    "dense": fmt.TTQ_FULLY_CONNECTED,
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
        version=fmt.FORMAT_VERSION,
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
            version=fmt.FORMAT_VERSION,
            activation=act,
            in_features=k,
            out_features=c_out,
            keep_num_dims=False,
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


def build_packed_model(input_shape, ops: List) -> bytes:
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
                opts = fmt.encode_options(op.options)
            o.customOptions = np.frombuffer(opts, np.uint8)
            o.customOptionsFormat = schema_fb.CustomOptionsFormat.FLEXBUFFERS
        sg.operators.append(o)
        current = out
    sg.inputs = graph_inputs
    sg.outputs = [current]
    sg.name = "main"
    model.subgraphs = [sg]
    return fbio.write_model(model)


# ---- The packed models of the runtime matrix -------------------------------------------------
# Every runtime (tests/aarch64_e2e_test.py, tests/tflite_runtime_test.py, tests/jni_test.py) runs
# the same packed models, made by the real pipeline: a float Keras model from this module ->
# ttq_keras.quantize_model -> random Wp/Wn and BN statistics -> ttq_keras.convert. Together they
# hold all three TTQ ops. Tolerances against Keras (as in delegate_test): exact mode 1e-4 of the
# output scale max|y| (BatchNormalization folded into the scales, builtin ops in TFLite), fast
# mode 5% (int8 rounding compounds over the layers).

TTQ_OP_NAMES = ("TTQ_CONV_2D", "TTQ_DEPTHWISE_CONV_2D", "TTQ_FULLY_CONNECTED")
TOLERANCE = {"exact": 1e-4, "fast": 5e-2}  # of max|y_keras|


def conv_stack_logits(input_shape=(10, 10, 4), classes=5):
    """The three TTQ ops in a row with a logits output (mobilenet_block ends in a softmax, which
    saturates and would hide errors): conv -> depthwise -> BN -> ReLU -> 1x1 conv -> dense."""
    inp = keras.Input(input_shape)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="stem")(inp)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", use_bias=False, name="dw")(x)
    x = L.BatchNormalization(name="dw_bn")(x)
    x = L.ReLU(name="dw_relu")(x)
    x = L.Conv2D(6, 1, name="pw")(x)
    x = L.Flatten()(x)
    out = L.Dense(classes, name="logits")(x)
    return keras.Model(inp, out, name="conv_stack_logits")


# name -> (builder, keep_first_and_last_float)
MODELS = {
    "conv_stack_logits": ("conv_stack_logits", False),
    "mobilenet_all_ternary": ("mobilenet_block", False),
    "mlp": ("mlp", False),
    "dilated_conv": ("dilated_conv", False),
}


@dataclasses.dataclass(frozen=True)
class PackedCase:
    name: str
    packed: bytes
    x: np.ndarray  # float32, batch 2
    want: np.ndarray  # the quantized Keras model's output on x
    ttq_ops: Tuple[Tuple[int, str], ...]  # (node index, custom op name) of every TTQ op

    @property
    def scale(self) -> float:
        return float(np.abs(self.want).max())


def ttq_ops_of(packed: bytes) -> List[Tuple[int, str]]:
    """(node index, op name) of every TTQ custom op in the first subgraph."""
    model = schema_fb.ModelT.InitFromObj(schema_fb.Model.GetRootAs(packed, 0))
    ops = []
    for i, op in enumerate(model.subgraphs[0].operators):
        custom = model.operatorCodes[op.opcodeIndex].customCode
        name = custom.decode() if isinstance(custom, bytes) else custom
        if name in TTQ_OP_NAMES:
            ops.append((i, name))
    return ops


@functools.lru_cache(maxsize=None)
def packed_case(name: str, seed: int = 1) -> PackedCase:
    builder, keep_float = MODELS[name]
    keras.utils.set_random_seed(seed)
    make = globals()[builder]
    float_model = make()
    q = ttq_keras.quantize_model(float_model, keep_first_and_last_float=keep_float)
    randomize_quantized(q, seed=seed + 3)
    x = (
        np.random.default_rng(seed)
        .normal(size=(2,) + tuple(float_model.input_shape[1:]))
        .astype(np.float32)
    )
    packed = bytes(ttq_keras.convert(q))
    return PackedCase(name, packed, x, q(x, training=False).numpy(), tuple(ttq_ops_of(packed)))


def relative_error(got: np.ndarray, case: PackedCase) -> float:
    """max|got - want| / max|want|."""
    return float(np.abs(got - case.want).max()) / case.scale
