"""Tests of the per-op profile (ttq_keras.runtime.profile, `benchmark --profile`) and of the
runtime's thread count next to the delegate (ttq_keras.runtime.thread_plan)."""

import ttq_keras  # noqa: F401  isort: skip  (sets TF_USE_LEGACY_KERAS before TF loads)

import contextlib
import io
import os
import tempfile

import numpy as np
import tensorflow as tf

from tests import testing_utils as pm
from ttq_keras._compat import keras
from ttq_keras.runtime import benchmark
from ttq_keras.runtime import delegate as ttq_delegate
from ttq_keras.runtime import profile as op_profile
from ttq_keras.runtime import thread_plan

L = keras.layers


def _dense_chain():
    """dense -> dense -> TANH -> dense, every dense a TTQ op: nodes 0, 1, 3 on the delegate."""
    rng = np.random.default_rng(3)
    chain = []
    for n_in, n_out in ((64, 48), (48, 32), (32, 8)):
        layer = L.Dense(n_out)
        keras.Sequential([keras.Input((n_in,)), layer])
        trits, wp, wn = pm.ternary_kernel((n_in, n_out), rng)
        layer.set_weights(
            [
                (wp * (trits == 1) - wn * (trits == -1)).astype(np.float32),
                np.zeros(n_out, np.float32),
            ]
        )
        chain.append(pm.op_from_keras_layer(layer, trits, wp, wn, [1, n_out]))
    return pm.build_packed_model([1, 64], [chain[0], chain[1], "TANH", chain[2]])


class OpProfileTest(tf.test.TestCase):
    def testProfileHasEveryOpInOrder(self):
        for threads in (1, 2):
            p = op_profile.profile_model(_dense_chain(), num_threads=threads, runs=20, warmup=2)
            # before node 0 (call overhead), 0, 1, TANH (2), 3, after node 3 (call overhead)
            self.assertEqual([op.nodes for op in p.ops], [(), (0,), (1,), (2,), (3,), ()])
            self.assertEqual(
                [op.op_names for op in p.ops],
                [
                    (),
                    ("TTQ_FULLY_CONNECTED",),
                    ("TTQ_FULLY_CONNECTED",),
                    ("TANH",),
                    ("TTQ_FULLY_CONNECTED",),
                    (),
                ],
            )
            self.assertEqual([op.is_ttq for op in p.ops], [False, True, True, False, True, False])
            self.assertTrue(p.ops[0].includes_call_overhead and p.ops[-1].includes_call_overhead)
            for op in p.ops:
                self.assertGreaterEqual(op.median_us, 0.0, op)
            for op in p.ops[1:-1]:
                # A broken clock hook gives 0 or a huge span (start 0).
                self.assertGreater(op.median_us, 0.0, op)
                self.assertLess(op.median_us, 1e6, op)
            # Per run the segments tile [t0, t1] exactly; medians are close to additive.
            self.assertLess(p.ttq_us + p.builtin_us, 3 * p.total_median_us + 100.0)

    def testBenchmarkCliPrintsTheProfile(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "chain.tflite")
            with open(path, "wb") as f:
                f.write(_dense_chain())
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                rc = benchmark.main([path, "--runs", "5", "--warmup", "1", "--profile"])
        self.assertEqual(rc, 0)
        text = out.getvalue()
        self.assertEqual(text.count("TTQ_FULLY_CONNECTED"), 3, text)
        self.assertIn("TANH", text)
        self.assertIn("whole invoke median", text)

    def testReportsTheThreadsEachOpRanOn(self):
        # The TTQ ops run on all threads or, where that measured slower, on the calling
        # thread alone (core/thread_choice.h); TTQ_NO_THREAD_CHOICE=1 always uses them all.
        cases = ((1, None, {1}), (2, None, {1, 2}), (2, "1", {2}))
        for threads, no_choice, expected in cases:
            with self.subTest(threads=threads, no_choice=no_choice):
                old = os.environ.pop("TTQ_NO_THREAD_CHOICE", None)
                if no_choice:
                    os.environ["TTQ_NO_THREAD_CHOICE"] = no_choice
                try:
                    p = op_profile.profile_model(_dense_chain(), num_threads=threads, runs=5)
                finally:
                    os.environ.pop("TTQ_NO_THREAD_CHOICE", None)
                    if old is not None:
                        os.environ["TTQ_NO_THREAD_CHOICE"] = old
                ttq = [op.threads for op in p.ops if op.is_ttq]
                self.assertEqual(len(ttq), 3)
                self.assertLessEqual(set(ttq), expected, p.ops)
                # One choice for the whole graph: a mix leaves the pool asleep between ops.
                self.assertEqual(len(set(ttq)), 1, p.ops)
                self.assertEqual({op.threads for op in p.ops if not op.is_ttq}, {None})
                self.assertIn(" threads ", op_profile.format_profile(p))

    def testFormatNamesKernels(self):
        p = op_profile.profile_model(_dense_chain(), runs=3, warmup=1)
        text = op_profile.format_profile(p, title="chain")
        self.assertTrue(text.startswith("chain\n"))
        kernels = {
            op.kernel
            for op in ttq_delegate.Interpreter(model_content=_dense_chain()).delegated_ops()
        }
        for k in kernels:
            self.assertIn(k[:28], text)


class ThreadPlanTest(tf.test.TestCase):
    def testRuntimeGetsOneThreadWhenTheDelegateDoesTheWork(self):
        packed = _dense_chain()
        interpreter = ttq_delegate.Interpreter(model_content=packed, num_threads=2)
        self.assertEqual(interpreter.num_threads, 2)
        self.assertEqual(interpreter.runtime_threads, 1)
        interpreter = ttq_delegate.Interpreter(
            model_content=packed, num_threads=2, runtime_threads=2
        )
        self.assertEqual(interpreter.runtime_threads, 2)
        self.assertEqual(ttq_delegate.Interpreter(model_content=packed).runtime_threads, 1)

    def testRuntimeKeepsThreadsForHeavyBuiltinOps(self):
        # A float model: all of its 4M multiply-accumulates are builtin ops.
        model = keras.Sequential([keras.Input((4096,)), L.Dense(1024)])
        flat = tf.lite.TFLiteConverter.from_keras_model(model).convert()
        interpreter = ttq_delegate.Interpreter(model_content=flat, num_threads=2)
        self.assertEqual(interpreter.runtime_threads, 2)
        from ai_edge_litert import interpreter as litert

        costs = thread_plan.op_costs(litert.Interpreter(model_content=flat))
        fc_macs = sum(c for name, c, _ in costs if name == "FULLY_CONNECTED")
        self.assertEqual(fc_macs, 4096 * 1024)

    def testBadRuntimeThreads(self):
        for bad in (0, -1, 1.5, True, "2"):
            with self.assertRaisesRegex(ValueError, "runtime_threads"):
                ttq_delegate.Interpreter(model_content=_dense_chain(), runtime_threads=bad)


if __name__ == "__main__":
    tf.test.main()
