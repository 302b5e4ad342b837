"""The examples' only import of TensorFlow / Keras.

`ttq_keras._compat` sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads, so `keras` is tf_keras
(Keras 2). If the ttq_keras core cannot be imported, the same environment variable is set here
and `ttq_keras` is None (the examples then stop with a clear error before training TTQ).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TF's C++ info/warning lines

try:
    import ttq_keras
    from ttq_keras._compat import keras, tf
except ImportError:  # pragma: no cover - only without the core package
    ttq_keras = None
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf
    import tf_keras as keras

tf.get_logger().setLevel("ERROR")

__all__ = ["keras", "tf", "ttq_keras"]
