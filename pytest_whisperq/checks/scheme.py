"""The quantization scheme a checkpoint is gated as: a compressed-tensors preset the user names
(`--whisperq-scheme W8A8`), or the scheme the checkpoint's config declares (`auto`, the default).

Presets and storage formats come from compressed-tensors itself (its PRESET_SCHEMES and its format
inference), so a scheme means what the library that writes and loads the checkpoint means; they are
turned into plain data here, and every check works on that data (no torch past this module).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pytest_whisperq.errors import ConfigError

AUTO = "auto"
SIXTEEN_BIT = ("float16", "bfloat16")  # the model dtypes quantized Whisper keeps activations and other tensors in
# what the suite expects when the checkpoint declares nothing (a dense model): the product's flagship
DEFAULT_PRESET = "W4A16"
# compressed-tensors' act-order names; `true` in older configs meant "group"
ACTORDERS = ("group", "weight", "static")
# storage formats whose quantized Linears keep an integer or float weight tensor named `weight`
UNPACKED_FORMATS = ("int-quantized", "float-quantized", "naive-quantized")
PACKED_FORMATS = ("pack-quantized", "nvfp4-pack-quantized")
# safetensors dtype codes for torch dtype names a scheme may fix for its scales
_SCALE_DTYPES = {"float8_e4m3fn": "F8_E4M3", "uint8": "U8", "float16": "F16", "bfloat16": "BF16", "float32": "F32"}


@dataclass(frozen=True)
class QuantArgs:
    """How one tensor (weights or input activations) is quantized: compressed-tensors' QuantizationArgs as data."""

    num_bits: int
    type: str  # "int" or "float"
    strategy: str  # tensor, channel, group, tensor_group, block, token
    symmetric: bool = True
    dynamic: bool | str = False  # True (per call), False (static scales in the checkpoint) or "local"
    group_size: int | None = None
    block_structure: tuple[int, ...] | None = None
    actorder: str | None = None  # None, "group", "weight" or "static"
    scale_dtype: str | None = None  # safetensors dtype of the scales where the scheme fixes it (NVFP4: F8_E4M3)

    @classmethod
    def from_config(cls, raw: Any, where: str) -> QuantArgs:
        """From a config group's `weights` (or `input_activations`) as config.json has it; ConfigError names what is wrong."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: {raw!r} is not a quantization argument object")
        bits, kind, strategy = raw.get("num_bits"), raw.get("type"), raw.get("strategy")
        if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 16:
            raise ConfigError(f"{where}.num_bits: {bits!r}, expected a whole number of bits")
        if kind not in ("int", "float"):
            raise ConfigError(f"{where}.type: {kind!r}, expected 'int' or 'float'")
        if not isinstance(strategy, str):
            raise ConfigError(f"{where}.strategy: {strategy!r}, expected a strategy name")
        dynamic = raw.get("dynamic", False)
        if dynamic not in (True, False, "local"):
            raise ConfigError(f"{where}.dynamic: {dynamic!r}, expected true, false or 'local'")
        actorder = raw.get("actorder")
        actorder = {True: "group", False: None}.get(actorder, actorder) if isinstance(actorder, bool) else actorder
        if actorder is not None and actorder not in ACTORDERS:
            raise ConfigError(f"{where}.actorder: {actorder!r}, expected one of {', '.join(ACTORDERS)} or null")
        group = raw.get("group_size")
        if group is not None and (not isinstance(group, int) or isinstance(group, bool) or group < 1):
            raise ConfigError(f"{where}.group_size: {group!r}, expected a positive whole number or null")
        block = raw.get("block_structure")
        if block is not None and (not isinstance(block, list) or not all(isinstance(v, int) and v > 0 for v in block)):
            raise ConfigError(f"{where}.block_structure: {block!r}, expected a list of positive whole numbers")
        scale_dtype = raw.get("scale_dtype")
        if scale_dtype is not None:
            scale_dtype = _SCALE_DTYPES.get(str(scale_dtype).removeprefix("torch."))
            if scale_dtype is None:
                raise ConfigError(f"{where}.scale_dtype: {raw.get('scale_dtype')!r}, not a scale dtype this check knows")
        return cls(bits, kind, strategy.lower(), bool(raw.get("symmetric", True)), dynamic,
                   group if strategy.lower() in ("group", "tensor_group") else None,
                   tuple(block) if block else None, actorder, scale_dtype)

    def describe(self) -> str:
        """e.g. 'INT4 symmetric, group 128, act-order group' or 'FP8 dynamic, per token'."""
        name = f"{'INT' if self.type == 'int' else 'FP'}{self.num_bits}"
        parts = [name if self.symmetric else f"{name} asymmetric"]
        if self.dynamic is True:
            parts[0] += " dynamic"
        elif self.dynamic == "local":
            parts[0] += " locally dynamic"
        if self.strategy in ("group", "tensor_group"):
            parts.append(f"group {self.group_size}" + (" with a tensor-wide global scale" if self.strategy == "tensor_group" else ""))
        elif self.strategy == "block":
            parts.append(f"blocks {'x'.join(map(str, self.block_structure or ()))}")
        else:
            parts.append(f"per {self.strategy}")
        if self.actorder:
            parts.append(f"act-order {self.actorder}")
        return ", ".join(parts)

    def differences(self, declared: QuantArgs, where: str) -> list[str]:
        """What `declared` (the checkpoint's) has that this expectation does not, one line per field. An expected
        act-order of None means any: presets leave it to the recipe, and only "group" changes what is stored."""
        return [f"{where}.{field}: {getattr(declared, field)!r}, expected {getattr(self, field)!r}"
                for field in ("num_bits", "type", "strategy", "symmetric", "dynamic", "group_size", "block_structure",
                              "actorder", "scale_dtype")
                if getattr(declared, field) != getattr(self, field) and not (field == "actorder" and self.actorder is None)]


@dataclass(frozen=True)
class Scheme:
    """What the release claims about its Linear layers, and how they are stored."""

    name: str  # the preset's name (W4A16, W8A8, FP8_DYNAMIC, ...) or "custom" for a declared scheme no preset matches
    weights: QuantArgs
    input_activations: QuantArgs | None = None
    format: str = "pack-quantized"
    source: str = "--whisperq-scheme"  # or "declared by the checkpoint", "default: the checkpoint declares none"

    @property
    def label(self) -> str:
        """e.g. 'W8A8 (weights INT8, per channel; activations INT8 dynamic, per token; int-quantized)'."""
        acts = self.input_activations.describe() if self.input_activations else "16-bit"
        return f"{self.name} (weights {self.weights.describe()}; activations {acts}; {self.format})"

    def scale_dtype(self, model_dtype: str) -> str:
        """The safetensors dtype of the weight scales: the scheme's own, else the model's."""
        return self.weights.scale_dtype or tensor_dtype(model_dtype)


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


def model_dtype(config: dict[str, Any]) -> str | None:
    """config.json's model dtype name (`dtype`, or the older `torch_dtype`)."""
    value = config.get("dtype") or config.get("torch_dtype")
    return str(value).removeprefix("torch.") if value is not None else None


def tensor_dtype(name: str) -> str:
    """The safetensors dtype of a model dtype name (config.json's `dtype`)."""
    return {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}.get(name, name)


def _from_library(name: str, scheme: Any) -> Scheme:
    """A compressed-tensors QuantizationScheme as plain data, with the format compressed-tensors stores it in."""
    dumped = scheme.model_dump(mode="json")
    acts = dumped.get("input_activations")
    return Scheme(name, QuantArgs.from_config(dumped["weights"], f"{name}.weights"),
                  QuantArgs.from_config(acts, f"{name}.input_activations") if acts else None,
                  library_format(dumped["weights"], acts))


def preset(name: str) -> Scheme:
    """compressed-tensors' preset `name` (any case); ConfigError lists the names when there is none."""
    from compressed_tensors.quantization.quant_scheme import PRESET_SCHEMES, preset_name_to_scheme

    if name.upper() not in PRESET_SCHEMES or name.upper() == "UNQUANTIZED":
        known = ", ".join(n for n in sorted(PRESET_SCHEMES) if n != "UNQUANTIZED")
        raise ConfigError(f"unknown quantization scheme {name!r}: name one of compressed-tensors' presets ({known}) or auto")
    return _from_library(name.upper(), preset_name_to_scheme(name.upper(), ["Linear"]))


def with_overrides(scheme: Scheme, group_size: int | None = None, actorder: str | None = None) -> Scheme:
    """The scheme with the weights' group size or act-order the user states (they vary within a preset)."""
    weights = scheme.weights
    if group_size is not None:
        if weights.strategy not in ("group", "tensor_group"):
            raise ConfigError(f"--whisperq-group-size {group_size}: {scheme.name} quantizes weights {weights.describe()}, "
                              "not in groups")
        weights = replace(weights, group_size=group_size)
    if actorder is not None:
        weights = replace(weights, actorder=None if actorder == "none" else actorder)
    return replace(scheme, weights=weights)


def matching_preset(weights: QuantArgs, activations: QuantArgs | None) -> str:
    """The name of the preset these arguments are (act-order and group size aside: they vary within one), or 'custom'."""
    from compressed_tensors.quantization.quant_scheme import PRESET_SCHEMES

    def core(args: QuantArgs | None) -> tuple | None:
        return None if args is None else replace(args, group_size=None, actorder=None)

    for name in PRESET_SCHEMES:  # dict order: the special-cased names (W8A8 before its alias INT8) come first
        if name == "UNQUANTIZED":
            continue
        candidate = preset(name)
        if core(candidate.weights) == core(weights) and core(candidate.input_activations) == core(activations):
            return name
    return "custom"


def declared_scheme(config: dict[str, Any]) -> Scheme | None:
    """The scheme config.json declares for its Linear layers (one config group), None when it declares none.
    A declaration this check cannot read is a ConfigError naming the field."""
    quant, key = find_quantization_config(config)
    if quant is None:
        return None
    groups = quant.get("config_groups")
    if not isinstance(groups, dict) or len(groups) != 1:
        return None  # the quantization_config check says what is wrong with the groups
    [(name, group)] = groups.items()
    where = f"{key}.config_groups.{name}"
    if not isinstance(group, dict) or group.get("weights") is None:
        return None
    weights = QuantArgs.from_config(group["weights"], f"{where}.weights")
    acts = group.get("input_activations")
    activations = QuantArgs.from_config(acts, f"{where}.input_activations") if acts else None
    return Scheme(matching_preset(weights, activations), weights, activations,
                  library_format(group["weights"], acts), "declared by the checkpoint")


def library_format(weights: dict[str, Any], activations: dict[str, Any] | None) -> str:
    """The storage format compressed-tensors writes a Linear with these (config.json) arguments in."""
    import torch
    from compressed_tensors.compressors.format import infer_module_format
    from compressed_tensors.quantization import QuantizationScheme

    # the storage format does not depend on act-order, and compressed-tensors 0.19 refuses the "group" that
    # published checkpoints (with weight_g_idx) declare
    weights = {key: value for key, value in weights.items() if key != "actorder"}
    try:
        scheme = QuantizationScheme(targets=["Linear"], weights=weights, input_activations=activations)
        return infer_module_format(torch.nn.Linear, scheme).value
    except (ValueError, TypeError, StopIteration) as error:
        raise ConfigError(f"compressed-tensors cannot read this scheme ({type(error).__name__}: {error})") from None


def resolve_scheme(requested: str, config: dict[str, Any], group_size: int | None = None,
                   actorder: str | None = None) -> Scheme:
    """The scheme to gate the checkpoint as: the preset requested, or under `auto` the one its config declares
    (the flagship W4A16 when it declares none, so that a dense model fails as not quantized)."""
    try:
        declared = declared_scheme(config)
    except ConfigError:
        declared = None  # unreadable: the quantization_config check fails and names the field
    if requested.lower() != AUTO:
        named = with_overrides(preset(requested), group_size, actorder)
        if actorder is None and declared is not None:  # any act-order: what is stored follows the declared one
            named = replace(named, weights=replace(named.weights, actorder=declared.weights.actorder))
        return named
    if declared is None:
        return with_overrides(replace(preset(DEFAULT_PRESET), source="default: the checkpoint declares no scheme"),
                              group_size, actorder)
    return with_overrides(declared, group_size, actorder)
