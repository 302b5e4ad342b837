"""Child process of tests/hostile_corpus_test.py: runs .tflite files through both readers.

    python -m tests.hostile_corpus_child [--memory-headroom-mb N] FILE...

For each file it prints `START <name>`, then `RESULT <json>` with the outcome of the NumPy
reference and of ttq_keras.Interpreter (LiteRT + the TTQ delegate): "accept" (ran; outputs
included), "reject" (a clean ValueError / RuntimeError / NotImplementedError, message
included) or "unclean" (any other exception: a reader bug). A signal or a hang shows as a
missing RESULT, which the parent reports with the file's name.

With --memory-headroom-mb the process limits its own address space (RLIMIT_AS) to what it
uses after the imports plus N MiB, so a file that makes either reader allocate more dies with
MemoryError / bad_alloc instead of passing.
"""

import ttq_keras  # noqa: F401  isort: skip  (sets TF_USE_LEGACY_KERAS before TF loads)

import argparse
import json
import os
import resource
import sys
import traceback

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema_fb

from ttq_keras.lite import interpreter as numpy_reference  # the NumPy reference reader

# Largest input the harness builds; a file declaring more can only be accepted by a reader
# that allocates it, which the memory bound forbids.
MAX_HARNESS_INPUT_ELEMENTS = 1 << 20
_DTYPES = {
    schema_fb.TensorType.FLOAT32: np.float32,
    schema_fb.TensorType.FLOAT16: np.float16,
    schema_fb.TensorType.INT32: np.int32,
    schema_fb.TensorType.UINT8: np.uint8,
    schema_fb.TensorType.INT8: np.int8,
    schema_fb.TensorType.INT64: np.int64,
}
CLEAN = (ValueError, RuntimeError, NotImplementedError)


def _inputs(data):
    """(inputs for subgraph 0, output tensor indices), or (None, None) when unbuildable."""
    try:
        model = schema_fb.ModelT.InitFromObj(schema_fb.Model.GetRootAsModel(bytearray(data), 0))
        sg = model.subgraphs[0]
        rng = np.random.default_rng(0)
        xs = []
        for i in sg.inputs:
            t = sg.tensors[i]
            shape = [int(d) for d in (t.shape if t.shape is not None else [])]
            if any(d < 0 for d in shape) or int(np.prod(shape, dtype=np.float64)) > (
                MAX_HARNESS_INPUT_ELEMENTS
            ):
                return None, None
            xs.append(rng.uniform(-2, 2, size=shape).astype(_DTYPES.get(t.type, np.float32)))
        return xs, [int(i) for i in sg.outputs]
    except Exception:  # a file the schema cannot parse: the readers must reject it
        return None, None


def _summary(e):
    return f"{type(e).__name__}: {str(e)[:300]}"


def run_reference(data, xs):
    try:
        numpy_reference.validate(data)
        if xs is None:
            return {"outcome": "accept", "outputs": None, "note": "validated; input too large"}
        outputs = numpy_reference.run(data, list(xs))
        return {"outcome": "accept", "outputs": [np.asarray(y).tolist() for y in outputs]}
    except CLEAN as e:
        return {"outcome": "reject", "error": _summary(e)}
    except Exception as e:
        return {"outcome": "unclean", "error": _summary(e), "trace": traceback.format_exc()}


def run_interpreter(data, xs, output_indices):
    try:
        interpreter = ttq_keras.Interpreter(model_content=data)
        interpreter.allocate_tensors()
        if xs is None:
            return {"outcome": "accept", "outputs": None, "note": "allocated; input too large"}
        for detail, x in zip(interpreter.get_input_details(), xs):
            interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
        by_index = {d["index"]: d for d in interpreter.get_output_details()}
        outputs = [interpreter.get_tensor(by_index[i]["index"]) for i in output_indices]
        return {"outcome": "accept", "outputs": [np.asarray(y).tolist() for y in outputs]}
    except CLEAN as e:
        return {"outcome": "reject", "error": _summary(e)}
    except Exception as e:
        return {"outcome": "unclean", "error": _summary(e), "trace": traceback.format_exc()}


def _limit_address_space(headroom_mb):
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
    limit = vm * 1024 + headroom_mb * (1 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return limit


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory-headroom-mb", type=int, default=0)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    # Warm both readers up on a valid file first, so their lazy start-up allocations (thread
    # pools, XNNPACK) happen before the limit.
    ttq_keras.Interpreter  # noqa: B018
    if args.memory_headroom_mb:
        limit = _limit_address_space(args.memory_headroom_mb)
        print(f"LIMIT {limit}", flush=True)
    for path in args.files:
        name = os.path.basename(path)
        print(f"START {name}", flush=True)
        if os.environ.get("TTQ_HOSTILE_WORKER_SELF_KILL"):  # the harness test: die on a file
            os.kill(os.getpid(), int(os.environ["TTQ_HOSTILE_WORKER_SELF_KILL"]))
        with open(path, "rb") as f:
            data = f.read()
        xs, output_indices = _inputs(data)
        result = {
            "name": name,
            "file_bytes": len(data),
            "reference": run_reference(data, xs),
            "interpreter": run_interpreter(data, xs, output_indices),
        }
        print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
