"""Property tests (hypothesis) of the Python side: the reader, the NumPy reference interpreter and
the converter's rewrite step. Derandomized, so CI runs the same examples every time.

- The reader never fails with anything but ValueError / NotImplementedError on corrupted bytes
  (random flips, cuts and splices of valid packed files).
- The reference's TTQ ops match a direct per-element evaluation of format.md section 2 for any
  small geometry (kernel, stride, dilation, padding, depth multiplier, activation).
- Random custom options (wrong types, out-of-range values, missing keys) are either accepted
  and consistent, or rejected with ValueError.
- ttq_keras.convert on random small quantized Keras models writes files the reader validates
  and whose reference output matches Keras.
"""

import ttq_keras  # noqa: F401  isort: skip  (sets TF_USE_LEGACY_KERAS before TF loads)

import os
import unittest

import numpy as np
from flatbuffers import flexbuffers
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests import testing_utils
from ttq_keras._compat import keras
from ttq_keras.lite import format as fmt
from ttq_keras.lite import interpreter as numpy_reference  # the NumPy reference reader
from ttq_keras.lite import reference_kernels
from ttq_keras.lite.packing import pack_trits

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "hostile")
SEEDS = [
    os.path.join(CORPUS, f)
    for f in (
        "valid_conv.tflite",
        "valid_depthwise.tflite",
        "valid_fc.tflite",
        "valid_converted_mlp.tflite",
    )
]
CLEAN = (ValueError, NotImplementedError)
SETTINGS = dict(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _seed_bytes():
    out = []
    for path in SEEDS:
        with open(path, "rb") as f:
            out.append(f.read())
    return out


_SEED_DATA = _seed_bytes()


@st.composite
def corrupted_files(draw):
    data = bytearray(draw(st.sampled_from(_SEED_DATA)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "splice", "int32"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            data = data[:pos]
        elif kind == "splice":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "int32" and len(data) >= pos + 4:
            data[pos : pos + 4] = draw(
                st.sampled_from(
                    [
                        b"\xff\xff\xff\x7f",
                        b"\x00\x00\x00\x80",
                        b"\xff\xff\xff\xff",
                        b"\x00\x00\x00\x00",
                    ]
                )
            )
    return bytes(data)


def _direct(x, op_type, o, trits, pos, neg, bias):
    """format.md section 2, one output element at a time (float64)."""
    act = {
        "NONE": lambda v: v,
        "RELU": lambda v: max(v, 0.0),
        "RELU6": lambda v: min(max(v, 0.0), 6.0),
    }
    if op_type == "TTQ_FULLY_CONNECTED":
        rows = x.reshape(-1, o["in_features"])
        y = np.zeros((rows.shape[0], o["out_features"]))
        for r in range(rows.shape[0]):
            for c in range(o["out_features"]):
                s = sum(
                    pos[c] * v if t == 1 else -neg[c] * v if t == -1 else 0.0
                    for t, v in zip(trits[c], rows[r].astype(np.float64))
                )
                y[r, c] = act[o["activation"]](s + bias[c])
        return y
    n, h, w, cin = x.shape
    kh, kw = o["kernel_height"], o["kernel_width"]
    size = fmt.conv_output_size
    oh, pt = size(h, kh, o["stride_height"], o["dilation_height"], o["padding"])
    ow, pl = size(w, kw, o["stride_width"], o["dilation_width"], o["padding"])
    y = np.zeros((n, oh, ow, o["out_channels"]))
    dm = o.get("depth_multiplier")
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for c in range(o["out_channels"]):
                    s = 0.0
                    for a in range(kh):
                        for e in range(kw):
                            ih = i * o["stride_height"] + a * o["dilation_height"] - pt
                            iw = j * o["stride_width"] + e * o["dilation_width"] - pl
                            if not (0 <= ih < h and 0 <= iw < w):
                                continue
                            if dm is not None:
                                taps = [(trits[c][a * kw + e], x[b, ih, iw, c // dm])]
                            else:
                                taps = [
                                    (trits[c][(a * kw + e) * cin + ci], x[b, ih, iw, ci])
                                    for ci in range(cin)
                                ]
                            for t, v in taps:
                                s += pos[c] * v if t == 1 else -neg[c] * v if t == -1 else 0.0
                    y[b, i, j, c] = act[o["activation"]](s + bias[c])
    return y


@st.composite
def one_op_cases(draw):
    op_type = draw(st.sampled_from(["TTQ_CONV_2D", "TTQ_DEPTHWISE_CONV_2D", "TTQ_FULLY_CONNECTED"]))
    act = draw(st.sampled_from(["NONE", "RELU", "RELU6"]))
    if op_type == "TTQ_FULLY_CONNECTED":
        k, c_out = draw(st.integers(1, 12)), draw(st.integers(1, 6))
        o = dict(version=1, activation=act, in_features=k, out_features=c_out, keep_num_dims=False)
        x_shape = (draw(st.integers(1, 3)), k)
    else:
        cin = draw(st.integers(1, 3))
        o = dict(
            version=1,
            activation=act,
            in_channels=cin,
            kernel_height=draw(st.integers(1, 3)),
            kernel_width=draw(st.integers(1, 3)),
            stride_height=draw(st.integers(1, 3)),
            stride_width=draw(st.integers(1, 3)),
            dilation_height=draw(st.integers(1, 3)),
            dilation_width=draw(st.integers(1, 3)),
            padding=draw(st.sampled_from(["SAME", "VALID"])),
        )
        if op_type == "TTQ_DEPTHWISE_CONV_2D":
            o["depth_multiplier"] = draw(st.integers(1, 2))
            o["out_channels"] = cin * o["depth_multiplier"]
            k = o["kernel_height"] * o["kernel_width"]
        else:
            o["out_channels"] = draw(st.integers(1, 4))
            k = o["kernel_height"] * o["kernel_width"] * cin
        c_out = o["out_channels"]
        x_shape = (draw(st.integers(1, 2)), draw(st.integers(1, 8)), draw(st.integers(1, 8)), cin)
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    trits = rng.integers(-1, 2, size=(c_out, k)).astype(np.int8)
    pos, neg = (rng.uniform(-1.5, 1.5, c_out).astype(np.float32) for _ in range(2))
    bias = rng.uniform(-1, 1, c_out).astype(np.float32)
    x = rng.normal(size=x_shape).astype(np.float32)
    return op_type, o, trits, pos, neg, bias, x


class ReaderPropertyTest(unittest.TestCase):
    @settings(max_examples=100, **SETTINGS)
    @given(corrupted_files())
    def testReaderRejectsCorruptionCleanly(self, data):
        try:
            ops = numpy_reference.validate(data)
        except CLEAN:
            return
        for op in ops:  # accepted: the ops are consistent with their options
            self.assertEqual(op.trits.shape[0], op.pos_scales.shape[0])

    @settings(max_examples=60, **SETTINGS)
    @given(one_op_cases())
    def testReferenceOpsMatchTheFormula(self, case):
        op_type, o, trits, pos, neg, bias, x = case
        kernel = reference_kernels.TTQ_KERNELS[op_type]
        codes = pack_trits(trits)
        try:
            y = kernel(x, codes, pos, neg, bias, o)
        except ValueError as e:  # only VALID with an input smaller than the dilated kernel
            self.assertEqual(o.get("padding"), "VALID", str(e))
            self.assertIn("smaller than the effective kernel", str(e))
            return
        np.testing.assert_allclose(
            y, _direct(x, op_type, o, trits, pos, neg, bias), rtol=1e-5, atol=1e-5
        )

    @settings(max_examples=80, **SETTINGS)
    @given(
        one_op_cases(),
        st.dictionaries(
            st.sampled_from(
                [
                    "version",
                    "activation",
                    "in_channels",
                    "out_channels",
                    "kernel_height",
                    "stride_width",
                    "dilation_height",
                    "padding",
                    "depth_multiplier",
                    "in_features",
                    "keep_num_dims",
                    "extra",
                ]
            ),
            st.one_of(
                st.integers(-(2**40), 2**40),
                st.booleans(),
                st.text(max_size=6),
                st.floats(allow_nan=True),
            ),
            max_size=3,
        ),
    )
    def testRandomOptionsAcceptedOrRejectedCleanly(self, case, changes):
        op_type, o, trits, pos, neg, bias, x = case
        o = dict(o, **changes)
        try:
            data = bytes(flexbuffers.Dumps(o))
        except (OverflowError, RuntimeError):  # the encoder cannot write floats just over f32 max
            assume(False)
        try:
            parsed = fmt.parse_options(data, op_type)
        except CLEAN:
            return
        for key in ("stride_width", "dilation_height", "kernel_height", "in_channels"):
            if key in parsed and key in fmt.OPTION_KEYS[op_type]:
                self.assertGreaterEqual(parsed[key], 1)
        self.assertEqual(parsed["version"], 1)

    @settings(max_examples=3, **SETTINGS)
    @given(
        st.integers(1, 3),
        st.integers(1, 2),
        st.sampled_from(["same", "valid"]),
        st.integers(1, 2),
        st.integers(2, 6),
        st.integers(0, 1000),
    )
    def testConverterRewriteRoundTrips(self, kernel, stride, padding, dilation, filters, seed):
        L = keras.layers
        if stride > 1:
            dilation = 1  # Keras: strides > 1 with dilation > 1 is not supported
        inp = keras.Input((9, 9, 3))
        y = L.Conv2D(filters, kernel, stride, padding=padding, dilation_rate=dilation)(inp)
        y = L.DepthwiseConv2D(kernel, padding="same", depth_multiplier=2)(y)
        y = L.Flatten()(y)
        out = L.Dense(4)(y)
        q = ttq_keras.quantize_model(keras.Model(inp, out), keep_first_and_last_float=False)
        testing_utils.randomize_quantized(q, seed)
        packed = bytes(ttq_keras.convert(q))
        ops = numpy_reference.validate(packed)
        self.assertEqual(len(ops), 3)
        x = np.random.default_rng(seed).normal(size=(2, 9, 9, 3)).astype(np.float32)
        want = q(x, training=False).numpy()
        (got,) = numpy_reference.run(packed, x)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))


if __name__ == "__main__":
    unittest.main()
