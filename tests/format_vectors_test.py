"""The Python side of format v1 against tests/data/format_v1.json.

The same file drives the C++ delegate's gtests (tflite_delegate/tests/*_test.cc), so the
Python packing, the option parser and the option writer agree byte for byte with the delegate.
"""

import importlib.util
import json
import os

import numpy as np

import ttq_keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TF is imported)
from ttq_keras import tf
from ttq_keras.lite import format as ttq_format
from ttq_keras.lite.packing import pack_trits, unpack_codes

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS_PATH = os.path.join(REPO_ROOT, "tests", "data", "format_v1.json")
TYPES = {"int": int, "string": str, "bool": bool}

# Reject cases that the Python parser still accepts. Each is a gap to close in
# ttq_keras.lite.format; the test fails once a gap is closed, so the entry must then go.
# None left: format.parse_options checks the int32 range and duplicate keys.
PYTHON_ACCEPTS = set()


def _load_vectors():
    with open(VECTORS_PATH, encoding="utf-8") as f:
        return json.load(f)


def _load_generator():
    path = os.path.join(REPO_ROOT, "scripts", "make_format_vectors.py")
    spec = importlib.util.spec_from_file_location("make_format_vectors", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bytes(case):
    return np.array(case["flexbuffer"], np.uint8)


class FormatVectorsTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.vectors = _load_vectors()

    def testFileIsUpToDate(self):
        generator = _load_generator()
        with open(VECTORS_PATH, encoding="utf-8") as f:
            committed = f.read()
        self.assertEqual(
            committed,
            generator.dumps(generator.build()),
            "tests/data/format_v1.json is out of date: run "
            ".venv/bin/python scripts/make_format_vectors.py",
        )
        self.assertEqual(generator.main(["--check"]), 0)

    def testNamesAndKeysAreTheFormatModules(self):
        v = self.vectors
        self.assertEqual(v["format_version"], ttq_format.FORMAT_VERSION)
        self.assertEqual(tuple(v["ops"]), ttq_format.TTQ_OPS)
        for op, spec in v["ops"].items():
            keys = {key: TYPES[name] for key, name in spec["keys"].items()}
            self.assertEqual(keys, ttq_format.OPTION_KEYS[op], op)
        self.assertEqual(tuple(v["activations"]), ttq_format.ACTIVATIONS)
        self.assertEqual(tuple(v["paddings"]), ttq_format.PADDINGS)
        self.assertEqual(tuple(v["positive_keys"]), ttq_format.POSITIVE_KEYS)
        self.assertEqual(v["trits_per_byte"], ttq_format.TRITS_PER_BYTE)
        self.assertEqual(v["max_code_byte"], ttq_format.MAX_CODE_BYTE)

    def testPackingVectors(self):
        cases = self.vectors["packing"]["vectors"]
        self.assertGreaterEqual(len(cases), 10)
        for case in cases:
            with self.subTest(case["name"]):
                trits = np.array(case["trits"], np.int8)
                codes = np.array(case["codes"], np.uint8)
                self.assertEqual(codes.shape[1], ttq_format.packed_row_bytes(case["k"]))
                self.assertAllEqual(pack_trits(trits), codes)
                self.assertAllEqual(unpack_codes(codes, case["k"]), trits)

    def testPackingRejectsBadCodes(self):
        for case in self.vectors["packing"]["reject_codes"]:
            with self.subTest(case["name"]):
                with self.assertRaises(ValueError) as raised:
                    unpack_codes(np.array(case["codes"], np.uint8), case["k"])
                for mention in case["mentions"]:
                    self.assertIn(mention, str(raised.exception))
                self.assertIn(
                    f"row {case['row']}" if "tap" in case else f"[{case['row']}, ",
                    str(raised.exception),
                )

    def testPackingRejectsNonTrits(self):
        for case in self.vectors["packing"]["reject_trits"]:
            with self.subTest(case["name"]):
                with self.assertRaises(ValueError) as raised:
                    pack_trits(np.array(case["trits"], np.int8))
                for mention in case["mentions"]:
                    self.assertIn(mention, str(raised.exception))
                self.assertIn(f"({case['row']}, {case['tap']})", str(raised.exception))

    def testOptionVectorsParse(self):
        cases = self.vectors["options"]["vectors"]
        self.assertGreaterEqual(len(cases), 6)
        for case in cases:
            with self.subTest(case["name"]):
                parsed = ttq_format.parse_options(_bytes(case), case["op"])
                keys = ttq_format.OPTION_KEYS[case["op"]]
                expected = {k: case["options"][k] for k in keys}
                self.assertEqual({k: parsed[k] for k in keys}, expected)
                for key, typ in keys.items():
                    self.assertIs(type(parsed[key]), typ, key)

    def testWriterProducesTheCanonicalBytes(self):
        canonical = [c for c in self.vectors["options"]["vectors"] if c["canonical"]]
        self.assertGreaterEqual(len(canonical), 3)
        for case in canonical:
            with self.subTest(case["name"]):
                self.assertEqual(
                    list(ttq_format.encode_options(case["options"])), case["flexbuffer"]
                )

    def testOptionRejects(self):
        cases = self.vectors["options"]["reject"]
        self.assertGreaterEqual(len(cases), 40)
        names = {c["name"] for c in cases}
        self.assertLessEqual(PYTHON_ACCEPTS, names)
        for case in cases:
            with self.subTest(case["name"]):
                if case["name"] in PYTHON_ACCEPTS:
                    ttq_format.parse_options(_bytes(case), case["op"])  # the known gap
                    continue
                with self.assertRaises(ValueError) as raised:
                    ttq_format.parse_options(_bytes(case), case["op"], where="node 7")
                message = str(raised.exception)
                self.assertTrue(message.startswith("node 7: "), message)
                for mention in case["mentions"]:
                    self.assertIn(mention, message)


if __name__ == "__main__":
    tf.test.main()
