"""All format checks of a checkpoint against its base, in two tiers: header-level (no weight reads)
and value-level (one tensor at a time). The conformance tests call them one by one; benchmarks,
the CLI and the plugin's own tests use these lists."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_whisperq.checks.checkpoint_format import (
    check_fused_projections_alike,
    check_ignore_list_against_base,
    check_linears_packed,
    check_output_head,
    check_untouched_tensors_equal,
    check_untouched_tensors_layout,
)
from pytest_whisperq.checks.compat import check_same_architecture
from pytest_whisperq.checks.fidelity import Tolerance, check_dequantized_close, layer_errors
from pytest_whisperq.checks.quant_config import check_model_dtype, check_quantization_config
from pytest_whisperq.checks.scheme import AUTO, Scheme, resolve_scheme

if TYPE_CHECKING:
    from pytest_whisperq.models.tensors import CheckpointTensors
    from pytest_whisperq.results import CheckResult


def header_checks(model: CheckpointTensors, base: CheckpointTensors, scheme: Scheme | None = None) -> list[CheckResult]:
    """config.json and safetensors headers only (plus the 16-byte weight_shape tensors). Without a scheme,
    the one the model declares (as --whisperq-scheme=auto)."""
    scheme = scheme or resolve_scheme(AUTO, model.config)
    return [
        check_same_architecture(model.config, base.config),
        check_quantization_config(model.config, scheme),
        check_model_dtype(model.config),
        check_ignore_list_against_base(model, base),
        check_linears_packed(model, base, scheme),
        check_fused_projections_alike(model, base),
        check_output_head(model, base),
        check_untouched_tensors_layout(model, base, scheme),
    ]


def value_checks(model: CheckpointTensors, base: CheckpointTensors, tolerance: Tolerance = Tolerance()) -> list[CheckResult]:
    """Every weight read once: untouched tensors bit-equal, dequantized Linears close to the base's. The weights
    are dequantized as the checkpoint declares them, as loaders read them, whatever scheme it is gated as."""
    return [
        check_untouched_tensors_equal(model, base),
        check_dequantized_close(layer_errors(model, base, resolve_scheme(AUTO, model.config)), tolerance),
    ]


def format_checks(model: CheckpointTensors, base: CheckpointTensors, scheme: Scheme | None = None,
                  tolerance: Tolerance = Tolerance()) -> list[CheckResult]:
    scheme = scheme or resolve_scheme(AUTO, model.config)
    return header_checks(model, base, scheme) + value_checks(model, base, tolerance)
