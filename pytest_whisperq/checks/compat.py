"""Does the checkpoint under test have the base model's architecture and vocabulary?"""

from __future__ import annotations

from typing import Any

from pytest_whisperq.results import CheckResult, evidence_list

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


def check_same_vocabulary(model_vocabulary: dict[str, int], base_vocabulary: dict[str, int]) -> CheckResult:
    """The tokenizer must map every token to the base's id: the same ids must mean the same text, or the
    model's transcripts are decoded with another vocabulary than it was trained on."""
    differences = [
        f"{token!r}: model id {model_vocabulary.get(token)}, base id {base_vocabulary.get(token)}"
        for token in sorted(set(model_vocabulary) | set(base_vocabulary))
        if model_vocabulary.get(token) != base_vocabulary.get(token)
    ]
    return CheckResult(
        name="same_vocabulary_as_base",
        ok=not differences,
        observed=len(differences),
        limit=0,
        unit=" tokens differ",
        detail=(f"the tokenizer's {len(model_vocabulary)} tokens have the base's ids" if not differences else
                "the tokenizer is not the base's: copy the base's tokenizer files into the checkpoint "
                "(processor.save_pretrained) or pass the right --whisperq-base"),
        evidence=evidence_list(differences),
    )


def _none_allowed(name: str, findings: list[str], unit: str, passed: str, failed: str) -> CheckResult:
    return CheckResult(name=name, ok=not findings, observed=len(findings), limit=0, unit=unit,
                       detail=failed if findings else passed, evidence=evidence_list(findings))


def check_loadable(missing: list[str]) -> CheckResult:
    """Everything a backend needs to transcribe ships with the checkpoint."""
    return _none_allowed("checkpoint_complete", missing, " files missing",
                         "tokenizer and feature extractor settings present",
                         "users cannot load this checkpoint: save the base's processor beside the weights "
                         "(processor.save_pretrained(OUT))")


def check_no_custom_code(findings: list[str]) -> CheckResult:
    """A release loads with the libraries' own Whisper classes: no code of its own, no auto_map."""
    return _none_allowed("no_custom_code", findings, " findings",
                         "no Python files and no auto_map: loads without trust_remote_code",
                         "the checkpoint asks loaders to run its own code (with trust_remote_code, which users must "
                         "not need for Whisper): remove the .py files and the auto_map entries before release")


def pair_problems(model_config: dict[str, Any], base_config: dict[str, Any],
                  model_vocabulary: dict[str, int], base_vocabulary: dict[str, int]) -> list[str]:
    """Why the model's transcripts cannot be compared with the base's (empty when they can)."""
    problems = []
    for result in (check_same_architecture(model_config, base_config),
                   check_same_vocabulary(model_vocabulary, base_vocabulary)):
        if not result.ok:
            shown = ", ".join(result.evidence[:3]) + (" ..." if len(result.evidence) > 3 else "")
            problems.append(f"{result.name.replace('_', ' ')}: {result.observed} differences ({shown})")
    return problems
