"""config.json of a quantized checkpoint: the compressed-tensors quantization config against the scheme
it is gated as, the model dtype, the ignore list."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pytest_whisperq.checks.scheme import SIXTEEN_BIT, QuantArgs, find_quantization_config, model_dtype
from pytest_whisperq.errors import ConfigError
from pytest_whisperq.results import CheckResult, evidence_list

if TYPE_CHECKING:
    from pytest_whisperq.checks.scheme import Scheme

HEAD = "proj_out"  # Whisper's output head; other models (and mistaken recipes) call theirs lm_head

__all__ = ["HEAD", "check_ignore_list", "check_model_dtype", "check_quantization_config", "find_quantization_config",
           "ignore_matches", "model_dtype"]


def _outer_sparsity(config: dict[str, Any]) -> Any:
    """The nested legacy layout keeps sparsity beside the quantization config, one level up."""
    outer = config.get("compression_config")
    return outer.get("sparsity_config") if isinstance(outer, dict) and "quantization_config" in outer else None


def _group_problems(group: dict[str, Any], where: str, scheme: Scheme) -> list[str]:
    """One config group's deviations from the scheme: its targets, format and each argument."""
    problems = []
    if group.get("targets") != ["Linear"]:
        problems.append(f"{where}.targets: {group.get('targets')!r}, expected ['Linear']")
    if group.get("format") is not None and group["format"] != scheme.format:
        problems.append(f"{where}.format: {group['format']!r}, expected {scheme.format!r} (how compressed-tensors "
                        f"stores {scheme.name})")
    if group.get("output_activations") is not None:
        problems.append(f"{where}.output_activations: {group['output_activations']!r}, expected None")
    for part, expected in (("weights", scheme.weights), ("input_activations", scheme.input_activations)):
        raw = group.get(part)
        if expected is None:
            if raw is not None:
                problems.append(f"{where}.{part}: {raw!r}, expected None ({scheme.name} keeps activations in 16 bits)")
            continue
        if raw is None:
            problems.append(f"{where}.{part}: missing, expected {expected.describe()}")
            continue
        try:
            problems += expected.differences(QuantArgs.from_config(raw, f"{where}.{part}"), f"{where}.{part}")
        except ConfigError as error:
            problems.append(str(error))
    return problems


def check_quantization_config(config: dict[str, Any], scheme: Scheme) -> CheckResult:
    """compressed-tensors, compressed, in the scheme's format; one Linear group with the scheme's weight and
    activation arguments; no output or KV-cache quantization; no sparsity or transforms."""
    quant, key = find_quantization_config(config)
    if quant is None:
        return CheckResult(
            "quantization_config", False, observed="missing", limit="compressed-tensors",
            detail="config.json has no quantization_config (nor compression_config): this is not a "
                   "compressed-tensors checkpoint. Quantize it with llm-compressor (python -m pytest_whisperq quantize)",
        )
    problems: list[str] = []

    def expect(path: str, observed: Any, expected: Any) -> None:
        if observed != expected:
            problems.append(f"{key}.{path}: {observed!r}, expected {expected!r}")

    expect("quant_method", quant.get("quant_method"), "compressed-tensors")
    expect("format", quant.get("format"), scheme.format)
    expect("quantization_status", quant.get("quantization_status"), "compressed")
    expect("kv_cache_scheme", quant.get("kv_cache_scheme"), None)
    for extra in ("sparsity_config", "transform_config"):
        if quant.get(extra):
            problems.append(f"{key}.{extra}: {quant[extra]!r}, expected none ({scheme.name} has no {extra.split('_')[0]})")
    if _outer_sparsity(config):
        problems.append(f"compression_config.sparsity_config: {_outer_sparsity(config)!r}, expected none "
                        f"({scheme.name} is dense)")
    groups = quant.get("config_groups")
    if not isinstance(groups, dict) or len(groups) != 1:
        count = len(groups) if isinstance(groups, dict) else groups
        problems.append(f"{key}.config_groups: {count!r} groups, expected exactly one (targets [Linear])")
    else:
        [(name, group)] = groups.items()
        problems += _group_problems(group if isinstance(group, dict) else {}, f"{key}.config_groups.{name}", scheme)
    legacy = " (legacy key)" if key != "quantization_config" else ""
    return CheckResult(
        "quantization_config", not problems, observed=len(problems), limit=0, unit=" deviations",
        detail=(f"{key}{legacy} declares {scheme.label}" if not problems else
                f"{key}{legacy} does not declare {scheme.label}") + f" [scheme: {scheme.source}]",
        evidence=evidence_list(problems),
    )


def check_model_dtype(config: dict[str, Any]) -> CheckResult:
    """The 16-bit float the unquantized tensors and activations are kept in (fp16 or bf16; A16 schemes compute
    in it, W8A8 and FP8 quantize activations from it)."""
    found = model_dtype(config)
    ok = found in SIXTEEN_BIT
    return CheckResult(
        "model_dtype", ok, observed=found, limit=" or ".join(SIXTEEN_BIT),
        detail=(f"config.json dtype is {found}, the activation dtype" if ok else
                f"config.json dtype is {found!r}: quantized Whisper keeps activations and unquantized tensors in "
                "16 bits; cast the model to float16 (or bfloat16) before saving it compressed"),
    )


def ignore_matches(entry: str, name: str) -> bool:
    """compressed-tensors' rule: `re:` entries are regexes matched from the start, others exact names."""
    if entry.startswith("re:"):
        try:
            return re.match(entry[3:], name) is not None
        except re.error:
            return False
    return entry == name


def check_ignore_list(config: dict[str, Any], module_names: Iterable[str], linears: Iterable[str] = ()) -> CheckResult:
    """`ignore` keeps the output head dense, names only modules that exist, and none of the Linears
    quantization targets (loaders give an ignored module no scheme and expect a dense weight)."""
    quant, key = find_quantization_config(config)
    ignore = (quant or {}).get("ignore") or []
    if not isinstance(ignore, list) or not all(isinstance(entry, str) for entry in ignore):
        return CheckResult("ignore_list", False, observed=repr(ignore), limit=[HEAD],
                           detail=f"{key}.ignore is not a list of module names")
    modules = set(module_names) | {HEAD}
    problems = []
    if not any(ignore_matches(entry, HEAD) for entry in ignore):
        problems.append(f"{key}.ignore {ignore!r} does not cover the output head {HEAD!r}, so it was quantized "
                        "(llm-compressor drops entries that match nothing, such as 'lm_head')")
    for entry in ignore:
        if not any(ignore_matches(entry, name) for name in modules):
            hint = (f"; Whisper's output head is {HEAD!r}: a recipe with ignore=['lm_head'] quantizes it"
                    if "lm_head" in entry else "")
            problems.append(f"{key}.ignore entry {entry!r} names no module of this model{hint}")
    linears = sorted(linears)
    for entry in ignore:
        switched_off = [name for name in linears if ignore_matches(entry, name)]
        if switched_off:
            listing = ", ".join(switched_off[:3]) + (f" and {len(switched_off) - 3} more" if len(switched_off) > 3 else "")
            problems.append(f"{key}.ignore entry {entry!r} excludes {len(switched_off)} Linear layers that the scheme "
                            f"quantizes ({listing}); expected only the output head")
    return CheckResult(
        "ignore_list", not problems, observed=ignore, limit=[HEAD],
        detail=("the output head is excluded from quantization" if not problems else
                f"fix the recipe's ignore list: GPTQModifier(..., ignore=[{HEAD!r}])"),
        evidence=evidence_list(problems),
    )
