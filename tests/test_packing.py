"""Our INT4 unpacking: fixed golden vectors, and agreement with compressed-tensors' own code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
from compressed_tensors.compressors.pack_quantized.helpers import pack_to_int32, unpack_from_int32
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

from pytest_whisperq.checks.packing import dequantize, dequantize_by_index, pack_int32, packed_columns, quantize_symmetric, unpack_int32

# Worked by hand from the format: q + 8 in four bits, column j of eight at bits 4j..4j+3.
GOLDEN_INT4 = [
    (0x76543210, [-8, -7, -6, -5, -4, -3, -2, -1]),
    (-0x01234568, [0, 1, 2, 3, 4, 5, 6, 7]),  # 0xFEDCBA98 as int32
    (-0x77777778, [0, 0, 0, 0, 0, 0, 0, 0]),  # 0x88888888: all zeros
    (0x0000000F, [7, -8, -8, -8, -8, -8, -8, -8]),
]


@pytest.mark.parametrize(("word", "values"), GOLDEN_INT4)
def test_int4_golden_vectors(word: int, values: list[int]) -> None:
    packed = np.array([[word]], dtype=np.int32)
    assert unpack_int32(packed, 4, 8).tolist() == [values]
    assert pack_int32(np.array([values], dtype=np.int8), 4).tolist() == [[word]]


def test_int8_and_a_partial_word_golden_vectors() -> None:
    # 8 bits: four per word, lowest byte first, each q + 128.
    assert unpack_int32(np.array([[0x7F008001]], dtype=np.int32), 8, 4).tolist() == [[-127, 0, -128, -1]]
    # 12 INT4 columns need two words; the unused high nibbles of the second are padding (zero).
    values = np.arange(-6, 6, dtype=np.int8).reshape(1, 12)
    packed = pack_int32(values, 4)
    assert packed.shape == (1, 2) and packed[0, 1] == 0x0000DCBA
    assert unpack_int32(packed, 4, 12).tolist() == values.tolist()


@pytest.mark.parametrize("num_bits", [2, 3, 4, 5, 8])
@pytest.mark.parametrize("columns", [8, 13, 128, 130, 512])
def test_packing_agrees_with_compressed_tensors(num_bits: int, columns: int) -> None:
    rng = np.random.default_rng(num_bits * 1000 + columns)
    values = rng.integers(-(1 << (num_bits - 1)), 1 << (num_bits - 1), size=(7, columns)).astype(np.int8)
    theirs = pack_to_int32(torch.from_numpy(values), num_bits).numpy()
    ours = pack_int32(values, num_bits)
    assert ours.shape == theirs.shape == (7, packed_columns(columns, num_bits))
    assert np.array_equal(ours, theirs)
    assert np.array_equal(unpack_int32(theirs, num_bits, columns), values)
    assert np.array_equal(unpack_from_int32(torch.from_numpy(ours), num_bits, torch.Size((7, columns))).numpy(), values)


def test_out_of_range_values_are_refused() -> None:
    with pytest.raises(ValueError, match="outside the 4-bit range"):
        pack_int32(np.array([[8]], dtype=np.int8), 4)


def test_dequantization_agrees_with_compressed_tensors_decompression() -> None:
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(64, 384)).astype(np.float16)
    values, scale = quantize_symmetric(weight.astype(np.float32), 128, 4)
    packed = pack_int32(values, 4)
    scheme = QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(num_bits=4, type="int", symmetric=True,
                                                                             strategy="group", group_size=128))
    state = {"weight_packed": torch.from_numpy(packed), "weight_scale": torch.from_numpy(scale),
             "weight_shape": torch.tensor([64, 384])}
    theirs = PackedQuantizationCompressor.decompress(state, scheme)["weight"].numpy()
    ours = dequantize(unpack_int32(packed, 4, 384), scale, 128)
    assert theirs.dtype == np.float16
    assert np.array_equal(ours.astype(np.float16), theirs)
    # and round-to-nearest INT4 of a Gaussian costs about 12% relative error, as it should
    error = np.linalg.norm(ours - weight.astype(np.float32)) / np.linalg.norm(weight.astype(np.float32))
    assert 0.08 < error < 0.16


def test_dequantize_with_zero_points_and_a_partial_group() -> None:
    values = np.array([[1, 2, 3]], dtype=np.int8)
    scale = np.array([[0.5, 2.0]], dtype=np.float16)
    assert dequantize(values, scale, 2).tolist() == [[0.5, 1.0, 6.0]]
    assert dequantize(values, scale, 2, zero_point=np.array([[1, 3]])).tolist() == [[0.0, 0.5, 0.0]]
    with pytest.raises(ValueError, match="cannot cover"):
        dequantize(values, scale, 1)


def test_group_act_order_uses_each_columns_group() -> None:
    values = np.array([[1, 2, 3, 4]], dtype=np.int8)
    scale = np.array([[10.0, 0.5]], dtype=np.float16)
    assert dequantize_by_index(values, scale, np.array([1, 0, 1, 0])).tolist() == [[0.5, 20.0, 1.5, 40.0]]
    contiguous = np.repeat(np.arange(2), 2)  # act-order that kept the natural order is plain grouping
    assert np.array_equal(dequantize_by_index(values, scale, contiguous), dequantize(values, scale, 2))
