"""A small MVT reader written for the tests, apart from the encoder: each polygon
feature's rings and their areas by the surveyor's formula, in tile coordinates, which
is how the MVT 2.1 specification (§4.3.4.4) defines a ring's winding."""

from __future__ import annotations

from collections.abc import Iterator


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i : i + n], i + n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            value, i = buf[i : i + n], i + n
        else:
            raise ValueError(f"wire type {wire}")
        yield number, value


def _rings(commands: list[int]) -> list[list[tuple[int, int]]]:
    x = y = i = 0
    rings: list[list[tuple[int, int]]] = []
    ring: list[tuple[int, int]] = []
    while i < len(commands):
        command, count = commands[i] & 7, commands[i] >> 3
        i += 1
        if command == 7:  # ClosePath
            rings.append(ring)
            ring = []
            continue
        for _ in range(count):
            dx, dy = commands[i], commands[i + 1]
            i += 2
            x, y = x + ((dx >> 1) ^ -(dx & 1)), y + ((dy >> 1) ^ -(dy & 1))
            ring.append((x, y))
    return rings


def _area(ring: list[tuple[int, int]]) -> float:
    n = len(ring)
    return (
        sum(ring[j][0] * ring[(j + 1) % n][1] - ring[(j + 1) % n][0] * ring[j][1] for j in range(n))
        / 2
    )


def polygon_rings(tile: bytes) -> Iterator[tuple[str, int, list[float]]]:
    """(layer, feature number, each ring's area) of every polygon feature of a tile."""
    for number, layer in _fields(tile):
        if number != 3:
            continue
        assert isinstance(layer, bytes)
        name, features = "", []
        for n, value in _fields(layer):
            if n == 1:
                name = bytes(value).decode()  # type: ignore[arg-type]
            elif n == 2:
                features.append(dict(_fields(value)))  # type: ignore[arg-type]
        for k, feature in enumerate(features):
            if feature.get(3) != 3:  # POLYGON
                continue
            packed, commands, i = feature[4], [], 0
            while i < len(packed):
                v, i = _varint(packed, i)
                commands.append(v)
            yield name, k, [_area(r) for r in _rings(commands)]
