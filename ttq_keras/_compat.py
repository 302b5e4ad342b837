"""The only module that chooses between Keras implementations.

tfmot 0.8.1 works only with Keras 2 (`tf_keras`). TensorFlow 2.16+ ships Keras 3 as `tf.keras`
unless TF_USE_LEGACY_KERAS=1 is set *before* TensorFlow is imported, so we set it here, first
thing, and every other module imports `keras` and `tf` from this one.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TF's C++ log level, read once when TensorFlow loads. 3 hides its INFO/WARNING/ERROR lines, such
# as "failed call to cuInit" on every machine without a GPU (the C++ errors that matter reach
# Python as exceptions). The user's own environment wins: TF_CPP_MIN_LOG_LEVEL=0 shows them all.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras", "check_is_tf_keras_model", "is_keras3_object"]


def is_keras3_object(obj) -> bool:
    """True when `obj` is a Keras 3 layer or model (the `keras` package, not `tf_keras`)."""
    for klass in type(obj).__mro__:
        module = klass.__module__ or ""
        if module == "keras" or module.startswith(("keras.", "keras.src")):
            return True
    return False


def check_is_tf_keras_model(model, argument_name: str = "model") -> None:
    """Raises a clear error unless `model` is a tf_keras (Keras 2) model."""
    if is_keras3_object(model):
        raise TypeError(
            f"`{argument_name}` is a Keras 3 model ({type(model).__module__}."
            f"{type(model).__name__}, name={getattr(model, 'name', '?')!r}). ttq_keras works "
            "inside tensorflow-model-optimization, which supports only Keras 2: build the model "
            "with `import tf_keras as keras` (or `from ttq_keras import keras`) instead of "
            "`import keras`."
        )
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{argument_name}` must be a tf_keras.Model; received an object of type "
            f"{type(model).__module__}.{type(model).__name__}."
        )
