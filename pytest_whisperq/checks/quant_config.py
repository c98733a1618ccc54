"""config.json of a W4A16 checkpoint: the compressed-tensors quantization config, dtype, ignore list."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pytest_whisperq.results import CheckResult, evidence_list

HEAD = "proj_out"  # Whisper's output head; other models (and mistaken recipes) call theirs lm_head


@dataclass(frozen=True)
class Scheme:
    """What the release claims: W4A16 is INT4 symmetric group-128 weights, fp16 activations."""

    num_bits: int = 4
    group_size: int = 128
    model_dtype: str = "float16"

    @property
    def tensor_dtype(self) -> str:
        """The safetensors dtype of scales and unquantized tensors."""
        return {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}[self.model_dtype]

    @property
    def label(self) -> str:
        return f"W{self.num_bits}A16 (INT{self.num_bits} symmetric, group {self.group_size}, {self.model_dtype})"


def find_quantization_config(config: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(the quantization config, the key it was under); the legacy key is `compression_config`."""
    for key in ("quantization_config", "compression_config"):
        value = config.get(key)
        if isinstance(value, dict):
            nested = value.get("quantization_config")  # very old checkpoints nest it one level down
            if key == "compression_config" and isinstance(nested, dict):
                return nested, f"{key}.quantization_config"
            return value, key
    return None, "quantization_config"


def _outer_sparsity(config: dict[str, Any]) -> Any:
    """The nested legacy layout keeps sparsity beside the quantization config, one level up."""
    outer = config.get("compression_config")
    return outer.get("sparsity_config") if isinstance(outer, dict) and "quantization_config" in outer else None


def model_dtype(config: dict[str, Any]) -> str | None:
    value = config.get("dtype") or config.get("torch_dtype")
    return str(value).removeprefix("torch.") if value is not None else None


def check_quantization_config(config: dict[str, Any], scheme: Scheme) -> CheckResult:
    """compressed-tensors, pack-quantized, compressed; one Linear group of INT4 symmetric group
    weights; no activation, output or KV-cache quantization; no sparsity or transforms."""
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
    expect("format", quant.get("format"), "pack-quantized")
    expect("quantization_status", quant.get("quantization_status"), "compressed")
    expect("kv_cache_scheme", quant.get("kv_cache_scheme"), None)
    for extra in ("sparsity_config", "transform_config"):
        if quant.get(extra):
            problems.append(f"{key}.{extra}: {quant[extra]!r}, expected none (plain W4A16 has no {extra.split('_')[0]})")
    if _outer_sparsity(config):
        problems.append(f"compression_config.sparsity_config: {_outer_sparsity(config)!r}, expected none (plain W4A16 is dense)")
    groups = quant.get("config_groups")
    if not isinstance(groups, dict) or len(groups) != 1:
        count = len(groups) if isinstance(groups, dict) else groups
        problems.append(f"{key}.config_groups: {count!r} groups, expected exactly one (targets [Linear])")
    else:
        [(name, group)] = groups.items()
        where = f"config_groups.{name}"
        group = group if isinstance(group, dict) else {}
        expect(f"{where}.targets", group.get("targets"), ["Linear"])
        if "format" in group and group["format"] is not None:
            expect(f"{where}.format", group["format"], "pack-quantized")
        expect(f"{where}.input_activations", group.get("input_activations"), None)
        expect(f"{where}.output_activations", group.get("output_activations"), None)
        weights = group.get("weights") if isinstance(group.get("weights"), dict) else {}
        expect(f"{where}.weights.num_bits", weights.get("num_bits"), scheme.num_bits)
        expect(f"{where}.weights.type", weights.get("type"), "int")
        expect(f"{where}.weights.symmetric", weights.get("symmetric"), True)
        expect(f"{where}.weights.strategy", weights.get("strategy"), "group")
        expect(f"{where}.weights.group_size", weights.get("group_size"), scheme.group_size)
        expect(f"{where}.weights.dynamic", weights.get("dynamic"), False)
    legacy = " (legacy key)" if key != "quantization_config" else ""
    return CheckResult(
        "quantization_config", not problems, observed=len(problems), limit=0, unit=" deviations",
        detail=(f"{key}{legacy} declares {scheme.label}, pack-quantized" if not problems else
                f"{key}{legacy} does not declare {scheme.label} in pack-quantized form"),
        evidence=evidence_list(problems),
    )


def check_model_dtype(config: dict[str, Any], scheme: Scheme) -> CheckResult:
    """A16: activations (and every unquantized tensor) in the model dtype, fp16."""
    found = model_dtype(config)
    return CheckResult(
        "model_dtype", found == scheme.model_dtype, observed=found, limit=scheme.model_dtype,
        detail=("config.json dtype is the activation dtype" if found == scheme.model_dtype else
                f"config.json dtype is {found!r}: W4A16 keeps activations in {scheme.model_dtype}; "
                f"cast the model to {scheme.model_dtype} before saving it compressed"),
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
    W4A16 quantizes (loaders give an ignored module no scheme and expect a dense weight)."""
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
            problems.append(f"{key}.ignore entry {entry!r} excludes {len(switched_off)} Linear layers that W4A16 "
                            f"quantizes ({listing}); expected only the output head")
    return CheckResult(
        "ignore_list", not problems, observed=ignore, limit=[HEAD],
        detail=("the output head is excluded from quantization" if not problems else
                f"fix the recipe's ignore list: GPTQModifier(..., ignore=[{HEAD!r}])"),
        evidence=evidence_list(problems),
    )
