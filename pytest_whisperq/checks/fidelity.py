"""Dequantized weights against the base's, layer by layer: our own unpacking, bounded memory.

Every format the format checks read is dequantized here in numpy (INT values packed in int32 words or
stored as int8, FP8 E4M3 bytes, FP4 E2M1 pairs; scales per tensor, channel, group or block, zero points,
act-order group indices, NVFP4's global scale), checked against compressed-tensors' own decompression in
the tests. The figure per layer is the relative Frobenius error ||dequant(Wq) - W|| / ||W||. GPTQ trades weight
error for output error, so its layers sit around 0.15-0.35 on whisper-base (plain rounding: ~0.12);
a layer with wrong scales, a wrong shape or another model's weights sits near or above 1. The check
fails on a layer above an absolute ceiling, or far above the median of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_whisperq.checks.checkpoint_format import linear_layers, scale_shape
from pytest_whisperq.checks.packing import (
    decode_fp8_e4m3,
    dequantize,
    dequantize_by_index,
    unpack_fp4,
    unpack_int32,
    unpack_rows_int32,
)
from pytest_whisperq.checks.scheme import UNPACKED_FORMATS
from pytest_whisperq.errors import CheckpointError
from pytest_whisperq.results import CheckResult, evidence_list

if TYPE_CHECKING:
    import numpy as np

    from pytest_whisperq.checks.checkpoint_format import Linear
    from pytest_whisperq.checks.scheme import Scheme
    from pytest_whisperq.models.tensors import CheckpointTensors


@dataclass(frozen=True)
class Tolerance:
    max_error: float = 0.6  # relative error no layer may exceed
    outlier_factor: float = 3.0  # no layer may exceed this multiple of the median layer's error


@dataclass(frozen=True)
class LayerError:
    name: str
    error: float | None  # relative Frobenius error; None when the layer could not be dequantized
    reason: str = ""


def _values(model: CheckpointTensors, layer: Linear, scheme: Scheme) -> np.ndarray:
    """The layer's quantized values [out, in] as float32 (integers or FP8/FP4 values), before scaling."""
    import numpy as np

    prefix, bits, columns = layer.name, scheme.weights.num_bits, layer.in_features
    if scheme.format == "pack-quantized":
        packed = model.read(f"{prefix}.weight_packed")
        if packed.ndim != 2 or packed.shape[0] != layer.out_features or packed.shape[1] * 32 < columns * bits:
            raise CheckpointError(f"{prefix}.weight_packed: {list(packed.shape)} cannot hold [{layer.out_features}, "
                                  f"{columns}] {bits}-bit values")
        return unpack_int32(packed, bits, columns).astype(np.float32)
    if scheme.format == "nvfp4-pack-quantized":
        packed = model.read(f"{prefix}.weight_packed")
        if packed.ndim != 2 or packed.shape != (layer.out_features, -(-columns // 2)):
            raise CheckpointError(f"{prefix}.weight_packed: {list(packed.shape)}, expected [{layer.out_features}, "
                                  f"{-(-columns // 2)}] bytes of FP4 pairs")
        return unpack_fp4(packed, columns)
    if scheme.format in UNPACKED_FORMATS:
        raw = model.read(f"{prefix}.weight")
        if raw.shape != (layer.out_features, columns):
            raise CheckpointError(f"{prefix}.weight: {list(raw.shape)}, expected [{layer.out_features}, {columns}]")
        info = model.tensors[f"{prefix}.weight"]
        if info.dtype == "F8_E4M3":
            return decode_fp8_e4m3(raw)
        if info.dtype == "I8":
            return raw.astype(np.float32)
        raise CheckpointError(f"{prefix}.weight: {info.dtype}, not {scheme.name}'s quantized values")
    raise CheckpointError(f"{scheme.format}: a format this check does not dequantize")


def _scale(model: CheckpointTensors, layer: Linear, scheme: Scheme) -> np.ndarray:
    """The layer's weight scales as float32 with the strategy's shape (NVFP4: over its global scale)."""
    prefix = layer.name
    scale = model.read(f"{prefix}.weight_scale")
    if model.tensors[f"{prefix}.weight_scale"].dtype == "F8_E4M3":
        scale = decode_fp8_e4m3(scale)
    expected = scale_shape(scheme.weights, layer.out_features, layer.in_features)
    if expected is not None and scale.shape != expected:
        raise CheckpointError(f"{prefix}.weight_scale: {list(scale.shape)}, expected {list(expected)} for "
                              f"{scheme.weights.describe()}")
    scale = scale.astype("float32")
    if scheme.weights.strategy == "tensor_group":
        global_scale = model.read(f"{prefix}.weight_global_scale").astype("float32").reshape(-1)
        if global_scale.shape != (1,) or not global_scale[0]:
            raise CheckpointError(f"{prefix}.weight_global_scale: {global_scale.tolist()}, expected one nonzero value")
        scale /= global_scale[0]
    return scale


def dequantized_weight(model: CheckpointTensors, layer: Linear, scheme: Scheme) -> np.ndarray:
    """A quantized Linear's weight as float32, unpacked and scaled by our own code."""
    import numpy as np

    prefix, weights = layer.name, scheme.weights
    values, scale = _values(model, layer, scheme), _scale(model, layer, scheme)
    zero = None
    if not weights.symmetric and f"{prefix}.weight_zero_point" in model:
        raw = model.read(f"{prefix}.weight_zero_point")
        zero = unpack_rows_int32(raw, weights.num_bits, layer.out_features) if scheme.format == "pack-quantized" else raw
        if zero.shape != scale.shape:
            raise CheckpointError(f"{prefix}.weight_zero_point: {list(zero.shape)} values, expected {list(scale.shape)}")
        zero = zero.astype(np.float32)
    if f"{prefix}.weight_g_idx" in model:  # group act-order: each column names its group
        g_idx = model.read(f"{prefix}.weight_g_idx")
        if g_idx.shape != (layer.in_features,) or not np.issubdtype(g_idx.dtype, np.integer):
            raise CheckpointError(f"{prefix}.weight_g_idx: {g_idx.dtype} {list(g_idx.shape)}, expected int32 [{layer.in_features}]")
        if g_idx.size and (g_idx.min() < 0 or g_idx.max() >= scale.shape[1]):
            raise CheckpointError(f"{prefix}.weight_g_idx: group indices {int(g_idx.min())}..{int(g_idx.max())}, "
                                  f"expected 0..{scale.shape[1] - 1}")
        g_idx = g_idx.astype(np.int64)
        if zero is not None:
            values -= zero[:, g_idx]
        return dequantize_by_index(values, scale, g_idx)
    if weights.strategy in ("group", "tensor_group"):
        return dequantize(values, scale, weights.group_size or -(-layer.in_features // scale.shape[1]), zero)
    if weights.strategy == "block":
        rows, columns = weights.block_structure
        scale = np.repeat(np.repeat(scale, rows, axis=0), columns, axis=1)[: layer.out_features, : layer.in_features]
        zero = None if zero is None else np.repeat(np.repeat(zero, rows, axis=0), columns, axis=1)[
            : layer.out_features, : layer.in_features]
    if zero is not None:
        values -= zero
    values *= scale  # per tensor [1] or per channel [out, 1] broadcast; per block expanded above
    return values


def layer_errors(model: CheckpointTensors, base: CheckpointTensors, scheme: Scheme) -> list[LayerError]:
    """One figure per quantized Linear, reading one layer at a time."""
    import numpy as np

    results = []
    for layer in linear_layers(base):
        try:
            if f"{layer.name}.weight_scale" not in model:
                results.append(LayerError(layer.name, None, "not quantized: no weight_scale"))
                continue
            weight = dequantized_weight(model, layer, scheme)
            reference = base.read(f"{layer.name}.weight").astype(np.float32)
            norm = float(np.linalg.norm(reference))
            weight -= reference  # in place: memory stays at two copies of the largest layer
            error = float(np.linalg.norm(weight)) / norm if norm else float(np.linalg.norm(weight))
            results.append(LayerError(layer.name, error if np.isfinite(error) else float("inf")))
        except (CheckpointError, ValueError) as problem:
            results.append(LayerError(layer.name, None, str(problem)))
    return results


def check_dequantized_close(errors: list[LayerError], tolerance: Tolerance) -> CheckResult:
    """No layer's dequantized weight far from the base's: under the ceiling, and no outlier."""
    import numpy as np

    measured = [e for e in errors if e.error is not None]
    if not errors:
        return CheckResult("dequantized_weights_close", False, detail="no quantized Linear layers to compare")
    median = float(np.median([e.error for e in measured])) if measured else float("nan")
    limit = min(tolerance.max_error, tolerance.outlier_factor * median) if measured else tolerance.max_error
    problems = [f"{e.name}: could not be dequantized ({e.reason})" for e in errors if e.error is None]
    outliers = sorted((e for e in measured if e.error > limit), key=lambda e: -e.error)
    problems += [f"{e.name}: relative error {e.error:.3f} (median layer {median:.3f}, limit {limit:.3f})" for e in outliers]
    worst = max(measured, key=lambda e: e.error) if measured else None
    return CheckResult(
        "dequantized_weights_close", not problems,
        observed=round(worst.error, 4) if worst else None, limit=round(limit, 4),
        detail=(f"{len(measured)} layers, relative error median {median:.3f}, worst {worst.error:.3f} ({worst.name})"
                if worst else "no layer could be dequantized")
               + ("" if not problems else
                  f"; limit = min({tolerance.max_error}, {tolerance.outlier_factor} x median): a layer this far "
                  "from the base has wrong scales, a wrong shape or other weights"),
        evidence=evidence_list(problems),
    )
