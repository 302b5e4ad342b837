"""The TTQ forward values and every gradient against an independent NumPy computation."""

import numpy as np
from absl.testing import parameterized

from ttq_keras import ops, tf


def numpy_ttq(w, wp, wn, t, g):
    """Forward and gradients of the authors' code, written independently in NumPy."""
    delta = t * np.max(np.abs(w))
    pos = w > delta
    neg = w < -delta
    zero = ~(pos | neg)
    wp_b = np.broadcast_to(wp, w.shape)
    wn_b = np.broadcast_to(wn, w.shape)
    out = np.where(pos, wp_b, 0.0) - np.where(neg, wn_b, 0.0)
    grad_w = np.where(pos, g * wp_b, 0.0) + np.where(neg, g * wn_b, 0.0) + np.where(zero, g, 0.0)
    lead = tuple(range(w.ndim - np.ndim(wp)))
    grad_wp = np.sum(np.where(pos, g, 0.0), axis=lead)
    grad_wn = -np.sum(np.where(neg, g, 0.0), axis=lead)
    return out, grad_w, grad_wp, grad_wn


def with_values_at_threshold(w, t):
    """Puts entries exactly at and just around ±Δ (Δ computed from the unchanged max)."""
    w = w.copy()
    flat = w.reshape(-1)
    delta = np.float32(t) * np.max(np.abs(flat))
    eps = np.float32(1e-6) * max(delta, np.float32(1e-6))
    specials = [delta, -delta, delta + eps, delta - eps, -delta + eps, -delta - eps, 0.0]
    order = np.argsort(np.abs(flat))  # overwrite small entries, keep the max in place
    for i, value in zip(order[: len(specials)], specials):
        flat[i] = value
    return w


class TernarizeTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("dense_per_layer", (7, 5), False, 0.05),
        ("conv_per_layer", (3, 3, 4, 6), False, 0.05),
        ("conv_per_channel", (3, 3, 4, 6), True, 0.05),
        ("dense_per_channel_high_t", (9, 4), True, 0.3),
        ("depthwise_per_channel", (3, 3, 5, 2), "depthwise", 0.1),
        ("vector", (11,), False, 0.0),
    )
    def testForwardAndGradientsMatchNumpy(self, shape, per_channel, t):
        rng = np.random.default_rng(len(shape) * 31 + int(t * 100))
        w = with_values_at_threshold(rng.normal(size=shape).astype(np.float32), t)
        if per_channel == "depthwise":
            scale_shape = shape[-2:]
        elif per_channel:
            scale_shape = shape[-1:]
        else:
            scale_shape = ()
        wp = rng.uniform(0.5, 2.0, size=scale_shape).astype(np.float32)
        wn = rng.uniform(0.5, 2.0, size=scale_shape).astype(np.float32)
        g = rng.normal(size=shape).astype(np.float32)

        w_var, wp_var, wn_var = tf.Variable(w), tf.Variable(wp), tf.Variable(wn)
        with tf.GradientTape() as tape:
            out = ops.ternarize(w_var, wp_var, wn_var, ops.ttq_threshold(w_var, t))
            loss = tf.reduce_sum(out * g)
        grad_w, grad_wp, grad_wn = tape.gradient(loss, [w_var, wp_var, wn_var])

        ref_out, ref_w, ref_wp, ref_wn = numpy_ttq(w, wp, wn, np.float32(t), g)
        self.assertAllClose(out, ref_out, rtol=0, atol=0)
        self.assertAllClose(grad_w, ref_w, rtol=1e-6, atol=1e-6)
        self.assertAllClose(grad_wp, ref_wp, rtol=1e-5, atol=1e-5)
        self.assertAllClose(grad_wn, ref_wn, rtol=1e-5, atol=1e-5)
        self.assertEqual(grad_wp.shape, wp.shape)

    def testValuesExactlyAtThresholdAreZero(self):
        w = tf.constant([1.0, 0.5, -0.5, 0.49, -0.51, 0.51])
        out = ops.ternarize(w, 2.0, 3.0, tf.constant(0.5))
        self.assertAllEqual(out, [2.0, 0.0, 0.0, 0.0, -3.0, 2.0])
        self.assertAllEqual(ops.ternary_codes(w, 0.5), [1, 0, 0, 0, -1, 1])

    def testWnGradientIsMinusSumOverNegatives(self):
        # The paper's printed eq. 7 has no minus sign; the official code's autodiff does.
        w = tf.constant([-1.0, -2.0, 0.0, 3.0])
        wn = tf.Variable(1.0)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(ops.ternarize(w, 1.0, wn, tf.constant(0.5)))
        self.assertAllClose(tape.gradient(loss, wn), -2.0)

    def testNoGradientThroughThreshold(self):
        w = tf.Variable([0.04, -1.0, 0.5, 2.0])
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(ops.ternarize(w, 1.0, 1.0, ops.ttq_threshold(w, 0.05)))
        # Only the scaled straight-through term: no contribution from d(Δ)/d(max|w|).
        self.assertAllClose(tape.gradient(loss, w), [1.0, 1.0, 1.0, 1.0])

    def testFitScalesIsMeanOfEachSide(self):
        w = np.array([[0.9, -0.2], [0.3, -0.8], [0.01, 0.6], [-0.4, -0.02]], np.float32)
        wp, wn = ops.fit_scales(w, 0.05)
        self.assertAllClose(wp, np.mean([0.9, 0.3, 0.6]))
        self.assertAllClose(wn, np.mean([0.2, 0.8, 0.4]))
        wp_c, wn_c = ops.fit_scales(w, 0.05, scale_rank=1)
        self.assertAllClose(wp_c, [0.6, 0.6])
        self.assertAllClose(wn_c, [0.4, 0.5])

    def testTwnUsesFixedScaleAndIdentityGradient(self):
        w = tf.Variable([[1.0, -0.1], [-2.0, 0.9]])
        with tf.GradientTape() as tape:
            out, alpha, delta = ops.twn_ternarize(w)
            loss = tf.reduce_sum(out * tf.constant([[1.0, 2.0], [3.0, 4.0]]))
        self.assertAllClose(delta, 0.7 * 1.0)
        self.assertAllClose(alpha, (1.0 + 2.0 + 0.9) / 3)
        self.assertAllClose(out, [[alpha, 0.0], [-alpha, alpha]])
        self.assertAllClose(tape.gradient(loss, w), [[1.0, 2.0], [3.0, 4.0]])


if __name__ == "__main__":
    tf.test.main()
