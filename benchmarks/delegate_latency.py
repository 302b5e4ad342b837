"""End-to-end latency of the ttq delegate against stock XNNPACK (batch 1, one process).

For CIFAR ResNet-20 (`examples.common.models.resnet_cifar(20)`, the paper's pre-activation
network) and the AlexNet FC stack (9216 -> 4096 -> 4096 -> 1000) (and, with
--models demo_resnet20, the network of `make demo`) this script

  1. builds the tf_keras model (random weights; latency does not depend on training),
  2. ternarizes every Conv2D/Dense (demo_resnet20: all but the first and last, as the demo
     does) with ttq_keras.quantize_model(keep_first_and_last_float=False,
     scale_init="data"),
  3. writes  <out>/<model>_float.tflite   (the float model, builtin ops),
             <out>/<model>_int8.tflite    (TFLite full-integer PTQ, representative dataset),
             <out>/<model>_packed.tflite  (ttq_keras.convert, docs/format.md),
  4. builds, in this one process, every configuration at every thread count:
       packed + ttq delegate (exact and fast mode)  via ttq_keras.Interpreter (defaults),
       float and int8 under the stock LiteRT interpreter (XNNPACK applied by default),
     and times them interleaved (each round runs each interpreter for a block of 4 timed
     invocations after an untimed one, --runs timed invocations per interpreter,
     --repeats times), printing medians and the ratios the project targets (issue 9):
       ResNet-20: exact / XNNPACK float <= 0.9, fast / XNNPACK int8 <= 1.0, 2 threads <= 0.65x
         the delegate's own 1-thread time
       AlexNet FC: fast / XNNPACK int8 <= 0.35; resident weight memory <= 2.1 bits per weight
         (RSS growth from creating the interpreter, printed after the table).

    .venv/bin/python -m benchmarks.delegate_latency [--runs 200] [--threads 1,2]
        [--models resnet20,alexnet_fc] [--out /tmp/ttq_bench] [--markdown] [--repeats 3]
        [--no-default-delegates]

--no-default-delegates runs the packed model's other ops (ADD, MEAN, ...) on TFLite's builtin
kernels instead of XNNPACK: XNNPACK then forms one small partition per gap between TTQ ops,
and its thread pool spins against the delegate's on 2 cores.

Long-running by design: it lives in benchmarks/, never in the test suite.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys

import numpy as np

import ttq_keras
from examples.common.models import resnet_cifar
from tests.testing_utils import alexnet_fc, randomize_batchnorm
from ttq_keras import keras, tf
from ttq_keras.runtime import benchmark as benchmark_lib
from ttq_keras.runtime.delegate import Interpreter, library_path, load_delegate

MODELS = {
    # CIFAR ResNet-20 as the paper trains it (the examples' one definition).
    "resnet20": lambda: resnet_cifar(20),
    "alexnet_fc": alexnet_fc,
    # The network of `make demo`: the same ResNet-20 on Fashion-MNIST's 28x28x1 images.
    "demo_resnet20": lambda: resnet_cifar(20, (28, 28, 1), 10),
}
# Models converted like `make demo` converts them: first conv and last dense kept float.
KEEP_FIRST_AND_LAST_FLOAT = {"demo_resnet20"}


# ---------------------------------------------------------------------------------------------
# Conversion


def write_models(name, out_dir, rng):
    """Returns ({"float": path, "int8": path, "packed": path, "ternary_weights": n}, shape)."""
    model = MODELS[name]()
    randomize_batchnorm(model, seed=int(rng.integers(1 << 30)))
    shape = (1,) + tuple(model.input_shape[1:])
    q_model = ttq_keras.quantize_model(
        model, keep_first_and_last_float=name in KEEP_FIRST_AND_LAST_FLOAT, scale_init="data"
    )
    float_model = ttq_keras.to_float_model(q_model)  # same graph, ternary values as float

    paths = {
        "ternary_weights": sum(
            int(np.prod(layer.get_weights()[0].shape))
            for layer in model.layers
            if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))
        )
    }
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
    if not no_default_delegates:
        return Interpreter(model_path=path, num_threads=threads, mode=mode)
    # The same delegate, but the ops it does not take (ADD, MEAN, ...) run on the builtin
    # kernels instead of XNNPACK fragments: one thread pool on the cores instead of two.
    from ai_edge_litert.interpreter import Interpreter as LiteRTInterpreter
    from ai_edge_litert.interpreter import OpResolverType

    return LiteRTInterpreter(
        model_path=path,
        num_threads=threads,
        experimental_delegates=[load_delegate(mode, threads)],
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )


def _prepared(interp, shape, warmup=20):
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    x = np.random.default_rng(0).normal(0, 1, shape).astype(np.float32)
    interp.set_tensor(inp["index"], x)
    for _ in range(warmup):
        interp.invoke()
    return interp


def time_interleaved(interpreters, runs, **kwargs):
    """{name: (median ms, min ms)}: ttq_keras.runtime.benchmark.time_interleaved (rounds of one
    untimed and 4 timed invocations per interpreter)."""
    t = benchmark_lib.time_interleaved(interpreters, runs, **kwargs)
    return {n: (r["median_ms"], r["min_ms"]) for n, r in t.items()}


def time_interpreter(interp, shape, runs, warmup=20):
    return time_interleaved({"x": _prepared(interp, shape, warmup)}, runs, block=runs)["x"]


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def resident_weight_bytes(model_bytes, shape, mode, threads=1):
    """RSS growth of this process from creating, allocating and running the packed model
    through the delegate (the model's bytes are already resident and not counted): the
    kernels' resident weights, plus the small activation arena and scratch."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc_trim(0)
    before = _rss_bytes()
    interp = _prepared(delegate_interpreter_bytes(model_bytes, threads, mode), shape, warmup=1)
    libc.malloc_trim(0)
    after = _rss_bytes()
    del interp
    return after - before


def delegate_interpreter_bytes(model_bytes, threads, mode):
    return Interpreter(model_content=model_bytes, num_threads=threads, mode=mode)


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
    ap.add_argument(
        "--models", default="resnet20,alexnet_fc", help=f"comma-separated, from {','.join(MODELS)}"
    )
    ap.add_argument("--out", default="/tmp/ttq_bench")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table too")
    ap.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="repeat the interleaved measurement; the table shows the spread",
    )
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
        # Every configuration of this model (both runtimes' files, both delegate modes, every
        # thread count) is built first and timed interleaved, round by round.
        interps = {}
        for nt in threads:
            interps[("float", nt)] = _prepared(stock_interpreter(paths["float"], nt), shape)
            interps[("int8", nt)] = _prepared(stock_interpreter(paths["int8"], nt), shape)
            for mode in ("exact", "fast"):
                interp = delegate_interpreter(paths["packed"], nt, mode, args.no_default_delegates)
                interps[(mode, nt)] = _prepared(interp, shape)
        repeats = []
        for rep in range(args.repeats):
            t = time_interleaved(interps, args.runs)
            reps = []
            for nt in threads:
                r = {"model": name, "threads": nt, "repeat": rep}
                for kind in ("float", "int8", "exact", "fast"):
                    r[kind] = t.get((kind, nt))
                r["exact_1t"] = t.get(("exact", threads[0]))
                r["fast_1t"] = t.get(("fast", threads[0]))
                reps.append(r)
                _print_row(r)
            repeats.append(reps)
        rows += repeats[-1] if args.repeats == 1 else _summarize(repeats)
        del interps
        if name == "alexnet_fc":
            with open(paths["packed"], "rb") as f:
                packed = f.read()
            weights = paths["ternary_weights"]
            for mode in ("fast", "exact"):
                b = resident_weight_bytes(packed, shape, mode)
                print(
                    f"[{name}] resident after creating the {mode}-mode interpreter: "
                    f"{b / 2**20:.1f} MiB = {8 * b / weights:.2f} bits per weight "
                    f"({weights:,} weights; packed file {len(packed) / 2**20:.1f} MiB)"
                )
    print(f"delegate library: {library_path()}")
    if args.markdown:
        _print_markdown(rows)
    return rows


def _fmt(v):
    return "   n/a" if v is None else f"{v[0]:7.3f}"


def _ratio(a, b):
    return "  n/a" if a is None or b is None else f"{a[0] / b[0]:5.2f}x"


def _print_row(r):
    scaling = ""
    if r["threads"] != 1 and r.get("exact_1t"):
        scaling = (
            f"  | {r['threads']}t/1t exact {_ratio(r['exact'], r['exact_1t'])} "
            f"fast {_ratio(r['fast'], r['fast_1t'])}"
        )
    print(
        f"{r['model']:>10} t={r['threads']}  xnn-float {_fmt(r['float'])} ms  "
        f"xnn-int8 {_fmt(r['int8'])} ms  ttq-exact {_fmt(r['exact'])} ms  "
        f"ttq-fast {_fmt(r['fast'])} ms  | exact/float {_ratio(r['exact'], r['float'])}  "
        f"fast/int8 {_ratio(r['fast'], r['int8'])}{scaling}",
        flush=True,
    )


_RATIOS = (("exact", "float"), ("fast", "int8"), ("exact", "exact_1t"), ("fast", "fast_1t"))


def _summarize(repeats):
    """One row per thread count: the median over the repeats of every median time, and for
    every ratio its median and (min, max) over the repeats."""
    rows = []
    for i in range(len(repeats[0])):
        reps = [rep[i] for rep in repeats]
        r = {"model": reps[0]["model"], "threads": reps[0]["threads"], "spread": {}}
        for kind in ("float", "int8", "exact", "fast", "exact_1t", "fast_1t"):
            vals = [x[kind] for x in reps if x[kind] is not None]
            r[kind] = (
                (statistics.median(v[0] for v in vals), statistics.median(v[1] for v in vals))
                if vals
                else None
            )
        for a, b in _RATIOS:
            ratios = [x[a][0] / x[b][0] for x in reps if x[a] and x[b]]
            if ratios:
                r["spread"][(a, b)] = (statistics.median(ratios), min(ratios), max(ratios))
        rows.append(r)
    return rows


def _fmt_md(v):
    return "n/a" if v is None else f"{v[0]:.3f} ({v[1]:.3f})"


def _ratio_md(r, a, b):
    if r.get("spread") and (a, b) in r["spread"]:
        m, lo, hi = r["spread"][(a, b)]
        return f"{m:.2f}x ({lo:.2f}-{hi:.2f})"
    if r[a] is None or r[b] is None:
        return "n/a"
    return f"{r[a][0] / r[b][0]:.2f}x"


def _print_markdown(rows):
    print()
    print(
        "Times: median (min) ms, medians over the repeats; ratios: of medians, with the "
        "(lowest-highest) ratio over the repeats."
    )
    print()
    print(
        "| model | threads | XNNPACK float | XNNPACK int8 | ttq exact | ttq fast "
        "| exact / float | fast / int8 | exact vs 1 thread | fast vs 1 thread |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['threads']} | {_fmt_md(r['float'])} | {_fmt_md(r['int8'])} | "
            f"{_fmt_md(r['exact'])} | {_fmt_md(r['fast'])} | "
            f"{_ratio_md(r, 'exact', 'float')} | {_ratio_md(r, 'fast', 'int8')} | "
            f"{_ratio_md(r, 'exact', 'exact_1t') if r['threads'] != 1 else '-'} | "
            f"{_ratio_md(r, 'fast', 'fast_1t') if r['threads'] != 1 else '-'} |"
        )


if __name__ == "__main__":
    main()
