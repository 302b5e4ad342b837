"""One line per step of a run, with the time it took.

    with progress.stage("Converting to packed .tflite"):
        content = ttq_keras.convert(model)

prints `Converting to packed .tflite ... 3.1 s`. Steps that print on their own (Keras `fit` with
its progress bar) use `stage(..., own_lines=True)`: a heading line first, the time after.
"""

import contextlib
import time


@contextlib.contextmanager
def stage(title, own_lines=False):
    start = time.perf_counter()
    if own_lines:
        print(f"== {title}", flush=True)
    else:
        print(f"{title} ...", end="", flush=True)
    try:
        yield
    except BaseException:
        print(" failed" if not own_lines else f"== {title}: failed", flush=True)
        raise
    seconds = time.perf_counter() - start
    if own_lines:
        print(f"== {title}: {_format(seconds)}", flush=True)
    else:
        print(f" {_format(seconds)}", flush=True)


def _format(seconds):
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s"


__all__ = ["stage"]
