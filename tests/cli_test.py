"""The README's command lines run as `python -m ...` in a fresh process, without warnings.

    python -m ttq_keras.export MODEL OUT.tflite
    python -m ttq_keras.lite.interpreter OUT.tflite
    python -m ttq_keras.runtime.benchmark OUT.tflite
"""

import os
import subprocess
import sys
import tempfile

import ttq_keras
from ttq_keras import keras, tf


def _python_m(module, *args):
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode, proc.stdout, proc.stderr


class CommandLineTest(tf.test.TestCase):
    def testExportValidateAndBenchmarkAModel(self):
        inputs = keras.Input((8, 8, 3), name="image")
        x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
        x = keras.layers.Flatten()(x)
        model = keras.Model(inputs, keras.layers.Dense(5, name="fc")(x))
        q_model = ttq_keras.quantize_model(model, keep_first_and_last_float=False)
        with tempfile.TemporaryDirectory() as tmp:
            saved = os.path.join(tmp, "q.keras")
            packed = os.path.join(tmp, "q.tflite")
            q_model.save(saved)

            code, out, err = _python_m("ttq_keras.export", saved, packed)
            self.assertEqual(code, 0, err[-3000:])
            self.assertIn("2 packed ternary ops", out)
            self.assertNotIn("RuntimeWarning", err)
            self.assertTrue(os.path.isfile(packed))

            code, out, err = _python_m("ttq_keras.lite.interpreter", packed)
            self.assertEqual(code, 0, err[-3000:])
            self.assertIn("TTQ_CONV_2D", out)
            self.assertIn("TTQ_FULLY_CONNECTED", out)
            self.assertNotIn("RuntimeWarning", err)

            code, out, err = _python_m("ttq_keras.runtime.benchmark", packed, "--runs", "5")
            self.assertEqual(code, 0, err[-3000:])
            self.assertIn("2 ops on the TTQ delegate", out)
            self.assertNotIn("RuntimeWarning", err)

    def testExportReportsABadModelPath(self):
        code, _, err = _python_m("ttq_keras.export", "/nonexistent/model.keras", "out.tflite")
        self.assertEqual(code, 1)
        self.assertIn("No saved model at", err)


if __name__ == "__main__":
    tf.test.main()
