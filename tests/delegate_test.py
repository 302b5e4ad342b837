"""End-to-end tests of the C++ TTQ delegate (libttq_delegate.so) through ttq_delegate.

Packed models are built here from float Keras layers whose kernels hold ternary values
(`tests.testing_utils.build_packed_model`), so the expected output is the Keras model's. Every model runs
on both runtimes: LiteRT (ai_edge_litert 2.3.0) and TensorFlow's tf.lite.Interpreter.

Tolerances:
- exact mode: rtol 1e-5 and atol 1e-5·max|y| (float32 summation order differs from Keras);
- fast mode (dynamic int8 activations): the documented bound. Each input element is rounded by
  at most scale/2 = max|x_unit| / 254 (unit = an FC row or a conv image), so an output moves by
  at most max|x_unit| / 254 · Σ_k |w_ck|; the test asserts that bound (+1e-5 float slack), plus,
  for Conv2D, the w8a8 kernel's weight rounding (max(|s⁺|, |s⁻|)/254 per nonzero weight).
"""

import ttq_keras  # noqa: F401  isort: skip  (sets TF_USE_LEGACY_KERAS before TF loads)

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from unittest import mock

import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema_fb

from tests import testing_utils
from ttq_keras._compat import keras
from ttq_keras.export import convert
from ttq_keras.lite import interpreter as numpy_interpreter
from ttq_keras.lite.packing import pack_trits
from ttq_keras.runtime import delegate as ttq_delegate

L = keras.layers
RUNTIMES = (("litert", "litert"), ("tensorflow", "tensorflow"))


def _ternary_model(layer, input_shape, seed=0, batch=1):
    """A one-layer Keras model with a random ternary kernel; returns (model, TtqOp)."""
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input(input_shape), layer])
    kernel = layer.get_weights()[0]
    per_channel = kernel.shape[-1]
    trits, wp, wn = testing_utils.ternary_kernel(kernel.shape, rng)
    if per_channel == 1:
        wp, wn = wp[:1], wn[:1]
    weights = [wp * (trits == 1) - wn * (trits == -1)]
    if layer.use_bias:
        weights.append(rng.normal(size=layer.get_weights()[1].shape).astype(np.float32))
    layer.set_weights([w.astype(np.float32) for w in weights])
    out_shape = [batch] + list(model.output_shape[1:])
    return model, testing_utils.op_from_keras_layer(layer, trits, wp, wn, out_shape)


def _run(interpreter, x):
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _assert_exact(test, got, want):
    test.assertEqual(got.shape, want.shape)
    atol = 1e-5 * max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=atol)


SINGLE_OPS = {
    "conv_same_stride2": (lambda: L.Conv2D(4, 3, strides=2, padding="same"), (7, 6, 3)),
    "conv_valid_dilated_relu": (
        lambda: L.Conv2D(5, (3, 2), dilation_rate=(2, 1), activation="relu"),
        (9, 6, 2),
    ),
    "conv_1x1_relu6_nobias": (
        lambda: L.Conv2D(6, 1, activation="relu6", use_bias=False),
        (4, 5, 7),
    ),
    "depthwise_mult2": (
        lambda: L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
        (6, 6, 3),
    ),
    "depthwise_strided_relu": (
        lambda: L.DepthwiseConv2D((2, 3), strides=2, activation="relu"),
        (7, 8, 4),
    ),
    "dense_relu": (lambda: L.Dense(9, activation="relu"), (33,)),
    "dense_k5": (lambda: L.Dense(3), (5,)),
}


def _single_op_cases():
    for name in SINGLE_OPS:
        for runtime, _ in RUNTIMES:
            yield {"testcase_name": f"{name}_{runtime}", "case": name, "runtime": runtime}


class DelegateEndToEndTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(*_single_op_cases())
    def testSingleOpExactMatchesKeras(self, case, runtime):
        make_layer, input_shape = SINGLE_OPS[case]
        model, op = _ternary_model(make_layer(), input_shape, batch=2)
        x = np.random.default_rng(1).normal(size=(2,) + input_shape).astype(np.float32)
        packed = testing_utils.build_packed_model([2, *input_shape], [op])
        interpreter = ttq_delegate.Interpreter(model_content=packed, runtime=runtime)
        got = _run(interpreter, x)
        _assert_exact(self, got, model(x).numpy())
        self.assertEqual(interpreter.runtime, runtime)
        ops = interpreter.delegated_ops()
        self.assertEqual([o.node_index for o in ops], interpreter.ttq_ops())
        self.assertEqual([o.op_name for o in ops], [testing_utils.CUSTOM_CODES[op.kind]])
        self.assertNotEqual(ops[0].kernel, "")

    @parameterized.named_parameters(*_single_op_cases())
    def testSingleOpFastWithinBound(self, case, runtime):
        make_layer, input_shape = SINGLE_OPS[case]
        layer = make_layer()
        model, op = _ternary_model(layer, input_shape, seed=3, batch=2)
        x = np.random.default_rng(4).normal(size=(2,) + input_shape).astype(np.float32)
        packed = testing_utils.build_packed_model([2, *input_shape], [op])
        interpreter = ttq_delegate.Interpreter(model_content=packed, mode="fast", runtime=runtime)
        got = _run(interpreter, x)
        want = model(x).numpy()
        # Per-unit input scale (FC: a row; conv: an image), times Σ|w| of each output channel.
        unit_max = np.abs(x.reshape(x.shape[0], -1)).max(axis=1) / 254.0
        w_abs = np.abs(op.rows) * np.where(op.rows == 1, op.pos[:, None], op.neg[:, None])
        bound = unit_max.reshape((-1,) + (1,) * (want.ndim - 1)) * w_abs.sum(axis=1) + 1e-5
        if isinstance(layer, L.Conv2D) and not isinstance(layer, L.DepthwiseConv2D):
            # On AVX-512 VNNI the conv runs w8a8: s⁺/s⁻ snapped to the grid of
            # max(|s⁺|, |s⁻|)/127, so each nonzero weight may move by max/254 more, times
            # |x| <= max|x_unit| (tflite_delegate/docs/kernel_layout.md §4).
            step = np.maximum(np.abs(op.pos), np.abs(op.neg)) / 254.0
            snap = (op.rows != 0).sum(axis=1) * step
            unit = np.abs(x.reshape(x.shape[0], -1)).max(axis=1) * (1 + 1 / 254.0)
            bound = bound + unit.reshape((-1,) + (1,) * (want.ndim - 1)) * snap
        err = np.abs(got - want)
        self.assertTrue(np.all(err <= bound), f"max excess {np.max(err - bound)}")
        # And fast mode really is a different computation (not silently exact).
        self.assertGreater(float(err.max()), 0.0)

    @parameterized.named_parameters(*RUNTIMES)
    def testChainOfOpsAllDelegated(self, runtime):
        # conv -> conv (adjacent TTQ ops) -> depthwise, then dense -> tanh -> dense in a second
        # model: every TTQ op must be claimed, adjacent ones included.
        rng = np.random.default_rng(7)
        x = rng.normal(size=(1, 8, 8, 2)).astype(np.float32)
        layers = [
            L.Conv2D(4, 3, padding="same", activation="relu"),
            L.Conv2D(3, 3, strides=2, padding="valid"),
            L.DepthwiseConv2D(2, depth_multiplier=2, activation="relu6"),
        ]
        model = keras.Sequential([keras.Input((8, 8, 2))] + layers)
        ops = []
        for i, layer in enumerate(layers):
            kernel = layer.get_weights()[0]
            trits, wp, wn = testing_utils.ternary_kernel(kernel.shape, rng)
            bias = rng.normal(size=layer.get_weights()[1].shape).astype(np.float32)
            layer.set_weights([(wp * (trits == 1) - wn * (trits == -1)).astype(np.float32), bias])
            out_shape = [1] + list(layer.output_shape[1:])
            ops.append(testing_utils.op_from_keras_layer(layer, trits, wp, wn, out_shape))
        interpreter = ttq_delegate.Interpreter(
            model_content=testing_utils.build_packed_model([1, 8, 8, 2], ops), runtime=runtime
        )
        _assert_exact(self, _run(interpreter, x), model(x).numpy())
        self.assertEqual([o.node_index for o in interpreter.delegated_ops()], [0, 1, 2])

        dense = [L.Dense(6, activation="relu"), L.Dense(5), L.Dense(4)]
        model = keras.Sequential(
            [keras.Input((10,)), dense[0], dense[1], L.Activation("tanh"), dense[2]]
        )
        chain = []
        for layer in dense:
            kernel = layer.get_weights()[0]
            trits, wp, wn = testing_utils.ternary_kernel(kernel.shape, rng)
            layer.set_weights(
                [
                    (wp * (trits == 1) - wn * (trits == -1)).astype(np.float32),
                    rng.normal(size=kernel.shape[1]).astype(np.float32),
                ]
            )
            chain.append(
                testing_utils.op_from_keras_layer(layer, trits, wp, wn, [3, kernel.shape[1]])
            )
        packed = testing_utils.build_packed_model([3, 10], [chain[0], chain[1], "TANH", chain[2]])
        interpreter = ttq_delegate.Interpreter(model_content=packed, runtime=runtime)
        x = rng.normal(size=(3, 10)).astype(np.float32)
        _assert_exact(self, _run(interpreter, x), model(x).numpy())
        delegated = interpreter.delegated_ops()
        self.assertEqual([o.node_index for o in delegated], [0, 1, 3])
        self.assertEqual(interpreter.ttq_ops(), [0, 1, 3])

    @parameterized.named_parameters(*RUNTIMES)
    def testResizeInputAndThreads(self, runtime):
        model, op = _ternary_model(L.Conv2D(3, 3, padding="same"), (5, 5, 2), seed=11)
        packed = testing_utils.build_packed_model([1, 5, 5, 2], [op])
        interpreter = ttq_delegate.Interpreter(model_content=packed, num_threads=2, runtime=runtime)
        x = np.random.default_rng(12).normal(size=(3, 9, 7, 2)).astype(np.float32)
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
        _assert_exact(self, _run(interpreter, x), model.layers[-1](x).numpy())

        model, op = _ternary_model(L.Dense(4), (6,), seed=13)
        interpreter = ttq_delegate.Interpreter(
            model_content=testing_utils.build_packed_model([1, 6], [op]),
            runtime=runtime,
            default_delegates=False,
        )
        x = np.random.default_rng(14).normal(size=(5, 6)).astype(np.float32)
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
        _assert_exact(self, _run(interpreter, x), model.layers[-1](x).numpy())

    @mock.patch.object(ttq_delegate, "usable_cpus", return_value=1)
    def testDelegateThreadsAreCappedByUsableCpus(self, _):
        # 2 threads on one allowed core: the worker would only spin against the caller.
        model, op = _ternary_model(L.Conv2D(3, 3, padding="same"), (5, 5, 2), seed=15)
        packed = testing_utils.build_packed_model([1, 5, 5, 2], [op])
        real = ttq_delegate.load_delegate
        with mock.patch.object(ttq_delegate, "load_delegate", side_effect=real) as load:
            interpreter = ttq_delegate.Interpreter(model_content=packed, num_threads=4)
        self.assertEqual(load.call_args.args[:2], ("exact", 1))
        self.assertEqual((interpreter.num_threads, interpreter.delegate_threads), (4, 1))
        self.assertEqual(interpreter.runtime_threads, 1)
        x = np.random.default_rng(16).normal(size=(1, 5, 5, 2)).astype(np.float32)
        _assert_exact(self, _run(interpreter, x), model.layers[-1](x).numpy())

    def testUsableCpusFollowsTheAffinityMask(self):
        if not hasattr(os, "sched_setaffinity"):
            self.skipTest("no CPU affinity on this platform")
        allowed = os.sched_getaffinity(0)
        try:
            os.sched_setaffinity(0, {min(allowed)})
            self.assertEqual(ttq_delegate.usable_cpus(), 1)
        finally:
            os.sched_setaffinity(0, allowed)
        self.assertEqual(ttq_delegate.usable_cpus(), len(allowed))

    def testModelPathAndRawRuntimeApi(self):
        # The .so also works through each runtime's own load_delegate, from a file.
        model, op = _ternary_model(L.Dense(3, activation="relu"), (8,), seed=21)
        x = np.random.default_rng(22).normal(size=(1, 8)).astype(np.float32)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "dense.tflite")
            with open(path, "wb") as f:
                f.write(testing_utils.build_packed_model([1, 8], [op]))
            from ai_edge_litert import interpreter as litert

            for module, load in (
                (litert, litert.load_delegate),
                (tf.lite, tf.lite.experimental.load_delegate),
            ):
                d = load(ttq_delegate.library_path(), {"mode": "exact", "num_threads": "1"})
                interpreter = module.Interpreter(model_path=path, experimental_delegates=[d])
                _assert_exact(self, _run(interpreter, x), model(x).numpy())
            interpreter = ttq_delegate.Interpreter(model_path=path)
            _assert_exact(self, _run(interpreter, x), model(x).numpy())


class ConvertedModelTest(tf.test.TestCase, parameterized.TestCase):
    """Whole models through ttq_keras.quantize_model -> ttq_keras.convert -> the delegate.

    Tolerances against the Keras model: 1e-4 of the output scale in exact mode (the converter
    folds BatchNormalization into the scales, and builtin ops run in TFLite, so float rounding
    differs more than for a single op) and 1e-5 against the NumPy reference interpreter on the
    same file; 5% of the output scale in fast mode (int8 rounding compounds over the layers:
    measured 0.1% to 3% on these models over seeds 0-5, and up to 11% on a softmax output
    for an unlucky draw, hence the fixed seed).
    """

    _cases = {}

    def _case(self, name, keep_first_and_last_float):
        key = (name, keep_first_and_last_float)
        if key not in self._cases:
            seed = 1  # fixed: fast-mode error depends on the weights (0.1%..3% over seeds 0-5)
            keras.utils.set_random_seed(seed)
            float_model = getattr(testing_utils, name)()
            q = ttq_keras.quantize_model(
                float_model, keep_first_and_last_float=keep_first_and_last_float
            )
            testing_utils.randomize_quantized(q, seed=seed + 3)
            x = (
                np.random.default_rng(seed)
                .normal(size=(2,) + tuple(float_model.input_shape[1:]))
                .astype(np.float32)
            )
            self._cases[key] = (convert(q), x, q(x, training=False).numpy())
        return self._cases[key]

    @parameterized.named_parameters(
        ("mobilenet_all_ternary", "mobilenet_block", False),
        ("mobilenet_first_last_float", "mobilenet_block", True),
        ("mlp", "mlp_3d_input", False),
        ("dilated_conv", "dilated_conv", False),
    )
    def testConvertedModelRunsDelegated(self, name, keep_first_and_last_float):
        packed, x, want = self._case(name, keep_first_and_last_float)
        (ref,) = numpy_interpreter.run(packed, x)
        scale = float(np.abs(want).max())
        for runtime, _ in RUNTIMES:
            with self.subTest(runtime=runtime, mode="exact"):
                interpreter = ttq_delegate.Interpreter(model_content=packed, runtime=runtime)
                interpreter.resize_tensor_input(
                    interpreter.get_input_details()[0]["index"], x.shape
                )
                got = _run(interpreter, x)
                self.assertLessEqual(float(np.abs(got - want).max()), 1e-4 * scale)
                np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * scale)
                ttq_ops = interpreter.ttq_ops()
                self.assertNotEmpty(ttq_ops)
                self.assertEqual([o.node_index for o in interpreter.delegated_ops()], ttq_ops)
            with self.subTest(runtime=runtime, mode="fast"):
                interpreter = ttq_delegate.Interpreter(
                    model_content=packed, runtime=runtime, mode="fast"
                )
                interpreter.resize_tensor_input(
                    interpreter.get_input_details()[0]["index"], x.shape
                )
                got = _run(interpreter, x)
                self.assertLessEqual(float(np.abs(got - want).max()), 5e-2 * scale)


def _dense_op(**changes):
    _, op = _ternary_model(L.Dense(4), (7,), seed=5)
    return dataclasses.replace(op, **changes)


def _conv_op(**changes):
    _, op = _ternary_model(L.Conv2D(2, 3), (5, 5, 3), seed=6)
    return dataclasses.replace(op, **changes)


def _corrupt_models():
    """(name, model bytes, regex the error must match)."""
    dense = _dense_op()
    codes = pack_trits(dense.rows)  # [4, 2]; K = 7 so taps 7..9 of byte 1 are padding
    byte_243 = codes.copy()
    byte_243[2, 0] = 243
    pad_trit = codes.copy()
    pad_trit[1, 1] = (pad_trit[1, 1] % 9) + 27  # sets tap 8 (a padding trit)
    options = dict(dense.options)
    return [
        (
            "byte_243",
            testing_utils.build_packed_model([1, 7], [_dense_op(codes=byte_243)]),
            r"node 0 \(TTQ_FULLY_CONNECTED\): codes .*code byte 0 of row 2 is 243",
        ),
        (
            "padding_trit",
            testing_utils.build_packed_model([1, 7], [_dense_op(codes=pad_trit)]),
            r"non-zero padding trit at tap 8",
        ),
        (
            "codes_missing_row",
            testing_utils.build_packed_model([1, 7], [_dense_op(codes=codes[:3])]),
            r"codes .* has shape \[3, 2\]; expected \[4, 2\]",
        ),
        (
            "wrong_codes_shape",
            testing_utils.build_packed_model([1, 7], [_dense_op(codes=codes.reshape(-1))]),
            r"has shape \[8\]; expected \[4, 2\]",
        ),
        (
            "wrong_scales_shape",
            testing_utils.build_packed_model([1, 7], [_dense_op(pos=np.ones(3, np.float32))]),
            r"pos_scales .* has shape \[3\]; expected \[4\]",
        ),
        (
            "codes_int8",
            testing_utils.build_packed_model(
                [1, 7], [_dense_op(codes_dtype=schema_fb.TensorType.INT8)]
            ),
            r"codes .* has dtype int8; expected uint8",
        ),
        (
            "unknown_version",
            testing_utils.build_packed_model([1, 7], [_dense_op(options=dict(options, version=2))]),
            r"unsupported format version 2",
        ),
        (
            "garbage_options",
            testing_utils.build_packed_model(
                [1, 7], [_dense_op(custom_options=b"\x01\x02\x03\x04")]
            ),
            r"custom options: malformed FlexBuffer",
        ),
        (
            "truncated_options",
            testing_utils.build_packed_model(
                [1, 7], [_dense_op(custom_options=bytes(flexbuffers.Dumps(options))[:-5])]
            ),
            r"custom options: malformed FlexBuffer",
        ),
        (
            "missing_key",
            testing_utils.build_packed_model(
                [1, 7],
                [_dense_op(options={k: v for k, v in options.items() if k != "keep_num_dims"})],
            ),
            r"missing required key 'keep_num_dims'",
        ),
        (
            "wrong_type",
            testing_utils.build_packed_model(
                [1, 7], [_dense_op(options=dict(options, in_features="7"))]
            ),
            r"'in_features' must be an int; got a string",
        ),
        (
            "bad_activation",
            testing_utils.build_packed_model(
                [1, 7], [_dense_op(options=dict(options, activation="TANH"))]
            ),
            r"'activation' must be NONE, RELU or RELU6; got 'TANH'",
        ),
        (
            "input_not_multiple",
            testing_utils.build_packed_model([1, 9], [_dense_op()]),
            r"9 elements, not a multiple of in_features = 7",
        ),
        (
            "four_inputs",
            testing_utils.build_packed_model([1, 7], [_dense_op(drop_bias=True)]),
            r"expected 5 inputs",
        ),
        (
            "non_constant_codes",
            testing_utils.build_packed_model([1, 7], [_dense_op(non_constant_codes=True)]),
            r"codes .* must be a constant tensor",
        ),
        (
            "conv_channels",
            testing_utils.build_packed_model([1, 5, 5, 4], [_conv_op()]),
            r"node 0 \(TTQ_CONV_2D\): input .* has 4 channels; expected in_channels = 3",
        ),
        (
            "conv_bad_padding",
            testing_utils.build_packed_model(
                [1, 5, 5, 3], [_conv_op(options=dict(_conv_op().options, padding="FULL"))]
            ),
            r"'padding' must be SAME or VALID",
        ),
        (
            "conv_zero_stride",
            testing_utils.build_packed_model(
                [1, 5, 5, 3], [_conv_op(options=dict(_conv_op().options, stride_height=0))]
            ),
            r"'stride_height' must be in \[1",
        ),
    ]


class DelegateErrorTest(tf.test.TestCase, parameterized.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.corrupt = _corrupt_models()

    @parameterized.named_parameters(*RUNTIMES)
    def testCorruptModelsRaiseClearErrors(self, runtime):
        for name, content, pattern in self.corrupt:
            with self.subTest(name):
                with self.assertRaisesRegex(
                    ValueError,
                    "not a valid packed ternary model.*" "TTQ delegate: " + ".*" + pattern,
                ):
                    interpreter = ttq_delegate.Interpreter(model_content=content, runtime=runtime)
                    interpreter.allocate_tensors()

    def testCorruptModelsNeverCrashTheProcess(self):
        # The same files, loaded by a child process through both runtimes' own APIs: it must
        # exit normally (a crash would show as a signal) with an error for every file.
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for name, content, _ in self.corrupt:
                path = os.path.join(tmp, name + ".tflite")
                with open(path, "wb") as f:
                    f.write(content)
                paths.append(path)
            script = textwrap.dedent(
                """
                import json, sys
                import ttq_keras
                from ttq_keras import tf
                from ai_edge_litert import interpreter as litert
                lib, paths = sys.argv[1], sys.argv[2:]
                results = {}
                for rt, mod, load in (("litert", litert, litert.load_delegate),
                                      ("tf", tf.lite, tf.lite.experimental.load_delegate)):
                    for p in paths:
                        try:
                            it = mod.Interpreter(model_path=p,
                                                 experimental_delegates=[load(lib)])
                            it.allocate_tensors()
                            it.invoke()
                            results[rt + ":" + p] = "no error"
                        except Exception as e:  # noqa: BLE001
                            results[rt + ":" + p] = type(e).__name__ + ": " + str(e)
                print("RESULTS " + json.dumps(results))
                """
            )
            proc = subprocess.run(
                [sys.executable, "-c", script, ttq_delegate.library_path(), *paths],
                capture_output=True,
                text=True,
                timeout=300,
            )
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS ")][-1]
        results = json.loads(line[len("RESULTS ") :])
        self.assertLen(results, 2 * len(paths))
        for key, message in results.items():
            self.assertIn("TTQ delegate: node 0", message, key)

    @parameterized.named_parameters(*RUNTIMES)
    def testBrokenDataFlowIsRefusedNotCrashed(self, runtime):
        # Fuzzed files whose nodes read a tensor a later node writes, or write one tensor from
        # two nodes: TFLite 2.18's partitioner wrote through a wild pointer on them when the
        # delegate claimed its nodes (they are also replayed by `make test-fuzz`). The third
        # has op names that are not UTF-8, which the runtimes' bindings failed to decode.
        directory = os.path.join(
            os.path.dirname(__file__), "..", "tflite_delegate", "fuzz", "regressions", "file"
        )
        expected = {
            "tflite218-partition-segv.tflite": "node 4 reads tensor 8 .*, which node 6 writes",
            "tflite218-partition-segv-2.tflite": "node 0 reads tensor 82 .*, which node 55",
            "tflite218-partition-segv-3.tflite": "tensor 2 .* is written by node 0 and by node 1",
        }
        for name, pattern in expected.items():
            with self.subTest(name):
                with self.assertRaisesRegex(
                    ValueError, "TTQ delegate: the graph's data flow is broken: " + pattern
                ):
                    interpreter = ttq_delegate.Interpreter(
                        model_path=os.path.join(directory, name), runtime=runtime
                    )
                    interpreter.allocate_tensors()

    @parameterized.named_parameters(*RUNTIMES)
    def testTruncatedCodeBuffer(self, runtime):
        # A buffer shorter than its tensor's shape: the runtimes already refuse such a file when
        # they read it (the delegate checks it too, for hosts that do not); either way a Python
        # exception, not a crash.
        codes = pack_trits(_dense_op().rows)
        content = testing_utils.build_packed_model(
            [1, 7], [_dense_op(codes=codes.reshape(-1)[:5], codes_shape=[4, 2])]
        )
        with self.assertRaisesRegex((ValueError, RuntimeError), r"bytes|buffer|size"):
            interpreter = ttq_delegate.Interpreter(model_content=content, runtime=runtime)
            interpreter.allocate_tensors()

    def testBadOptions(self):
        with self.assertRaisesRegex(ValueError, r"mode must be one of \('exact', 'fast'\)"):
            ttq_delegate.load_delegate(mode="int4")
        with self.assertRaisesRegex(ValueError, "num_threads must be an integer >= 1"):
            ttq_delegate.load_delegate(num_threads=0)
        # The library's own validation, through the runtime's loader.
        from ai_edge_litert import interpreter as litert

        with self.assertRaisesRegex(ValueError, "option 'mode' must be 'exact' or 'fast'"):
            litert.load_delegate(ttq_delegate.library_path(), {"mode": "int4"})
        with self.assertRaisesRegex(ValueError, "unknown option 'threads'"):
            tf.lite.experimental.load_delegate(ttq_delegate.library_path(), {"threads": "2"})
        with self.assertRaisesRegex(ValueError, "exactly one of model_path and model_content"):
            ttq_delegate.Interpreter()

    def testMissingLibrarySaysHowToBuild(self):
        with mock.patch.dict(os.environ, {"TTQ_DELEGATE_LIB": "/nonexistent/libttq_delegate.so"}):
            with self.assertRaisesRegex(FileNotFoundError, "does not name a file"):
                ttq_delegate.load_delegate()
        env = {k: v for k, v in os.environ.items() if k != "TTQ_DELEGATE_LIB"}
        with (
            mock.patch.dict(os.environ, env, clear=True),
            mock.patch.object(ttq_delegate.os.path, "isfile", return_value=False),
        ):
            with self.assertRaisesRegex(FileNotFoundError, r"run `make setup`"):
                ttq_delegate.Interpreter(model_content=b"")


if __name__ == "__main__":
    tf.test.main()
