"""`ttq_keras.convert`: a model made by `ttq_keras.quantize_model` -> .tflite bytes.

Packed (default, docs/format.md): the quantized model becomes a plain float model whose
ternary kernels hold {+Wp, 0, -Wn} (`ttq_keras.to_float_model`), the stock
`tf.lite.TFLiteConverter` converts it (folding BatchNorm into the weights), and
`ttq_keras.lite.rewrite.pack` rewrites the ternary ops as TTQ custom ops. The NumPy interpreter
then checks that the packed file computes what the float file computes.

Portable (`packed=False`): builtin ops only; the ternary weights stay baked into float kernels
(`weights="float"`) or into int8 kernels with per-channel scales (`weights="int8"`, TFLite
dynamic-range quantization). Any stock TFLite runtime loads it.

    tflite_bytes = ttq_keras.convert(q_model)
    portable = ttq_keras.convert(q_model, packed=False, weights="int8")

Command line: `python -m ttq_keras.export MODEL OUTPUT.tflite [--portable [--int8]]
[--allow-float-fallback] [--no-verify]`.
"""

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import warnings
from typing import List, Optional

import numpy as np

from ttq_keras._compat import check_is_tf_keras_model, keras, tf
from ttq_keras.diagnostics import check_ternary_weights
from ttq_keras.lite import flatbuffer_io as fbio
from ttq_keras.lite import interpreter
from ttq_keras.lite.rewrite import FloatLayer, PackedLayer, pack
from ttq_keras.lite.sizes import OpBytes, format_op_byte_sizes, op_byte_sizes
from ttq_keras.quantize import quantize_scope
from ttq_keras.ternary_weights import is_ttq_wrapper, ternary_layers, to_float_model

__all__ = [
    "convert",
    "ConversionReport",
    "PackedLayer",
    "FloatLayer",
    "UnpackableLayerError",
    "main",
]

_log = logging.getLogger("ttq_keras")


class UnpackableLayerError(ValueError):
    """A ternary layer that the converter cannot write as a packed op."""


@dataclasses.dataclass
class ConversionReport:
    """What `convert(..., return_report=True)` returns next to the bytes."""

    packed: bool
    file_bytes: int
    packed_layers: List[PackedLayer]
    float_layers: List[FloatLayer]  # ternary layers left float (allow_float_fallback=True)
    op_sizes: List[OpBytes]
    verified: Optional[bool]  # reference run of packed vs float file agreed (None: not run)

    def __str__(self):
        head = (
            f"{'packed' if self.packed else 'portable'} .tflite, {self.file_bytes:,} bytes; "
            f"{len(self.packed_layers)} packed ternary ops"
        )
        if self.float_layers:
            head += "; left float: " + ", ".join(
                f"{f.layer} ({f.reason})" for f in self.float_layers
            )
        return head + "\n" + format_op_byte_sizes(self.op_sizes, self.file_bytes)


# ----------------------------------------------------------------------------------------------
# Entry point


def convert(
    model,
    *,
    packed: bool = True,
    weights: str = "float",
    allow_float_fallback: bool = False,
    verify: bool = True,
    return_report: bool = False,
):
    """Converts a quantized model to .tflite bytes.

    Args:
      model: a model made by `ttq_keras.quantize_model` (trained or not), or a path to one saved
        with `model.save` (loaded under `ttq_keras.quantize_scope()`).
      packed: True writes the packed ternary format (docs/format.md: TTQ_* custom ops, needs
        the ttq delegate or the NumPy interpreter); False writes builtin ops only.
      weights: for `packed=False`: "float" keeps float32 kernels holding the ternary values;
        "int8" applies TFLite dynamic-range quantization (int8 kernels, per-channel scales;
        TFLite leaves tensors under 1024 elements float).
      allow_float_fallback: a ternary layer that cannot be packed stays a float builtin op, is
        listed in a warning and in the report, instead of raising.
      verify: run the packed and the float file through the NumPy interpreter on a
        random input and check they agree (skipped when the graph has an op the interpreter does
        not implement).
      return_report: return `(bytes, ConversionReport)` instead of bytes.

    Raises:
      ValueError: the model was not made by `quantize_model`, or bad arguments.
      UnpackableLayerError (a ValueError): a ternary layer cannot be packed (names the layer and
        the reason), unless `allow_float_fallback`.
    """
    if weights not in ("float", "int8"):
        raise ValueError(f"weights must be 'float' or 'int8'. Received: weights={weights!r}")
    if packed and weights != "float":
        raise ValueError(
            "weights='int8' applies to the portable file only; use packed=False with it "
            "(the packed format stores ternary codes, not int8)."
        )
    model = _load(model)
    check_is_tf_keras_model(model)
    wrappers = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)  # noqa: SLF001
        if is_ttq_wrapper(layer)
    ]
    if not wrappers:
        raise ValueError(
            f"Model {model.name!r} was not made by ttq_keras.quantize_model: it has no TTQ "
            "quantized layer (QuantizeWrapperV2 with a TTQQuantizeConfig). Quantize it first: "
            "`q = ttq_keras.quantize_model(model)`."
        )
    check_ternary_weights(model)  # a diverged model is named here, not blamed on the converter
    infos = ternary_layers(model)
    float_model = to_float_model(model)
    float_bytes = _tflite_convert(float_model, int8=(weights == "int8"))
    if not packed:
        result = float_bytes
        report = ConversionReport(
            False,
            len(result),
            [],
            [],
            op_byte_sizes(result),
            None,
        )
        return (result, report) if return_report else result

    result, packed_layers, failures = pack(float_bytes, infos)
    if failures:
        lines = "; ".join(f"{f.layer}: {f.reason}" for f in failures)
        if not allow_float_fallback:
            raise UnpackableLayerError(
                f"Cannot pack {len(failures)} ternary layer(s) of {model.name!r}: {lines}. "
                "Pass allow_float_fallback=True to keep them as float builtin ops."
            )
        warnings.warn(
            f"Ternary layer(s) left float in the packed file (allow_float_fallback=True): {lines}",
            stacklevel=2,
        )
    verified = _verify(float_bytes, result) if verify else None
    report = ConversionReport(
        True, len(result), packed_layers, failures, op_byte_sizes(result), verified
    )
    return (result, report) if return_report else result


def _load(model):
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise ValueError(f"No saved model at {path!r}")
        with quantize_scope():
            return keras.models.load_model(path, compile=False)
    return model


def _tflite_convert(float_model, int8=False):
    converter = tf.lite.TFLiteConverter.from_keras_model(float_model)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights
    return bytes(converter.convert())


def _random_feed(model_bytes, seed=0):
    model = fbio.load_model(model_bytes)
    sg = model.subgraphs[0]
    rng = np.random.default_rng(seed)
    feed = []
    for i in fbio.ints(sg.inputs):
        t = sg.tensors[i]
        shape = [max(int(d), 1) for d in fbio.ints(t.shape)]
        dtype = fbio.tensor_dtype(t)
        if np.issubdtype(dtype, np.floating):
            feed.append(rng.standard_normal(shape).astype(dtype))
        else:
            feed.append(np.zeros(shape, dtype))
    return feed


def _verify(float_bytes, packed_bytes):
    """Reference run of both files on one random input; raises if they disagree."""
    feed = _random_feed(float_bytes)
    try:
        want = interpreter.run(float_bytes, feed)
    except (NotImplementedError, ValueError) as e:
        _log.info("convert: reference check skipped: %s", e)
        return None
    got = interpreter.run(packed_bytes, feed)
    for a, b in zip(want, got):
        scale = max(float(np.max(np.abs(a))) if a.size else 0.0, 1e-6)
        err = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
        if err > 1e-4 * scale:
            raise RuntimeError(
                f"internal error: the packed file differs from the float file by {err:g} "
                f"(output scale {scale:g}); please report this model"
            )
    return True


# ----------------------------------------------------------------------------------------------
# Command line


def main(argv=None):
    """`python -m ttq_keras.export MODEL OUTPUT.tflite [--portable [--int8]] ...`"""
    parser = argparse.ArgumentParser(
        prog="python -m ttq_keras.export",
        description="Convert a model saved after ttq_keras.quantize_model to .tflite.",
    )
    parser.add_argument("model", help="saved quantized model (.keras, .h5 or SavedModel dir)")
    parser.add_argument("output", help="output .tflite path")
    parser.add_argument(
        "--portable", action="store_true", help="builtin ops only (no TTQ custom ops)"
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="with --portable: int8 weights (TFLite dynamic-range quantization)",
    )
    parser.add_argument(
        "--allow-float-fallback",
        action="store_true",
        help="keep ternary layers that cannot be packed as float ops (warns)",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the reference check")
    args = parser.parse_args(argv)
    if args.int8 and not args.portable:
        parser.error("--int8 needs --portable")
    try:
        data, report = convert(
            args.model,
            packed=not args.portable,
            weights="int8" if args.int8 else "float",
            allow_float_fallback=args.allow_float_fallback,
            verify=not args.no_verify,
            return_report=True,
        )
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    directory = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, delete=False) as f:
        f.write(data)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(f.name, 0o666 & ~umask)
    os.replace(f.name, args.output)
    print(report)
    print(f"wrote {args.output} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
