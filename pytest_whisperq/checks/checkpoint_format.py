"""Tensor-level format of a quantized checkpoint against its base: what is quantized, what is untouched.

What each quantized Linear stores follows from the scheme and its compressed-tensors format
(`pack-quantized` INT weights in int32 words, `int-quantized`/`float-quantized` INT8 or FP8 weights,
`nvfp4-pack-quantized` FP4 pairs in bytes), with scales shaped by the strategy (tensor, channel, group,
block). Header-level checks read only safetensors headers (and the 16-byte `weight_shape` tensors);
value checks read one tensor at a time, so memory stays bounded by the largest tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_whisperq.checks.packing import packed_columns
from pytest_whisperq.checks.quant_config import HEAD, check_ignore_list, model_dtype
from pytest_whisperq.checks.scheme import PACKED_FORMATS, SIXTEEN_BIT, UNPACKED_FORMATS, tensor_dtype
from pytest_whisperq.errors import CheckpointError
from pytest_whisperq.results import CheckResult, evidence_list

if TYPE_CHECKING:
    from pytest_whisperq.checks.scheme import QuantArgs, Scheme
    from pytest_whisperq.models.tensors import CheckpointTensors

LINEAR_KINDS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
EMBED_TOKENS = "model.decoder.embed_tokens.weight"
# every tensor a quantized Linear may store beside (or instead of) its weight, in any format
QUANT_PARAMS = ("weight_packed", "weight_scale", "weight_shape", "weight_zero_point", "weight_g_idx",
                "weight_global_scale", "input_scale", "input_zero_point", "input_global_scale")
# vLLM loads these as one fused matrix: all of a group must be quantized alike.
FUSED_GROUPS = {"self_attn": ("q_proj", "k_proj", "v_proj"), "encoder_attn": ("k_proj", "v_proj")}


@dataclass(frozen=True)
class Linear:
    name: str  # module name, e.g. model.encoder.layers.0.fc1
    out_features: int
    in_features: int


def linear_layers(base: CheckpointTensors) -> list[Linear]:
    """Every Linear of the base that quantization targets: attention projections and MLPs (not the head)."""
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


def _declared_shape(model: CheckpointTensors, name: str) -> list[int] | None:
    info = model.tensors.get(name)
    if info is None or info.dtype not in ("I64", "I32") or info.shape != (2,):
        return None
    return [int(v) for v in model.read(name)]


def stored_dtype(config: dict) -> str:
    """The safetensors dtype of the model's unquantized tensors: config.json's 16-bit dtype (fp16 when it
    names none or another: the model_dtype check fails that on its own)."""
    declared = model_dtype(config)
    return tensor_dtype(declared if declared in SIXTEEN_BIT else "float16")


def scale_shape(args: QuantArgs, rows: int, columns: int) -> tuple[int, ...] | None:
    """The shape of a [rows, columns] tensor's scales under its strategy (None: not a static strategy)."""
    if args.strategy == "tensor":
        return (1,)
    if args.strategy == "channel":
        return (rows, 1)
    if args.strategy in ("group", "tensor_group") and args.group_size:
        return (rows, math.ceil(columns / args.group_size))
    if args.strategy == "block" and args.block_structure and len(args.block_structure) == 2:
        return (math.ceil(rows / args.block_structure[0]), math.ceil(columns / args.block_structure[1]))
    return None


def expected_layer_tensors(layer: Linear, scheme: Scheme, dtype: str) -> dict[str, tuple[str, tuple[int, ...] | None]]:
    """Every tensor one quantized Linear stores in the scheme's format: parameter -> (safetensors dtype, shape;
    None where the shape is not fixed), `weight_shape` aside. CheckpointError for a format not read here."""
    weights, rows, columns = scheme.weights, layer.out_features, layer.in_features
    scales = scale_shape(weights, rows, columns)
    expected: dict[str, tuple[str, tuple[int, ...] | None]] = {}
    if scheme.format == "pack-quantized":
        expected["weight_packed"] = ("I32", (rows, packed_columns(columns, weights.num_bits)))
        if not weights.symmetric:  # packed along the rows, as compressed-tensors packs zero points
            expected["weight_zero_point"] = ("I32", None if scales is None else
                                             (packed_columns(rows, weights.num_bits), scales[-1]))
    elif scheme.format == "nvfp4-pack-quantized":
        expected["weight_packed"] = ("U8", (rows, math.ceil(columns / 2)))
        expected["weight_global_scale"] = ("F32", (1,))
    elif scheme.format in UNPACKED_FORMATS and (weights.num_bits <= 8 if weights.type == "int" else weights.num_bits == 8):
        expected["weight"] = ("I8" if weights.type == "int" else "F8_E4M3", (rows, columns))
        if not weights.symmetric:
            expected["weight_zero_point"] = ("I8", scales)
    else:
        raise CheckpointError(f"{scheme.name} stores its weights as {scheme.format} with {weights.num_bits}-bit "
                              f"{weights.type} values, a layout this check does not read")
    expected["weight_scale"] = (scheme.scale_dtype(dtype), scales)
    if weights.actorder == "group":
        expected["weight_g_idx"] = ("I32", (columns,))
    activations = scheme.input_activations
    if activations is not None and activations.dynamic is not True:
        if activations.strategy == "tensor_group":
            expected["input_global_scale"] = ("F32", (1,))
        if activations.dynamic is False:  # static: calibrated scales in the checkpoint
            expected["input_scale"] = (dtype, (1,) if activations.strategy == "tensor" else None)
            if not activations.symmetric:
                expected["input_zero_point"] = ("I8" if activations.type == "int" else dtype,
                                                (1,) if activations.strategy == "tensor" else None)
    return expected


def linear_problems(model: CheckpointTensors, base: CheckpointTensors, layer: Linear, scheme: Scheme) -> list[str]:
    """What is wrong with one Linear's tensors, each naming the tensor and what was expected."""
    prefix, tensors, problems = layer.name, model.tensors, []
    dtype = stored_dtype(model.config)
    expected = expected_layer_tensors(layer, scheme, dtype)
    dense = tensors.get(f"{prefix}.weight")
    if scheme.format in PACKED_FORMATS and dense is not None:
        kind = "beside the packed weights" if f"{prefix}.weight_packed" in tensors else "instead of weight_packed: left dense"
        problems.append(f"{prefix}.weight: dense {dense.dtype} weight {kind}")
        if f"{prefix}.weight_packed" not in tensors:
            return problems  # a dense layer: one message is enough
    elif "weight" in expected and dense is not None and dense.dtype in ("F16", "BF16", "F32", "F64"):
        return [f"{prefix}.weight: dense {dense.dtype} weight, expected {expected['weight'][0]} values: left unquantized"]
    for param, (want_dtype, want_shape) in expected.items():
        info = tensors.get(f"{prefix}.{param}")
        shown = f"{want_dtype} {list(want_shape)}" if want_shape is not None else want_dtype
        if info is None:
            problems.append(f"{prefix}.{param}: missing, expected {shown}")
        elif info.dtype != want_dtype or (want_shape is not None and info.shape != want_shape):
            problems.append(f"{prefix}.{param}: {info.dtype} {list(info.shape)}, expected {shown}")
    if scheme.format == "pack-quantized":
        declared = _declared_shape(model, f"{prefix}.weight_shape")
        if declared != [layer.out_features, layer.in_features]:
            found = "missing or not an integer [2] tensor" if declared is None else str(declared)
            problems.append(f"{prefix}.weight_shape: {found}, expected the base's [{layer.out_features}, {layer.in_features}]")
    explained = {*expected, "weight_shape"} if scheme.format == "pack-quantized" else set(expected)
    for param in QUANT_PARAMS:
        if param not in explained and f"{prefix}.{param}" in tensors:
            problems.append(f"{prefix}.{param}: present, expected none ({_why_absent(param, scheme)})")
    extra = sorted(n for n in tensors if n.rpartition(".")[0] == prefix and n not in base.tensors
                   and n.rpartition(".")[2] not in (*QUANT_PARAMS, "weight"))
    problems.extend(f"{name}: not in the base, expected none (an added bias? another format's tensor?)" for name in extra)
    return problems


def _why_absent(param: str, scheme: Scheme) -> str:
    """Why `scheme` stores no `param`, for the message."""
    if param == "weight_zero_point":
        return "symmetric quantization has no zero point"
    if param == "weight_g_idx":
        return "the scheme declares no group act-order"
    if param.startswith("input_"):
        acts = scheme.input_activations
        return ("the scheme quantizes no activations" if acts is None else
                f"its activations are {acts.describe()}: no calibrated activation scales are stored")
    return f"{scheme.format} stores no {param}"


def check_linears_packed(model: CheckpointTensors, base: CheckpointTensors, scheme: Scheme) -> CheckResult:
    """Every Linear of encoder and decoder is stored as the scheme's format requires, with the base's shape,
    nothing dense left."""
    layers = linear_layers(base)
    try:
        per_layer = [linear_problems(model, base, layer, scheme) for layer in layers]
    except CheckpointError as error:
        return CheckResult("linears_packed", False, observed=f"0/{len(layers)}", limit=f"{len(layers)}/{len(layers)}",
                           detail=str(error))
    problems = [p for layer_problems in per_layer for p in layer_problems]
    bad = sum(1 for layer_problems in per_layer if layer_problems)
    return CheckResult(
        "linears_packed", not problems, observed=f"{len(layers) - bad}/{len(layers)}", limit=f"{len(layers)}/{len(layers)}",
        detail=(f"every Linear (self/cross-attention, MLP) is stored as {scheme.label}" if not problems else
                f"{bad} of {len(layers)} Linear layers are not stored as {scheme.label} with the base's shapes"),
        evidence=evidence_list(problems),
    )


def check_ignore_list_against_base(model: CheckpointTensors, base: CheckpointTensors) -> CheckResult:
    """`check_ignore_list` with the base's module and Linear names."""
    return check_ignore_list(model.config, module_names(base), [layer.name for layer in linear_layers(base)])


def _signature(model: CheckpointTensors, module: str) -> str:
    """How a Linear is stored, in terms that must agree across a fused group: each tensor's dtype and width."""
    tensors = model.tensors
    present = [p for p in ("weight", *QUANT_PARAMS) if p != "weight_shape" and f"{module}.{p}" in tensors]
    if not present:
        return "missing"
    return " ".join(f"{p} {tensors[f'{module}.{p}'].dtype} x{(tensors[f'{module}.{p}'].shape or (1,))[-1]}"
                    for p in present)


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
    """Base tensors quantization must leave as they are: all but the quantized Linears' weights and the head."""
    quantized = {f"{layer.name}.weight" for layer in layers}
    return sorted(n for n in base.tensors if n not in quantized and not n.startswith(HEAD + "."))


def check_untouched_tensors_layout(model: CheckpointTensors, base: CheckpointTensors, scheme: Scheme) -> CheckResult:
    """Embeddings, positions, convolutions, layer norms, biases: present, in the model's 16-bit dtype, the
    base's shapes; and nothing in the checkpoint that the scheme does not explain."""
    layers = linear_layers(base)
    expected_dtype = stored_dtype(model.config)
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
    problems.extend(f"{name}: not in the base, unexpected in a {scheme.name} checkpoint of it" for name in unexplained)
    return CheckResult(
        "untouched_tensors_layout", not problems, observed=len(problems), limit=0, unit=" problems",
        detail=(f"all {len(names)} unquantized tensors present as {expected_dtype} with the base's shapes"
                if not problems else f"tensors that {scheme.name} must not touch are missing, re-typed or reshaped"),
        evidence=evidence_list(problems),
    )


def as_bfloat16(values):  # np.ndarray -> np.ndarray
    """float32 values rounded to bfloat16 (nearest, ties to even), widened back to float32: numpy has no
    bfloat16, and this is the rounding torch's cast does."""
    import numpy as np

    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = ((bits + np.uint32(0x7FFF) + ((bits >> 16) & 1)) & np.uint32(0xFFFF0000)).astype(np.uint32)
    rounded = np.where(np.isnan(values), bits, rounded)  # NaN stays NaN
    return rounded.view(np.float32)


def _tensor_difference(model: CheckpointTensors, name: str, base: CheckpointTensors, base_name: str) -> str:
    """'' when equal to the base's tensor cast to the model's 16-bit dtype; else what differs."""
    import numpy as np

    ours, theirs = model.read(name), base.read(base_name)
    if ours.shape != theirs.shape:
        return f"shape {list(ours.shape)} vs {list(theirs.shape)}"
    stored = model.tensors[name].dtype
    if stored == "F16":
        ours, theirs = ours.view(np.uint16), theirs.astype(np.float16).view(np.uint16)
    elif stored == "BF16":  # read widened to float32: compare the widened bits
        ours, theirs = ours.view(np.uint32), as_bfloat16(theirs.astype(np.float32)).view(np.uint32)
    else:
        return f"dtype {stored}"
    if np.array_equal(ours, theirs):
        return ""
    differing = int(np.count_nonzero(ours != theirs))
    as_float = {2: np.float16, 4: np.float32}[ours.itemsize]
    with np.errstate(invalid="ignore", over="ignore"):  # NaN or inf in a damaged tensor: still a difference
        delta = float(np.nanmax(np.abs(ours.view(as_float).astype(np.float32) - theirs.view(as_float).astype(np.float32))))
    return f"{differing} of {ours.size} values differ (max |difference| {delta:.3g})"


def check_untouched_tensors_equal(model: CheckpointTensors, base: CheckpointTensors) -> CheckResult:
    """Every unquantized tensor equals the base's, cast to the model's 16-bit dtype, bit for bit."""
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
        detail=(f"all {len(names)} unquantized tensors equal the base's (cast to {stored_dtype(model.config)})"
                if not problems else
                "tensors quantization must leave alone were changed: this checkpoint was not made from this base, "
                "or something edited it after quantization"),
        evidence=evidence_list(problems),
    )
