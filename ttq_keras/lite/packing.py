"""Packing of ternary weights: 5 trits per byte, base 3 (docs/format.md, section 3).

Each weight is one trit `d`: 0 = zero, 1 = positive, 2 = negative. A row of `K` trits is padded
with zero trits to a multiple of 5 and stored in `ceil(K / 5)` bytes; byte `j` holds taps
`5j ... 5j+4` as `d[5j] + 3 d[5j+1] + 9 d[5j+2] + 27 d[5j+3] + 81 d[5j+4]` (at most 242).

    >>> codes = pack_trits(np.array([[1, -1, 0, 0, 0, 1]]))
    >>> codes.tolist()
    [[7, 1]]
    >>> unpack_codes(codes, 6).tolist()
    [[1, -1, 0, 0, 0, 1]]
"""

import numpy as np

from ttq_keras.lite.format import MAX_CODE_BYTE, TRITS_PER_BYTE, packed_row_bytes

__all__ = ["pack_trits", "unpack_codes"]

_POWERS = np.array([1, 3, 9, 27, 81], dtype=np.uint16)


def pack_trits(trits):
    """Packs a `[rows, K]` array of values in {-1, 0, +1} into `[rows, ceil(K/5)]` uint8 codes.

    Args:
      trits: integer or float array of shape `[rows, K]` with values in {-1, 0, +1}
        (+1 becomes trit 1, -1 becomes trit 2).

    Returns:
      np.uint8 array of shape `[rows, ceil(K / 5)]`.

    Raises:
      ValueError: if `trits` is not 2-D or holds a value outside {-1, 0, +1}.
    """
    trits = np.asarray(trits)
    if trits.ndim != 2:
        raise ValueError(f"pack_trits expects a 2-D [rows, K] array. Received shape: {trits.shape}")
    bad = ~np.isin(trits, (-1, 0, 1))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"pack_trits expects values in {{-1, 0, +1}}. Received {trits[where]!r} at {where}"
        )
    rows, k = trits.shape
    nbytes = packed_row_bytes(k)
    digits = np.zeros((rows, nbytes * TRITS_PER_BYTE), dtype=np.uint16)
    t = trits.astype(np.int8)
    digits[:, :k] = np.where(t < 0, 2, t).astype(np.uint16)
    digits = digits.reshape(rows, nbytes, TRITS_PER_BYTE)
    return (digits * _POWERS).sum(axis=-1, dtype=np.uint16).astype(np.uint8)


def unpack_codes(codes, k, name="codes"):
    """Unpacks `[rows, ceil(K/5)]` uint8 codes into a `[rows, K]` np.int8 array in {-1, 0, +1}.

    Args:
      codes: uint8 array of shape `[rows, ceil(k / 5)]`.
      k: the row length `K` in trits.
      name: how error messages call the tensor.

    Raises:
      ValueError: if the shape is not `[rows, ceil(k/5)]`, a byte is greater than 242 or a
        padding trit (past `k`) is not zero.
    """
    codes = np.asarray(codes)
    nbytes = packed_row_bytes(k)
    if codes.ndim != 2 or codes.shape[1] != nbytes:
        raise ValueError(
            f"{name}: expected shape [rows, ceil({k}/5)] = [rows, {nbytes}]. "
            f"Received shape: {list(codes.shape)}"
        )
    if codes.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8. Received: {codes.dtype}")
    if codes.size and int(codes.max()) > MAX_CODE_BYTE:
        where = tuple(int(i) for i in np.argwhere(codes > MAX_CODE_BYTE)[0])
        raise ValueError(
            f"{name}: code byte {int(codes[where])} at {list(where)} is greater than "
            f"{MAX_CODE_BYTE}"
        )
    rows = codes.shape[0]
    c = codes.astype(np.int16)[..., None]
    digits = (c // _POWERS.astype(np.int16)) % 3  # [rows, nbytes, 5]
    digits = digits.reshape(rows, nbytes * TRITS_PER_BYTE)
    if nbytes * TRITS_PER_BYTE > k and digits[:, k:].any():
        row = int(np.argwhere(digits[:, k:].any(axis=1))[0][0])
        raise ValueError(
            f"{name}: padding trits past K={k} in row {row} are not zero "
            f"(last byte {int(codes[row, -1])})"
        )
    digits = digits[:, :k].astype(np.int8)
    return np.where(digits == 2, np.int8(-1), digits).astype(np.int8)
