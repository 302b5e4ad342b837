"""TFLite side of ttq_keras: the packed ternary format (docs/format.md).

- `packing`: pack_trits / unpack_codes (5 trits per byte).
- `reference`: NumPy reference interpreter and validator (the test oracle).
- `sizes`: packed_layer_bytes (the byte formula) and op_byte_sizes (bytes of a real file).
- `converter`: the implementation of `ttq_keras.convert`.
"""

from ttq_keras.lite.packing import pack_trits, unpack_codes  # noqa: F401
from ttq_keras.lite.sizes import op_byte_sizes, packed_layer_bytes  # noqa: F401

__all__ = ["pack_trits", "unpack_codes", "packed_layer_bytes", "op_byte_sizes"]
