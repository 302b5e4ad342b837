"""Tests for ttq_keras.lite.packing and the byte formulas (lite.format, lite.sizes)."""

import numpy as np
from absl.testing import parameterized

import ttq_keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TF is imported)
from ttq_keras import tf
from ttq_keras.lite import format as fmt
from ttq_keras.lite import packing, sizes


class PackTritsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("k1", 3, 1), ("k4", 2, 4), ("k5", 4, 5), ("k6", 1, 6), ("k27", 7, 27), ("k1152", 16, 1152)
    )
    def testRoundTrip(self, rows, k):
        trits = np.random.default_rng(k).integers(-1, 2, size=(rows, k))
        codes = packing.pack_trits(trits)
        self.assertEqual(codes.dtype, np.uint8)
        self.assertEqual(codes.shape, (rows, -(-k // 5)))
        self.assertLessEqual(int(codes.max()), 242)
        self.assertAllEqual(packing.unpack_codes(codes, k), trits)
        # At most 1.6 bits per weight plus one byte of padding per row.
        self.assertLessEqual(codes.size * 8, 1.6 * trits.size + 8 * rows)

    def testByteLayoutIsBase3LittleEndian(self):
        # d = [1, 2, 0, 0, 0 | 1] -> 1 + 3*2 = 7, then 1.
        self.assertAllEqual(packing.pack_trits([[1, -1, 0, 0, 0, 1]]), [[7, 1]])
        self.assertAllEqual(packing.pack_trits([[-1, -1, -1, -1, -1]]), [[242]])
        self.assertAllEqual(packing.pack_trits([[0, 0, 0, 0, 1]]), [[81]])

    def testAllByteValuesDecode(self):
        codes = np.arange(243, dtype=np.uint8).reshape(243, 1)
        trits = packing.unpack_codes(codes, 5)
        self.assertAllEqual(packing.pack_trits(trits), codes)
        self.assertEqual(len({tuple(r) for r in trits.tolist()}), 243)

    def testRejectsBadTrits(self):
        with self.assertRaisesRegex(ValueError, r"values in \{-1, 0, \+1\}.*2.*\(0, 1\)"):
            packing.pack_trits([[0, 2, 1]])
        with self.assertRaisesRegex(ValueError, "2-D"):
            packing.pack_trits([1, 0, -1])

    def testRejectsByteOver242(self):
        with self.assertRaisesRegex(ValueError, r"codes: code byte 243 at \[1, 0\].*242"):
            packing.unpack_codes(np.array([[0], [243]], np.uint8), 5)

    def testRejectsNonZeroPaddingTrit(self):
        # K = 6: byte 1 may only use its first trit (values 0..2).
        with self.assertRaisesRegex(ValueError, "padding trits past K=6 in row 0"):
            packing.unpack_codes(np.array([[0, 3]], np.uint8), 6)
        packing.unpack_codes(np.array([[0, 2]], np.uint8), 6)

    def testRejectsWrongShapeAndDtype(self):
        with self.assertRaisesRegex(ValueError, r"\[rows, 2\]. Received shape: \[1, 3\]"):
            packing.unpack_codes(np.zeros((1, 3), np.uint8), 6)
        with self.assertRaisesRegex(ValueError, "uint8"):
            packing.unpack_codes(np.zeros((1, 2), np.int32), 6)
        with self.assertRaisesRegex(ValueError, "at least one trit"):
            fmt.packed_row_bytes(0)


class SizesTest(tf.test.TestCase):
    def testPackedLayerBytes(self):
        self.assertEqual(sizes.packed_layer_bytes(16, 27), 16 * 6 + 12 * 16)
        self.assertEqual(sizes.packed_layer_bytes(4096, 9216), 4096 * 1844 + 12 * 4096)
        self.assertEqual(sizes.packed_layer_bytes(1, 1), 1 + 12)
        with self.assertRaisesRegex(ValueError, "c_out"):
            sizes.packed_layer_bytes(0, 5)


if __name__ == "__main__":
    tf.test.main()
