"""MultiWorkerMirroredStrategy: two worker processes on localhost train exactly as one does."""

import json
import os
import socket
import subprocess
import sys
import tempfile

import numpy as np

from ttq_keras import tf

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TIMEOUT = 600


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _env(tf_config=None):
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env["PYTHONPATH"] = _ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _start(output, tf_config=None):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.multi_worker_child", "--output", output],
        cwd=_ROOT,
        env=_env(tf_config),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(process, what):
    try:
        out, _ = process.communicate(timeout=_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        raise AssertionError(f"{what} timed out after {_TIMEOUT} s:\n{out[-3000:]}")
    if process.returncode != 0:
        raise AssertionError(f"{what} exited with {process.returncode}:\n{out[-3000:]}")


class MultiWorkerTest(tf.test.TestCase):
    def testTwoWorkersMatchOneProcess(self):
        tmp = tempfile.mkdtemp()
        ports = _free_ports(2)
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        outputs = [os.path.join(tmp, f"worker{i}.npz") for i in range(2)]
        single_output = os.path.join(tmp, "single.npz")
        workers = [
            _start(outputs[i], {"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(2)
        ]
        try:
            for i, worker in enumerate(workers):
                _wait(worker, f"worker {i}")
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
        _wait(_start(single_output), "the single-process run")

        single = np.load(single_output)
        self.assertNotEmpty(single.files)
        self.assertContainsSubset(
            {"quant_dense0/wp", "quant_dense0/wn", "quant_dense0/kernel"}, set(single.files)
        )
        for i, path in enumerate(outputs):
            distributed = np.load(path)
            self.assertCountEqual(distributed.files, single.files)
            for name in single.files:
                self.assertAllClose(
                    distributed[name], single[name], rtol=1e-5, atol=1e-6, msg=f"worker {i}: {name}"
                )
        # Training moved the scales away from their init: the comparison is not vacuous.
        for name in single.files:
            if name.startswith("initial/"):
                self.assertNotAllClose(single[name], single[name[len("initial/") :]])
