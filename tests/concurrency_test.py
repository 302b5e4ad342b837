"""Several TTQ-delegate interpreters at once on the same packed model, in threads and processes.

The model is tests/data/hostile/valid_converted_mobilenet_block.tflite (written by
ttq_keras.convert; conv, depthwise and dense TTQ ops). Each worker feeds its own inputs
(different per worker, so crossed buffers would show) and every result must be bitwise equal
to the same input run alone, first in this process: the delegate's kernels and its thread pool
(num_threads=2) are deterministic for a given thread count.
"""

import concurrent.futures
import multiprocessing
import os
import threading
import unittest

import numpy as np

import ttq_keras

MODEL = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "data",
    "hostile",
    "valid_converted_mobilenet_block.tflite",
)
WORKERS = 4
ROUNDS = 6


def _model_bytes():
    with open(MODEL, "rb") as f:
        return f.read()


def _inputs(worker, shape):
    rng = np.random.default_rng(100 + worker)
    return [rng.normal(size=shape).astype(np.float32) for _ in range(ROUNDS)]


def _run(interpreter, x):
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def _new_interpreter(mode="exact"):
    interpreter = ttq_keras.Interpreter(model_content=_model_bytes(), num_threads=2, mode=mode)
    interpreter.allocate_tensors()
    return interpreter


def _process_worker(args):
    worker, shape, mode = args
    interpreter = _new_interpreter(mode)
    return [_run(interpreter, x) for x in _inputs(worker, shape)]


class ConcurrentInterpretersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.shape = tuple(_new_interpreter().get_input_details()[0]["shape"])
        cls.expected = {}
        for mode in ("exact", "fast"):
            alone = _new_interpreter(mode)
            cls.expected[mode] = {
                w: [_run(alone, x) for x in _inputs(w, cls.shape)] for w in range(WORKERS)
            }

    def _assert_expected(self, results, mode):
        self.assertEqual(len(results), WORKERS)
        for worker, outputs in results.items():
            self.assertEqual(len(outputs), ROUNDS)
            for got, want in zip(outputs, self.expected[mode][worker]):
                np.testing.assert_array_equal(got, want, err_msg=f"worker {worker}")

    def testDelegateIsUsed(self):
        ops = _new_interpreter().delegated_ops()
        self.assertGreaterEqual(len(ops), 3)

    def _one_interpreter_per_thread(self, mode):
        barrier = threading.Barrier(WORKERS)

        def work(worker):
            interpreter = _new_interpreter(mode)
            barrier.wait()  # invoke at the same time
            return worker, [_run(interpreter, x) for x in _inputs(worker, self.shape)]

        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            results = dict(pool.map(work, range(WORKERS)))
        self._assert_expected(results, mode)

    def testOneInterpreterPerThreadExact(self):
        self._one_interpreter_per_thread("exact")

    def testOneInterpreterPerThreadFast(self):
        self._one_interpreter_per_thread("fast")

    def testOneInterpreterSharedUnderALock(self):
        shared = _new_interpreter()
        lock = threading.Lock()
        barrier = threading.Barrier(WORKERS)

        def work(worker):
            barrier.wait()
            outputs = []
            for x in _inputs(worker, self.shape):
                with lock:  # set_tensor / invoke / get_tensor as one step
                    outputs.append(_run(shared, x))
            return worker, outputs

        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            results = dict(pool.map(work, range(WORKERS)))
        self._assert_expected(results, "exact")

    def testInterpretersInParallelProcesses(self):
        context = multiprocessing.get_context("spawn")  # no fork after TF has started threads
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
            jobs = [(w, self.shape, "exact") for w in range(WORKERS)]
            outputs = list(pool.map(_process_worker, jobs))
        self._assert_expected(dict(enumerate(outputs)), "exact")


if __name__ == "__main__":
    unittest.main()
