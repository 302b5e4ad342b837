"""The delegate's fusion of a per-channel MUL -> ADD feeding a TTQ convolution (an unfolded
BatchNormalization, as in pre-activation ResNets; tflite_delegate/src/input_affine.h).

The oracle is the same file run with the fusion off (`TTQ_NO_FUSION=1`, the MUL and ADD then
run on the runtime's builtin kernels): the fused kernel does the same float32 operations in the
same order, so outputs must be bit-identical in both modes, at 1 and 2 threads, on LiteRT and
tf.lite. The NumPy reference interpreter checks the unfused result as elsewhere.
"""

import ttq_keras  # noqa: F401  isort: skip  (sets TF_USE_LEGACY_KERAS before TF loads)

import os
from unittest import mock

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests import testing_utils
from ttq_keras._compat import keras
from ttq_keras.export import convert
from ttq_keras.lite import interpreter as numpy_interpreter
from ttq_keras.runtime import delegate as ttq_delegate
from ttq_keras.runtime.profile import profile_interpreter

L = keras.layers
RUNTIMES = ("litert", "tensorflow")


def _preactivation_model(activation, extra_output=None, input_shape=(9, 9, 3)):
    """conv -> Add(conv, 1x1 conv) -> BatchNorm -> `activation` -> conv (the BN cannot be
    folded into a weight). extra_output="relu" also returns the activation's output, which
    makes the ADD's output a graph output."""
    inp = keras.Input(input_shape)
    a = L.Conv2D(8, 3, padding="same", name="conv_a")(inp)
    b = L.Conv2D(8, 1, name="conv_proj")(inp)
    s = L.Add()([a, b])
    y = L.BatchNormalization(name="bn")(s)
    if activation == "relu":
        y = L.ReLU()(y)
    elif activation == "relu6":
        y = L.ReLU(max_value=6.0)(y)
    elif activation == "tanh":
        y = L.Activation("tanh")(y)
    out = L.Conv2D(6, 3, strides=2, padding="same", name="conv_b")(y)
    outputs = [out, y] if extra_output else out
    return keras.Model(inp, outputs)


def _explicit_affine_model(input_shape=(8, 8, 4)):
    """x·scale (a graph output) -> relu(· + shift) -> conv, written as Lambda layers on the
    model input (after a conv, the converter would fold the MUL into its weights), so that the
    MUL's output is a partition output the fused kernel must write."""
    rng = np.random.default_rng(3)
    scale = tf.constant(rng.uniform(-1.5, 1.5, input_shape[-1]).astype(np.float32))
    shift = tf.constant(rng.normal(size=input_shape[-1]).astype(np.float32))
    inp = keras.Input(input_shape)
    m = L.Lambda(lambda t: t * scale, name="mul")(inp)
    r = L.Lambda(lambda t: tf.nn.relu(t + shift), name="add_relu")(m)
    out = L.Conv2D(5, 3, padding="same", name="conv_b")(r)
    return keras.Model(inp, [out, m])


def _packed(model, seed=0):
    keras.utils.set_random_seed(seed)
    q = ttq_keras.quantize_model(model, keep_first_and_last_float=False)
    testing_utils.randomize_quantized(q, seed=seed + 1)
    x = np.random.default_rng(seed).normal(size=(2,) + tuple(model.input_shape[1:]))
    return convert(q), x.astype(np.float32)


def _run_all(packed, x, runtime, mode, num_threads, fusion):
    env = {} if fusion else {"TTQ_NO_FUSION": "1"}
    with mock.patch.dict(os.environ, env):
        interpreter = ttq_delegate.Interpreter(
            model_content=packed, runtime=runtime, mode=mode, num_threads=num_threads
        )
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
        interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    return outputs, interpreter


class InputAffineFusionTest(tf.test.TestCase, parameterized.TestCase):
    def _check_fused_equals_unfused(self, packed, x, expect_fused):
        (reference, *_) = numpy_interpreter.run(packed, x)
        for runtime in RUNTIMES:
            for mode in ("exact", "fast"):
                for num_threads in (1, 2):
                    with self.subTest(runtime=runtime, mode=mode, threads=num_threads):
                        fused, interpreter = _run_all(packed, x, runtime, mode, num_threads, True)
                        unfused, plain = _run_all(packed, x, runtime, mode, num_threads, False)
                        ops = interpreter.delegated_ops()
                        self.assertEqual(sum(1 for o in ops if o.fused_nodes), expect_fused)
                        self.assertFalse(any(o.fused_nodes for o in plain.delegated_ops()))
                        for f in ops:
                            names = {
                                d["index"]: d["op_name"]
                                for d in interpreter._get_ops_details()  # noqa: SLF001
                            }
                            self.assertIn(
                                sorted(names[n] for n in f.fused_nodes), ([], ["ADD", "MUL"])
                            )
                        self.assertEqual(len(fused), len(unfused))
                        for got, want in zip(fused, unfused):
                            np.testing.assert_array_equal(got, want)
                        if mode == "exact":
                            scale = float(np.abs(reference).max())
                            np.testing.assert_allclose(
                                fused[0], reference, rtol=1e-5, atol=1e-5 * scale
                            )

    @parameterized.named_parameters(
        ("relu", "relu", 1),
        ("relu6", "relu6", 1),
        ("no_activation", None, 1),
        # tanh is its own op between the ADD and the conv: nothing to fuse.
        ("tanh_not_fused", "tanh", 0),
    )
    def testFusedEqualsUnfused(self, activation, expect_fused):
        packed, x = _packed(_preactivation_model(activation))
        self._check_fused_equals_unfused(packed, x, expect_fused)

    def testAddOutputThatIsAGraphOutputIsStillWritten(self):
        packed, x = _packed(_preactivation_model("relu", extra_output="relu"))
        self._check_fused_equals_unfused(packed, x, 1)

    def testMulOutputThatIsAGraphOutputIsStillWritten(self):
        packed, x = _packed(_explicit_affine_model())
        self._check_fused_equals_unfused(packed, x, 1)

    def testResizedBatchRunsFused(self):
        packed, x = _packed(_preactivation_model("relu"))
        for batch in (1, 3):
            xb = np.repeat(x[:1], batch, axis=0)
            fused, _ = _run_all(packed, xb, "litert", "exact", 2, True)
            unfused, _ = _run_all(packed, xb, "litert", "exact", 2, False)
            np.testing.assert_array_equal(fused[0], unfused[0])

    def testProfileCountsTheFusedOpsInTheConvolution(self):
        packed, x = _packed(_preactivation_model("relu"))
        _, interpreter = _run_all(packed, x, "litert", "exact", 1, True)
        profile = profile_interpreter(interpreter, runs=3, warmup=1)
        fused = [op for op in profile.ops if "MUL" in op.op_names]
        self.assertLen(fused, 1)
        self.assertEqual(fused[0].op_names[-1], "TTQ_CONV_2D")
        self.assertTrue(fused[0].is_ttq)
        timed = [n for op in profile.ops for n in op.nodes]
        self.assertEqual(len(timed), len(set(timed)))  # no node is counted twice


if __name__ == "__main__":
    tf.test.main()
