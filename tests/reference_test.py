"""Tests of the NumPy reference: the TTQ kernels (lite.reference_kernels), the interpreter and
the validator (lite.interpreter)."""

import contextlib
import io
import os
import tempfile

import numpy as np
from absl.testing import parameterized
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema_fb

import ttq_keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TF is imported)
from tests import testing_utils
from ttq_keras import tf
from ttq_keras._compat import keras
from ttq_keras.export import convert
from ttq_keras.lite import flatbuffer_io as fbio
from ttq_keras.lite import format as fmt
from ttq_keras.lite import interpreter, packing, reference_kernels

L = keras.layers


def _random_op(rng, c_out, k):
    trits = rng.integers(-1, 2, size=(c_out, k)).astype(np.int8)
    pos = rng.uniform(0.1, 2.0, c_out).astype(np.float32)
    neg = rng.uniform(-0.5, 2.0, c_out).astype(np.float32)  # may be negative: free numbers
    bias = rng.normal(size=c_out).astype(np.float32)
    rows = np.where(trits == 1, pos[:, None], np.where(trits == -1, -neg[:, None], 0))
    return trits, packing.pack_trits(trits), pos, neg, bias, rows.astype(np.float32)


def _act(y, activation):
    return {"NONE": y, "RELU": np.maximum(y, 0), "RELU6": np.clip(y, 0, 6)}[activation]


class KernelTest(tf.test.TestCase, parameterized.TestCase):
    """The three TTQ kernels against TensorFlow's float ops on the same ternary weights."""

    @parameterized.named_parameters(
        ("same_s1", 3, 3, 1, 1, "SAME", "NONE"),
        ("valid_s2", 3, 2, 2, 1, "VALID", "RELU"),
        ("same_s2_even", 4, 4, 2, 1, "SAME", "RELU6"),
        ("dilated_same", 3, 3, 1, 2, "SAME", "NONE"),
        ("dilated_valid", 3, 3, 1, 3, "VALID", "RELU"),
        ("pointwise", 1, 1, 1, 1, "VALID", "NONE"),
    )
    def testConv2D(self, kh, kw, stride, dilation, padding, activation):
        rng = np.random.default_rng(kh * 10 + stride + dilation)
        c_in, c_out = 3, 7
        trits, codes, pos, neg, bias, rows = _random_op(rng, c_out, kh * kw * c_in)
        x = rng.normal(size=(2, 11, 10, c_in)).astype(np.float32)
        options = dict(
            version=fmt.FORMAT_VERSION,
            activation=activation,
            in_channels=c_in,
            out_channels=c_out,
            kernel_height=kh,
            kernel_width=kw,
            stride_height=stride,
            stride_width=stride,
            dilation_height=dilation,
            dilation_width=dilation,
            padding=padding,
        )
        got = reference_kernels.ttq_conv_2d(x, codes, pos, neg, bias, options)
        w = rows.reshape(c_out, kh, kw, c_in).transpose(1, 2, 3, 0)  # OHWI -> HWIO
        want = tf.nn.conv2d(x, w, stride, padding, dilations=dilation).numpy() + bias
        self.assertAllClose(got, _act(want, activation), atol=1e-5, rtol=1e-5)

    @parameterized.named_parameters(
        ("m1_same", 1, 1, 1, "SAME"),
        ("m2_valid_s2", 2, 2, 1, "VALID"),
        ("m3_same_s2", 3, 2, 1, "SAME"),
        ("m2_dilated", 2, 1, 2, "SAME"),
    )
    def testDepthwiseConv2D(self, mult, stride, dilation, padding):
        rng = np.random.default_rng(mult * 7 + stride)
        c_in, kh, kw = 4, 3, 3
        c_out = c_in * mult
        trits, codes, pos, neg, bias, rows = _random_op(rng, c_out, kh * kw)
        x = rng.normal(size=(2, 9, 8, c_in)).astype(np.float32)
        options = dict(
            version=fmt.FORMAT_VERSION,
            activation="RELU6",
            in_channels=c_in,
            out_channels=c_out,
            kernel_height=kh,
            kernel_width=kw,
            stride_height=stride,
            stride_width=stride,
            dilation_height=dilation,
            dilation_width=dilation,
            padding=padding,
            depth_multiplier=mult,
        )
        got = reference_kernels.ttq_depthwise_conv_2d(x, codes, pos, neg, bias, options)
        w = rows.T.reshape(kh, kw, c_in, mult)  # channel c = ci * mult + m
        want = tf.nn.depthwise_conv2d(
            x, w, [1, stride, stride, 1], padding, dilations=[dilation, dilation]
        ).numpy()
        self.assertAllClose(got, np.clip(want + bias, 0, 6), atol=1e-5, rtol=1e-5)

    @parameterized.named_parameters(("flat", False), ("keep_num_dims", True))
    def testFullyConnected(self, keep_num_dims):
        rng = np.random.default_rng(3)
        trits, codes, pos, neg, bias, rows = _random_op(rng, 9, 13)
        x = rng.normal(size=(2, 3, 13)).astype(np.float32)
        options = dict(
            version=fmt.FORMAT_VERSION,
            activation="RELU",
            in_features=13,
            out_features=9,
            keep_num_dims=keep_num_dims,
        )
        got = reference_kernels.ttq_fully_connected(x, codes, pos, neg, bias, options)
        want = np.maximum(x.reshape(-1, 13) @ rows.T + bias, 0)
        if keep_num_dims:
            want = want.reshape(2, 3, 9)
        self.assertAllClose(got, want, atol=1e-5, rtol=1e-5)

    def testFormulaUsesBothScales(self):
        # y = s+ * sum(P) - s- * sum(N) + b, spelled out by hand.
        codes = packing.pack_trits([[1, 1, -1, 0]])
        options = dict(version=fmt.FORMAT_VERSION, activation="NONE", in_features=4, out_features=1)
        options["keep_num_dims"] = False
        y = reference_kernels.ttq_fully_connected(
            np.array([[1.0, 2.0, 4.0, 8.0]], np.float32),
            codes,
            np.array([0.5], np.float32),
            np.array([-2.0], np.float32),
            np.array([0.25], np.float32),
            options,
        )
        self.assertAllClose(y, [[0.5 * 3 + 2.0 * 4 + 0.25]])

    def testKernelRejectsBadInput(self):
        codes = packing.pack_trits(np.ones((2, 12), np.int8))
        ones = np.ones(2, np.float32)
        options = dict(
            version=fmt.FORMAT_VERSION,
            activation="NONE",
            in_channels=3,
            out_channels=2,
            kernel_height=2,
            kernel_width=2,
            stride_height=1,
            stride_width=1,
            dilation_height=1,
            dilation_width=1,
            padding="VALID",
        )
        with self.assertRaisesRegex(
            ValueError, "TTQ_CONV_2D: input 'input' last dimension must be"
        ):
            reference_kernels.ttq_conv_2d(np.zeros((1, 4, 4, 2)), codes, ones, ones, ones, options)
        with self.assertRaisesRegex(ValueError, "must be 4-D"):
            reference_kernels.ttq_conv_2d(np.zeros((4, 4, 3)), codes, ones, ones, ones, options)
        with self.assertRaisesRegex(ValueError, "bias must have shape"):
            reference_kernels.ttq_conv_2d(
                np.zeros((1, 4, 4, 3)), codes, ones, ones, ones[:1], options
            )


def _load(model_bytes):
    return fbio.load_model(bytes(model_bytes))


def _dump(model):
    return fbio.write_model(model)


def _find(model, custom_code):
    sg = model.subgraphs[0]
    for i, op in enumerate(sg.operators):
        if fbio.op_name(model, op) == custom_code:
            return i, op, sg
    raise AssertionError(f"no {custom_code} in the model")


class PackedFileTest(tf.test.TestCase, parameterized.TestCase):
    """Validation of whole packed files: section 5 of docs/format.md, file-level corruption."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        inp = keras.Input((6, 6, 3), name="image")
        x = L.Conv2D(4, 3, padding="same", name="conv")(inp)
        x = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
        x = L.Flatten()(x)
        out = L.Dense(5, name="fc")(x)
        model = keras.Model(inp, out)
        q = ttq_keras.quantize_model(model, keep_first_and_last_float=False)
        testing_utils.randomize_quantized(q)
        cls.packed = convert(q)
        cls.x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
        cls.want = q(cls.x, training=False).numpy()

    def testRunMatchesKeras(self):
        (got,) = interpreter.run(self.packed, self.x)
        self.assertAllClose(got, self.want, atol=1e-4 * np.abs(self.want).max(), rtol=0)
        (by_name,) = interpreter.run(self.packed, {"image": self.x})
        self.assertAllEqual(got, by_name)
        ops = interpreter.validate(self.packed)
        self.assertEqual(
            [op.op_type for op in ops],
            [fmt.TTQ_CONV_2D, fmt.TTQ_DEPTHWISE_CONV_2D, fmt.TTQ_FULLY_CONNECTED],
        )

    def testCommandLine(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.tflite")
            with open(path, "wb") as f:
                f.write(self.packed)
            np.save(os.path.join(tmp, "x.npy"), self.x)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                argv = [path, "--input", os.path.join(tmp, "x.npy")]
                self.assertEqual(
                    interpreter.main(argv + ["--output", os.path.join(tmp, "y.npy")]), 0
                )
            self.assertIn("TTQ_DEPTHWISE_CONV_2D", out.getvalue())
            self.assertAllClose(
                np.load(os.path.join(tmp, "y.npy")), interpreter.run(path, self.x)[0]
            )

    def _with_options(self, custom_code, **changes):
        model = _load(self.packed)
        _, op, _ = _find(model, custom_code)
        options = flexbuffers.Loads(bytes(np.asarray(op.customOptions, np.uint8)))
        for key, value in changes.items():
            if value is None:
                options.pop(key)
            else:
                options[key] = value
        op.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options)), np.uint8)
        return _dump(model)

    @parameterized.named_parameters(
        ("version", "TTQ_CONV_2D", dict(version=2), "format version 2 is not supported"),
        ("missing_key", "TTQ_CONV_2D", dict(padding=None), "'padding' is missing"),
        ("wrong_type", "TTQ_CONV_2D", dict(stride_height="1"), "'stride_height' must be int"),
        ("bool_type", "TTQ_FULLY_CONNECTED", dict(keep_num_dims=1), "must be bool"),
        ("padding", "TTQ_CONV_2D", dict(padding="FULL"), "padding must be one of"),
        ("activation", "TTQ_FULLY_CONNECTED", dict(activation="TANH"), "activation must be"),
        ("stride", "TTQ_CONV_2D", dict(stride_width=0), "stride_width must be >= 1"),
        ("dilation", "TTQ_DEPTHWISE_CONV_2D", dict(dilation_height=0), "dilation_height"),
        (
            "depthwise_channels",
            "TTQ_DEPTHWISE_CONV_2D",
            dict(depth_multiplier=3),
            r"out_channels \(8\) must equal in_channels \(4\) \* depth_multiplier \(3\)",
        ),
        ("codes_shape", "TTQ_FULLY_CONNECTED", dict(in_features=71), r"codes must have shape"),
    )
    def testRejectsBadOptions(self, custom_code, changes, message):
        bad = self._with_options(custom_code, **changes)
        with self.assertRaisesRegex(ValueError, rf"operator \d+ \({custom_code}\).*{message}"):
            interpreter.validate(bad)
        with self.assertRaisesRegex(ValueError, message):
            interpreter.run(bad, self.x)

    def _mutate(self, custom_code, fn):
        model = _load(self.packed)
        _, op, sg = _find(model, custom_code)
        fn(model, sg, op)
        return _dump(model)

    def _codes(self, model, sg, op):
        return model.buffers[sg.tensors[int(op.inputs[1])].buffer]

    def testRejectsWrongInputCount(self):
        bad = self._mutate("TTQ_CONV_2D", lambda m, sg, op: setattr(op, "inputs", op.inputs[:4]))
        with self.assertRaisesRegex(ValueError, r"TTQ_CONV_2D\): expected 5 inputs"):
            interpreter.validate(bad)

    def testRejectsCodesDtype(self):
        def fn(m, sg, op):
            sg.tensors[int(op.inputs[1])].type = schema_fb.TensorType.INT8

        bad = self._mutate("TTQ_FULLY_CONNECTED", fn)
        with self.assertRaisesRegex(ValueError, r"codes tensor 'fc/ttq_codes' must be UINT8"):
            interpreter.validate(bad)

    def testRejectsScalesDtypeAndShape(self):
        def dtype(m, sg, op):
            sg.tensors[int(op.inputs[3])].type = schema_fb.TensorType.INT32

        with self.assertRaisesRegex(ValueError, r"neg_scales tensor 'dw/ttq_neg_scales'"):
            interpreter.validate(self._mutate("TTQ_DEPTHWISE_CONV_2D", dtype))

        def shape(m, sg, op):
            sg.tensors[int(op.inputs[4])].shape = np.array([2, 2], np.int32)

        with self.assertRaisesRegex(ValueError, r"bias must have shape \[4\]"):
            interpreter.validate(self._mutate("TTQ_CONV_2D", shape))

    def testRejectsShortBuffer(self):
        def fn(m, sg, op):
            buf = self._codes(m, sg, op)
            buf.data = buf.data[:-1]

        with self.assertRaisesRegex(ValueError, r"codes tensor 'conv/ttq_codes': buffer has"):
            interpreter.validate(self._mutate("TTQ_CONV_2D", fn))

    def testRejectsNonConstantWeights(self):
        def fn(m, sg, op):
            sg.tensors[int(op.inputs[2])].buffer = 0

        with self.assertRaisesRegex(ValueError, r"input 2 \(pos_scales\) must be a constant"):
            interpreter.validate(self._mutate("TTQ_FULLY_CONNECTED", fn))

    def testRejectsCodeByteOver242(self):
        def fn(m, sg, op):
            buf = self._codes(m, sg, op)
            data = np.array(buf.data, np.uint8)
            data[0] = 250
            buf.data = data

        with self.assertRaisesRegex(ValueError, r"TTQ_CONV_2D\): codes: code byte 250"):
            interpreter.validate(self._mutate("TTQ_CONV_2D", fn))

    def testRejectsNonZeroPaddingTrit(self):
        # Dense rows have K = 4*4*8 = 128 trits: the last byte holds 3 taps, so 81 sets a pad trit.
        def fn(m, sg, op):
            buf = self._codes(m, sg, op)
            data = np.array(buf.data, np.uint8)
            data[25] = 81
            buf.data = data

        with self.assertRaisesRegex(ValueError, "padding trits past K=128 in row 0"):
            interpreter.validate(self._mutate("TTQ_FULLY_CONNECTED", fn))

    def testRejectsInputShape(self):
        def fn(m, sg, op):
            sg.tensors[int(op.inputs[0])].shape = np.array([1, 6, 6, 5], np.int32)
            sg.tensors[int(op.inputs[0])].shapeSignature = np.array([-1, 6, 6, 5], np.int32)

        with self.assertRaisesRegex(ValueError, "last dimension must be in_channels=3"):
            interpreter.validate(self._mutate("TTQ_CONV_2D", fn))
        with self.assertRaisesRegex(ValueError, "last dimension must be in_channels=3"):
            interpreter.run(self._mutate("TTQ_CONV_2D", fn), np.zeros((1, 6, 6, 5), np.float32))

    def testRejectsMislabelledOp(self):
        def fn(m, sg, op):
            m.operatorCodes[op.opcodeIndex].customCode = b"TTQ_FULLY_CONNECTED"

        with self.assertRaisesRegex(ValueError, r"'in_features' is missing"):
            interpreter.validate(self._mutate("TTQ_CONV_2D", fn))

        def unknown(m, sg, op):
            m.operatorCodes[op.opcodeIndex].customCode = b"TTQ_CONV_3D"

        with self.assertRaisesRegex(ValueError, r"TTQ_CONV_3D\): unknown ternary op"):
            interpreter.validate(self._mutate("TTQ_CONV_2D", unknown))

    def testRejectsGarbageOptions(self):
        def fn(m, sg, op):
            op.customOptions = np.frombuffer(b"\x01\x02\x03\x04", np.uint8)

        with self.assertRaisesRegex(ValueError, "not a valid FlexBuffer map"):
            interpreter.validate(self._mutate("TTQ_CONV_2D", fn))

    def testRejectsTruncatedAndMislabelledFiles(self):
        for cut in (4, 100, len(self.packed) // 2, len(self.packed) - 8):
            with self.assertRaises(ValueError, msg=f"cut at {cut}"):
                interpreter.run(self.packed[:cut], self.x)
        with self.assertRaisesRegex(ValueError, "file identifier is b'XXXX'"):
            interpreter.validate(self.packed[:4] + b"XXXX" + self.packed[8:])
        with self.assertRaisesRegex(ValueError, "too short"):
            interpreter.validate(b"")

    def testRandomCorruptionNeverCrashes(self):
        rng = np.random.default_rng(0)
        for _ in range(30):
            data = bytearray(self.packed)
            for i in rng.integers(8, len(data), size=4):
                data[i] = rng.integers(0, 256)
            try:
                interpreter.run(bytes(data), self.x)
            except (ValueError, NotImplementedError):
                pass  # loud and clear is fine; anything else (IndexError, ...) is a bug

    def testUnsupportedBuiltinIsNamed(self):
        inp = keras.Input((4,))
        model = keras.Model(inp, L.Lambda(tf.sin)(L.Dense(3)(inp)))
        tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
        with self.assertRaisesRegex(NotImplementedError, r"operator 1 \(SIN\) is not implemented"):
            interpreter.run(tflite, np.zeros((1, 4), np.float32))


if __name__ == "__main__":
    tf.test.main()
