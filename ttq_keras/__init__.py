"""ttq_keras: Trained Ternary Quantization (Zhu et al., ICLR 2017) for tf_keras and tfmot.

    import ttq_keras
    from ttq_keras import keras          # tf_keras; ttq_keras sets TF_USE_LEGACY_KERAS for you

    q_model = ttq_keras.quantize_model(float_model)
"""

# isort: off
from ttq_keras._compat import keras, tf  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS)

# isort: on
from ttq_keras import ops  # noqa: F401
from ttq_keras.batchnorm import normalized_layer_names, reestimate_batchnorm
from ttq_keras.calibration import CorrectedLayer, correct_ternarization
from ttq_keras.callbacks import TTQCallback
from ttq_keras.diagnostics import (
    TrainingDivergedError,
    TTQGuard,
    check_ternary_weights,
    find_weight_problems,
)
from ttq_keras.quantize import (
    AUTO_GRADIENTS,
    RECIPES,
    custom_objects,
    quantize_layer,
    quantize_model,
    quantize_scope,
)
from ttq_keras.quantize_configs import TTQQuantizeConfig
from ttq_keras.quantize_registry import TTQQuantizeRegistry
from ttq_keras.quantize_scheme import TTQQuantizeScheme
from ttq_keras.quantizers import ScaleFloor, TTQQuantizer
from ttq_keras.runtime.delegate import Interpreter, load_delegate
from ttq_keras.summary import LayerStats, summary
from ttq_keras.ternary_weights import (
    TernaryLayer,
    TernaryVariables,
    initialize_scales_from_weights,
    ternary_layers,
    ternary_variables,
    to_float_model,
)


def __getattr__(name):
    # `convert` is imported on first use, so that `python -m ttq_keras.export` and
    # `python -m ttq_keras.lite.interpreter` do not find their module already imported by the
    # package (runpy warns about that), and `import ttq_keras` stays light.
    if name == "convert":
        from ttq_keras.export import convert

        globals()["convert"] = convert
        return convert
    raise AttributeError(f"module 'ttq_keras' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"convert"})


try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("ttq_keras")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "keras",
    "tf",
    "convert",
    "load_delegate",
    "Interpreter",
    "quantize_model",
    "quantize_layer",
    "quantize_scope",
    "custom_objects",
    "summary",
    "LayerStats",
    "TTQCallback",
    "TTQQuantizer",
    "TTQQuantizeConfig",
    "TTQQuantizeRegistry",
    "TTQQuantizeScheme",
    "ScaleFloor",
    "TernaryLayer",
    "ternary_layers",
    "to_float_model",
    "initialize_scales_from_weights",
    "AUTO_GRADIENTS",
    "RECIPES",
    "TernaryVariables",
    "ternary_variables",
    "TTQGuard",
    "TrainingDivergedError",
    "check_ternary_weights",
    "find_weight_problems",
    "normalized_layer_names",
    "reestimate_batchnorm",
    "correct_ternarization",
    "CorrectedLayer",
]
