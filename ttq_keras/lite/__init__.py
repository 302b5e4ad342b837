"""The TFLite side of ttq_keras, at the level of bytes: the packed ternary format (docs/format.md).

Nothing here imports Keras or tfmot; the Keras-facing `convert()` is `ttq_keras.export`.

- `format`: the format's names, version, option keys and rules (the mirror of docs/format.md).
- `packing`: `pack_trits` / `unpack_codes` (5 trits per byte).
- `flatbuffer_io`: reading and writing .tflite files (TF's `flatbuffer_utils`).
- `reference_kernels`: the three TTQ kernels in NumPy (the oracle).
- `builtin_kernels`: NumPy kernels of the builtin ops around them.
- `interpreter`: `validate(model)` and `run(model, inputs)`; `python -m ttq_keras.lite.interpreter`.
- `rewrite`: float .tflite + ternary codes -> packed .tflite (with `dilated_conv`, `prune`).
- `sizes`: `packed_layer_bytes` (the byte formula) and `op_byte_sizes` (bytes of a real file).
"""

from ttq_keras.lite.packing import pack_trits, unpack_codes  # noqa: F401
from ttq_keras.lite.sizes import op_byte_sizes, packed_layer_bytes  # noqa: F401

__all__ = ["pack_trits", "unpack_codes", "packed_layer_bytes", "op_byte_sizes"]
