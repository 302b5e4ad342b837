"""ttq_keras.correct_ternarization: empirical bias correction and least-squares scale matching
of a freshly ternarized model, checked against independent NumPy computations."""

import numpy as np

import ttq_keras
from ttq_keras import calibration, keras, tf


def _randomize_biases(model, seed=1, scale=0.3):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if getattr(layer, "use_bias", False):
            layer.bias.assign(rng.normal(scale=scale, size=layer.bias.shape).astype(np.float32))


def _dense_model(seed=0, activations=("relu", None, "relu")):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12,))
    x = inputs
    for i, (width, activation) in enumerate(zip((16, 16, 8), activations)):
        x = keras.layers.Dense(width, activation=activation, name=f"d{i}")(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(x))
    _randomize_biases(model)
    return model


def _conv_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c0")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(x)
    x = keras.layers.DepthwiseConv2D(
        3, depth_multiplier=2, padding="same", activation="relu", name="dw"
    )(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    _randomize_biases(model)
    return model


def _batches(shape, n_batches=4, batch=32, seed=0):
    # Non-negative inputs (like images): the ternary kernels then shift the channel means.
    rng = np.random.default_rng(seed)
    return [rng.uniform(size=(batch,) + shape).astype(np.float32) for _ in range(n_batches)]


def _pre_activation(model, layer_name, batches):
    """The pre-activation output of `layer_name` in `model` on each batch, computed on a copy
    of the model whose layer has its activation removed (independent of calibration.py)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    layer = copy.get_layer(layer_name)
    layer.activation = keras.activations.linear
    sub = keras.Model(copy.inputs, layer.output)
    return [sub(x, training=False).numpy() for x in batches]


def _channel_means(outputs):
    flat = np.concatenate([y.reshape(-1, y.shape[-1]) for y in outputs]).astype(np.float64)
    return flat.mean(axis=0)


def _weights(model):
    """{"layer/short variable name": value} over the model's layers."""
    return {
        f"{layer.name}/{v.name.split('/')[-1].split(':')[0]}": v.numpy()
        for layer in model.layers
        for v in layer.weights
    }


def _changed(model, before):
    return {k for k, v in _weights(model).items() if not np.array_equal(v, before[k])}


def _inner_names(q_model):
    return [info.inner_name for info in ttq_keras.ternary_layers(q_model)]


class BiasCorrectionTest(tf.test.TestCase):
    def _check_means_match(self, model, batches, match="output", **quantize_kwargs):
        q = ttq_keras.quantize_model(model, keep_first_and_last_float=False, **quantize_kwargs)
        names = _inner_names(q)
        gaps_before = [
            np.max(
                np.abs(
                    _channel_means(_pre_activation(ttq_keras.to_float_model(q), n, batches))
                    - _channel_means(_pre_activation(model, n, batches))
                )
            )
            for n in names
        ]
        records = ttq_keras.correct_ternarization(
            q,
            model,
            tf.data.Dataset.from_tensor_slices(np.concatenate(batches)).batch(32),
            method="bias",
            match=match,
        )
        self.assertEqual([r.name for r in records], [f"quant_{n}" for n in names])
        self.assertTrue(all(r.bias_corrected and not r.scales_refit for r in records))
        ternarized = ttq_keras.to_float_model(q)
        for name in names:
            self.assertAllClose(
                _channel_means(_pre_activation(ternarized, name, batches)),
                _channel_means(_pre_activation(model, name, batches)),
                rtol=0,
                atol=1e-5,
                msg=name,
            )
        # The correction had something to do: the means differed before.
        self.assertGreater(max(gaps_before), 0.05)
        return q, records

    def testDenseChannelMeansMatchTheFloatOnes(self):
        # Without a ReLU after them the layers' outputs are matched as they are (default).
        model = _dense_model(activations=(None, None, "tanh"))
        _, records = self._check_means_match(model, _batches((12,)))
        self.assertEqual([r.relu for r in records], [False] * 4)
        # With ReLUs, match="pre_activation" is Nagel et al.'s correction of the means.
        _, records = self._check_means_match(_dense_model(), _batches((12,)), "pre_activation")
        self.assertEqual([r.relu for r in records], [False] * 4)

    def testConvAndDepthwiseChannelMeansMatchTheFloatOnes(self):
        model = _conv_model()
        for per_channel in (False, True):
            self._check_means_match(
                model, _batches((8, 8, 3)), "pre_activation", per_channel=per_channel
            )

    def testOnlyTheBiasesChange(self):
        model = _conv_model()
        float_before = model.get_weights()
        q = ttq_keras.quantize_model(model, keep_first_and_last_float=False)
        before = _weights(q)
        ttq_keras.correct_ternarization(q, model, [_batches((8, 8, 3))[0]], method="bias")
        changed = _changed(q, before)
        self.assertEqual(changed, {f"quant_{n}/bias" for n in _inner_names(q)})
        for a, b in zip(model.get_weights(), float_before):  # the float model is untouched
            self.assertAllEqual(a, b)

    def testUsesOnlyStepsBatchesAndAcceptsLabelledData(self):
        model = _dense_model()
        batches = _batches((12,), n_batches=4)
        x = np.concatenate(batches)
        labelled = tf.data.Dataset.from_tensor_slices((x, np.zeros(len(x), np.int32))).batch(32)
        q_two = ttq_keras.quantize_model(model, keep_first_and_last_float=False)
        ttq_keras.correct_ternarization(q_two, model, labelled, steps=2)
        q_first = ttq_keras.quantize_model(model, keep_first_and_last_float=False)
        ttq_keras.correct_ternarization(q_first, model, batches[:2], steps=8)
        for a, b in zip(q_two.get_weights(), q_first.get_weights()):
            self.assertAllClose(a, b, rtol=1e-6, atol=1e-6)
        q_all = ttq_keras.quantize_model(model, keep_first_and_last_float=False)
        ttq_keras.correct_ternarization(q_all, model, batches)
        self.assertNotAllClose(
            q_all.get_layer("quant_d0").layer.bias, q_two.get_layer("quant_d0").layer.bias
        )

    def testNormalizedLayersAndLayersWithoutBiasAreLeftAlone(self):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((10,))
        x = keras.layers.Dense(8, name="first")(inputs)
        x = keras.layers.Dense(8, name="to_bn")(x)
        x = keras.layers.BatchNormalization(name="bn")(x)
        x = keras.layers.Dense(8, use_bias=False, activation="relu", name="no_bias")(x)
        x = keras.layers.Dense(8, activation="relu", name="plain")(x)
        model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
        _randomize_biases(model)
        q = ttq_keras.quantize_model(model)
        before = _weights(q)
        records = ttq_keras.correct_ternarization(q, model, _batches((10,)), method="bias")
        self.assertEqual(
            [(r.name, r.bias_corrected) for r in records],
            [("quant_no_bias", False), ("quant_plain", True)],
        )
        self.assertEqual(records[0].mse_before, records[0].mse_after)
        changed = _changed(q, before)
        self.assertEqual(changed, {"quant_plain/bias"})
        # The scales of a layer without bias are still refit.
        records = ttq_keras.correct_ternarization(q, model, _batches((10,)))
        self.assertEqual(
            [(r.name, r.bias_corrected, r.scales_refit) for r in records],
            [("quant_no_bias", False, True), ("quant_plain", True, True)],
        )
        self.assertLess(records[0].mse_after, records[0].mse_before)
        self.assertEqual(
            _changed(q, before),
            {f"quant_{n}/kernel_{s}" for n in ("no_bias", "plain") for s in ("wp", "wn")}
            | {"quant_plain/bias"},
        )
        records = ttq_keras.correct_ternarization(
            q, model, _batches((10,)), include_normalized=True
        )
        self.assertEqual([r.name for r in records], ["quant_to_bn", "quant_no_bias", "quant_plain"])


class ScaleMatchingTest(tf.test.TestCase):
    def _first_layer_problem(self, model, q, batches):
        """y_P, y_N, y_F of the first ternary layer (its input is the same in both models)."""
        info = ttq_keras.ternary_layers(q)[0]
        float_layer = model.get_layer(info.inner_name)
        x = np.concatenate(batches).astype(np.float64)
        kernel = float_layer.kernel.numpy().astype(np.float64)
        yf = x @ kernel + float_layer.bias.numpy()
        yp = x @ (info.codes == 1).astype(np.float64)
        yn = x @ (info.codes == -1).astype(np.float64)
        return info, yp, yn, yf

    def testScalesAndBiasAreTheLeastSquaresFit(self):
        model = _dense_model()
        batches = _batches((12,))
        for per_channel in (False, True):
            q = ttq_keras.quantize_model(
                model, keep_first_and_last_float=False, per_channel=per_channel
            )
            info, yp, yn, yf = self._first_layer_problem(model, q, batches)
            channels = yf.shape[1]
            bias_init = q.get_layer("quant_d0").layer.bias.numpy()
            mse_init = np.mean((info.wp * yp - info.wn * yn + bias_init - yf) ** 2)
            records = ttq_keras.correct_ternarization(
                q, model, batches, method="scales", match="pre_activation"
            )
            self.assertTrue(records[0].scales_refit and records[0].bias_corrected)
            variables = ttq_keras.ternary_variables(q.get_layer("quant_d0"))[0]
            bias = q.get_layer("quant_d0").layer.bias.numpy()
            if per_channel:
                for k in range(channels):
                    # A channel without +1 (-1) codes keeps its Wp (Wn): nothing to fit.
                    used = [np.any(info.codes[:, k] == 1), np.any(info.codes[:, k] == -1)]
                    columns = [yp[:, k], -yn[:, k]]
                    design = np.stack(
                        [col for col, u in zip(columns, used) if u] + [np.ones(len(yp))], axis=1
                    )
                    solution = list(np.linalg.lstsq(design, yf[:, k], rcond=None)[0])
                    b = solution.pop()
                    wp = solution.pop(0) if used[0] else info.wp[k]
                    wn = solution.pop(0) if used[1] else info.wn[k]
                    self.assertGreater(min(wp, wn), 1e-3)  # the floor does not bind here
                    self.assertAllClose(
                        [variables.wp.numpy()[k], variables.wn.numpy()[k], bias[k]],
                        [wp, wn, b],
                        rtol=1e-4,
                        atol=1e-5,
                    )
            else:
                # One (Wp, Wn) for the layer, one intercept per channel.
                design = np.concatenate(
                    [
                        yp.reshape(-1, 1),
                        -yn.reshape(-1, 1),
                        np.tile(np.eye(channels), (len(yp), 1)),
                    ],
                    axis=1,
                )
                solution, *_ = np.linalg.lstsq(design, yf.reshape(-1), rcond=None)
                self.assertGreater(min(solution[:2]), 1e-3)
                self.assertAllClose(variables.wp.numpy(), solution[0], rtol=1e-4)
                self.assertAllClose(variables.wn.numpy(), solution[1], rtol=1e-4)
                self.assertAllClose(bias, solution[2:], rtol=1e-4, atol=1e-5)
            fitted = variables.wp.numpy() * yp - variables.wn.numpy() * yn + bias
            mse_fit = np.mean((fitted - yf) ** 2)
            self.assertAllClose(records[0].mse_before, mse_init, rtol=1e-4)
            self.assertAllClose(records[0].mse_after, mse_fit, rtol=1e-4)
            self.assertLess(mse_fit, 0.5 * mse_init)
            # The codes (latent kernel, threshold) are unchanged.
            self.assertAllEqual(ttq_keras.ternary_layers(q)[0].codes, info.codes)

    def testConstrainedPairIsTheBestFeasiblePoint(self):
        rng = np.random.default_rng(0)
        floor = 1e-3
        for trial in range(20):
            yp, yn = rng.normal(size=(2, 200))
            yf = rng.normal() * yp + rng.normal() * yn + 0.3 * rng.normal(size=200)
            pp, nn, pn = yp @ yp, yn @ yn, yp @ yn
            pf, nf = yp @ yf, yn @ yf
            a, c = calibration._fit_pair(pp, nn, pn, pf, nf, 1.0, 1.0, floor)
            self.assertGreaterEqual(min(a, c), floor)
            grid = np.concatenate([[floor], np.linspace(floor, 3.0, 200)])
            aa, cc = np.meshgrid(grid, grid)
            sse = ((aa[..., None] * yp - cc[..., None] * yn - yf) ** 2).sum(-1)
            self.assertLessEqual(np.sum((a * yp - c * yn - yf) ** 2), sse.min() + 1e-9, trial)

    def testEmptyCodeSetKeepsItsScale(self):
        yp = np.random.default_rng(1).normal(size=100)
        yf = 2.0 * yp
        a, c = calibration._fit_pair(yp @ yp, 0.0, 0.0, yp @ yf, 0.0, 0.7, 0.4, 1e-3)
        self.assertAllClose([a, c], [2.0, 0.4])

    def testMatchingTheLayersImprovesTheTernarizedModel(self):
        # A float model trained on a toy problem, ternarized everywhere: on held-out data the
        # calibrated model is nearer the float outputs and at least as accurate.
        rng = np.random.default_rng(0)
        x = rng.uniform(size=(1536, 12)).astype(np.float32)
        teacher = rng.normal(size=(12, 4))
        y = np.argmax((x - 0.5) @ teacher, axis=1)
        model = _dense_model(activations=("relu", "relu", "relu"))
        model.compile(
            keras.optimizers.Adam(1e-2),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x[:1024], y[:1024], epochs=15, batch_size=64, verbose=0)
        held_out, labels = x[1024:], y[1024:]
        reference = model.predict(held_out, verbose=0)

        def scores(q):
            out = q.predict(held_out, verbose=0)
            return np.mean((out - reference) ** 2), np.mean(np.argmax(out, 1) == labels)

        data = tf.data.Dataset.from_tensor_slices(x[:1024]).batch(128)
        results = {}
        for method in ("none", "bias", "scales"):
            q = ttq_keras.quantize_model(model, keep_first_and_last_float=False)
            if method != "none":
                ttq_keras.correct_ternarization(q, model, data, method=method)
            results[method] = scores(q)
        # Measured: MSE 23.3 / 10.0 / 4.5 and accuracy 53% / 74% / 79% (none / bias / scales).
        self.assertLess(results["bias"][0], 0.7 * results["none"][0], results)
        self.assertLess(results["scales"][0], 0.7 * results["bias"][0], results)
        self.assertGreater(results["bias"][1], results["none"][1] + 0.1, results)
        self.assertGreater(results["scales"][1], results["none"][1] + 0.1, results)


def _relu_objective(yp, yn, yf, a, c, b):
    """Σ over y_F > 0 of (y_Q − y_F)² + Σ over y_F <= 0 of max(y_Q, 0)², per channel."""
    yq = a * yp - c * yn + b
    return np.sum(np.where(yf > 0, yq - yf, np.maximum(yq, 0.0)) ** 2, axis=0)


class ReluOutputMatchingTest(tf.test.TestCase):
    """Where a ReLU follows, the default match="output" fits the post-ReLU output."""

    def _problem(self, method, dead=(0, 1, 2), per_channel=False):
        model = _dense_model()
        d0 = model.get_layer("d0")
        bias = d0.bias.numpy()
        bias[list(dead)] = -3.0  # channels that never fire in the float model
        d0.bias.assign(bias)
        batches = _batches((12,))
        q = ttq_keras.quantize_model(
            model, keep_first_and_last_float=False, per_channel=per_channel
        )
        info = ttq_keras.ternary_layers(q)[0]
        # Make the ternary layer fire on the dead channels, as ternarization can.
        q.get_layer("quant_d0").layer.bias.assign(np.zeros_like(bias))
        records = ttq_keras.correct_ternarization(q, model, batches, method=method)
        x = np.concatenate(batches).astype(np.float64)
        yf = x @ d0.kernel.numpy().astype(np.float64) + d0.bias.numpy()
        yp = x @ (info.codes == 1).astype(np.float64)
        yn = x @ (info.codes == -1).astype(np.float64)
        variables = ttq_keras.ternary_variables(q.get_layer("quant_d0"))[0]
        a, c = variables.wp.numpy(), variables.wn.numpy()
        b = q.get_layer("quant_d0").layer.bias.numpy().astype(np.float64)
        return records, (yp, yn, yf), (a, c, b)

    def testBiasMinimisesTheReluObjectiveAndKeepsDeadChannelsDead(self):
        dead = (0, 1, 2)
        records, (yp, yn, yf), (a, c, b) = self._problem("bias", dead)
        self.assertTrue(records[0].relu)
        self.assertLess(records[0].mse_after, records[0].mse_before)
        yq = a * yp - c * yn + b
        self.assertAllEqual(np.max(yf[:, list(dead)], axis=0) <= 0, [True] * len(dead))
        self.assertLessEqual(np.max(yq[:, list(dead)]), 1e-6)
        # Each channel's bias is the 1-D minimum (a dense scan around it finds nothing lower).
        best = _relu_objective(yp, yn, yf, a, c, b)
        for shift in np.linspace(-1.0, 1.0, 201):
            value = _relu_objective(yp, yn, yf, a, c, b + shift)
            self.assertAllGreaterEqual(value - best + 1e-7 * (1 + best), 0.0)

    def testScalesMinimiseTheReluObjective(self):
        for per_channel in (False, True):
            records, (yp, yn, yf), (a, c, b) = self._problem("scales", per_channel=per_channel)
            self.assertTrue(records[0].scales_refit and records[0].relu)
            best = _relu_objective(yp, yn, yf, a, c, b).sum()
            rng = np.random.default_rng(0)
            for _ in range(100):
                da, dc = rng.normal(size=(2,) + np.shape(a)) * 1e-2
                db = rng.normal(size=b.shape) * 1e-2
                value = _relu_objective(yp, yn, yf, a + da, c + dc, b + db).sum()
                self.assertGreaterEqual(value, best - 1e-7 * best)

    def testAReluLayerAfterTheKernelCounts(self):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((6, 6, 3))
        x = keras.layers.Conv2D(4, 3, name="c0")(inputs)
        y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
        y = keras.layers.ReLU()(y)  # the only reader of dw: dw is matched after the ReLU
        y = keras.layers.Conv2D(4, 1, name="pw")(y)
        y = keras.layers.Add()([x, y])  # pw feeds an Add: matched as it is
        y = keras.layers.Flatten()(y)
        model = keras.Model(inputs, keras.layers.Dense(2, name="head")(y))
        q = ttq_keras.quantize_model(model)
        records = ttq_keras.correct_ternarization(q, model, _batches((6, 6, 3)))
        self.assertEqual(
            [(r.name, r.relu) for r in records], [("quant_dw", True), ("quant_pw", False)]
        )


class BadInputTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.model = _dense_model()
        self.q = ttq_keras.quantize_model(self.model, keep_first_and_last_float=False)
        self.data = _batches((12,), n_batches=1)

    def testBadArgumentsAreNamed(self):
        for kwargs, pattern in (
            (dict(steps=0), "`steps` must be a positive integer"),
            (dict(steps=1.5), "`steps` must be a positive integer"),
            (dict(method="mean"), "`method` must be one of"),
            (dict(match="post"), "`match` must be one of"),
        ):
            with self.assertRaisesRegex(ValueError, pattern):
                ttq_keras.correct_ternarization(self.q, self.model, self.data, **kwargs)
        with self.assertRaisesRegex(ValueError, "yielded no batch"):
            ttq_keras.correct_ternarization(self.q, self.model, [])
        with self.assertRaisesRegex(ValueError, "must yield batches"):
            ttq_keras.correct_ternarization(self.q, self.model, self.data[0])

    def testWrongModelsAreNamed(self):
        with self.assertRaisesRegex(ValueError, "has no ternary layer"):
            ttq_keras.correct_ternarization(self.model, _dense_model(seed=1), self.data)
        with self.assertRaisesRegex(ValueError, "is itself quantized"):
            ttq_keras.correct_ternarization(self.q, ttq_keras.quantize_model(self.model), self.data)
        other = keras.Sequential([keras.Input((12,)), keras.layers.Dense(4, name="x")])
        with self.assertRaisesRegex(ValueError, "'quant_d0' has no float counterpart 'd0'"):
            ttq_keras.correct_ternarization(self.q, other, self.data)
        keras.utils.set_random_seed(0)
        inputs = keras.Input((12,))
        x = keras.layers.Dense(16, name="d0")(inputs)
        x = keras.layers.Dense(32, name="d1")(x)
        wider = keras.Model(inputs, x)
        with self.assertRaisesRegex(ValueError, r"kernel of 'd1' has shape \(16, 32\)"):
            ttq_keras.correct_ternarization(self.q, wider, self.data)


if __name__ == "__main__":
    tf.test.main()
