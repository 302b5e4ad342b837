"""Times a .tflite model with the TTQ delegate, and the project's one timing loop.

    python -m ttq_keras.runtime.benchmark model_packed.tflite [--num_threads N]
        [--mode exact|fast] [--runs N] [--warmup N] [--baseline] [--profile]

Runs the model through `ttq_keras.Interpreter` (the packed TTQ ops on the delegate,
the other ops on the runtime's default kernels) on a fixed random input, batch as in the file,
and prints the median latency (plus min and mean) of `--runs` invocations after `--warmup`
untimed ones. `--baseline` also times the same file on the stock interpreter without the TTQ
delegate (only possible for files without TTQ ops, e.g. the portable float/int8 export).
`--profile` also prints the median time of every op, TTQ and builtin (ttq_keras.runtime.profile).

The function `benchmark(model, ...)` returns the numbers as a dict; `time_invocations` is the
timing loop that it, benchmarks/ and the examples' reports share.
"""

import argparse
import statistics
import sys
import time

import numpy as np

from ttq_keras.runtime.delegate import MODES, Interpreter

__all__ = ["benchmark", "time_invocations", "time_interleaved", "set_random_inputs", "main"]


def set_random_inputs(interpreter, seed=0):
    """Sets every input of an allocated interpreter to fixed random data (batch as in the file).

    Float inputs get N(0, 1) samples; integer inputs uniform values in the int8 range.
    """
    rng = np.random.default_rng(seed)
    for d in interpreter.get_input_details():
        shape = [int(s) if s > 0 else 1 for s in d["shape"]]
        dtype = np.dtype(d["dtype"])
        if np.issubdtype(dtype, np.floating):
            x = rng.normal(0.0, 1.0, shape).astype(dtype)
        else:
            info = np.iinfo(dtype)
            x = rng.integers(max(info.min, -128), min(info.max, 127) + 1, shape).astype(dtype)
        interpreter.set_tensor(d["index"], x)


def time_invocations(interpreter, runs=100, warmup=10):
    """Times `interpreter.invoke()` on the inputs already set; the one timing loop of the project.

    Returns:
      {"median_ms", "min_ms", "mean_ms", "runs"} over `runs` invocations after `warmup`
      untimed ones.
    """
    for _ in range(warmup):
        interpreter.invoke()
    times_ms = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times_ms.append((time.perf_counter() - start) * 1e3)
    return {
        "median_ms": statistics.median(times_ms),
        "min_ms": min(times_ms),
        "mean_ms": statistics.fmean(times_ms),
        "runs": runs,
    }


def time_interleaved(interpreters, runs=100, block=4):
    """Times several interpreters side by side: {name: {"median_ms", "min_ms", "runs"}}.

    Rounds run every interpreter (inputs already set) in turn, one untimed invocation then
    `block` timed ones, until each has `runs` timed invocations, so that a burst of load from
    other processes, or a drift of the machine's speed, hits all of them alike. The untimed
    invocation keeps one interpreter's thread pool, still spinning after its job, and its
    weights in the caches from being charged to the next interpreter.
    """
    times = {name: [] for name in interpreters}
    for _ in range(-(-runs // block)):
        for name, interpreter in interpreters.items():
            interpreter.invoke()
            for _ in range(block):
                start = time.perf_counter()
                interpreter.invoke()
                times[name].append((time.perf_counter() - start) * 1e3)
    return {
        name: {"median_ms": statistics.median(t), "min_ms": min(t), "runs": len(t)}
        for name, t in times.items()
    }


def _time(interpreter, runs, warmup):
    interpreter.allocate_tensors()
    set_random_inputs(interpreter)
    return time_invocations(interpreter, runs, warmup)


def benchmark(model, *, num_threads=1, mode="exact", runs=100, warmup=10, baseline=False):
    """Times `model` (a path or the bytes of a .tflite file) with the TTQ delegate.

    Returns:
      {"median_ms", "min_ms", "mean_ms", "runs", "num_threads", "mode", "delegated_ops",
       "kernels"} and, with `baseline=True`, "baseline_median_ms" (stock interpreter).

    Raises:
      ValueError: bad arguments, or the model is not a valid packed file.
      FileNotFoundError: the model file or the delegate library is missing.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
    limits = (("runs", runs, 1), ("warmup", warmup, 0), ("num_threads", num_threads, 1))
    for name, value, low in limits:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}. Received: {name}={value!r}")
    if isinstance(model, (bytes, bytearray)):
        kwargs = {"model_content": bytes(model)}
    else:
        kwargs = {"model_path": str(model)}
    interpreter = Interpreter(num_threads=num_threads, mode=mode, **kwargs)
    result = _time(interpreter, runs, warmup)
    ops = interpreter.delegated_ops()
    result.update(
        num_threads=num_threads,
        mode=mode,
        delegated_ops=len(ops),
        kernels=sorted({op.kernel for op in ops}),
    )
    if baseline:
        try:
            from ai_edge_litert.interpreter import Interpreter as Stock
        except ImportError:  # pragma: no cover - LiteRT is an optional extra
            from ttq_keras._compat import tf

            Stock = tf.lite.Interpreter
        stock = Stock(num_threads=num_threads, **kwargs)
        result["baseline_median_ms"] = _time(stock, runs, warmup)["median_ms"]
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m ttq_keras.runtime.benchmark",
        description="Median latency of a .tflite model run with the TTQ delegate.",
    )
    ap.add_argument("model", help="path of a .tflite file (packed ternary, docs/format.md)")
    ap.add_argument("--num_threads", type=int, default=1)
    ap.add_argument("--mode", choices=("exact", "fast"), default="exact")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument(
        "--baseline",
        action="store_true",
        help="also time the file on the stock interpreter (files without TTQ ops)",
    )
    ap.add_argument(
        "--profile", action="store_true", help="print the median time per op (TTQ and builtin)"
    )
    args = ap.parse_args(argv)
    try:
        r = benchmark(
            args.model,
            num_threads=args.num_threads,
            mode=args.mode,
            runs=args.runs,
            warmup=args.warmup,
            baseline=args.baseline,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"{args.model}: median {r['median_ms']:.3f} ms (min {r['min_ms']:.3f}, mean "
        f"{r['mean_ms']:.3f}) over {r['runs']} runs; mode={r['mode']} "
        f"num_threads={r['num_threads']}; {r['delegated_ops']} ops on the TTQ delegate "
        f"({', '.join(r['kernels']) or 'none'})"
    )
    if "baseline_median_ms" in r:
        print(f"stock interpreter: median {r['baseline_median_ms']:.3f} ms")
    if args.profile:
        from ttq_keras.runtime.profile import format_profile, profile_model

        print(
            format_profile(
                profile_model(
                    args.model,
                    num_threads=args.num_threads,
                    mode=args.mode,
                    runs=args.runs,
                    warmup=args.warmup,
                )
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
