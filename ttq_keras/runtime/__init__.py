"""Running packed ternary .tflite files: the TTQ delegate and its benchmark.

- `delegate`: `load_delegate`, `Interpreter` (also `ttq_keras.load_delegate` / `ttq_keras.Interpreter`).
- `benchmark`: `python -m ttq_keras.runtime.benchmark MODEL.tflite`, `time_invocations`.
"""
