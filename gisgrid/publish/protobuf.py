"""The few Protocol Buffers pieces gisgrid writes by hand: varints, zigzag, fields.

Vector tiles (:mod:`gisgrid.publish.mvt`) and label glyphs (:mod:`gisgrid.publish.glyphs`) are
small protobuf messages; writing them directly is faster than building message
objects, and needs no generated code.

Examples
--------
>>> varint(300), zigzag(-3), number_field(1, 150)
(b'\\xac\\x02', 5, b'\\x08\\x96\\x01')
>>> varints(np.array([1, 300]))[0]
b'\\x01\\xac\\x02'
"""

from __future__ import annotations

import numpy as np

__all__ = ["bytes_field", "number_field", "varint", "varint_sizes", "varints", "zigzag"]


#: varints of 0 … 16,383 (one or two bytes), looked up: tiles write thousands per render
_SMALL = [bytes([v]) if v < 128 else bytes([v & 0x7F | 0x80, v >> 7]) for v in range(1 << 14)]


def varint(value: int) -> bytes:
    """A non-negative integer as a protobuf varint."""
    if value < 16384:
        return _SMALL[value]
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint_sizes(values: np.ndarray) -> np.ndarray:
    """The bytes each non-negative integer takes as a varint."""
    v = np.asarray(values, dtype=np.uint64)
    n = np.ones(len(v), dtype=np.int64)
    top = int(v.max()) if len(v) else 0
    for bits in range(7, 64, 7):
        if top < 1 << bits:  # most values take one or two bytes: stop there
            break
        n += v >= (np.uint64(1) << np.uint64(bits))
    return n


def varints(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Varints of many non-negative integers as one byte string, and the byte offset
    where each value starts (plus the total at the end)."""
    v = np.asarray(values, dtype=np.uint64)
    n = varint_sizes(v)
    width = int(n.max()) if len(v) else 1
    shifts = np.arange(0, 7 * width, 7, dtype=np.uint64)
    groups = ((v[:, None] >> shifts[None, :]) & np.uint64(0x7F)).astype(np.uint8)
    col = np.arange(width)[None, :]
    groups[col < (n[:, None] - 1)] |= 0x80
    offsets = np.concatenate([[0], np.cumsum(n)])
    return groups[col < n[:, None]].tobytes(), offsets


def zigzag(value):
    """ZigZag encoding of signed integers: an int, or an array (as ``uint64``)."""
    if isinstance(value, np.ndarray):
        d = value.astype(np.int64)
        return ((d << 1) ^ (d >> 63)).astype(np.uint64)
    v = int(value)
    return (v << 1) ^ (v >> 63)


def number_field(number: int, value: int) -> bytes:
    """A varint field (wire type 0) holding a non-negative integer."""
    return varint(number << 3) + varint(value)


def bytes_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    n = len(payload)
    return _SMALL[number << 3 | 2] + (_SMALL[n] if n < 16384 else varint(n)) + payload
