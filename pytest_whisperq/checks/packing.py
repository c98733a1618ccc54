"""compressed-tensors `pack-quantized` integers, in numpy: our own unpacking, so the format check
does not trust the library it is checking.

The layout: a B-bit value q in [-2^(B-1), 2^(B-1)-1] is stored as q + 2^(B-1); along a row, element
i occupies bits i*B .. i*B+B-1 of one little-endian bit stream cut into int32 words (for B=4: eight
columns per word, column j of the eight at bits 4j..4j+3, lowest first).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def packed_columns(columns: int, num_bits: int) -> int:
    return math.ceil(columns * num_bits / 32)


def scale_columns(columns: int, group_size: int) -> int:
    """Groups (scale columns) per row; the last group may be partial."""
    return math.ceil(columns / group_size)


def unpack_int32(packed: np.ndarray, num_bits: int, columns: int) -> np.ndarray:
    """Signed int8 values [rows, columns] from int32 words [rows, ceil(columns * bits / 32)]."""
    import numpy as np

    if not 1 <= num_bits <= 8:
        raise ValueError(f"num_bits must be in 1..8, got {num_bits}")
    words = packed.astype("<i4", copy=False)
    rows = words.shape[0]
    offset = 1 << (num_bits - 1)
    if 8 % num_bits == 0:  # 1, 2, 4, 8 bits: whole values per byte, unpacked with byte-wide shifts
        data = words.view(np.uint8).reshape(rows, -1)
        per_byte = 8 // num_bits
        values = np.empty((rows, data.shape[1] * per_byte), dtype=np.uint8)
        mask = np.uint8((1 << num_bits) - 1)
        for j in range(per_byte):
            np.bitwise_and(data >> np.uint8(j * num_bits), mask, out=values[:, j::per_byte])
        values = values[:, :columns]
    else:  # values straddle bytes and words: go through the bit stream
        bits = np.unpackbits(words.view(np.uint8).reshape(rows, -1), axis=1, bitorder="little")
        bits = bits[:, : columns * num_bits].reshape(rows, columns, num_bits).astype(np.uint16)
        values = (bits << np.arange(num_bits, dtype=np.uint16)).sum(axis=2, dtype=np.uint16)
    signed = values.astype(np.int16) if num_bits == 8 else values.astype(np.int8)
    signed -= offset
    return signed.astype(np.int8, copy=False)


def pack_int32(values: np.ndarray, num_bits: int) -> np.ndarray:
    """The inverse of `unpack_int32`: signed values [rows, columns] to int32 words."""
    import numpy as np

    rows, columns = values.shape
    low, high = -(1 << (num_bits - 1)), (1 << (num_bits - 1)) - 1
    if values.size and (values.min() < low or values.max() > high):
        raise ValueError(f"values outside the {num_bits}-bit range [{low}, {high}]")
    unsigned = (values.astype(np.int16) + (1 << (num_bits - 1))).astype(np.uint8)
    bits = ((unsigned[:, :, None] >> np.arange(num_bits, dtype=np.uint8)) & 1).reshape(rows, -1)
    width = packed_columns(columns, num_bits) * 32
    bits = np.pad(bits, ((0, 0), (0, width - bits.shape[1])))
    return np.packbits(bits, axis=1, bitorder="little").view("<u4").view(np.int32).reshape(rows, -1)


def dequantize(values: np.ndarray, scale: np.ndarray, group_size: int, zero_point: np.ndarray | None = None) -> np.ndarray:
    """float32 weights from signed integers [rows, columns] and per-group scales [rows, groups]."""
    import numpy as np

    rows, columns = values.shape
    groups = scale.shape[1]
    padded = groups * group_size
    if padded < columns:
        raise ValueError(f"{groups} groups of {group_size} cannot cover {columns} columns")
    if padded == columns:
        q = values.astype(np.float32)
    else:
        q = np.zeros((rows, padded), dtype=np.float32)
        q[:, :columns] = values
    grouped = q.reshape(rows, groups, group_size)
    if zero_point is not None:
        grouped -= zero_point.astype(np.float32)[:, :, None]
    grouped *= scale.astype(np.float32)[:, :, None]
    return q[:, :columns]


def dequantize_by_index(values: np.ndarray, scale: np.ndarray, g_idx: np.ndarray) -> np.ndarray:
    """Group act-order: column j uses scale[:, g_idx[j]] (groups are not contiguous)."""
    import numpy as np

    weight = values.astype(np.float32)
    weight *= scale.astype(np.float32)[:, g_idx]
    return weight


def quantize_symmetric(weight: np.ndarray, group_size: int, num_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Round-to-nearest symmetric group quantization (scale = max|w| / (2^(B-1) - 0.5) as
    compressed-tensors' min-max observer does): (int8 values, fp16 scales). Used to build
    honest test checkpoints; the checkpoints under test come from GPTQ."""
    import numpy as np

    rows, columns = weight.shape
    groups = scale_columns(columns, group_size)
    padded = np.zeros((rows, groups * group_size), dtype=np.float32)
    padded[:, :columns] = weight
    grouped = padded.reshape(rows, groups, group_size)
    q_max = (1 << (num_bits - 1)) - 1
    scale = (np.abs(grouped).max(axis=2) / (q_max + 0.5)).astype(np.float16)
    safe = np.where(scale == 0, np.float16(1), scale).astype(np.float32)
    values = np.clip(np.rint(grouped / safe[:, :, None]), -q_max - 1, q_max).astype(np.int8)
    return values.reshape(rows, -1)[:, :columns], scale


def unpack_rows_int32(packed: np.ndarray, num_bits: int, rows: int) -> np.ndarray:
    """Values packed along dim 0 (compressed-tensors packs asymmetric zero points [rows, groups] this way):
    int32 words [ceil(rows * bits / 32), groups] to signed int8 [rows, groups]."""
    return unpack_int32(packed.T.copy(), num_bits, rows).T


def _fp8_e4m3_table() -> np.ndarray:
    """float32 value of each of the 256 FP8 E4M3FN codes (sign, 4 exponent bits with bias 7, 3 mantissa bits;
    no infinities, S.1111.111 is NaN)."""
    import numpy as np

    codes = np.arange(256, dtype=np.uint32)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    exponent, mantissa = (codes >> 3) & 0xF, (codes & 0x7).astype(np.float64)
    value = np.where(exponent == 0, mantissa / 8 * 2.0 ** -6, (1 + mantissa / 8) * 2.0 ** (exponent.astype(np.float64) - 7))
    value = sign * value
    value[(exponent == 0xF) & ((codes & 0x7) == 0x7)] = np.nan
    return value.astype(np.float32)


# E2M1 (FP4) magnitudes of codes 0..7; bit 3 is the sign
FP4_E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def decode_fp8_e4m3(raw: np.ndarray) -> np.ndarray:
    """float32 values of FP8 E4M3FN bytes (safetensors F8_E4M3, read as uint8)."""
    import numpy as np

    return _fp8_e4m3_table()[raw.astype(np.uint8, copy=False)]


def unpack_fp4(packed: np.ndarray, columns: int) -> np.ndarray:
    """float32 FP4 (E2M1) values [rows, columns] from uint8 bytes [rows, columns / 2], the lower nibble first."""
    import numpy as np

    data = packed.astype(np.uint8, copy=False)
    codes = np.empty((data.shape[0], data.shape[1] * 2), dtype=np.uint8)
    codes[:, 0::2], codes[:, 1::2] = data & 0x0F, data >> 4
    table = np.array(FP4_E2M1 + tuple(-v for v in FP4_E2M1), dtype=np.float32)
    return table[codes[:, :columns]]


def _groups(weight: np.ndarray, strategy: str, group_size: int | None, block: tuple[int, ...] | None):
    """`weight` [rows, columns] cut into the strategy's quantization groups: (array [..., members], undo) where
    undo(grouped) gives back a [rows, columns] array. Padding (zeros) never changes a group's extremes' sign."""
    import numpy as np

    rows, columns = weight.shape
    if strategy == "tensor":
        return weight.reshape(1, -1), lambda g: g.reshape(rows, columns)
    if strategy in ("channel", "token"):
        return weight, lambda g: g
    if strategy in ("group", "tensor_group"):
        size = group_size or columns
        padded = np.zeros((rows, -(-columns // size) * size), dtype=np.float32)
        padded[:, :columns] = weight
        return padded.reshape(rows, -1, size), lambda g: g.reshape(rows, -1)[:, :columns]
    if strategy == "block" and block:
        height, width = block
        tall, wide = -(-rows // height), -(-columns // width)
        padded = np.zeros((tall * height, wide * width), dtype=np.float32)
        padded[:rows, :columns] = weight
        tiles = padded.reshape(tall, height, wide, width).transpose(0, 2, 1, 3).reshape(tall, wide, height * width)
        return tiles, lambda g: g.reshape(tall, wide, height, width).transpose(0, 2, 1, 3).reshape(
            tall * height, wide * width)[:rows, :columns]
    raise ValueError(f"no round-to-nearest reference for strategy {strategy!r}")


def _nearest(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Each value rounded to the nearest member of the sorted finite `grid`."""
    import numpy as np

    index = np.clip(np.searchsorted(grid, values), 1, len(grid) - 1)
    lower, upper = grid[index - 1], grid[index]
    return np.where(values - lower <= upper - values, lower, upper)


def round_to_nearest(weight: np.ndarray, num_bits: int, kind: str, strategy: str, symmetric: bool = True,
                     group_size: int | None = None, block: tuple[int, ...] | None = None) -> np.ndarray:
    """`weight` quantized by plain round-to-nearest with min-max scales at the given scheme, dequantized (float32):
    the floor a calibrated method (GPTQ) is compared with. INT: symmetric scale max|w| / (2^b - 1) * 2, or
    asymmetric min/max with a zero point; FP8 E4M3: max|w| / 448, values rounded to E4M3; FP4 E2M1: max|w| / 6."""
    import numpy as np

    groups, undo = _groups(np.asarray(weight, dtype=np.float32), strategy, group_size, block)
    if kind == "int":
        low, high = -(1 << (num_bits - 1)), (1 << (num_bits - 1)) - 1
        if symmetric:
            scale = np.abs(groups).max(axis=-1, keepdims=True) / ((high - low) / 2)
            zero = np.zeros_like(scale)
        else:
            minimum = np.minimum(groups.min(axis=-1, keepdims=True), 0)
            maximum = np.maximum(groups.max(axis=-1, keepdims=True), 0)
            scale = (maximum - minimum) / (high - low)
            zero = np.rint(low - minimum / np.where(scale == 0, 1, scale))
        safe = np.where(scale == 0, 1, scale)
        values = np.clip(np.rint(groups / safe) + zero, low, high)
        return undo((values - zero) * scale)
    if kind == "float" and num_bits in (8, 4):
        table = _fp8_e4m3_table() if num_bits == 8 else np.array(FP4_E2M1 + tuple(-v for v in FP4_E2M1), np.float32)
        grid = np.unique(table[np.isfinite(table)])
        scale = np.abs(groups).max(axis=-1, keepdims=True) / grid.max()
        safe = np.where(scale == 0, 1, scale)
        return undo(_nearest(groups / safe, grid) * scale)
    raise ValueError(f"no round-to-nearest reference for {num_bits}-bit {kind}")


def min_max_scales(weight: np.ndarray, num_bits: int, kind: str, strategy: str, symmetric: bool = True,
                   group_size: int | None = None, block: tuple[int, ...] | None = None) -> np.ndarray:
    """The scales a min-max observer gives `weight` at the scheme, one per quantization group (the strategy's
    order: what `weight_scale` holds, flattened): the group's largest magnitude over the format's largest value
    (INT symmetric: (2^b - 1) / 2; asymmetric: the range over 2^b - 1; FP8 E4M3: 448; FP4 E2M1: 6)."""
    import numpy as np

    groups, _ = _groups(np.asarray(weight, dtype=np.float32), strategy, group_size, block)
    if kind == "int" and not symmetric:
        spread = np.maximum(groups.max(axis=-1), 0) - np.minimum(groups.min(axis=-1), 0)
        return (spread / ((1 << num_bits) - 1)).reshape(-1)
    largest = {("int", True): ((1 << num_bits) - 1) / 2, ("float", 8): 448.0, ("float", 4): 6.0}
    top = largest.get((kind, True) if kind == "int" else (kind, num_bits))
    if top is None:
        raise ValueError(f"no min-max scale for {num_bits}-bit {kind}")
    return (np.abs(groups).max(axis=-1) / top).reshape(-1)
