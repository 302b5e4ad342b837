"""Smoke tests of the examples: a few steps on tiny data, then the report files are checked.

Each example runs in-process through its `main` with its flags set by `flagsaver.as_parsed`
(as if given on the command line):
- examples.cifar_resnet on a small slice of Fashion-MNIST (the offline IDX path; tiny generated
  IDX files when the real ones are not installed), then again in the same output_dir to check
  that finished phases are resumed instead of retrained, and again with a broken
  `ttq_keras.convert` / a missing delegate library, which must fail the run;
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
import tempfile
from unittest import mock

import numpy as np
from absl import flags
from absl.testing import flagsaver

import ttq_keras
from ttq_keras import tf

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:  # `examples` is not an installed package
    sys.path.insert(0, _REPO)

from examples import cifar_resnet, imagenet_alexnet  # noqa: E402
from examples.common import data as data_lib  # noqa: E402

FLAGS = flags.FLAGS
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Tiny budgets: a couple of steps per phase; .tflite runs on a handful of images.
FAST = dict(
    batch_size="32",
    float_epochs="1",
    ttq_epochs="1",
    verbose="0",
    tflite_eval_examples="16",
    latency_runs="3",
)


def setUpModule():
    if not FLAGS.is_parsed():  # pytest does not parse absl flags; every flag keeps its default
        FLAGS.mark_as_parsed()


def run_example(example, **flag_values):
    """`python -m examples.<example> --name=value ...` in-process; returns its results.json."""
    with flagsaver.as_parsed(**flag_values):
        example.main([example.MODULE])
        output_dir = FLAGS.output_dir
    with open(os.path.join(output_dir, "results.json")) as f:
        return json.load(f)


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

    def testRoundTrip(self):
        path = os.path.join(self.get_temp_dir(), "x-idx3-ubyte.gz")
        array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
        _write_idx(path, array)
        np.testing.assert_array_equal(data_lib.read_idx(path), array)

    def testTruncatedFileRaises(self):
        path = os.path.join(self.get_temp_dir(), "bad-idx1-ubyte")
        with open(path, "wb") as f:
            f.write(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 10) + b"\x00" * 3)
        with self.assertRaisesRegex(ValueError, "header says shape"):
            data_lib.read_idx(path)

    def testMissingDirectoryNamesTheFix(self):
        with self.assertRaisesRegex(FileNotFoundError, "fashion_mnist_dir"):
            data_lib.load_fashion_mnist(os.path.join(self.get_temp_dir(), "nowhere"))

    def testRealFashionMnistIfInstalled(self):
        if not os.path.exists(
            os.path.join(data_lib.DEFAULT_FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz")
        ):
            self.skipTest("Fashion-MNIST IDX files not installed")
        images = data_lib.load_fashion_mnist()
        self.assertEqual(images.x_train.shape, (60000, 28, 28, 1))
        self.assertEqual(images.x_test.shape, (10000, 28, 28, 1))
        self.assertEqual(sorted(np.unique(images.y_test)), list(range(10)))
        self.assertEqual(np.bincount(images.y_test).tolist(), [1000] * 10)


class RecipeDefaultsTest(tf.test.TestCase):

    def testDemoDefaultsGiveWayToCommandLineFlags(self):
        with flagsaver.as_parsed(demo="true", train_examples="500"):
            cifar_resnet.set_recipe_defaults()
            self.assertEqual(FLAGS.dataset, "fashion_mnist")  # --demo
            self.assertEqual(FLAGS.float_epochs, 3)  # --demo over the paper's 160
            self.assertEqual(FLAGS.lr, 0.1)  # the paper recipe
            self.assertEqual(FLAGS.train_examples, 500)  # the command line wins
            self.assertEqual(FLAGS.output_dir, "output_demo")
            command = cifar_resnet.common_flags.command_line(cifar_resnet.MODULE, cifar_resnet)
        self.assertEqual(command, "python -m examples.cifar_resnet --demo --train_examples=500")
        self.assertIsNone(FLAGS.lr)  # flagsaver restored the shared flags

    def testEachExampleHasItsOwnRecipe(self):
        with flagsaver.flagsaver():
            imagenet_alexnet.set_recipe_defaults()
            self.assertEqual((FLAGS.lr, FLAGS.float_epochs), (1e-4, 0))
        with flagsaver.flagsaver():
            cifar_resnet.set_recipe_defaults()
            self.assertEqual((FLAGS.lr, FLAGS.float_epochs), (0.1, 160))
            self.assertEqual(FLAGS.output_dir, "output/cifar10_resnet20")


def check_report(test, output_dir, results, tflite=True):
    """The files and numbers every run must produce (`tflite`: the three .tflite entries too)."""
    for name in ("report.md", "results.json"):
        test.assertGreater(os.path.getsize(os.path.join(output_dir, name)), 0, name)
    for phase in ("float", "ttq"):
        acc = results[phase].get("test_accuracy")
        if acc is not None:
            test.assertBetween(acc, 0.0, 1.0)
    test.assertBetween(results["ttq"]["test_accuracy"], 0.0, 1.0)
    layers = results["ttq"]["layers"]
    test.assertNotEmpty(layers)
    for layer in layers:
        test.assertBetween(layer["sparsity"], 0.0, 1.0)
        test.assertAllClose(layer["sparsity"] + layer["positive"] + layer["negative"], 1.0)
        test.assertTrue(np.isfinite(layer["wp"]) and np.isfinite(layer["wn"]), layer)
    if tflite:
        entries = results["tflite"]
        keras_accuracy = entries["keras"]["accuracy"]
        one_image = 1.5 / entries["keras"]["eval_examples"]
        for flavour in ("float", "int8", "packed", "packed_fast"):
            entry = entries[flavour]
            test.assertGreater(entry["bytes"], 0)
            test.assertTrue(os.path.exists(os.path.join(output_dir, entry["path"])))
            test.assertBetween(entry["accuracy"], 0.0, 1.0)
            test.assertGreater(entry["latency_ms"], 0.0)
        # The float file and the packed file (delegate, exact mode) hold the same ternary
        # network as the Keras model: the same predictions, up to a near-tie.
        test.assertAllClose(entries["float"]["accuracy"], keras_accuracy, atol=one_image)
        test.assertAllClose(entries["packed"]["accuracy"], keras_accuracy, atol=one_image)
        test.assertLess(entries["int8"]["bytes"], entries["float"]["bytes"])
        test.assertLess(entries["packed"]["bytes"], entries["int8"]["bytes"])
        # Fast mode: int8 activations (and, on AVX-512 VNNI, int8 conv weight levels), at most
        # a few near-ties away from exact mode: 5%, or two images of a tiny eval set (16
        # images here; the barely trained test model has many near-ties).
        test.assertEqual(entries["packed_fast"]["mode"], "fast")
        test.assertAllClose(
            entries["packed_fast"]["accuracy"],
            entries["packed"]["accuracy"],
            atol=max(0.05, 2.5 / entries["keras"]["eval_examples"]),
        )
    else:
        test.assertNotIn("tflite", results)
    for png in ("curves.png", "weight_histograms.png", "sparsity.png"):
        path = os.path.join(output_dir, png)
        test.assertTrue(os.path.exists(path), png)
        with open(path, "rb") as f:
            head = f.read(8)
        test.assertEqual(head, PNG_MAGIC, png)
        test.assertGreater(os.path.getsize(path), 1000, png)
    with open(os.path.join(output_dir, "report.md")) as f:
        text = f.read()
    test.assertIn("| test accuracy (Keras) |", text)
    test.assertIn("![Training curves](curves.png)", text)


class CifarResnetFashionMnistTest(tf.test.TestCase):
    """One trained run in a shared output_dir; the other tests rerun the command on it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="examples_test_")
        fm_dir = data_lib.DEFAULT_FASHION_MNIST_DIR
        if not os.path.exists(os.path.join(fm_dir, "t10k-labels-idx1-ubyte.gz")):
            fm_dir = os.path.join(cls.root, "fm")
            os.makedirs(fm_dir, exist_ok=True)
            _fake_fashion_mnist(fm_dir)
        cls.flags = dict(
            dataset="fashion_mnist",
            fashion_mnist_dir=fm_dir,
            depth="8",
            train_examples="96",
            test_examples="64",
            output_dir=os.path.join(cls.root, "fm_run"),
            **FAST,
        )
        cls.results = run_example(cifar_resnet, **cls.flags)

    def testReport(self):
        results = self.results
        check_report(self, self.flags["output_dir"], results)
        self.assertEqual(results["model"]["name"], "resnet8")
        self.assertEqual(results["float"]["train_examples"], 96)
        self.assertIn("train_seconds", results["ttq"])
        self.assertGreater(results["ttq"]["weight_decay_variables"], 0)
        # Ternary layers: everything but the first conv and the last dense (6 convs in ResNet-8).
        self.assertLen(results["ttq"]["layers"], 6)
        self.assertLen(results["history"]["float"]["loss"], 1)
        self.assertLen(results["history"]["ttq"]["loss"], 1)
        # The command that reproduces the run: the example and the flags that were passed.
        self.assertStartsWith(results["command"], "python -m examples.cifar_resnet --depth=8 ")
        self.assertIn(" --dataset=fashion_mnist ", results["command"])
        self.assertNotIn("--lr", results["command"])  # a recipe default, not passed

    def testRerunResumesInsteadOfRetraining(self):
        again = run_example(cifar_resnet, tflite="false", **self.flags)
        self.assertNotIn("train_seconds", again["float"])
        self.assertNotIn("train_seconds", again["ttq"])
        self.assertAllClose(again["ttq"]["test_accuracy"], self.results["ttq"]["test_accuracy"])
        self.assertAllClose(again["float"]["test_accuracy"], self.results["float"]["test_accuracy"])

    def testBrokenConvertFailsTheRun(self):
        # The check that the smoke test can fail: the export path does not turn errors into notes.
        broken = mock.patch.object(ttq_keras, "convert", side_effect=RuntimeError("convert broke"))
        with broken, self.assertRaisesRegex(RuntimeError, "convert broke") as caught:
            run_example(cifar_resnet, **self.flags)
        self.assertIn("the same command again skips training", " ".join(caught.exception.__notes__))

    def testMissingDelegateFailsTheRun(self):
        missing = os.path.join(self.get_temp_dir(), "no", "libttq_delegate.so")
        with mock.patch.dict(os.environ, {"TTQ_DELEGATE_LIB": missing}):
            with self.assertRaisesRegex(FileNotFoundError, "libttq_delegate.so"):
                run_example(cifar_resnet, **self.flags)


class ExamplesSmokeTest(tf.test.TestCase):

    def testCifarResnetTfdsMockData(self):
        import tensorflow_datasets as tfds

        out = os.path.join(self.get_temp_dir(), "cifar_run")
        with tfds.testing.mock_data(num_examples=64):
            results = run_example(
                cifar_resnet,
                dataset="cifar10",
                depth="8",
                output_dir=out,
                data_dir=os.path.join(self.get_temp_dir(), "tfds"),
                tflite="false",
                eval_before_finetune="false",
                strategy="mirrored",
                **FAST,
            )
        check_report(self, out, results, tflite=False)
        self.assertEqual(results["float"]["train_examples"], 64)

    def testImagenetAlexnetSynthetic(self):
        out = os.path.join(self.get_temp_dir(), "alexnet_run")
        results = run_example(
            imagenet_alexnet,
            synthetic="true",
            image_size="64",
            width_mult="0.125",
            num_classes="10",
            train_examples="64",
            test_examples="32",
            output_dir=out,
            **FAST,
        )
        check_report(self, out, results)
        names = [layer["name"] for layer in results["ttq"]["layers"]]
        # conv0 and fct stay float; the grouped convs are split into two Conv2D each.
        self.assertNotIn("conv0", names)
        self.assertNotIn("fct", names)
        self.assertIn("fc0", names)
        self.assertIn("conv1_g0", names)
        self.assertIn("conv1_g1", names)

    def testImagenetAlexnetTfdsMockData(self):
        import tensorflow_datasets as tfds

        out = os.path.join(self.get_temp_dir(), "alexnet_tfds_run")
        with tfds.testing.mock_data(num_examples=40):
            results = run_example(
                imagenet_alexnet,
                image_size="64",
                width_mult="0.125",
                batch_size="16",
                train_examples="32",
                test_examples="16",
                ttq_epochs="1",
                output_dir=out,
                tflite="false",
                verbose="0",
                data_dir=os.path.join(self.get_temp_dir(), "tfds"),
            )
        check_report(self, out, results, tflite=False)
        self.assertEqual(results["ttq"]["train_examples"], 32)
        self.assertNotIn("test_accuracy", results["float"])  # no float baseline by default


if __name__ == "__main__":
    tf.test.main()
