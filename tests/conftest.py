"""Test session setup: two logical CPU devices for MirroredStrategy tests."""

import ttq_keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from ttq_keras import tf

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
except RuntimeError:  # already initialised by an earlier import; the test then skips
    pass
