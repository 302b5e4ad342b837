"""The packed test models every runtime of the matrix runs (tests/aarch64_e2e_test.py,
tests/tflite_runtime_test.py), with their inputs and the Keras outputs to compare against.

Each model goes through the real pipeline: a float Keras model from ttq_keras.lite.testing ->
ttq_keras.quantize_model -> random Wp/Wn and BN statistics -> ttq_keras.convert. Together they
hold all three TTQ ops (TTQ_CONV_2D, TTQ_DEPTHWISE_CONV_2D, TTQ_FULLY_CONNECTED).

Tolerances against Keras (as in delegate_test.ConvertedModelTest): exact mode 1e-4 of the output
scale max|y| (BatchNormalization folded into the scales, builtin ops in TFLite), fast mode 5%
(int8 rounding compounds over the layers).
"""

import ttq_keras  # noqa: F401  isort: skip  (sets TF_USE_LEGACY_KERAS before TF loads)

import dataclasses
import functools
from typing import List, Tuple

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema_fb

from ttq_keras._compat import keras

TTQ_OP_NAMES = ("TTQ_CONV_2D", "TTQ_DEPTHWISE_CONV_2D", "TTQ_FULLY_CONNECTED")
TOLERANCE = {"exact": 1e-4, "fast": 5e-2}  # of max|y_keras|
L = keras.layers


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
    from ttq_keras.convert import convert
    from ttq_keras.lite import testing

    builder, keep_float = MODELS[name]
    keras.utils.set_random_seed(seed)
    make = conv_stack_logits if builder == "conv_stack_logits" else getattr(testing, builder)
    float_model = make()
    q = ttq_keras.quantize_model(float_model, keep_first_and_last_float=keep_float)
    testing.randomize_quantized(q, seed=seed + 3)
    x = (
        np.random.default_rng(seed)
        .normal(size=(2,) + tuple(float_model.input_shape[1:]))
        .astype(np.float32)
    )
    packed = bytes(convert(q))
    return PackedCase(name, packed, x, q(x, training=False).numpy(), tuple(ttq_ops_of(packed)))


def relative_error(got: np.ndarray, case: PackedCase) -> float:
    """max|got - want| / max|want|."""
    return float(np.abs(got - case.want).max()) / case.scale
