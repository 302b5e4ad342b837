"""End-to-end tests of ttq_keras.convert: packed and portable files against the Keras model."""

import os
import tempfile
import warnings

import numpy as np
from absl.testing import parameterized

import ttq_keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TF is imported)
from tests import testing_utils
from ttq_keras import tf
from ttq_keras._compat import keras
from ttq_keras.export import UnpackableLayerError, convert, main
from ttq_keras.lite import flatbuffer_io as fbio
from ttq_keras.lite import format as fmt
from ttq_keras.lite import interpreter, sizes
from ttq_keras.ternary_weights import ternary_layers

L = keras.layers
MODELS = ("resnet_like", "mobilenet_block", "mlp_3d_input", "dilated_conv")
_TTQ_FOR_KIND = {
    "conv2d": fmt.TTQ_CONV_2D,
    "depthwise_conv2d": fmt.TTQ_DEPTHWISE_CONV_2D,
    "dense": fmt.TTQ_FULLY_CONNECTED,
}


def _litert_run(model_bytes, x):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _ops(model_bytes):
    model = fbio.load_model(model_bytes)
    return [fbio.op_name(model, op) for op in model.subgraphs[0].operators]


def _assert_matches(test, got, want, factor=1e-4):
    scale = float(np.abs(want).max())
    err = float(np.abs(got.astype(np.float64) - want).max())
    test.assertLessEqual(err, factor * scale, f"max abs err {err:g}, output scale {scale:g}")


class _Case:
    """One test model, quantized (every layer ternary), randomized, converted once."""

    def __init__(self, name, seed):
        self.float_model = getattr(testing_utils, name)()
        self.q = ttq_keras.quantize_model(self.float_model, keep_first_and_last_float=False)
        testing_utils.randomize_quantized(self.q, seed)
        self.x = (
            np.random.default_rng(seed)
            .normal(size=(3,) + tuple(self.float_model.input_shape[1:]))
            .astype(np.float32)
        )
        self.want = self.q(self.x, training=False).numpy()
        self.packed, self.report = convert(self.q, return_report=True)
        self.portable = convert(self.q, packed=False)


_CASES = {}


def _case(name):
    if name not in _CASES:
        _CASES[name] = _Case(name, seed=len(_CASES) + 1)
    return _CASES[name]


class ConvertModelsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(*MODELS)
    def testPackedMatchesKeras(self, name):
        case = _case(name)
        (got,) = interpreter.run(case.packed, case.x)
        _assert_matches(self, got, case.want)
        self.assertTrue(case.report.verified)

    @parameterized.parameters(*MODELS)
    def testPortableMatchesKerasInLiteRT(self, name):
        case = _case(name)
        _assert_matches(self, _litert_run(case.portable, case.x), case.want)
        self.assertFalse([op for op in _ops(case.portable) if op.startswith("TTQ_")])

    @parameterized.parameters(*MODELS)
    def testEveryTernaryLayerIsPacked(self, name):
        case = _case(name)
        infos = ternary_layers(case.q)
        self.assertEqual(
            sorted(p.layer for p in case.report.packed_layers), sorted(i.inner_name for i in infos)
        )
        self.assertEqual(case.report.float_layers, [])
        ops = _ops(case.packed)
        for info in infos:
            self.assertIn(_TTQ_FOR_KIND[info.kind], ops)
        # Every layer is ternary here: no float conv / fc builtin is left.
        for builtin in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            self.assertNotIn(builtin, ops)

    @parameterized.parameters(*MODELS)
    def testSignatureNamesAndDtypesKept(self, name):
        case = _case(name)

        def io(model_bytes):
            model = fbio.load_model(model_bytes)
            sg = model.subgraphs[0]
            sig = model.signatureDefs[0]
            return (
                sig.signatureKey,
                [(t.name, sg.tensors[t.tensorIndex].type) for t in sig.inputs],
                [(t.name, sg.tensors[t.tensorIndex].type) for t in sig.outputs],
                [fbio.tensor_name(sg.tensors[i]) for i in sg.inputs],
                [fbio.tensor_name(sg.tensors[i]) for i in sg.outputs],
            )

        self.assertEqual(io(case.packed), io(case.portable))
        self.assertEqual(io(case.packed)[1][0][0].decode(), case.float_model.input_names[0])

    @parameterized.parameters(*MODELS)
    def testByteSizes(self, name):
        case = _case(name)
        self.assertLess(len(case.packed), len(case.portable))
        by_op = {s.index: s for s in sizes.op_byte_sizes(case.packed)}
        for p in case.report.packed_layers:
            self.assertEqual(by_op[p.op_index].const_bytes, p.const_bytes)
            self.assertEqual(p.const_bytes, sizes.packed_layer_bytes(p.out_channels, p.row_length))
        # ttq_keras.summary's packed figures match the real file within 5%.
        from ttq_keras.summary import layer_stats

        stats = {s.name: s for s in layer_stats(case.q)}
        for info in ternary_layers(case.q):
            real = sum(
                p.const_bytes for p in case.report.packed_layers if p.layer == info.inner_name
            )
            estimate = stats[info.name].packed_bytes
            self.assertAllClose(estimate, real, rtol=0.05, msg=info.name)

    def testBatchNormAndScalesAreFolded(self):
        case = _case("resnet_like")
        info = {i.inner_name: i for i in ternary_layers(case.q)}["stem"]
        bn = case.q.get_layer("stem_bn")
        gamma, _, _, var = bn.get_weights()
        factor = gamma / np.sqrt(var + bn.epsilon)
        ops = {op.tensor_names[1]: op for op in interpreter.validate(case.packed)}
        op = ops["stem/ttq_codes"]
        self.assertAllClose(op.pos_scales, info.wp * factor, rtol=1e-5)
        self.assertAllClose(op.neg_scales, info.wn * factor, rtol=1e-5)
        self.assertTrue(np.any(op.pos_scales < 0))  # a negative gamma flips the sign: kept
        self.assertNotAllClose(info.wp, info.wn)

    def testDilatedConvsAreOneOpWithDilation(self):
        case = _case("dilated_conv")
        ops = _ops(case.packed)
        self.assertNotIn("SPACE_TO_BATCH_ND", ops)
        self.assertNotIn("BATCH_TO_SPACE_ND", ops)
        options = {op.tensor_names[1]: op.options for op in interpreter.validate(case.packed)}
        same = options["dilated_same/ttq_codes"]
        self.assertEqual((same["dilation_height"], same["dilation_width"]), (2, 2))
        self.assertEqual(same["padding"], "SAME")
        valid = options["dilated_valid/ttq_codes"]
        self.assertEqual((valid["dilation_height"], valid["dilation_width"]), (2, 3))
        self.assertEqual(valid["padding"], "VALID")
        self.assertEqual(options["plain_nobias/ttq_codes"]["dilation_height"], 1)
        bias = [op.bias for op in interpreter.validate(case.packed)]
        self.assertAllEqual(bias[0], np.zeros_like(bias[0]))  # use_bias=False: zeros

    def testSharedLayerAndDeduplicatedWeights(self):
        inp = keras.Input((8,), name="x")
        shared = L.Dense(8, activation="relu", name="shared")
        h = shared(shared(inp))  # one layer, two ops
        out = L.Dense(8, name="twin")(h)  # same kernel and scales: TFLite shares the buffer
        model = keras.Model(inp, out)
        model.get_layer("twin").set_weights(shared.get_weights())
        q = ttq_keras.quantize_model(model, keep_first_and_last_float=False)
        # In the float file the three FULLY_CONNECTED ops share one weight tensor, and the zero
        # bias is dropped (input -1): each packed op must still get its own constants.
        packed, report = convert(q, return_report=True)
        self.assertEqual(_ops(packed), ["TTQ_FULLY_CONNECTED"] * 3)
        self.assertEqual(
            sorted(p.layer for p in report.packed_layers), ["shared", "shared", "twin"]
        )
        # Nothing float is left behind: 3 ops' codes + scales, no 8x8 float kernel.
        constants = sum(s.const_bytes for s in sizes.op_byte_sizes(packed))
        self.assertEqual(constants, 3 * sizes.packed_layer_bytes(8, 8))
        x = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
        _assert_matches(self, interpreter.run(packed, x)[0], q(x).numpy())

    def testPerChannelScales(self):
        model = testing_utils.mobilenet_block()
        q = ttq_keras.quantize_model(model, keep_first_and_last_float=False, per_channel=True)
        testing_utils.randomize_quantized(q, 7)
        x = np.random.default_rng(7).normal(size=(2, 10, 10, 4)).astype(np.float32)
        # A trained model converts the same way: one epoch moves kernels, Wp/Wn and BN stats.
        q.compile("adam", "sparse_categorical_crossentropy")
        q.fit(np.tile(x, (8, 1, 1, 1)), np.arange(16) % 5, batch_size=8, epochs=1, verbose=0)
        packed = convert(q)
        _assert_matches(self, interpreter.run(packed, x)[0], q(x, training=False).numpy())

    def testSizeRatioOfLargerMlp(self):
        inp = keras.Input((512,), name="x")
        h = L.Dense(256, activation="relu", name="fc1")(inp)
        h = L.Dense(128, activation="relu", name="fc2")(h)
        model = keras.Model(inp, L.Dense(10, name="fc3")(h))
        q = ttq_keras.quantize_model(model, keep_first_and_last_float=False)
        testing_utils.randomize_quantized(q)
        packed = convert(q)
        portable = convert(q, packed=False)
        # 1.6 bits + 12 bytes per channel against 32 bits per weight.
        self.assertGreater(len(portable) / len(packed), 14.0)
        x = np.random.default_rng(0).normal(size=(2, 512)).astype(np.float32)
        want = q(x).numpy()
        _assert_matches(self, interpreter.run(packed, x)[0], want)
        # Portable int8 (dynamic-range quantization: int8 kernels, per-channel scales).
        int8 = convert(q, packed=False, weights="int8")
        self.assertLess(len(int8), len(portable) / 3.5)
        self.assertGreater(len(int8), len(packed) * 3)
        _assert_matches(self, _litert_run(int8, x), want, factor=0.05)
        with self.assertRaisesRegex(ValueError, "weights='int8' applies to the portable file"):
            convert(q, weights="int8")
        with self.assertRaisesRegex(ValueError, "weights must be 'float' or 'int8'"):
            convert(q, packed=False, weights="int4")

    def testKeepFirstAndLastFloat(self):
        case = _case("resnet_like")
        q = ttq_keras.quantize_model(case.float_model)  # first conv and last dense stay float
        testing_utils.randomize_quantized(q, 5)
        packed = convert(q)
        ops = _ops(packed)
        self.assertEqual(ops[0], "CONV_2D")
        self.assertEqual(ops[-1], "FULLY_CONNECTED")
        self.assertEqual(ops.count("TTQ_CONV_2D"), len(ternary_layers(q)))
        want = q(case.x, training=False).numpy()
        _assert_matches(self, interpreter.run(packed, case.x)[0], want)


class ConvertInputsAndFailuresTest(tf.test.TestCase):
    def testSavedModelPathAndCli(self):
        case = _case("mobilenet_block")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "q.keras")
            case.q.save(path)
            packed = convert(path)
            _assert_matches(self, interpreter.run(packed, case.x)[0], case.want)
            out = os.path.join(tmp, "out", "model.tflite")
            self.assertEqual(main([path, out, "--no-verify"]), 0)
            with open(out, "rb") as f:
                self.assertEqual(f.read(), packed)
            portable_out = os.path.join(tmp, "portable.tflite")
            self.assertEqual(main([path, portable_out, "--portable"]), 0)
            with open(portable_out, "rb") as f:
                _assert_matches(self, _litert_run(f.read(), case.x), case.want)
            self.assertEqual(main([os.path.join(tmp, "missing.keras"), out]), 1)
            with self.assertRaisesRegex(ValueError, "No saved model at"):
                convert(os.path.join(tmp, "missing.keras"))

    def testNotQuantizedModelRaises(self):
        model = testing_utils.mlp_3d_input()
        with self.assertRaisesRegex(ValueError, "was not made by ttq_keras.quantize_model"):
            convert(model)
        with self.assertRaisesRegex(TypeError, "tf_keras.Model"):
            convert(object())

    def testUnpackableLayerRaisesOrFallsBack(self):
        inp = keras.Input((6, 6, 4), name="image")
        x = L.Conv2D(6, 3, name="clipped")(inp)
        x = L.Lambda(lambda t: tf.clip_by_value(t, -1.0, 1.0), name="clip")(x)  # RELU_N1_TO_1
        x = L.Flatten()(x)
        model = keras.Model(inp, L.Dense(4, name="head")(x))
        q = ttq_keras.quantize_model(model, keep_first_and_last_float=False)
        testing_utils.randomize_quantized(q)
        with self.assertRaisesRegex(
            UnpackableLayerError, r"clipped: op 0 \(CONV_2D\): fused activation RELU_N1_TO_1"
        ):
            convert(q)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            packed, report = convert(q, allow_float_fallback=True, return_report=True)
        self.assertTrue(any("clipped" in str(w.message) for w in caught))
        self.assertEqual([f.layer for f in report.float_layers], ["clipped"])
        self.assertEqual([p.layer for p in report.packed_layers], ["head"])
        self.assertEqual(_ops(packed)[0], "CONV_2D")
        x = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype(np.float32)
        _assert_matches(self, interpreter.run(packed, x)[0], q(x).numpy())


if __name__ == "__main__":
    tf.test.main()
