"""Tensor-level format of a W4A16 checkpoint against its base: what is packed, what is untouched.

Header-level checks read only safetensors headers (and the 16-byte `weight_shape` tensors);
value checks read one tensor at a time, so memory stays bounded by the largest tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_whisperq.checks.packing import packed_columns, scale_columns
from pytest_whisperq.checks.quant_config import HEAD, Scheme, check_ignore_list, find_quantization_config
from pytest_whisperq.errors import CheckpointError
from pytest_whisperq.results import CheckResult, evidence_list

if TYPE_CHECKING:
    from pytest_whisperq.models.tensors import CheckpointTensors

LINEAR_KINDS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
EMBED_TOKENS = "model.decoder.embed_tokens.weight"
QUANT_PARAMS = ("weight_packed", "weight_scale", "weight_shape", "weight_zero_point", "weight_g_idx")
# vLLM loads these as one fused matrix: all of a group must be quantized alike.
FUSED_GROUPS = {"self_attn": ("q_proj", "k_proj", "v_proj"), "encoder_attn": ("k_proj", "v_proj")}


@dataclass(frozen=True)
class Linear:
    name: str  # module name, e.g. model.encoder.layers.0.fc1
    out_features: int
    in_features: int


def linear_layers(base: CheckpointTensors) -> list[Linear]:
    """Every Linear of the base that W4A16 quantizes: attention projections and MLPs (not the head)."""
    layers = []
    for name, info in base.tensors.items():
        module, _, param = name.rpartition(".")
        if param == "weight" and module.rpartition(".")[2] in LINEAR_KINDS and len(info.shape) == 2:
            layers.append(Linear(module, info.shape[0], info.shape[1]))
    return sorted(layers, key=lambda layer: layer.name)


def module_names(base: CheckpointTensors) -> set[str]:
    """Every module path of the model (tensor names without their last part, and their parents)."""
    names = set()
    for tensor in base.tensors:
        parts = tensor.split(".")[:-1]
        names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return names


def _actorder_group(config: dict) -> bool:
    quant, _ = find_quantization_config(config)
    groups = (quant or {}).get("config_groups")
    if not isinstance(groups, dict):
        return False
    return any(isinstance(g, dict) and isinstance(g.get("weights"), dict)
               and g["weights"].get("actorder") == "group" for g in groups.values())


def _declared_shape(model: CheckpointTensors, name: str) -> list[int] | None:
    info = model.tensors.get(name)
    if info is None or info.dtype not in ("I64", "I32") or info.shape != (2,):
        return None
    return [int(v) for v in model.read(name)]


def linear_problems(model: CheckpointTensors, base: CheckpointTensors, layer: Linear, scheme: Scheme,
                    g_idx_allowed: bool) -> list[str]:
    """What is wrong with one Linear's tensors, each naming the tensor and what was expected."""
    prefix, tensors, problems = layer.name, model.tensors, []
    if f"{prefix}.weight" in tensors:
        kind = "beside the packed weights" if f"{prefix}.weight_packed" in tensors else "instead of weight_packed: left dense"
        problems.append(f"{prefix}.weight: dense {tensors[prefix + '.weight'].dtype} weight {kind}")
    expected = {
        "weight_packed": ("I32", (layer.out_features, packed_columns(layer.in_features, scheme.num_bits))),
        "weight_scale": (scheme.tensor_dtype, (layer.out_features, scale_columns(layer.in_features, scheme.group_size))),
    }
    if f"{prefix}.weight_packed" not in tensors and f"{prefix}.weight" in tensors:
        return problems  # a dense layer: one message is enough
    for param, (dtype, shape) in expected.items():
        info = tensors.get(f"{prefix}.{param}")
        if info is None:
            problems.append(f"{prefix}.{param}: missing, expected {dtype} {list(shape)}")
        elif (info.dtype, info.shape) != (dtype, shape):
            problems.append(f"{prefix}.{param}: {info.dtype} {list(info.shape)}, expected {dtype} {list(shape)}")
    declared = _declared_shape(model, f"{prefix}.weight_shape")
    if declared != [layer.out_features, layer.in_features]:
        found = "missing or not an integer [2] tensor" if declared is None else str(declared)
        problems.append(f"{prefix}.weight_shape: {found}, expected the base's [{layer.out_features}, {layer.in_features}]")
    if f"{prefix}.weight_zero_point" in tensors:
        problems.append(f"{prefix}.weight_zero_point: present, expected none (symmetric quantization has no zero point)")
    g_idx = tensors.get(f"{prefix}.weight_g_idx")
    if g_idx is not None and not g_idx_allowed:
        problems.append(f"{prefix}.weight_g_idx: present, but the config declares no group act-order")
    elif g_idx is not None and (g_idx.dtype, g_idx.shape) != ("I32", (layer.in_features,)):
        problems.append(f"{prefix}.weight_g_idx: {g_idx.dtype} {list(g_idx.shape)}, expected I32 [{layer.in_features}]")
    extra = sorted(n for n in tensors if n.rpartition(".")[0] == prefix and n not in base.tensors
                   and n.rpartition(".")[2] not in (*QUANT_PARAMS, "weight"))
    problems.extend(f"{name}: not in the base, expected none (quantized activations? an added bias?)" for name in extra)
    return problems


def check_linears_packed(model: CheckpointTensors, base: CheckpointTensors, scheme: Scheme) -> CheckResult:
    """Every Linear of encoder and decoder is INT4-packed with the base's shape, nothing dense left."""
    layers = linear_layers(base)
    g_idx_allowed = _actorder_group(model.config)
    per_layer = [linear_problems(model, base, layer, scheme, g_idx_allowed) for layer in layers]
    problems = [p for layer_problems in per_layer for p in layer_problems]
    bad = sum(1 for layer_problems in per_layer if layer_problems)
    return CheckResult(
        "linears_packed", not problems, observed=f"{len(layers) - bad}/{len(layers)}", limit=f"{len(layers)}/{len(layers)}",
        detail=(f"every Linear (self/cross-attention, MLP) is {scheme.label} packed" if not problems else
                f"{bad} of {len(layers)} Linear layers are not {scheme.label} packed as the base's shapes require"),
        evidence=evidence_list(problems),
    )


def check_ignore_list_against_base(model: CheckpointTensors, base: CheckpointTensors) -> CheckResult:
    """`check_ignore_list` with the base's module and Linear names."""
    return check_ignore_list(model.config, module_names(base), [layer.name for layer in linear_layers(base)])


def _signature(model: CheckpointTensors, module: str) -> str:
    tensors = model.tensors
    if f"{module}.weight_packed" in tensors and f"{module}.weight_scale" in tensors:
        packed, scale = tensors[f"{module}.weight_packed"], tensors[f"{module}.weight_scale"]
        return f"packed {packed.dtype} x{packed.shape[-1]} scale {scale.dtype} x{scale.shape[-1]}"
    if f"{module}.weight" in tensors:
        return f"dense {tensors[module + '.weight'].dtype}"
    return "missing"


def check_fused_projections_alike(model: CheckpointTensors, base: CheckpointTensors) -> CheckResult:
    """q/k/v (and cross-attention k/v) quantized alike: vLLM fuses them and cannot load a mix."""
    blocks = sorted({layer.name.rsplit(".", 1)[0] for layer in linear_layers(base)
                     if layer.name.count(".") >= 1 and layer.name.rsplit(".", 2)[-2] in FUSED_GROUPS})
    problems = []
    for block in blocks:
        members = FUSED_GROUPS[block.rsplit(".", 1)[1]]
        signatures = {member: _signature(model, f"{block}.{member}") for member in members}
        if len(set(signatures.values())) > 1:
            listing = ", ".join(f"{member} {sig}" for member, sig in signatures.items())
            problems.append(f"{block}: {listing}")
    return CheckResult(
        "fused_projections_alike", not problems, observed=len(problems), limit=0, unit=" mixed blocks",
        detail=("q/k/v and cross-attention k/v are quantized alike in every block" if not problems else
                "vLLM fuses q/k/v (cross-attention k/v) into one matrix; these blocks mix formats and will not load there"),
        evidence=evidence_list(problems),
    )


def _head_reference(base: CheckpointTensors) -> str:
    return f"{HEAD}.weight" if f"{HEAD}.weight" in base else EMBED_TOKENS


def check_output_head(model: CheckpointTensors, base: CheckpointTensors) -> CheckResult:
    """proj_out is not quantized and is (tied to) the base's decoder.embed_tokens."""
    problems = []
    quantized = sorted(n for n in model.tensors if n.startswith(HEAD + ".") and n.rpartition(".")[2] in QUANT_PARAMS)
    if quantized:
        problems.append(
            f"{', '.join(quantized)}: the output head is quantized, expected it dense. Whisper's head is "
            f"{HEAD!r}; a recipe with ignore=['lm_head'] quantizes it: use ignore=['{HEAD}']"
        )
    others = sorted(n for n in model.tensors if n.startswith(HEAD + ".") and n not in quantized
                    and n != f"{HEAD}.weight" and n not in base.tensors)
    problems.extend(f"{name}: not in the base, expected the head to be a plain weight" for name in others)
    tied = model.config.get("tie_word_embeddings", True)
    if not isinstance(tied, bool):
        problems.append(f"config.json tie_word_embeddings: {tied!r}, expected a boolean (true)")
        tied = False
    if f"{HEAD}.weight" in model:
        reference = _head_reference(base)
        difference = _tensor_difference(model, f"{HEAD}.weight", base, reference)
        if difference:
            problems.append(f"{HEAD}.weight: {difference}, expected the base's {reference}")
    elif not tied:
        problems.append(
            f"config.json tie_word_embeddings: False and no {HEAD}.weight: expected True, the head tied to "
            f"{EMBED_TOKENS} (loaders would use an uninitialised or quantized head)"
        )
    return CheckResult(
        "output_head_untouched", not problems, observed=len(problems), limit=0, unit=" problems",
        detail=("the output head is the base's (tied to decoder.embed_tokens)" if not problems else
                "the output head (proj_out) was changed; vLLM ties it to embed_tokens, transformers would not"),
        evidence=evidence_list(problems),
    )


def untouched_tensors(base: CheckpointTensors, layers: list[Linear]) -> list[str]:
    """Base tensors W4A16 must leave as they are: all but the quantized Linears' weights and the head."""
    quantized = {f"{layer.name}.weight" for layer in layers}
    return sorted(n for n in base.tensors if n not in quantized and not n.startswith(HEAD + "."))


def check_untouched_tensors_layout(model: CheckpointTensors, base: CheckpointTensors, scheme: Scheme) -> CheckResult:
    """Embeddings, positions, convolutions, layer norms, biases: present, in fp16, the base's shapes;
    and nothing in the checkpoint that W4A16 does not explain."""
    layers = linear_layers(base)
    expected_dtype = scheme.tensor_dtype
    problems = []
    names = untouched_tensors(base, layers)
    for name in names:
        info, reference = model.tensors.get(name), base.tensors[name]
        if info is None:
            problems.append(f"{name}: missing, expected {expected_dtype} {list(reference.shape)}")
        elif (info.dtype, info.shape) != (expected_dtype, reference.shape):
            problems.append(f"{name}: {info.dtype} {list(info.shape)}, expected {expected_dtype} {list(reference.shape)}")
    explained = set(names) | {f"{layer.name}.{param}" for layer in layers for param in (*QUANT_PARAMS, "weight")}
    module_of = {layer.name for layer in layers} | {HEAD}
    unexplained = sorted(n for n in model.tensors if n not in explained and n.rsplit(".", 1)[0] not in module_of)
    problems.extend(f"{name}: not in the base, unexpected in a W4A16 checkpoint of it" for name in unexplained)
    return CheckResult(
        "untouched_tensors_layout", not problems, observed=len(problems), limit=0, unit=" problems",
        detail=(f"all {len(names)} unquantized tensors present as {expected_dtype} with the base's shapes"
                if not problems else "tensors that W4A16 must not touch are missing, re-typed or reshaped"),
        evidence=evidence_list(problems),
    )


def _tensor_difference(model: CheckpointTensors, name: str, base: CheckpointTensors, base_name: str) -> str:
    """'' when equal to the base's tensor cast to fp16; else what differs."""
    import numpy as np

    ours, theirs = model.read(name), base.read(base_name)
    if ours.shape != theirs.shape:
        return f"shape {list(ours.shape)} vs {list(theirs.shape)}"
    if ours.dtype != np.float16:
        return f"dtype {model.tensors[name].dtype}"
    theirs = theirs.astype(np.float16)
    if np.array_equal(ours.view(np.uint16), theirs.view(np.uint16)):
        return ""
    differing = int(np.count_nonzero(ours.view(np.uint16) != theirs.view(np.uint16)))
    with np.errstate(invalid="ignore", over="ignore"):  # NaN or inf in a damaged tensor: still a difference
        delta = float(np.nanmax(np.abs(ours.astype(np.float32) - theirs.astype(np.float32))))
    return f"{differing} of {ours.size} values differ (max |difference| {delta:.3g})"


def check_untouched_tensors_equal(model: CheckpointTensors, base: CheckpointTensors) -> CheckResult:
    """Every unquantized tensor equals the base's, cast to fp16, bit for bit."""
    names = [n for n in untouched_tensors(base, linear_layers(base)) if n in model]
    problems = []
    for name in names:
        try:
            difference = _tensor_difference(model, name, base, name)
        except CheckpointError as error:
            difference = f"unreadable ({error})"
        if difference:
            problems.append(f"{name}: {difference}")
    return CheckResult(
        "untouched_tensors_equal", not problems, observed=len(problems), limit=0, unit=" changed tensors",
        detail=(f"all {len(names)} unquantized tensors equal the base's (cast to fp16)" if not problems else
                "tensors W4A16 must leave alone were changed: this checkpoint was not made from this base, "
                "or something edited it after quantization"),
        evidence=evidence_list(problems),
    )
