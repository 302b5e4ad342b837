"""End-to-end latency of the ttq delegate against stock XNNPACK (batch 1, one process).

For CIFAR ResNet-20 (`examples.common.models.resnet_cifar(20)`, the paper's official
architecture) and the AlexNet FC stack (9216 -> 4096 -> 4096 -> 1000) this script

  1. builds the tf_keras model (random weights; latency does not depend on training),
  2. ternarizes every Conv2D/Dense with ttq_keras.quantize_model(keep_first_and_last_float=False,
     scale_init="data"),
  3. writes  <out>/<model>_float.tflite   (the float model, builtin ops),
             <out>/<model>_int8.tflite    (TFLite full-integer PTQ, representative dataset),
             <out>/<model>_packed.tflite  (ttq_keras.convert, docs/format.md),
  4. times, in this one process, the median of --runs invocations of
       packed + ttq delegate (exact and fast mode)  via ttq_keras.Interpreter,
       float and int8 under the stock LiteRT interpreter (XNNPACK applied by default),
     at 1 and 2 threads, and prints a table with the ratios the project targets:
       ResNet-20: exact / XNNPACK float <= 1.0, fast / XNNPACK int8 <= 1.0
       AlexNet FC: fast / XNNPACK int8 <= 0.5

    .venv/bin/python -m benchmarks.delegate_latency [--runs 200] [--threads 1,2]
        [--models resnet20,alexnet_fc] [--out /tmp/ttq_bench] [--markdown]
        [--no-default-delegates]

--no-default-delegates runs the packed model's other ops (ADD, MEAN, ...) on TFLite's builtin
kernels instead of XNNPACK: XNNPACK then forms one small partition per gap between TTQ ops,
and its thread pool spins against the delegate's on 2 cores.

Long-running by design: it lives in benchmarks/, never in the test suite.
"""

import argparse
import os
import platform
import subprocess
import sys

import numpy as np

import ttq_keras
from examples.common.models import resnet_cifar
from tests.testing_utils import alexnet_fc, randomize_batchnorm
from ttq_keras import tf
from ttq_keras.runtime.benchmark import time_invocations
from ttq_keras.runtime.delegate import Interpreter, library_path

MODELS = {"resnet20": lambda: resnet_cifar(20), "alexnet_fc": alexnet_fc}


# ---------------------------------------------------------------------------------------------
# Conversion


def write_models(name, out_dir, rng):
    """Returns ({"float": path, "int8": path, "packed": path}, input shape)."""
    model = MODELS[name]()
    randomize_batchnorm(model, seed=int(rng.integers(1 << 30)))
    shape = (1,) + tuple(model.input_shape[1:])
    q_model = ttq_keras.quantize_model(model, keep_first_and_last_float=False, scale_init="data")
    float_model = ttq_keras.to_float_model(q_model)  # same graph, ternary values as float

    paths = {}
    conv = tf.lite.TFLiteConverter.from_keras_model(float_model)
    paths["float"] = _write(out_dir, f"{name}_float.tflite", conv.convert())

    def representative():
        for _ in range(32):
            yield [rng.normal(0, 1, shape).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(float_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    paths["int8"] = _write(out_dir, f"{name}_int8.tflite", conv.convert())

    paths["packed"] = _write(out_dir, f"{name}_packed.tflite", ttq_keras.convert(q_model))
    return paths, shape


def _write(out_dir, fname, data):
    path = os.path.join(out_dir, fname)
    with open(path, "wb") as f:
        f.write(data)
    return path


# ---------------------------------------------------------------------------------------------
# Timing


def stock_interpreter(path, threads):
    from ai_edge_litert.interpreter import Interpreter as LiteRTInterpreter

    return LiteRTInterpreter(model_path=path, num_threads=threads)


def delegate_interpreter(path, threads, mode, no_default_delegates=False):
    # With no_default_delegates the ops the delegate does not take (ADD, MEAN, ...) run on the
    # builtin kernels instead of XNNPACK fragments: one thread pool on the cores instead of two.
    return Interpreter(
        model_path=path,
        num_threads=threads,
        mode=mode,
        default_delegates=not no_default_delegates,
    )


def time_interpreter(interp, shape, runs, warmup=20):
    """(median ms, min ms) of `runs` invocations on one fixed random input."""
    interp.allocate_tensors()
    x = np.random.default_rng(0).normal(0, 1, shape).astype(np.float32)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    t = time_invocations(interp, runs=runs, warmup=warmup)
    return t["median_ms"], t["min_ms"]


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", default="resnet20,alexnet_fc")
    ap.add_argument("--out", default="/tmp/ttq_bench")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table too")
    ap.add_argument(
        "--no-default-delegates",
        action="store_true",
        help="run the packed model's non-TTQ ops on the builtin kernels, not XNNPACK",
    )
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    threads = [int(t) for t in args.threads.split(",")]
    rng = np.random.default_rng(0)

    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; runs={args.runs}; batch 1")
    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    if args.no_default_delegates:
        print("packed model: non-TTQ ops on builtin kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES)")
    rows = []
    for name in args.models.split(","):
        paths, shape = write_models(name, args.out, rng)
        for nt in threads:
            r = {"model": name, "threads": nt}
            r["float"] = time_interpreter(stock_interpreter(paths["float"], nt), shape, args.runs)
            r["int8"] = time_interpreter(stock_interpreter(paths["int8"], nt), shape, args.runs)
            for mode in ("exact", "fast"):
                interp = delegate_interpreter(paths["packed"], nt, mode, args.no_default_delegates)
                r[mode] = time_interpreter(interp, shape, args.runs)
            rows.append(r)
            _print_row(r)
    print(f"delegate library: {library_path()}")
    if args.markdown:
        _print_markdown(rows)
    return rows


def _fmt(v):
    return "   n/a" if v is None else f"{v[0]:7.3f}"


def _ratio(a, b):
    return "  n/a" if a is None or b is None else f"{a[0] / b[0]:5.2f}x"


def _print_row(r):
    print(
        f"{r['model']:>10} t={r['threads']}  xnn-float {_fmt(r['float'])} ms  "
        f"xnn-int8 {_fmt(r['int8'])} ms  ttq-exact {_fmt(r['exact'])} ms  "
        f"ttq-fast {_fmt(r['fast'])} ms  | exact/float {_ratio(r['exact'], r['float'])}  "
        f"fast/int8 {_ratio(r['fast'], r['int8'])}",
        flush=True,
    )


def _fmt_md(v):
    return "n/a" if v is None else f"{v[0]:.3f} ({v[1]:.3f})"


def _ratio_md(a, b):
    if a is None or b is None:
        return "n/a"
    return f"{a[0] / b[0]:.2f}x ({a[1] / b[1]:.2f}x)"


def _print_markdown(rows):
    print()
    print("Times: median (min) ms; ratios: of medians (of mins).")
    print()
    print("| model | threads | XNNPACK float | XNNPACK int8 | ttq exact | ttq fast "
          "| exact / float | fast / int8 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['threads']} | {_fmt_md(r['float'])} | {_fmt_md(r['int8'])} | "
            f"{_fmt_md(r['exact'])} | {_fmt_md(r['fast'])} | "
            f"{_ratio_md(r['exact'], r['float'])} | {_ratio_md(r['fast'], r['int8'])} |"
        )


if __name__ == "__main__":
    main()
