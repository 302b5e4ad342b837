"""The Java binding on the host JVM: org.ttqkeras.TtqDelegate (tflite_delegate/java/) compiled
against classes.jar of the pinned org.tensorflow:tensorflow-lite-api:2.16.1 (which holds
org.tensorflow.lite.Delegate), with a host x86-64 build of its JNI shim libttq_delegate_jni.so
(tflite_delegate/jni/).
- TtqDelegateHostTest: the create / options / close cycle and the Java exceptions for bad options.
- TtqDelegateJvmEndToEnd: the converter's packed test models run in a real TFLite runtime on the
  JVM (TFLite 2.18.0's C API through the JavaCPP presets, org.bytedeco:tensorflow-lite) with
  the delegate TtqDelegate created, handed over by getNativeHandle() as Android's
  Interpreter.Options.addDelegate does; compared with Keras, every TTQ op delegated.

Needs `make jni-host` (`make test` runs it first). The Android build of the same shim needs the
NDK and is documented in tflite_delegate/README.md, not run here.
"""

import ttq_keras  # noqa: F401  isort: skip  (sets TF_USE_LEGACY_KERAS before TF loads)

import os
import re
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

from tests import testing_utils as rm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JNI_BUILD = os.environ.get("TTQ_JNI_BUILD", os.path.join(REPO, "tflite_delegate", "build"))
JNI_LIB_DIR = os.path.join(JNI_BUILD, "jni")
API_JAR = os.path.join(JNI_BUILD, "java", "tensorflow-lite-api.jar")
# TFLite 2.18.0's C API for Java (JavaCPP presets), for the end-to-end run.
RUNTIME_JARS = [
    os.path.join(JNI_BUILD, "java", name)
    for name in (
        "javacpp.jar",
        "javacpp-linux-x86_64.jar",
        "tensorflow-lite-bytedeco.jar",
        "tensorflow-lite-bytedeco-linux-x86_64.jar",
    )
]
JAVA_SRC = os.path.join(REPO, "tflite_delegate", "java", "src")
SOURCES = [
    os.path.join(JAVA_SRC, "main", "java", "org", "ttqkeras", "TtqDelegate.java"),
    os.path.join(JAVA_SRC, "test", "java", "org", "ttqkeras", "TtqDelegateHostTest.java"),
]
E2E_SOURCE = os.path.join(
    JAVA_SRC, "test", "java", "org", "ttqkeras", "TtqDelegateJvmEndToEnd.java"
)
EXPECTED_TESTS = {
    "testDefaultDelegateIsATfLiteDelegate",
    "testOptionsReachTheDelegate",
    "testCloseIsIdempotentAndInvalidatesTheHandle",
    "testBadNumThreadsThrowsIllegalArgumentException",
    "testNullOptionsThrowNullPointerException",
    "testManyCreateCloseCycles",
}


class JavaBindingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.javac, cls.java = shutil.which("javac"), shutil.which("java")
        if not (cls.javac and cls.java):
            raise unittest.SkipTest(
                "no JDK (javac/java); scripts/install_build_deps.sh installs one"
            )
        missing = [
            p
            for p in [API_JAR, os.path.join(JNI_LIB_DIR, "libttq_delegate_jni.so")] + RUNTIME_JARS
            if not os.path.isfile(p)
        ]
        if missing:
            raise AssertionError(f"JNI host build missing: {missing}; run `make jni-host`")
        cls.classes = tempfile.mkdtemp(prefix="ttq_java_")
        # --release 8: the language level Android apps compile against.
        proc = subprocess.run(
            [
                cls.javac,
                "-Xlint:all",
                "-Werror",
                "--release",
                "8",
                "-d",
                cls.classes,
                "-cp",
                API_JAR,
            ]
            + SOURCES,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise AssertionError(f"javac failed:\n{proc.stdout}\n{proc.stderr}")
        # The end-to-end driver also needs the JavaCPP runtime jars on the class path.
        proc = subprocess.run(
            [
                cls.javac,
                "-Xlint:all",
                "-Werror",
                "-d",
                cls.classes,
                "-cp",
                os.pathsep.join([cls.classes, API_JAR] + RUNTIME_JARS),
                E2E_SOURCE,
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise AssertionError(f"javac failed:\n{proc.stdout}\n{proc.stderr}")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(getattr(cls, "classes", ""), ignore_errors=True)

    def _java(self, main, library_dir=JNI_LIB_DIR, args=(), jars=()):
        cache = os.path.join(self.classes, "javacpp-cache")  # where JavaCPP unpacks its .so
        return subprocess.run(
            [
                self.java,
                f"-Djava.library.path={library_dir}",
                "-Xcheck:jni",
                f"-Dorg.bytedeco.javacpp.cachedir={cache}",
                "-cp",
                os.pathsep.join([self.classes, API_JAR, *jars]),
                main,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def testHostJvmSuitePasses(self):
        proc = self._java("org.ttqkeras.TtqDelegateHostTest")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        passed = set(re.findall(r"^PASS (\w+)$", proc.stdout, re.M))
        self.assertEqual(passed, EXPECTED_TESTS, proc.stdout)
        self.assertIn("6 tests, 0 failures", proc.stdout)
        # -Xcheck:jni reports JNI misuse (pending exceptions, bad local refs) as warnings.
        self.assertNotIn("WARNING in native method", proc.stdout + proc.stderr)

    def testImplementsTfLiteDelegateInterface(self):
        proc = subprocess.run(
            [shutil.which("javap") or "javap", "-cp", self.classes, "org.ttqkeras.TtqDelegate"],
            capture_output=True,
            text=True,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("implements org.tensorflow.lite.Delegate", proc.stdout)
        self.assertIn("public synchronized long getNativeHandle()", proc.stdout)

    def testMissingNativeLibraryIsAClearError(self):
        with tempfile.TemporaryDirectory() as empty:
            proc = self._java("org.ttqkeras.TtqDelegateHostTest", library_dir=empty)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("no ttq_delegate_jni in java.library.path", proc.stdout + proc.stderr)

    def testJavaDelegateRunsPackedModelsInTfLite(self):
        with tempfile.TemporaryDirectory() as tmp:
            for name in rm.MODELS:
                case = rm.packed_case(name)
                model = os.path.join(tmp, f"{name}.tflite")
                with open(model, "wb") as f:
                    f.write(case.packed)
                x_path, y_path = os.path.join(tmp, "x.bin"), os.path.join(tmp, "y.bin")
                case.x.tofile(x_path)
                for mode, threads in (("exact", 1), ("fast", 2)):
                    with self.subTest(model=name, mode=mode):
                        shape = ",".join(map(str, case.x.shape))
                        proc = self._java(
                            "org.ttqkeras.TtqDelegateJvmEndToEnd",
                            args=[model, x_path, y_path, mode, str(threads), shape],
                            jars=RUNTIME_JARS,
                        )
                        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
                        self.assertIn("runtime 2.18.0", proc.stdout)
                        nodes = re.findall(r"^node (\d+) (\w+) (\w+)$", proc.stdout, re.M)
                        self.assertEqual([(int(i), op) for i, op, _ in nodes], list(case.ttq_ops))
                        if mode == "fast":
                            self.assertTrue(all("int8" in k for _, _, k in nodes), nodes)
                        got = np.fromfile(y_path, np.float32).reshape(case.want.shape)
                        self.assertLessEqual(rm.relative_error(got, case), rm.TOLERANCE[mode])
