"""Accuracy cost of the delegate's fast (int8 activation) mode on a trained packed model.

Runs every test image of Fashion-MNIST through the packed `.tflite` that `make demo` writes
(`output_demo/model_packed.tflite`), once with `mode="exact"` and once with `mode="fast"`,
with the demo's preprocessing (the per-pixel mean of its 20,000-image training subset), and
prints both top-1 accuracies, their difference (issue 9: at most 0.2 points) and how often
the two modes disagree on the predicted class. Numbers go in BENCHMARKS.md.

    .venv/bin/python -m benchmarks.fast_mode_accuracy [--model output_demo/model_packed.tflite]
        [--train_examples 20000] [--seed 0] [--test_examples 10000] [--num_threads 2]

The demo's defaults are this script's defaults; pass the demo's own flags if you changed them.
"""

import argparse

import numpy as np

import ttq_keras
from examples.common import data as data_lib


def predictions(model_bytes, images, mode, num_threads):
    interpreter = ttq_keras.Interpreter(
        model_content=model_bytes, num_threads=num_threads, mode=mode
    )
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]["index"]
    classes = np.empty(len(images), np.int64)
    for i, image in enumerate(images):
        interpreter.set_tensor(inp["index"], image[None].astype(inp["dtype"]))
        interpreter.invoke()
        classes[i] = int(np.argmax(interpreter.get_tensor(out)[0]))
    return classes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="output_demo/model_packed.tflite")
    ap.add_argument("--fashion_mnist_dir", default=None)
    ap.add_argument("--train_examples", type=int, default=20000, help="the demo's subset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test_examples", type=int, default=10000)
    ap.add_argument("--num_threads", type=int, default=2)
    args = ap.parse_args(argv)
    with open(args.model, "rb") as f:
        model_bytes = f.read()
    images = data_lib.load_fashion_mnist(args.fashion_mnist_dir).subset(
        args.train_examples, args.test_examples, seed=args.seed
    )
    x = images.normalize(images.x_test)
    y = images.y_test
    exact = predictions(model_bytes, x, "exact", args.num_threads)
    fast = predictions(model_bytes, x, "fast", args.num_threads)
    acc_exact = float(np.mean(exact == y))
    acc_fast = float(np.mean(fast == y))
    print(f"model: {args.model}; {len(y)} test images")
    print(f"exact mode: {100 * acc_exact:.2f}%")
    print(f"fast mode:  {100 * acc_fast:.2f}%")
    print(
        f"fast - exact: {100 * (acc_fast - acc_exact):+.2f} points; the modes disagree on "
        f"{int(np.sum(exact != fast))} images"
    )
    return acc_exact, acc_fast


if __name__ == "__main__":
    main()
