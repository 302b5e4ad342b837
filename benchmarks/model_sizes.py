"""File sizes of float, int8, portable and packed .tflite files, as ratios to float.

    .venv/bin/python -m benchmarks.model_sizes            # both models, prints a Markdown table
    .venv/bin/python -m benchmarks.model_sizes --models resnet20

Models (weights random; sizes do not depend on training):
- resnet20: CIFAR ResNet-20 of the paper's official code (`examples.common.models.resnet_cifar`:
  32x32x3, 16/32/64 filters, option-A shortcuts), quantized as in the paper: first conv and
  last dense stay float (`keep_first_and_last_float=True`).
- alexnet_fc: AlexNet's fully connected stack 9216 -> 4096 -> 4096 -> 1000, every layer ternary.

Columns:
- float: `tf.lite.TFLiteConverter` on the float Keras model, float32 weights.
- int8: TFLite full-integer post-training quantization (int8 weights and activations, float
  input/output), calibrated with a representative dataset of random inputs.
- portable int8: `ttq_keras.convert(q, packed=False, weights="int8")`, dynamic range.
- portable: `ttq_keras.convert(q, packed=False)`, builtin ops, float32 weights holding the ternary
  values.
- packed: `ttq_keras.convert(q)`, docs/format.md.
"""

import argparse
import time

import numpy as np

import ttq_keras
from examples.common.models import resnet_cifar
from tests.testing_utils import alexnet_fc, randomize_quantized
from ttq_keras import convert, tf


def _float_tflite(model):
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _int8_tflite(model, samples=8):
    shape = (1,) + tuple(model.input_shape[1:])
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(samples):
            yield [rng.normal(size=shape).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


MODELS = {
    "resnet20": (lambda: resnet_cifar(20), True, 12.0),
    "alexnet_fc": (alexnet_fc, False, 19.0),
}


def measure(name):
    build, keep_first_and_last_float, goal = MODELS[name]
    model = build()
    q = ttq_keras.quantize_model(model, keep_first_and_last_float=keep_first_and_last_float)
    randomize_quantized(q)
    sizes = {}
    t0 = time.time()
    sizes["float"] = len(_float_tflite(model))
    sizes["int8 (full-integer PTQ)"] = len(_int8_tflite(model))
    sizes["portable int8 (dynamic range)"] = len(convert(q, packed=False, weights="int8"))
    sizes["portable"] = len(convert(q, packed=False))
    packed, report = convert(q, return_report=True, verify=(name != "alexnet_fc"))
    sizes["packed"] = len(packed)
    params = model.count_params()
    return dict(
        name=name,
        params=params,
        ternary=len(report.packed_layers),
        sizes=sizes,
        goal=goal,
        seconds=time.time() - t0,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args(argv)
    rows = [measure(name) for name in args.models]
    cols = list(rows[0]["sizes"])
    print("| model | params | ternary ops | " + " | ".join(cols) + " | packed goal |")
    print("|---|---|---|" + "---|" * len(cols) + "---|")
    for r in rows:
        f = r["sizes"]["float"]
        cells = [f"{f:,} B (1x)"] + [
            f"{r['sizes'][c]:,} B ({f / r['sizes'][c]:.1f}x smaller)" for c in cols[1:]
        ]
        ok = "met" if f / r["sizes"]["packed"] >= r["goal"] else "NOT met"
        print(
            f"| {r['name']} | {r['params']:,} | {r['ternary']} | "
            + " | ".join(cells)
            + f" | >= {r['goal']:g}x: {ok} |"
        )
    for r in rows:
        print(f"# {r['name']}: measured in {r['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
