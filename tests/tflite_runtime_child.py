"""Runs packed models under tflite_runtime 2.14 with the TTQ delegate. Executed by the
.venv-tflite-runtime interpreter (numpy<2, no TensorFlow, no ttq_keras), driven by
tests/tflite_runtime_test.py:

    python tflite_runtime_child.py JOB.json

JOB.json: {"library": path of libttq_delegate.so,
           "runs": [{"model": .tflite, "input": .npy, "output": .npy, "mode": "exact"|"fast",
                     "num_threads": int}, ...]}
Prints one JSON object: {"tflite_runtime": version, "runs": [{"delegated": [[node, op, kernel],
...]}, ...]}; the outputs go to the .npy files.
"""

import ctypes
import json
import sys

import numpy as np
import tflite_runtime
from tflite_runtime import interpreter as tfl


def delegated_nodes(library, delegate):
    lib = ctypes.CDLL(library)  # the handle load_delegate already opened
    lib.TfLiteTtqDelegateNumDelegatedNodes.argtypes = [ctypes.c_void_p]
    lib.TfLiteTtqDelegateNumDelegatedNodes.restype = ctypes.c_int
    get = lib.TfLiteTtqDelegateGetDelegatedNode
    get.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)] + [
        ctypes.POINTER(ctypes.c_char_p)
    ] * 2
    get.restype = ctypes.c_int
    pointer = delegate._get_native_delegate_pointer()  # noqa: SLF001
    nodes = []
    for i in range(lib.TfLiteTtqDelegateNumDelegatedNodes(pointer)):
        node, op, kernel = ctypes.c_int(), ctypes.c_char_p(), ctypes.c_char_p()
        if get(pointer, i, ctypes.byref(node), ctypes.byref(op), ctypes.byref(kernel)) == 0:
            nodes.append([node.value, op.value.decode(), kernel.value.decode()])
    return nodes


def main(job_path):
    with open(job_path) as f:
        job = json.load(f)
    results = []
    for run in job["runs"]:
        delegate = tfl.load_delegate(
            job["library"], {"mode": run["mode"], "num_threads": str(run["num_threads"])}
        )
        interpreter = tfl.Interpreter(
            model_path=run["model"],
            experimental_delegates=[delegate],
            num_threads=run["num_threads"],
        )
        x = np.load(run["input"])
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        np.save(run["output"], interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
        results.append({"delegated": delegated_nodes(job["library"], delegate)})
        del interpreter  # before its delegate
    print(json.dumps({"tflite_runtime": tflite_runtime.__version__, "runs": results}))


if __name__ == "__main__":
    main(sys.argv[1])
