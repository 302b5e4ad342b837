"""`ttq_keras.convert`: quantized Keras model -> packed ternary (or portable) .tflite.

    import ttq_keras
    tflite_bytes = ttq_keras.convert(q_model)                          # packed, docs/format.md
    portable = ttq_keras.convert(q_model, packed=False)                # builtin ops, float
    portable8 = ttq_keras.convert(q_model, packed=False, weights="int8")

Command line: `python -m ttq_keras.convert MODEL OUTPUT.tflite [--portable [--int8]]`.
The implementation is in `ttq_keras.lite.converter`.
"""

from ttq_keras.lite.converter import (  # noqa: F401
    ConversionReport,
    FloatLayer,
    PackedLayer,
    UnpackableLayerError,
    convert,
    main,
)

__all__ = ["convert", "ConversionReport", "PackedLayer", "FloatLayer", "UnpackableLayerError"]
