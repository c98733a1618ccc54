"""Does the checkpoint under test have the base model's architecture and vocabulary?"""

from __future__ import annotations

from typing import Any

from pytest_whisperq.results import CheckResult

ARCHITECTURE_KEYS = (
    "d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads", "decoder_attention_heads",
    "encoder_ffn_dim", "decoder_ffn_dim", "num_mel_bins", "vocab_size", "max_source_positions",
    "max_target_positions", "decoder_start_token_id", "eos_token_id",
)


def check_same_architecture(model_config: dict[str, Any], base_config: dict[str, Any]) -> CheckResult:
    """Every architecture field of config.json must equal the base's."""
    differences = [
        f"{key}: model {model_config.get(key)!r}, base {base_config.get(key)!r}"
        for key in ARCHITECTURE_KEYS
        if model_config.get(key) != base_config.get(key)
    ]
    return CheckResult(
        name="same_architecture_as_base",
        ok=not differences,
        observed=len(differences),
        limit=0,
        detail=(
            "config.json architecture matches the base" if not differences else
            "the checkpoint is not a quantization of this base; pass the right --whisperq-base"
        ),
        evidence=differences,
    )
