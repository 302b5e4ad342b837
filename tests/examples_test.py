"""Smoke tests of the examples: a few steps on tiny data, then the report files are checked.

Each example runs in-process through its `run_main(argv)`:
- examples.cifar_resnet on a small slice of Fashion-MNIST (the offline IDX path; tiny generated
  IDX files when the real ones are not installed), then again in the same output_dir to check
  that finished phases are resumed instead of retrained;
- examples.cifar_resnet on CIFAR-10 through tfds.testing.mock_data (the TFDS path), under
  --strategy mirrored;
- examples.imagenet_alexnet --synthetic at 64x64 with 1/8 of the channels, and through
  tfds.testing.mock_data (the imagenet2012 pipeline).
"""

import gzip
import json
import os
import struct
import sys

import numpy as np

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:  # `examples` is not an installed package
    sys.path.insert(0, _REPO)

from examples.common import data as data_lib  # noqa: E402
from examples.common.compat import tf  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Tiny budgets: a couple of steps per phase; .tflite runs on a handful of images.
FAST = [
    "--batch_size",
    "32",
    "--float_epochs",
    "1",
    "--ttq_epochs",
    "1",
    "--verbose",
    "0",
    "--tflite_eval_examples",
    "16",
    "--latency_runs",
    "3",
]


def _write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def _fake_fashion_mnist(directory, n_train=128, n_test=64):
    rng = np.random.RandomState(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(
            os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"),
            rng.randint(0, 256, (n, 28, 28)).astype(np.uint8),
        )
        _write_idx(
            os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"),
            rng.randint(0, 10, n).astype(np.uint8),
        )


class IdxReaderTest(tf.test.TestCase):

    def test_round_trip(self):
        path = os.path.join(self.get_temp_dir(), "x-idx3-ubyte.gz")
        array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
        _write_idx(path, array)
        np.testing.assert_array_equal(data_lib.read_idx(path), array)

    def test_truncated_file_raises(self):
        path = os.path.join(self.get_temp_dir(), "bad-idx1-ubyte")
        with open(path, "wb") as f:
            f.write(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 10) + b"\x00" * 3)
        with self.assertRaisesRegex(ValueError, "header says shape"):
            data_lib.read_idx(path)

    def test_missing_directory_names_the_fix(self):
        with self.assertRaisesRegex(FileNotFoundError, "fashion_mnist_dir"):
            data_lib.load_fashion_mnist(os.path.join(self.get_temp_dir(), "nowhere"))

    def test_real_fashion_mnist_if_installed(self):
        if not os.path.exists(
            os.path.join(data_lib.DEFAULT_FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz")
        ):
            self.skipTest("Fashion-MNIST IDX files not installed")
        images = data_lib.load_fashion_mnist()
        self.assertEqual(images.x_train.shape, (60000, 28, 28, 1))
        self.assertEqual(images.x_test.shape, (10000, 28, 28, 1))
        self.assertEqual(sorted(np.unique(images.y_test)), list(range(10)))
        self.assertEqual(np.bincount(images.y_test).tolist(), [1000] * 10)


class ExamplesSmokeTest(tf.test.TestCase):

    def _check_report(self, output_dir, results):
        for name in ("report.md", "results.json"):
            self.assertGreater(os.path.getsize(os.path.join(output_dir, name)), 0, name)
        with open(os.path.join(output_dir, "results.json")) as f:
            saved = json.load(f)
        self.assertAllClose(saved["ttq"]["test_accuracy"], results["ttq"]["test_accuracy"])
        for phase in ("float", "ttq"):
            acc = saved[phase].get("test_accuracy")
            if acc is not None:
                self.assertBetween(acc, 0.0, 1.0)
        layers = saved["ttq"]["layers"]
        self.assertNotEmpty(layers)
        for layer in layers:
            self.assertBetween(layer["sparsity"], 0.0, 1.0)
            self.assertAllClose(layer["sparsity"] + layer["positive"] + layer["negative"], 1.0)
            self.assertTrue(np.isfinite(layer["wp"]) and np.isfinite(layer["wn"]), layer)
        tflite = saved.get("tflite", {})
        for flavour in ("float", "int8", "packed") if tflite else ():
            if flavour == "packed" and "packed" not in tflite:
                continue  # ttq_keras.convert not available: the report says so in its notes
            self.assertIn(flavour, tflite)
            self.assertGreater(tflite[flavour]["bytes"], 0)
            self.assertTrue(os.path.exists(os.path.join(output_dir, tflite[flavour]["path"])))
            if "accuracy" in tflite[flavour]:
                self.assertBetween(tflite[flavour]["accuracy"], 0.0, 1.0)
                self.assertGreater(tflite[flavour]["latency_ms"], 0.0)
        if tflite:
            # The float .tflite holds the same ternary network: same predictions as Keras.
            self.assertAllClose(
                tflite["float"]["accuracy"],
                tflite["keras"]["accuracy"],
                atol=1.5 / tflite["keras"]["eval_examples"],
            )
        if "float" in tflite and "int8" in tflite:
            self.assertLess(tflite["int8"]["bytes"], tflite["float"]["bytes"])
        if "packed" in tflite and "int8" in tflite:
            self.assertLess(tflite["packed"]["bytes"], tflite["int8"]["bytes"])
        for png in ("curves.png", "weight_histograms.png", "sparsity.png"):
            path = os.path.join(output_dir, png)
            self.assertTrue(os.path.exists(path), png)
            with open(path, "rb") as f:
                head = f.read(8)
            self.assertEqual(head, PNG_MAGIC, png)
            self.assertGreater(os.path.getsize(path), 1000, png)
        with open(os.path.join(output_dir, "report.md")) as f:
            text = f.read()
        self.assertIn("| test accuracy (Keras) |", text)
        self.assertIn("![Training curves](curves.png)", text)

    def test_cifar_resnet_fashion_mnist_offline_and_resume(self):
        from examples import cifar_resnet

        fm_dir = data_lib.DEFAULT_FASHION_MNIST_DIR
        if not os.path.exists(os.path.join(fm_dir, "t10k-labels-idx1-ubyte.gz")):
            fm_dir = os.path.join(self.get_temp_dir(), "fm")
            os.makedirs(fm_dir)
            _fake_fashion_mnist(fm_dir)
        out = os.path.join(self.get_temp_dir(), "fm_run")
        argv = [
            "cifar_resnet",
            "--dataset",
            "fashion_mnist",
            "--fashion_mnist_dir",
            fm_dir,
            "--depth",
            "8",
            "--train_examples",
            "96",
            "--test_examples",
            "64",
            "--output_dir",
            out,
        ] + FAST
        results = cifar_resnet.run_main(argv)
        self._check_report(out, results)
        self.assertEqual(results["model"]["name"], "resnet8")
        self.assertEqual(results["float"]["train_examples"], 96)
        self.assertIn("train_seconds", results["ttq"])
        self.assertGreater(results["ttq"]["weight_decay_variables"], 0)
        # Ternary layers: everything but the first conv and the last dense (6 convs in ResNet-8).
        self.assertLen(results["ttq"]["layers"], 6)
        self.assertLen(results["history"]["float"]["loss"], 1)
        self.assertLen(results["history"]["ttq"]["loss"], 1)

        # Same command again: both phases are found finished and are not retrained.
        again = cifar_resnet.run_main(argv + ["--notflite"])
        self.assertNotIn("train_seconds", again["float"])
        self.assertNotIn("train_seconds", again["ttq"])
        self.assertAllClose(again["ttq"]["test_accuracy"], results["ttq"]["test_accuracy"])
        self.assertAllClose(again["float"]["test_accuracy"], results["float"]["test_accuracy"])

    def test_cifar_resnet_tfds_mock_data(self):
        import tensorflow_datasets as tfds

        from examples import cifar_resnet

        out = os.path.join(self.get_temp_dir(), "cifar_run")
        with tfds.testing.mock_data(num_examples=64):
            results = cifar_resnet.run_main(
                [
                    "cifar_resnet",
                    "--dataset",
                    "cifar10",
                    "--depth",
                    "8",
                    "--output_dir",
                    out,
                    "--data_dir",
                    os.path.join(self.get_temp_dir(), "tfds"),
                    "--notflite",
                    "--noeval_before_finetune",
                    "--strategy",
                    "mirrored",
                ]
                + FAST
            )
        self._check_report(out, results)
        self.assertEqual(results["float"]["train_examples"], 64)

    def test_imagenet_alexnet_synthetic(self):
        from examples import imagenet_alexnet

        out = os.path.join(self.get_temp_dir(), "alexnet_run")
        results = imagenet_alexnet.run_main(
            [
                "imagenet_alexnet",
                "--synthetic",
                "--image_size",
                "64",
                "--width_mult",
                "0.125",
                "--num_classes",
                "10",
                "--train_examples",
                "64",
                "--test_examples",
                "32",
                "--output_dir",
                out,
            ]
            + FAST
        )
        self._check_report(out, results)
        names = [layer["name"] for layer in results["ttq"]["layers"]]
        # conv0 and fct stay float; the grouped convs are split into two Conv2D each.
        self.assertNotIn("conv0", names)
        self.assertNotIn("fct", names)
        self.assertIn("fc0", names)
        self.assertIn("conv1_g0", names)
        self.assertIn("conv1_g1", names)

    def test_imagenet_alexnet_tfds_mock_data(self):
        import tensorflow_datasets as tfds

        from examples import imagenet_alexnet

        out = os.path.join(self.get_temp_dir(), "alexnet_tfds_run")
        with tfds.testing.mock_data(num_examples=40):
            results = imagenet_alexnet.run_main(
                [
                    "imagenet_alexnet",
                    "--image_size",
                    "64",
                    "--width_mult",
                    "0.125",
                    "--batch_size",
                    "16",
                    "--train_examples",
                    "32",
                    "--test_examples",
                    "16",
                    "--ttq_epochs",
                    "1",
                    "--output_dir",
                    out,
                    "--notflite",
                    "--verbose",
                    "0",
                    "--data_dir",
                    os.path.join(self.get_temp_dir(), "tfds"),
                ]
            )
        self._check_report(out, results)
        self.assertEqual(results["ttq"]["train_examples"], 32)
        self.assertNotIn("test_accuracy", results["float"])  # no float baseline by default


if __name__ == "__main__":
    tf.test.main()
