"""The README's Python examples run as written (with a tiny dataset standing in for x_train)."""

import os
import re
import tempfile

import numpy as np

from ttq_keras import tf

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def python_blocks():
    with open(README, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


class ReadmeTest(tf.test.TestCase):
    def testPythonBlocksRun(self):
        blocks = python_blocks()
        self.assertGreaterEqual(len(blocks), 2)
        rng = np.random.default_rng(0)
        namespace = {
            "x_train": rng.normal(size=(32, 28, 28, 1)).astype(np.float32),
            "y_train": rng.integers(0, 10, size=(32,)),
        }
        cwd = os.getcwd()
        os.chdir(tempfile.mkdtemp())
        try:
            for block in blocks:
                exec(compile(block, README, "exec"), namespace)  # noqa: S102
        finally:
            os.chdir(cwd)
        self.assertIn("restored", namespace)
        x = namespace["x_train"][:4]
        self.assertAllClose(namespace["restored"](x), namespace["q_model"](x), rtol=1e-6, atol=1e-6)
        net = namespace["Net"]()
        self.assertEqual(net(np.zeros((2, 5), np.float32)).shape, (2, 10))


if __name__ == "__main__":
    tf.test.main()
