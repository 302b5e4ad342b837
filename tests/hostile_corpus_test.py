"""The hostile-input corpus (tests/data/hostile/, made by scripts/make_hostile_corpus.py).

Every file runs in a child process (tests/hostile_corpus_child.py) through ttq_keras.Interpreter
(LiteRT + the TTQ delegate) and through the NumPy reference, with the child's address space
limited (RLIMIT_AS) to what it uses after its imports plus MEMORY_HEADROOM_MB. Asserted per file:
- neither reader crashes (a signal), hangs (PER_FILE_TIMEOUT_S) or raises anything but a clean
  ValueError / RuntimeError / NotImplementedError (MemoryError under the limit is not clean:
  it means a reader allocated more than the file justifies, docs/format.md section 5);
- both readers agree on accept / reject, and with MANIFEST.json where it says "reject" or
  "accept";
- when both accept, their outputs agree (rtol 1e-5, atol 1e-5 * output scale).
"""

import json
import os
import select
import subprocess
import sys
import time
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "data", "hostile")
MEMORY_HEADROOM_MB = 256
PER_FILE_TIMEOUT_S = 60
STARTUP_TIMEOUT_S = 600


def run_worker(files, headroom_mb=MEMORY_HEADROOM_MB):
    """Runs the worker over `files`; returns ({name: result}, {name: failure}).

    A file whose RESULT never comes (the child died or hung on it) is a failure, and the
    worker is restarted on the remaining files.
    """
    results, failures = {}, {}
    pending = list(files)
    env = dict(os.environ, MALLOC_ARENA_MAX="2", TF_CPP_MIN_LOG_LEVEL="2")
    while pending:
        cmd = [sys.executable, "-m", "tests.hostile_corpus_child"]
        if headroom_mb:
            cmd += ["--memory-headroom-mb", str(headroom_mb)]
        proc = subprocess.Popen(
            cmd + pending,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        current, deadline = None, time.monotonic() + STARTUP_TIMEOUT_S
        stderr_tail = ""
        while True:
            wait = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([proc.stdout], [], [], wait)
            if not ready:  # hang
                proc.kill()
                proc.wait()
                name = current or "<start-up>"
                failures[name] = f"no result within the timeout (hang) on {name}"
                break
            line = proc.stdout.readline()
            if not line:  # the child exited
                code = proc.wait()
                stderr_tail = proc.stderr.read()[-2000:]
                if current is not None:
                    failures[current] = (
                        f"the child died with exit code {code} on {current}: {stderr_tail}"
                    )
                elif code != 0:
                    failures["<start-up>"] = f"worker exited with {code}: {stderr_tail}"
                break
            if line.startswith("START "):
                current = line[6:].strip()
                deadline = time.monotonic() + PER_FILE_TIMEOUT_S
            elif line.startswith("RESULT "):
                r = json.loads(line[7:])
                results[r["name"]] = r
                current = None
        done = set(results) | set(failures)
        if "<start-up>" in failures:
            break
        pending = [f for f in pending if os.path.basename(f) not in done]
    return results, failures


def _outputs_agree(a, b):
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if x.shape != y.shape:
            return False
        scale = float(np.nanmax(np.abs(y))) if y.size and np.isfinite(y).any() else 1.0
        if not np.allclose(x, y, rtol=1e-5, atol=1e-5 * max(scale, 1.0), equal_nan=True):
            return False
    return True


class HostileCorpusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(CORPUS, "MANIFEST.json")) as f:
            cls.manifest = json.load(f)
        files = [os.path.join(CORPUS, name) for name in sorted(cls.manifest)]
        cls.results, cls.failures = run_worker(files)

    def testCorpusIsComplete(self):
        on_disk = sorted(f for f in os.listdir(CORPUS) if f.endswith(".tflite"))
        self.assertEqual(on_disk, sorted(self.manifest))
        self.assertGreaterEqual(len(on_disk), 150)

    def testNoCrashHangOrMemoryBlowUp(self):
        self.assertEqual(self.failures, {})
        self.assertEqual(len(self.results), len(self.manifest))

    def testEveryErrorIsClean(self):
        unclean = {
            name: {reader: r[reader]["error"]}
            for name, r in self.results.items()
            for reader in ("reference", "interpreter")
            if r[reader]["outcome"] == "unclean"
        }
        self.assertEqual(unclean, {})

    def testReadersAgreeOnAcceptOrReject(self):
        disagreements = {
            name: (r["reference"], r["interpreter"])
            for name, r in self.results.items()
            if r["reference"]["outcome"] != r["interpreter"]["outcome"]
        }
        self.assertEqual(disagreements, {})

    def testOutcomesMatchTheManifest(self):
        wrong = {}
        for name, r in self.results.items():
            expect = self.manifest[name]["expect"]
            got = (r["reference"]["outcome"], r["interpreter"]["outcome"])
            if expect != "either" and got != (expect, expect):
                wrong[name] = (expect, got, self.manifest[name]["why"])
        self.assertEqual(wrong, {})

    def testAcceptedFilesGiveTheSameResultInBothReaders(self):
        differ = []
        for name, r in self.results.items():
            ref, rt = r["reference"], r["interpreter"]
            if ref["outcome"] == rt["outcome"] == "accept":
                self.assertIsNotNone(ref["outputs"], name)
                if not _outputs_agree(rt["outputs"], ref["outputs"]):
                    differ.append(name)
        self.assertEqual(differ, [])

    def testHugeDimensionFilesAreRejectedUnderTheMemoryLimit(self):
        # 2^31 channels, kernel products overflowing int32 / int64, huge batches: rejected
        # with a message, by both readers, in a child limited to MEMORY_HEADROOM_MB more.
        huge = [
            n
            for n in self.manifest
            if n.startswith("dims_")
            and "huge" in n
            or "2p31" in n
            or "overflow" in n
            or "2p20" in n
        ]
        self.assertGreaterEqual(len(huge), 10)
        for name in huge:
            r = self.results[name]
            for reader in ("reference", "interpreter"):
                self.assertEqual(r[reader]["outcome"], "reject", (name, reader, r[reader]))
                self.assertNotIn("MemoryError", r[reader]["error"])

    def testWorkerCatchesACrash(self):
        # The harness itself: a child killed by a signal is reported against the file.
        import signal
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "kill_me.tflite")
            with open(path, "wb") as f:
                f.write(b"x")
            env_backup = os.environ.get("TTQ_HOSTILE_WORKER_SELF_KILL")
            os.environ["TTQ_HOSTILE_WORKER_SELF_KILL"] = str(int(signal.SIGSEGV))
            try:
                results, failures = run_worker([path], headroom_mb=0)
            finally:
                if env_backup is None:
                    del os.environ["TTQ_HOSTILE_WORKER_SELF_KILL"]
                else:
                    os.environ["TTQ_HOSTILE_WORKER_SELF_KILL"] = env_backup
        self.assertIn("kill_me.tflite", failures)
        self.assertIn("-11", failures["kill_me.tflite"])


if __name__ == "__main__":
    unittest.main()
