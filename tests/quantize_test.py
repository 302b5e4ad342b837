"""quantize_model / quantize_layer / quantize_scope end to end."""

import os
import tempfile

import numpy as np
from absl.testing import parameterized
from tensorflow_model_optimization.python.core.quantization.keras import quantize_wrapper

import ttq_keras
from tests import testing_utils
from ttq_keras import keras, tf


def _scale_vars(model):
    return [w for w in model.trainable_weights if w.name.endswith(("_wp:0", "_wn:0"))]


class QuantizeModelTest(tf.test.TestCase, parameterized.TestCase):
    def testWrapsSupportedLayersAndKeepsFirstAndLastFloat(self):
        q = ttq_keras.quantize_model(testing_utils.small_cnn())
        wrapped = [
            layer.layer.name
            for layer in q.layers
            if isinstance(layer, quantize_wrapper.QuantizeWrapper)
        ]
        self.assertEqual(wrapped, ["conv1", "dw", "fc0"])
        self.assertIsInstance(q.get_layer("conv0"), keras.layers.Conv2D)
        self.assertIsInstance(q.get_layer("head"), keras.layers.Dense)
        # No 8-bit machinery: no QuantizeLayer and no wrapper around float layers.
        self.assertFalse(any("quantize_layer" in layer.name for layer in q.layers))

    def testKeepFirstAndLastFloatCanBeOverridden(self):
        q = ttq_keras.quantize_model(
            testing_utils.small_cnn(), keep_first_and_last_float=False, float_layers=["dw"]
        )
        wrapped = [
            layer.layer.name
            for layer in q.layers
            if ttq_keras.ternary_weights.is_ttq_wrapper(layer)
        ]
        self.assertEqual(wrapped, ["conv0", "conv1", "fc0", "head"])

    def testScalesAppearExactlyOnceInTrainableWeights(self):
        q = ttq_keras.quantize_model(testing_utils.small_cnn())
        names = [w.name for w in q.trainable_weights]
        scales = [n for n in names if n.endswith(("_wp:0", "_wn:0"))]
        self.assertLen(scales, 6)
        self.assertLen(set(scales), 6)
        self.assertLen(set(id(w) for w in q.trainable_weights), len(q.trainable_weights))
        # Every latent kernel is trainable exactly once too.
        kernels = [n for n in names if n.endswith("kernel:0")]
        self.assertLen(kernels, len(set(kernels)))

    def testCopiesWeightsAndForwardIsTernary(self):
        model = testing_utils.small_cnn()
        q = ttq_keras.quantize_model(model)
        testing_utils.randomize_scales(q)
        for info in ttq_keras.ternary_layers(q):
            original = model.get_layer(info.inner_name)
            kernel = original.weights[0].numpy()
            self.assertAllEqual(info.latent_kernel, kernel)
            delta = 0.7 * np.mean(np.abs(kernel))  # the robust recipe's threshold
            expected_codes = (kernel > delta).astype(np.int8) - (kernel < -delta).astype(np.int8)
            self.assertAllEqual(info.codes, expected_codes)
        x = np.random.default_rng(1).normal(size=(3, 10, 10, 3)).astype(np.float32)
        # The float model with baked ternary kernels computes the same function.
        float_model = ttq_keras.to_float_model(q)
        self.assertAllClose(q(x, training=False), float_model(x), rtol=1e-5, atol=1e-5)
        self.assertEqual([w.name for w in float_model.layers], [w.name for w in model.layers])

    def testSgdStepsLowerTheLoss(self):
        x, y = testing_utils.classification_data()
        model = testing_utils.mlp()
        model.compile(
            keras.optimizers.Adam(0.01),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, y, epochs=5, batch_size=32, verbose=0)
        q = ttq_keras.quantize_model(model, keep_first_and_last_float=False, scale_init="data")
        q.compile(
            keras.optimizers.SGD(0.01, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        before = q.evaluate(x, y, verbose=0)
        scales_before = [w.numpy().copy() for w in _scale_vars(q)]
        q.fit(x, y, epochs=5, batch_size=32, verbose=0)
        after = q.evaluate(x, y, verbose=0)
        self.assertLess(after, before * 0.9)
        # Wp/Wn really trained.
        moved = [np.any(b != a.numpy()) for b, a in zip(scales_before, _scale_vars(q))]
        self.assertTrue(all(moved))

    def testDataInitFitsScalesToWeights(self):
        model = testing_utils.mlp()
        q = ttq_keras.quantize_model(model, keep_first_and_last_float=False, scale_init="data")
        for info in ttq_keras.ternary_layers(q):
            w = info.latent_kernel
            self.assertAllClose(info.wp, np.mean(w[w > info.delta]), rtol=1e-5)
            self.assertAllClose(info.wn, np.mean(-w[w < -info.delta]), rtol=1e-5)

    def testPerChannelScales(self):
        q = ttq_keras.quantize_model(testing_utils.small_cnn(), per_channel=True, scale_init="data")
        infos = {i.inner_name: i for i in ttq_keras.ternary_layers(q)}
        self.assertEqual(infos["conv1"].wp.shape, (12,))
        self.assertEqual(infos["dw"].wp.shape, (12, 2))
        self.assertEqual(infos["fc0"].wn.shape, (16,))
        conv = infos["conv1"]
        for c in range(12):
            column = conv.latent_kernel[..., c]
            self.assertAllClose(conv.wp[c], np.mean(column[column > conv.delta]), rtol=1e-5)
        # The forward pass uses each channel's own scale.
        expected = conv.wp * (conv.codes == 1) - conv.wn * (conv.codes == -1)
        self.assertAllClose(conv.ternary_kernel(), expected)
        # Gradients to per-channel scales are per channel: one training step moves them apart.
        x = np.random.default_rng(0).normal(size=(8, 10, 10, 3)).astype(np.float32)
        y = np.arange(8) % 5
        q.compile(
            keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        wp_var = [w for w in q.weights if w.name.endswith("quant_conv1/kernel_wp:0")][0]
        before = wp_var.numpy().copy()
        q.fit(x, y, epochs=1, batch_size=8, verbose=0)
        delta = wp_var.numpy() - before
        self.assertGreater(len(np.unique(np.round(delta, 7))), 1)

    def testPositiveScalesAreClippedAfterEachStep(self):
        model = testing_utils.mlp()
        q = ttq_keras.quantize_model(
            model, keep_first_and_last_float=False, positive_scales=True, min_scale=0.05
        )
        for w in _scale_vars(q):
            self.assertIsInstance(w.constraint, ttq_keras.ScaleFloor)
        # A huge learning rate on a loss that rewards negative scales drives them below zero;
        # the constraint must hold them at the floor.
        opt = keras.optimizers.SGD(100.0)
        x, _ = testing_utils.classification_data(n=32)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(q(x, training=True))
        grads = tape.gradient(loss, q.trainable_weights)
        opt.apply_gradients(zip(grads, q.trainable_weights))
        values = np.concatenate([w.numpy().ravel() for w in _scale_vars(q)])
        self.assertGreaterEqual(values.min(), 0.05)
        self.assertTrue(np.any(values == np.float32(0.05)))
        # Without the option the same step makes some scale negative.
        q2 = ttq_keras.quantize_model(model, keep_first_and_last_float=False, positive_scales=False)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(q2(x, training=True))
        grads = tape.gradient(loss, q2.trainable_weights)
        keras.optimizers.SGD(100.0).apply_gradients(zip(grads, q2.trainable_weights))
        values2 = np.concatenate([w.numpy().ravel() for w in _scale_vars(q2)])
        self.assertLess(values2.min(), 0.0)

    def testTwnModeUsesFixedScales(self):
        q = ttq_keras.quantize_model(
            testing_utils.mlp(), keep_first_and_last_float=False, mode="twn"
        )
        self.assertEqual(_scale_vars(q), [])
        for info in ttq_keras.ternary_layers(q):
            w = info.latent_kernel
            delta = 0.7 * np.mean(np.abs(w))
            alpha = np.mean(np.abs(w[np.abs(w) > delta]))
            self.assertAllClose(info.wp, alpha, rtol=1e-5)
            self.assertAllClose(info.wn, alpha, rtol=1e-5)

    def testKeras3ModelIsRejectedWithAClearError(self):
        import keras as keras3  # the Keras 3 package installed with TensorFlow

        k3 = keras3.Sequential(
            [keras3.Input((4,)), keras3.layers.Dense(2, name="k3_dense")], name="k3model"
        )
        with self.assertRaisesRegex(TypeError, r"Keras 3 model.*'k3model'.*tf_keras"):
            ttq_keras.quantize_model(k3)
        with self.assertRaisesRegex(TypeError, r"'k3_dense' is a Keras 3 layer"):
            ttq_keras.quantize_layer(k3.layers[-1])

    def testUnsupportedLayerIsNamed(self):
        inputs = keras.Input((16, 3))
        x = keras.layers.Conv1D(4, 3, name="my_conv1d")(inputs)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(8, name="d1")(x)
        x = keras.layers.Dense(8, name="d2")(x)
        x = keras.layers.Dense(2, name="d3")(x)
        model = keras.Model(inputs, x)
        with self.assertRaisesRegex(ValueError, r"'my_conv1d'.*Conv1D is not supported.*Conv2D"):
            ttq_keras.quantize_model(model)
        q = ttq_keras.quantize_model(model, allow_unsupported=True)
        self.assertIsInstance(q.get_layer("my_conv1d"), keras.layers.Conv1D)
        with self.assertRaisesRegex(ValueError, r"'lstm_x'.*LSTM is not supported"):
            ttq_keras.quantize_layer(keras.layers.LSTM(3, name="lstm_x"))

    def testBadArguments(self):
        with self.assertRaisesRegex(ValueError, r"threshold=1.5"):
            ttq_keras.quantize_model(testing_utils.mlp(), threshold=1.5, recipe="paper")
        with self.assertRaisesRegex(ValueError, r"\[0, 3\).*threshold=3.5"):
            ttq_keras.quantize_model(testing_utils.mlp(), threshold=3.5)
        with self.assertRaisesRegex(ValueError, r"not in the model: \['nope'\]"):
            ttq_keras.quantize_model(testing_utils.mlp(), float_layers=["nope"])
        with self.assertRaisesRegex(ValueError, r"Nothing left to ternarize"):
            ttq_keras.quantize_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))

    def testSubclassedModelWithLayerWrappersTrains(self):
        class Net(keras.Model):
            def __init__(self):
                super().__init__()
                self.hidden = ttq_keras.quantize_layer(keras.layers.Dense(32, activation="relu"))
                self.out = keras.layers.Dense(4)

            def call(self, x):
                return self.out(self.hidden(x))

        x, y = testing_utils.classification_data()
        net = Net()
        net.compile(
            keras.optimizers.Adam(0.01),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        net(x[:1])
        scale_names = [w.name for w in net.trainable_weights if w.name.endswith(("_wp:0", "_wn:0"))]
        self.assertLen(scale_names, 2)
        before = net.evaluate(x, y, verbose=0)
        net.fit(x, y, epochs=5, batch_size=32, verbose=0)
        self.assertLess(net.evaluate(x, y, verbose=0), before)
        (info,) = ttq_keras.ternary_layers(net)
        self.assertEqual(set(np.unique(info.codes)) <= {-1, 0, 1}, True)
        with self.assertRaisesRegex(ValueError, "subclassed"):
            ttq_keras.quantize_model(net)


class SaveLoadTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("keras", "model.keras"), ("h5", "model.h5"), ("savedmodel", "saved")
    )
    def testRoundTripKeepsScalesLatentWeightsAndOutputs(self, filename):
        model = testing_utils.small_cnn()
        q = ttq_keras.quantize_model(model, per_channel=True)
        testing_utils.randomize_scales(q)
        testing_utils.randomize_batchnorm(q)
        q.compile(
            keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        x = np.random.default_rng(2).normal(size=(4, 10, 10, 3)).astype(np.float32)
        expected = q(x, training=False).numpy()
        path = os.path.join(tempfile.mkdtemp(), filename)
        q.save(path)
        with ttq_keras.quantize_scope():
            loaded = keras.models.load_model(path)
        # Same weights in the same order (variable names may differ: tfmot builds the inner
        # layers of a fresh model under an annotation scope).
        self.assertEqual([w.shape for w in loaded.weights], [w.shape for w in q.weights])
        for a, b in zip(q.weights, loaded.weights):
            self.assertAllEqual(a.numpy(), b.numpy(), msg=f"{a.name} vs {b.name}")
        self.assertAllEqual(loaded(x, training=False), expected)
        self.assertLen(ttq_keras.ternary_layers(loaded), 3)
        for a, b in zip(ttq_keras.ternary_layers(q), ttq_keras.ternary_layers(loaded)):
            self.assertAllEqual(a.wp, b.wp)
            self.assertAllEqual(a.wn, b.wn)
            self.assertAllEqual(a.latent_kernel, b.latent_kernel)
        # The loaded model keeps training.
        loaded.fit(x, np.arange(4) % 5, epochs=1, verbose=0)

    def testSerializationOfEveryRegisteredObject(self):
        quantizer = ttq_keras.TTQQuantizer(
            threshold=0.1, per_channel=True, channel_dims=2, positive_scales=True, scale_init="data"
        )
        config = ttq_keras.TTQQuantizeConfig(["depthwise_kernel"], quantizer)
        for obj in (quantizer, config, ttq_keras.ScaleFloor(0.2)):
            serialized = keras.utils.serialize_keras_object(obj)
            restored = keras.utils.deserialize_keras_object(serialized)
            self.assertEqual(type(restored), type(obj))
            self.assertEqual(restored.get_config(), obj.get_config())
        self.assertEqual(ttq_keras.TTQQuantizer.from_config(quantizer.get_config()), quantizer)


class SummaryAndCallbackTest(tf.test.TestCase):
    def testSummaryValues(self):
        q = ttq_keras.quantize_model(testing_utils.small_cnn())
        testing_utils.randomize_scales(q, seed=3)
        lines = []
        rows = {r.name: r for r in ttq_keras.summary(q, print_fn=lines.append)}
        conv = rows["quant_conv1"]
        info = {i.name: i for i in ttq_keras.ternary_layers(q)}["quant_conv1"]
        self.assertTrue(conv.ternary)
        self.assertAlmostEqual(conv.sparsity, float(np.mean(info.codes == 0)))
        self.assertAlmostEqual(conv.wp, float(info.wp), places=6)
        self.assertEqual(conv.params, 3 * 3 * 8 * 12 + 12)
        self.assertEqual(conv.float_bytes, 4 * (3 * 3 * 8 * 12 + 12))
        self.assertEqual(conv.packed_bytes, 12 * int(np.ceil(72 / 5)) + 3 * 4 * 12)
        self.assertAlmostEqual(conv.bits_per_weight, 8 * 12 * 15 / (72 * 12))
        self.assertEqual(rows["bn1"].packed_bytes, 0)  # folded into quant_conv1
        self.assertEqual(rows["bn0"].packed_bytes, 2 * 4 * 8)  # after a float conv: mul + add
        self.assertEqual(rows["conv0"].bits_per_weight, 32.0)
        self.assertIn("quant_conv1", "\n".join(lines))
        self.assertIn("total", lines[-2])

    def testCallbackWritesScalarsAndHistograms(self):
        x, y = testing_utils.classification_data(n=64)
        q = ttq_keras.quantize_model(testing_utils.mlp(), keep_first_and_last_float=False)
        q.compile(
            keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        log_dir = tempfile.mkdtemp()
        q.fit(x, y, epochs=2, verbose=0, callbacks=[ttq_keras.TTQCallback(log_dir)])
        tags = {}
        from tensorflow.core.util import event_pb2

        for root, _, files in os.walk(log_dir):
            for f in files:
                for record in tf.data.TFRecordDataset(os.path.join(root, f)):
                    event = event_pb2.Event.FromString(record.numpy())
                    for value in event.summary.value:
                        tags.setdefault(value.tag, []).append(event.step)
        self.assertEqual(tags["quant_dense0/wp"], [0, 1])
        self.assertIn("quant_logits/sparsity", tags)
        self.assertIn("quant_dense1/latent_kernel", tags)
        self.assertIn("quant_dense1/ternary_kernel", tags)


class DistributionTest(tf.test.TestCase):
    def testMirroredStrategyTrainingStep(self):
        cpus = tf.config.list_logical_devices("CPU")
        if len(cpus) < 2:
            self.skipTest("needs two logical CPUs (set up in tests/conftest.py)")
        x, y = testing_utils.classification_data(n=128)
        model = testing_utils.mlp()
        # ReductionToOneDevice instead of the default collective all-reduce: collective instance
        # keys collide when another MirroredStrategy ran earlier in the same process (the
        # examples' smoke test does), which aborts with "Shape mismatch in the collective".
        strategy = tf.distribute.MirroredStrategy(
            [d.name for d in cpus[:2]], cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
        with strategy.scope():
            q = ttq_keras.quantize_model(model, keep_first_and_last_float=False)
            q.compile(
                keras.optimizers.SGD(0.05),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
        self.assertEqual(strategy.num_replicas_in_sync, 2)
        wp = [w for w in q.weights if w.name.endswith("quant_dense0/kernel_wp:0")][0]
        before_loss = q.evaluate(x, y, verbose=0)
        before = float(wp.numpy())
        q.fit(x, y, epochs=3, batch_size=32, verbose=0)
        self.assertNotEqual(float(wp.numpy()), before)
        self.assertLess(q.evaluate(x, y, verbose=0), before_loss)
        # The mirrored result equals a single-device step on the same global batch.
        single = ttq_keras.quantize_model(model, keep_first_and_last_float=False)
        with strategy.scope():
            mirrored = ttq_keras.quantize_model(model, keep_first_and_last_float=False)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
        xb, yb = x[:32], y[:32]
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, single(xb, training=True)) / 32.0
        single_grads = tape.gradient(loss, single.trainable_weights)

        @tf.function
        def replica_grads(xs, ys):
            def step(xr, yr):
                with tf.GradientTape() as tape:
                    loss = loss_fn(yr, mirrored(xr, training=True)) / 32.0
                return tape.gradient(loss, mirrored.trainable_weights)

            per_replica = strategy.run(step, args=(xs, ys))
            return [strategy.reduce("SUM", g, axis=None) for g in per_replica]

        dataset = tf.data.Dataset.from_tensor_slices((xb, yb)).batch(32)
        dist = strategy.experimental_distribute_dataset(dataset)
        mirrored_grads = replica_grads(*next(iter(dist)))
        for a, b, w in zip(single_grads, mirrored_grads, single.trainable_weights):
            self.assertAllClose(a, b, rtol=1e-4, atol=1e-5, msg=w.name)


if __name__ == "__main__":
    tf.test.main()
