"""Issue 10: recipes (paper bit-exact, robust), graph-detected init, BN re-estimation, the
NaN/Inf checks of convert()/summary(), TTQGuard and the public variable accessor."""

import numpy as np

import ttq_keras
from tests import testing_utils
from ttq_keras import keras, ops, tf


def _official_ternarize(w, wp, wn, delta):
    """ops.ternarize as it was before recipes existed (commit 1eb807f), kept verbatim as the
    reference that recipe="paper" must reproduce bit for bit."""
    scale_rank = wp.shape.rank

    def _sum_to_scale_shape(x):
        axes = list(range(x.shape.rank - scale_rank))
        return tf.reduce_sum(x, axis=axes) if axes else x

    @tf.custom_gradient
    def _ternarize(w, wp, wn):
        pos = tf.cast(w > delta, w.dtype)
        neg = tf.cast(w < -delta, w.dtype)
        out = wp * pos - wn * neg

        def grad(g):
            grad_w = g * (wp * pos + wn * neg + (1.0 - pos - neg))
            grad_wp = _sum_to_scale_shape(g * pos)
            grad_wn = -_sum_to_scale_shape(g * neg)
            return grad_w, grad_wp, grad_wn

        return out, grad

    return _ternarize(w, wp, wn)


def _grads(fn, w, wp, wn, upstream):
    with tf.GradientTape() as tape:
        tape.watch([w, wp, wn])
        out = fn(w, wp, wn)
        loss = tf.reduce_sum(out * upstream)
    return [out] + tape.gradient(loss, [w, wp, wn])


def _inputs(per_channel, seed=0):
    rng = np.random.default_rng(seed)
    w = tf.constant(rng.normal(size=(3, 3, 4, 6)).astype(np.float32))
    shape = (6,) if per_channel else ()
    wp = tf.constant(rng.uniform(0.5, 1.5, size=shape).astype(np.float32))
    wn = tf.constant(rng.uniform(0.5, 1.5, size=shape).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(3, 3, 4, 6)).astype(np.float32))
    delta = ops.ttq_threshold(w, 0.05)
    return w, wp, wn, upstream, delta


def _cnn_without_bn(seed=0):
    """Conv stack where no layer is followed by a normalization, plus one that is."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c0")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(x)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.Conv2D(8, 3, padding="same", name="c3")(x)
    x = keras.layers.LayerNormalization(name="ln3")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu", name="d0")(x)
    outputs = keras.layers.Dense(4, name="head")(x)
    return keras.Model(inputs, outputs)


class RecipeGradientTest(tf.test.TestCase):
    def testPaperGradientsAreBitExactToTheOfficialOnes(self):
        for per_channel in (False, True):
            w, wp, wn, upstream, delta = _inputs(per_channel)
            expected = _grads(lambda *a: _official_ternarize(*a, delta), w, wp, wn, upstream)
            quantizer = ttq_keras.TTQQuantizer(
                per_channel=per_channel, **ttq_keras.RECIPES["paper"]
            )
            variables = {"wp": wp, "wn": wn}
            got = _grads(
                lambda w_, wp_, wn_: quantizer(w_, True, {"wp": wp_, "wn": wn_}),
                w,
                variables["wp"],
                variables["wn"],
                upstream,
            )
            for e, g in zip(expected, got):
                self.assertAllEqual(e, g)

    def testPaperRecipeModelHasTheOfficialInitAndNoConstraint(self):
        q = ttq_keras.quantize_model(_cnn_without_bn(), recipe="paper")
        for info in ttq_keras.ternary_layers(q):
            self.assertAllEqual(info.wp, 1.0)
            self.assertAllEqual(info.wn, 1.0)
            for variables in ttq_keras.ternary_variables(info.wrapper):
                self.assertIsNone(variables.wp.constraint)
                self.assertEqual(variables.quantizer.scale_gradient, "sum")
                self.assertEqual(variables.quantizer.kernel_gradient, "scaled")

    def testMeanAndLsqScaleTheScaleGradientsOnly(self):
        for per_channel in (False, True):
            w, wp, wn, upstream, delta = _inputs(per_channel, seed=1)
            _, gw, gwp, gwn = _grads(lambda *a: ops.ternarize(*a, delta), w, wp, wn, upstream)
            pos = tf.cast(w > delta, tf.float32)
            neg = tf.cast(w < -delta, tf.float32)
            axes = [0, 1, 2, 3] if not per_channel else [0, 1, 2]
            _, mw, mwp, mwn = _grads(
                lambda *a: ops.ternarize(*a, delta, "mean"), w, wp, wn, upstream
            )
            self.assertAllClose(mwp, gwp / tf.reduce_sum(pos, axes))
            self.assertAllClose(mwn, gwn / tf.reduce_sum(neg, axes))
            self.assertAllEqual(mw, gw)
            _, lw, lwp, lwn = _grads(
                lambda *a: ops.ternarize(*a, delta, "lsq"), w, wp, wn, upstream
            )
            n = 3 * 3 * 4 * (1 if per_channel else 6)
            self.assertAllClose(lwp, gwp / np.sqrt(n))
            self.assertAllClose(lwn, gwn / np.sqrt(n))
            self.assertAllEqual(lw, gw)

    def testSteKernelGradientIsTheIdentity(self):
        w, wp, wn, upstream, delta = _inputs(False, seed=2)
        _, gw, gwp, _ = _grads(
            lambda *a: ops.ternarize(*a, delta, "sum", "ste"), w, wp, wn, upstream
        )
        self.assertAllEqual(gw, upstream)
        _, _, official_gwp, _ = _grads(lambda *a: ops.ternarize(*a, delta), w, wp, wn, upstream)
        self.assertAllEqual(gwp, official_gwp)

    def testMeanThresholdStatisticDoesNotFollowOneLargeWeight(self):
        w, *_ = _inputs(False, seed=3)
        self.assertAllClose(ops.ttq_threshold(w, 0.7, "mean"), 0.7 * tf.reduce_mean(tf.abs(w)))
        self.assertAllClose(ops.ttq_threshold(w, 0.05), 0.05 * tf.reduce_max(tf.abs(w)))
        quantizer = ttq_keras.TTQQuantizer(threshold=0.7, threshold_statistic="mean")
        outlier = tf.tensor_scatter_nd_update(w, [[0, 0, 0, 0]], [20.0])
        before, after = float(quantizer.delta(w)), float(quantizer.delta(outlier))
        self.assertLess(after / before, 1.2)
        paper = ttq_keras.TTQQuantizer()
        self.assertGreater(float(paper.delta(outlier)) / float(paper.delta(w)), 5.0)
        self.assertEqual(ttq_keras.TTQQuantizer.from_config(quantizer.get_config()), quantizer)
        q = ttq_keras.quantize_model(testing_utils.mlp(), threshold=0.7, threshold_statistic="mean")
        for info in ttq_keras.ternary_layers(q):
            expected = 0.7 * np.mean(np.abs(info.latent_kernel))
            self.assertAllClose(info.delta, expected, msg=info.name)

    def testBadOptionsAreNamed(self):
        with self.assertRaisesRegex(ValueError, "threshold_statistic.*'median'"):
            ttq_keras.TTQQuantizer(threshold_statistic="median")
        with self.assertRaisesRegex(ValueError, "threshold.*\\[0, 1\\).*1.5"):
            ttq_keras.TTQQuantizer(threshold=1.5)
        with self.assertRaisesRegex(ValueError, "scale_gradient.*'median'"):
            ttq_keras.TTQQuantizer(scale_gradient="median")
        with self.assertRaisesRegex(ValueError, "kernel_gradient.*'clip'"):
            ttq_keras.TTQQuantizer(kernel_gradient="clip")
        with self.assertRaisesRegex(ValueError, "recipe.*'fast'"):
            ttq_keras.quantize_model(testing_utils.mlp(), recipe="fast")


class RecipeModelTest(tf.test.TestCase):
    def testRobustIsTheDefaultAndExplicitArgumentsOverrideTheRecipe(self):
        q = ttq_keras.quantize_model(testing_utils.mlp(), keep_first_and_last_float=False)
        quantizers = [
            v.quantizer
            for i in ttq_keras.ternary_layers(q)
            for v in ttq_keras.ternary_variables(i.wrapper)
        ]
        robust = dict(ttq_keras.RECIPES["robust"], **ttq_keras.AUTO_GRADIENTS["data"])
        for quantizer in quantizers:  # no normalization in the MLP: every layer is "data"
            for key, value in robust.items():
                self.assertEqual(getattr(quantizer, key), value, key)
        q = ttq_keras.quantize_model(testing_utils.mlp(), recipe="paper", scale_gradient="mean")
        quantizer = ttq_keras.ternary_variables(q.get_layer("quant_dense1"))[0].quantizer
        self.assertEqual(quantizer.scale_gradient, "mean")
        self.assertEqual(quantizer.scale_init, "ones")

    def testNormalizedLayersAreFoundInTheGraph(self):
        model = _cnn_without_bn()
        # c1 feeds only bn1 and c3 only ln3; c0 feeds a conv, c2 an Add, d0 the head.
        self.assertEqual(ttq_keras.normalized_layer_names(model), {"c1", "c3"})
        sequential = keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(4, name="s0"),
                keras.layers.BatchNormalization(name="sbn"),
                keras.layers.Dense(4, name="s1"),
                keras.layers.Dense(2, name="s2"),
            ]
        )
        self.assertEqual(ttq_keras.normalized_layer_names(sequential), {"s0"})

    def testAutoInitFitsTheScalesWhereNoNormalizationFollows(self):
        model = _cnn_without_bn()
        q = ttq_keras.quantize_model(model, keep_first_and_last_float=False)
        for info in ttq_keras.ternary_layers(q):
            if info.inner_name in ("c1", "c3"):
                self.assertAllEqual(info.wp, 1.0, msg=info.name)
                continue
            wp, wn = ops.fit_scales(info.latent_kernel, info.delta)
            self.assertAllClose(info.wp, wp, msg=info.name)
            self.assertAllClose(info.wn, wn, msg=info.name)
            self.assertLess(float(info.wp), 0.5)  # Glorot weights: far below the official 1.0

    def testAutoGradientsFollowEachLayersInit(self):
        q = ttq_keras.quantize_model(_cnn_without_bn(), keep_first_and_last_float=False)
        for info in ttq_keras.ternary_layers(q):
            quantizer = ttq_keras.ternary_variables(info.wrapper)[0].quantizer
            init = "ones" if info.inner_name in ("c1", "c3") else "data"
            got = (quantizer.scale_gradient, quantizer.kernel_gradient)
            expected = ttq_keras.AUTO_GRADIENTS[init]
            self.assertEqual(got, (expected["scale_gradient"], expected["kernel_gradient"]))
        self.assertEqual(ttq_keras.AUTO_GRADIENTS["data"]["scale_gradient"], "mean")
        self.assertEqual(ttq_keras.AUTO_GRADIENTS["ones"]["scale_gradient"], "lsq")
        # An explicit init decides the gradients of every layer; explicit gradients win.
        q = ttq_keras.quantize_model(_cnn_without_bn(), scale_init="ones")
        quantizers = [
            ttq_keras.ternary_variables(i.wrapper)[0].quantizer for i in ttq_keras.ternary_layers(q)
        ]
        self.assertEqual(
            {(z.scale_gradient, z.kernel_gradient) for z in quantizers}, {("lsq", "scaled")}
        )
        q = ttq_keras.quantize_model(_cnn_without_bn(), scale_gradient="sum")
        quantizers = [
            ttq_keras.ternary_variables(i.wrapper)[0].quantizer for i in ttq_keras.ternary_layers(q)
        ]
        self.assertEqual({z.scale_gradient for z in quantizers}, {"sum"})
        wrapper = ttq_keras.quantize_layer(keras.layers.Dense(4))
        quantizer = wrapper.quantize_config.quantizer
        self.assertEqual((quantizer.scale_gradient, quantizer.kernel_gradient), ("mean", "ste"))

    def testAutoInitStartsNearTheFloatFunction(self):
        model = testing_utils.mlp(seed=3, hidden=(64, 64, 64))
        x, _ = testing_utils.classification_data(n=128, features=20)
        reference = model.predict(x, verbose=0)
        errors = {}
        for recipe in ("paper", "robust"):
            q = ttq_keras.quantize_model(model, recipe=recipe, keep_first_and_last_float=False)
            out = q.predict(x, verbose=0)
            errors[recipe] = np.linalg.norm(out - reference) / np.linalg.norm(reference)
        self.assertLess(errors["robust"], 0.7)
        self.assertGreater(errors["paper"], 10.0)  # the 1/mean|w| blow-up of the issue

    def testRobustTrainsWhereThePaperRecipeDiverges(self):
        """The issue's case: no normalization after the ternary layers, momentum SGD."""
        x, y = testing_utils.classification_data(n=512, features=20, seed=1)
        results = {}
        for recipe in ("paper", "robust"):
            model = testing_utils.mlp(seed=0, hidden=(64, 64, 64))
            q = ttq_keras.quantize_model(model, recipe=recipe, keep_first_and_last_float=False)
            q.compile(
                optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"],
            )
            keras.utils.set_random_seed(0)
            history = q.fit(x, y, batch_size=64, epochs=6, verbose=0)
            results[recipe] = (history.history["loss"], history.history["accuracy"][-1])
        robust_loss, robust_accuracy = results["robust"]
        paper_loss, paper_accuracy = results["paper"]
        self.assertTrue(np.all(np.isfinite(robust_loss)))
        self.assertLess(robust_loss[-1], robust_loss[0])
        self.assertGreater(robust_accuracy, 0.6)
        self.assertGreater(robust_accuracy, paper_accuracy + 0.2)

    def testNewOptionsSurviveSaveAndLoad(self):
        quantizer = ttq_keras.TTQQuantizer(
            scale_gradient="lsq", kernel_gradient="ste", scale_init="auto"
        )
        self.assertEqual(ttq_keras.TTQQuantizer.from_config(quantizer.get_config()), quantizer)
        old = quantizer.get_config()
        del old["scale_gradient"], old["kernel_gradient"]  # a file saved before issue 10
        restored = ttq_keras.TTQQuantizer.from_config(old)
        self.assertEqual((restored.scale_gradient, restored.kernel_gradient), ("sum", "scaled"))


class BatchNormReestimationTest(tf.test.TestCase):
    def testMovingStatisticsBecomeTheAverageOverTheBatches(self):
        model = testing_utils.small_cnn()
        q = ttq_keras.quantize_model(model)
        rng = np.random.default_rng(0)
        batches = [rng.normal(size=(16, 10, 10, 3)).astype(np.float32) for _ in range(3)]
        bn = q.get_layer("bn1")
        bn_input = keras.Model(q.inputs, q.get_layer("quant_conv1").output)
        expected_mean = np.mean(
            [np.mean(bn_input(b, training=True).numpy(), axis=(0, 1, 2)) for b in batches], axis=0
        )
        momentum = bn.momentum
        used = ttq_keras.reestimate_batchnorm(
            q, tf.data.Dataset.from_tensor_slices(np.concatenate(batches)).batch(16), steps=3
        )
        self.assertEqual(used, 3)
        self.assertAllClose(bn.moving_mean, expected_mean, rtol=1e-4, atol=1e-5)
        self.assertEqual(bn.momentum, momentum)

    def testUsesOnlyStepsBatchesAndAcceptsLabelledData(self):
        q = ttq_keras.quantize_model(testing_utils.small_cnn())
        x = np.random.default_rng(1).normal(size=(64, 10, 10, 3)).astype(np.float32)
        y = np.zeros((64,), np.int32)
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
        self.assertEqual(ttq_keras.reestimate_batchnorm(q, ds, steps=2), 2)
        self.assertEqual(ttq_keras.reestimate_batchnorm(q, ds), 4)

    def testModelWithoutBatchNormIsAnError(self):
        q = ttq_keras.quantize_model(testing_utils.mlp())
        with self.assertRaisesRegex(ValueError, "no BatchNormalization"):
            ttq_keras.reestimate_batchnorm(q, [np.zeros((2, 20), np.float32)])


class NonFiniteDetectionTest(tf.test.TestCase):
    def _model(self):
        return ttq_keras.quantize_model(testing_utils.small_cnn())

    def testConvertNamesTheLayerAndTensor(self):
        q = self._model()
        ttq_keras.ternary_variables(q.get_layer("quant_conv1"))[0].wp.assign(float("nan"))
        with self.assertRaisesRegex(
            ValueError, r"layer 'quant_conv1': Wp is NaN; training " r"diverged"
        ):
            ttq_keras.convert(q)
        with self.assertRaisesRegex(ValueError, r"layer 'quant_conv1': Wp is NaN"):
            ttq_keras.summary(q, print_fn=lambda _: None)

    def testInfInAKernelAndSeveralBadTensorsAreCounted(self):
        q = self._model()
        kernel = ttq_keras.ternary_variables(q.get_layer("quant_dw"))[0].kernel
        value = kernel.numpy()
        value[0, 0, 0, 0] = np.inf
        kernel.assign(value)
        ttq_keras.ternary_variables(q.get_layer("quant_fc0"))[0].wn.assign(float("-inf"))
        with self.assertRaisesRegex(
            ValueError,
            rf"layer 'quant_dw': depthwise_kernel has 1 Inf of {value.size} values \(1 more bad "
            r"tensors: layer 'quant_fc0': Wn is Inf\)",
        ):
            ttq_keras.convert(q)

    def testFiniteModelPasses(self):
        q = self._model()
        ttq_keras.check_ternary_weights(q)
        self.assertEqual(ttq_keras.find_weight_problems(q, check_signs=True), [])


class _Corrupt(keras.callbacks.Callback):
    """Sets one scale of `layer` to `value` after training step `step` (1-based)."""

    def __init__(self, layer, tensor, value, step):
        super().__init__()
        self.layer, self.tensor, self.value, self.step, self.seen = layer, tensor, value, step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            variables = ttq_keras.ternary_variables(self.model.get_layer(self.layer))[0]
            getattr(variables, self.tensor).assign(self.value)


class TTQGuardTest(tf.test.TestCase):
    def _fit(self, callbacks, recipe="paper", epochs=1):
        x, y = testing_utils.classification_data(n=256)
        q = ttq_keras.quantize_model(
            testing_utils.mlp(), keep_first_and_last_float=False, recipe=recipe
        )
        q.compile(
            optimizer=keras.optimizers.SGD(0.01),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        q.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=callbacks)
        return q

    def testStopsAtTheFirstCheckAfterANaNAndNamesTheLayer(self):
        with self.assertRaisesRegex(
            ttq_keras.TrainingDivergedError,
            r"TTQGuard: at step 4 \(epoch 1, batch 4\).*first bad ternary layer: layer "
            r"'quant_dense1': Wn is NaN",
        ):
            # Corrupted after step 4, before the guard's check at step 4 (callback order): the
            # NaN has not spread through a backward pass yet, so one layer is named.
            self._fit(
                [
                    _Corrupt("quant_dense1", "wn", float("nan"), step=4),
                    ttq_keras.TTQGuard(check_every=2),
                ]
            )

    def testSignFlipIsReported(self):
        with self.assertRaisesRegex(
            ttq_keras.TrainingDivergedError, r"layer 'quant_dense0': Wp flipped sign \(min -0.5"
        ):
            self._fit(
                [_Corrupt("quant_dense0", "wp", -0.5, step=1), ttq_keras.TTQGuard(check_every=1)]
            )

    def testHealthyTrainingIsNotStopped(self):
        guard = ttq_keras.TTQGuard(check_every=1)
        self._fit([guard], recipe="robust", epochs=2)
        self.assertEqual(guard._step, 16)  # pylint: disable=protected-access

    def testBadCheckEveryIsAnError(self):
        with self.assertRaisesRegex(ValueError, "check_every"):
            ttq_keras.TTQGuard(check_every=0)


class TernaryVariablesTest(tf.test.TestCase):
    def testReturnsTheTrainedVariablesThemselves(self):
        q = ttq_keras.quantize_model(testing_utils.small_cnn())
        variables = ttq_keras.ternary_variables(q.get_layer("quant_conv1"))
        self.assertLen(variables, 1)
        trainable = {id(v) for v in q.trainable_weights}
        self.assertIn(id(variables[0].kernel), trainable)
        self.assertIn(id(variables[0].wp), trainable)
        self.assertIn(id(variables[0].wn), trainable)
        self.assertEqual(variables[0].kernel.shape, (3, 3, 8, 12))
        self.assertEqual(ttq_keras.ternary_variables(q.get_layer("conv0")), [])


if __name__ == "__main__":
    tf.test.main()
