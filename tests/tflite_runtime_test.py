"""The runtime matrix's tflite_runtime leg: the converter's packed test models
(tests/testing_utils.py) run under tflite_runtime 2.14 with the x86 libttq_delegate.so,
in their own venv (.venv-tflite-runtime: tflite-runtime==2.14.0, numpy<2; `make
tflite-runtime-venv`), driven through a subprocess (tests/tflite_runtime_child.py) and compared
with Keras. Both modes, 1 and 2 threads; every TTQ op must be delegated.

The other legs: LiteRT 2.3 and TF 2.21 tf.lite (delegate_test.py), TFLite 2.18's C API on
aarch64 under qemu (aarch64_e2e_test.py).
"""

import ttq_keras  # noqa: F401  isort: skip  (sets TF_USE_LEGACY_KERAS before TF loads)

import json
import os
import subprocess
import tempfile

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests import testing_utils as rm
from ttq_keras.runtime import delegate as ttq_delegate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.environ.get(
    "TTQ_TFLITE_RUNTIME_PYTHON", os.path.join(REPO, ".venv-tflite-runtime", "bin", "python")
)
CHILD = os.path.join(REPO, "tests", "tflite_runtime_child.py")


def run_in_tflite_runtime(runs, tmp):
    """Runs `runs` (dicts of case, mode, num_threads) in the venv; returns (report, outputs)."""
    job = {"library": ttq_delegate.library_path(), "runs": []}
    for i, r in enumerate(runs):
        case = r["case"]
        model = os.path.join(tmp, f"{case.name}.tflite")
        if not os.path.exists(model):
            with open(model, "wb") as f:
                f.write(case.packed)
        x = os.path.join(tmp, f"{case.name}_x.npy")
        np.save(x, case.x)
        job["runs"].append(
            dict(
                model=model,
                input=x,
                output=os.path.join(tmp, f"y{i}.npy"),
                mode=r["mode"],
                num_threads=r["num_threads"],
            )
        )
    job_path = os.path.join(tmp, "job.json")
    with open(job_path, "w") as f:
        json.dump(job, f)
    proc = subprocess.run(
        [VENV_PYTHON, CHILD, job_path], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise AssertionError(f"tflite_runtime child failed:\n{proc.stderr[-4000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return report, [np.load(r["output"]) for r in job["runs"]]


class TfliteRuntimeTest(tf.test.TestCase, parameterized.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not os.path.isfile(VENV_PYTHON):  # `make test` creates it before pytest runs
            raise AssertionError(f"{VENV_PYTHON} missing; run `make tflite-runtime-venv`")

    def testConvertedModelsMatchKeras(self):
        runs = [
            dict(case=rm.packed_case(name), mode=mode, num_threads=threads)
            for name in rm.MODELS
            for mode in ("exact", "fast")
            for threads in (1, 2)
        ]
        with tempfile.TemporaryDirectory() as tmp:
            report, outputs = run_in_tflite_runtime(runs, tmp)
        self.assertEqual(report["tflite_runtime"], "2.14.0")
        for run, result, got in zip(runs, report["runs"], outputs):
            case = run["case"]
            with self.subTest(model=case.name, mode=run["mode"], threads=run["num_threads"]):
                delegated = [(n, op) for n, op, _ in result["delegated"]]
                self.assertEqual(delegated, list(case.ttq_ops))
                self.assertEqual(got.shape, case.want.shape)
                err = rm.relative_error(got, case)
                self.assertLessEqual(err, rm.TOLERANCE[run["mode"]])
                if run["mode"] == "fast":
                    self.assertTrue(all("int8" in k for _, _, k in result["delegated"]))

    def testBadOptionIsAClearErrorInTfliteRuntime(self):
        with tempfile.TemporaryDirectory() as tmp:
            case = rm.packed_case("mlp")
            with self.assertRaisesRegex(
                AssertionError, r"option 'num_threads' must be an integer in \[1, 1024\]; got '0'"
            ):
                run_in_tflite_runtime([dict(case=case, mode="exact", num_threads=0)], tmp)
