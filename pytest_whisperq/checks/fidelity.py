"""Dequantized weights against the base's, layer by layer: our own unpacking, bounded memory.

The figure per layer is the relative Frobenius error ||dequant(W4) - W|| / ||W||. GPTQ trades weight
error for output error, so its layers sit around 0.15-0.35 on whisper-base (plain rounding: ~0.12);
a layer with wrong scales, a wrong shape or another model's weights sits near or above 1. The check
fails on a layer above an absolute ceiling, or far above the median of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_whisperq.checks.checkpoint_format import linear_layers
from pytest_whisperq.checks.packing import dequantize, dequantize_by_index, scale_columns, unpack_int32
from pytest_whisperq.checks.quant_config import Scheme
from pytest_whisperq.errors import CheckpointError
from pytest_whisperq.results import CheckResult, evidence_list

if TYPE_CHECKING:
    from pytest_whisperq.checks.checkpoint_format import Linear
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


def dequantized_weight(model: CheckpointTensors, layer: Linear, scheme: Scheme):  # -> np.ndarray
    """A packed Linear's weight as float32, unpacked by our own code."""
    prefix = layer.name
    packed = model.read(f"{prefix}.weight_packed")
    scale = model.read(f"{prefix}.weight_scale")
    if (packed.ndim != 2 or scale.ndim != 2 or packed.shape[0] != layer.out_features
            or scale.shape[0] != layer.out_features or scale.shape[1] == 0):
        raise CheckpointError(f"{prefix}: packed {list(packed.shape)} / scale {list(scale.shape)} do not fit "
                              f"[{layer.out_features}, {layer.in_features}]")
    if packed.shape[1] * 32 < layer.in_features * scheme.num_bits:
        raise CheckpointError(f"{prefix}.weight_packed: {packed.shape[1]} words cannot hold {layer.in_features} "
                              f"{scheme.num_bits}-bit values")
    values = unpack_int32(packed, scheme.num_bits, layer.in_features)
    if f"{prefix}.weight_g_idx" in model:  # group act-order: each column names its group
        import numpy as np

        g_idx = model.read(f"{prefix}.weight_g_idx")
        if g_idx.shape != (layer.in_features,) or not np.issubdtype(g_idx.dtype, np.integer):
            raise CheckpointError(f"{prefix}.weight_g_idx: {g_idx.dtype} {list(g_idx.shape)}, expected int32 [{layer.in_features}]")
        if g_idx.size and (g_idx.min() < 0 or g_idx.max() >= scale.shape[1]):
            raise CheckpointError(f"{prefix}.weight_g_idx: group indices {int(g_idx.min())}..{int(g_idx.max())}, "
                                  f"expected 0..{scale.shape[1] - 1}")
        return dequantize_by_index(values, scale, g_idx.astype(np.int64))
    groups = scale.shape[1]
    # the declared group size when it fits the scales, else what the scales imply
    group = scheme.group_size if scale_columns(layer.in_features, scheme.group_size) == groups else -(-layer.in_features // groups)
    return dequantize(values, scale, group)


def layer_errors(model: CheckpointTensors, base: CheckpointTensors, scheme: Scheme) -> list[LayerError]:
    """One figure per quantized Linear, reading one layer at a time."""
    import numpy as np

    results = []
    for layer in linear_layers(base):
        try:
            if f"{layer.name}.weight_packed" not in model:
                results.append(LayerError(layer.name, None, "not packed"))
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
