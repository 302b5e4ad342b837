"""End to end on aarch64 in a real TFLite runtime: the converter's packed test models run under
qemu-aarch64 in TFLite 2.18.0's C API (libjnitensorflowlite.so of Maven
org.bytedeco:tensorflow-lite:2.18.0-1.5.11:linux-arm64, pinned in
scripts/fetch_pinned_artifact.sh) with the aarch64 build of libttq_delegate.so attached by
tflite_delegate/tools/tflite_runner.

Matrix: every model (all three TTQ ops) x mode (exact, fast) x threads (1, 2) x CPU model
(cortex-a53: no dotprod; max: dotprod and i8mm). Each run is compared with Keras, every TTQ op
must have been delegated, and the kernel each op ran is recorded. The largest relative error
per mode and CPU model is written to <build>/aarch64_e2e_summary.json.

Needs `make aarch64-e2e` (cross build + runtime fetch; `make test` runs it). Skipped only when
qemu-aarch64 or the aarch64 sysroot is missing (scripts/install_build_deps.sh installs both).
X86RunnerTest runs the runner's x86-64 build in the x86-64 build of the same runtime (no qemu).
"""

import ttq_keras  # noqa: F401  isort: skip  (sets TF_USE_LEGACY_KERAS before TF loads)

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests import testing_utils as rm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("TTQ_AARCH64_BUILD", os.path.join(REPO, "tflite_delegate", "build-aarch64"))
RUNNER = os.path.join(BUILD, "tools", "tflite_runner")
DELEGATE = os.path.join(BUILD, "libttq_delegate.so")
TFLITE_C_API = os.path.join(BUILD, "tflite_c_api", "libjnitensorflowlite.so")
SYSROOT = "/usr/aarch64-linux-gnu"
QEMU = shutil.which("qemu-aarch64")
CPUS = ("cortex-a53", "max")
MODES = ("exact", "fast")
THREADS = (1, 2)
SUMMARY = os.path.join(BUILD, "aarch64_e2e_summary.json")


def _skip_reason():
    if QEMU is None:
        return "qemu-aarch64 not installed (Debian qemu-user; scripts/install_build_deps.sh)"
    if not os.path.isfile(os.path.join(SYSROOT, "lib", "ld-linux-aarch64.so.1")):
        return f"no aarch64 sysroot in {SYSROOT} (g++-aarch64-linux-gnu; install_build_deps.sh)"
    return None


def run_aarch64(model_path, inputs, cpu, mode="exact", threads=1, delegate=True, shapes=()):
    """Runs tflite_runner under qemu; returns (returncode, report dict or None, outputs, stderr)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [QEMU, "-L", SYSROOT, "-cpu", cpu, RUNNER, f"--tflite_lib={TFLITE_C_API}"]
        if delegate:
            cmd.append(f"--delegate_lib={DELEGATE}")
        cmd += [f"--model={model_path}", f"--mode={mode}", f"--num_threads={threads}"]
        cmd += [f"--input_shape={','.join(map(str, s))}" for s in shapes]
        for i, x in enumerate(inputs):
            path = os.path.join(tmp, f"in{i}.bin")
            np.ascontiguousarray(x, np.float32).tofile(path)
            cmd.append(f"--input={path}")
        out_path = os.path.join(tmp, "out0.bin")
        cmd.append(f"--output={out_path}")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            return proc.returncode, None, None, proc.stderr
        report = json.loads(proc.stdout)
        shape = report["outputs"][0]["shape"]
        y = np.fromfile(out_path, np.float32).reshape(shape)
        return 0, report, y, proc.stderr


class Aarch64EndToEndTest(tf.test.TestCase, parameterized.TestCase):
    summary = {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        reason = _skip_reason()
        if reason:
            raise unittest.SkipTest(reason)
        missing = [p for p in (RUNNER, DELEGATE, TFLITE_C_API) if not os.path.isfile(p)]
        if missing:
            raise AssertionError(
                f"aarch64 end-to-end artifacts missing: {missing}; run `make aarch64-e2e`"
            )
        cls._tmp = tempfile.mkdtemp(prefix="ttq_aarch64_e2e_")

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "_tmp", None):
            shutil.rmtree(cls._tmp, ignore_errors=True)
        if cls.summary:
            with open(SUMMARY, "w") as f:
                json.dump(cls.summary, f, indent=1, sort_keys=True)
        super().tearDownClass()

    def _model_file(self, case):
        path = os.path.join(self._tmp, f"{case.name}.tflite")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(case.packed)
        return path

    def _record(self, key, err, kernels):
        entry = self.summary.setdefault(key, {"max_rel_err": 0.0, "kernels": []})
        entry["max_rel_err"] = max(entry["max_rel_err"], err)
        entry["kernels"] = sorted(set(entry["kernels"]) | set(kernels))

    @parameterized.named_parameters(
        *[
            {"testcase_name": f"{name}_{cpu.replace('-', '_')}", "name": name, "cpu": cpu}
            for name in rm.MODELS
            for cpu in CPUS
        ]
    )
    def testModelMatchesKerasAndEveryTtqOpIsDelegated(self, name, cpu):
        case = rm.packed_case(name)
        path = self._model_file(case)
        for mode in MODES:
            for threads in THREADS:
                with self.subTest(mode=mode, threads=threads):
                    rc, report, got, stderr = run_aarch64(
                        path, [case.x], cpu, mode, threads, shapes=[case.x.shape]
                    )
                    self.assertEqual(rc, 0, f"tflite_runner failed under -cpu {cpu}:\n{stderr}")
                    self.assertEqual(report["runtime_version"], "2.18.0")
                    delegated = [(d["node_index"], d["op_name"]) for d in report["delegated"]]
                    self.assertEqual(delegated, list(case.ttq_ops))
                    kernels = [d["kernel"] for d in report["delegated"]]
                    self.assertNotIn("", kernels)
                    if mode == "fast":  # fast mode must really be the int8 computation
                        self.assertTrue(all("int8" in k for k in kernels), kernels)
                    if cpu == "cortex-a53":  # ARMv8.0: the dispatch must not pick SDOT
                        self.assertFalse(any("dotprod" in k for k in kernels), kernels)
                    self.assertEqual(got.shape, case.want.shape)
                    err = rm.relative_error(got, case)
                    self.assertLessEqual(err, rm.TOLERANCE[mode], f"{name} {mode} {cpu}")
                    self._record(f"{mode}/{cpu}", err, kernels)

    def testWithoutTheDelegateThePackedModelDoesNotRun(self):
        # Proves the runtime is really running our ops: it cannot resolve them by itself.
        case = rm.packed_case("conv_stack_logits")
        rc, _, _, stderr = run_aarch64(
            self._model_file(case), [case.x], "max", delegate=False, shapes=[case.x.shape]
        )
        self.assertNotEqual(rc, 0)
        self.assertIn("unresolved custom op: TTQ_CONV_2D", stderr)

    def testWrongInputSizeIsAClearError(self):
        case = rm.packed_case("conv_stack_logits")
        rc, _, _, stderr = run_aarch64(
            self._model_file(case), [case.x[:1]], "cortex-a53", shapes=[case.x.shape]
        )
        self.assertNotEqual(rc, 0)
        self.assertRegex(stderr, r"input 0 .* has 1600 bytes; expected 3200")

    def testAarch64MatchesX86Delegate(self):
        # Same file, same exact-mode arithmetic contract: aarch64 (qemu, TFLite 2.18 C API) and
        # x86 (LiteRT 2.3 with the host build) agree far below the Keras tolerance.
        from ttq_keras.runtime import delegate as ttq_delegate

        case = rm.packed_case("dilated_conv")
        rc, _, got, stderr = run_aarch64(
            self._model_file(case), [case.x], "max", shapes=[case.x.shape]
        )
        self.assertEqual(rc, 0, stderr)
        interpreter = ttq_delegate.Interpreter(model_content=case.packed)
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], case.x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], case.x)
        interpreter.invoke()
        want = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * case.scale)


X86_BUILD = os.path.join(REPO, "tflite_delegate", "build")
X86_RUNNER = os.path.join(X86_BUILD, "tools", "tflite_runner")
X86_TFLITE_C_API = os.path.join(X86_BUILD, "tflite_c_api", "libjnitensorflowlite.so")


class X86RunnerTest(tf.test.TestCase):
    """The same runner built for x86-64, in the same TFLite 2.18.0 (linux-x86_64 artifact)."""

    def testConvStackMatchesKeras(self):
        missing = [p for p in (X86_RUNNER, X86_TFLITE_C_API) if not os.path.isfile(p)]
        self.assertEqual(missing, [], "run `make aarch64-e2e` (it builds the x86 runner too)")
        case = rm.packed_case("conv_stack_logits")
        with tempfile.TemporaryDirectory() as tmp:
            model, x, y = (os.path.join(tmp, n) for n in ("m.tflite", "x.bin", "y.bin"))
            with open(model, "wb") as f:
                f.write(case.packed)
            case.x.tofile(x)
            for mode in MODES:
                with self.subTest(mode=mode):
                    proc = subprocess.run(
                        [
                            X86_RUNNER,
                            f"--tflite_lib={X86_TFLITE_C_API}",
                            f"--delegate_lib={os.path.join(X86_BUILD, 'libttq_delegate.so')}",
                            f"--model={model}",
                            f"--mode={mode}",
                            "--num_threads=2",
                            f"--input_shape={','.join(map(str, case.x.shape))}",
                            f"--input={x}",
                            f"--output={y}",
                        ],
                        capture_output=True,
                        text=True,
                        timeout=120,
                    )
                    self.assertEqual(proc.returncode, 0, proc.stderr)
                    report = json.loads(proc.stdout)
                    self.assertEqual(report["runtime_version"], "2.18.0")
                    delegated = [(d["node_index"], d["op_name"]) for d in report["delegated"]]
                    self.assertEqual(delegated, list(case.ttq_ops))
                    got = np.fromfile(y, np.float32).reshape(case.want.shape)
                    self.assertLessEqual(rm.relative_error(got, case), rm.TOLERANCE[mode])
