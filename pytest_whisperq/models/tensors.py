"""Read a checkpoint's tensors without trusting it: safetensors headers, shards, one tensor at a time.

The header reader is our own (struct + json), so a malformed file ends in `CheckpointError` naming
the file and the tensor, never in a library's traceback. Tensors are read one at a time into numpy
(no torch), which keeps memory bounded by the largest tensor, whatever the checkpoint's size.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_whisperq.errors import CheckpointError

if TYPE_CHECKING:
    import numpy as np

INDEX_NAME = "model.safetensors.index.json"
DEFAULT_WEIGHTS = "model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# safetensors dtype code -> (bytes per element, numpy dtype name); BF16 is widened to float32 on read.
DTYPES: dict[str, tuple[int, str]] = {
    "F64": (8, "<f8"), "F32": (4, "<f4"), "F16": (2, "<f2"), "BF16": (2, "<u2"),
    "I64": (8, "<i8"), "I32": (4, "<i4"), "I16": (2, "<i2"), "I8": (1, "i1"),
    "U64": (8, "<u8"), "U32": (4, "<u4"), "U16": (2, "<u2"), "U8": (1, "u1"), "BOOL": (1, "?"),
    "F8_E4M3": (1, "u1"), "F8_E5M2": (1, "u1"),
}
MAX_HEADER_BYTES = 100_000_000  # the safetensors format's own limit


def parse_untrusted_json(text: bytes | str, where: str) -> Any:
    """JSON from a file we do not trust: any malformation, deep nesting included, is a CheckpointError."""
    try:
        return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise CheckpointError(f"{where} is not valid JSON ({type(error).__name__}: {str(error)[:200]})") from None


def read_untrusted_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read ({error.strerror or error})") from None


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives and what its header says it is."""

    name: str
    dtype: str  # safetensors code: F16, I32, ...
    shape: tuple[int, ...]
    file: Path
    start: int  # absolute byte offsets in `file`
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def read_safetensors_header(path: Path) -> dict[str, TensorInfo]:
    """The tensors a safetensors file declares, checked against the file's real size."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise CheckpointError(f"{path}: {size} bytes, too short for a safetensors file (truncated?)")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
                raise CheckpointError(
                    f"{path}: header claims {header_len} bytes but the file has {size}: "
                    "not a safetensors file, or truncated (download it again)"
                )
            raw = handle.read(header_len)
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read ({error.strerror or error})") from None
    header = parse_untrusted_json(raw, f"{path}: the safetensors header")
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is a {type(header).__name__}, expected an object")
    if not isinstance(header.pop("__metadata__", None) or {}, dict):
        raise CheckpointError(f"{path}: __metadata__ is not an object")
    data_start, data_size = 8 + header_len, size - 8 - header_len
    tensors = {name: _tensor_info(path, name, entry, data_start, data_size) for name, entry in header.items()}
    _refuse_overlaps(path, tensors.values())
    return tensors


def _tensor_info(path: Path, name: str, entry: Any, data_start: int, data_size: int) -> TensorInfo:
    where = f"{path}: tensor {name!r}"
    if not isinstance(entry, dict):
        raise CheckpointError(f"{where}: header entry is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise CheckpointError(f"{where}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise CheckpointError(f"{where}: shape {shape!r} is not a list of non-negative integers")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
        raise CheckpointError(f"{where}: data_offsets {offsets!r} is not [start, end]")
    begin, end = offsets
    expected = math.prod(shape) * DTYPES[dtype][0]
    if not 0 <= begin <= end or end - begin != expected:
        raise CheckpointError(
            f"{where}: data_offsets {offsets} hold {end - begin} bytes, but {dtype} {shape} needs {expected}"
        )
    if end > data_size:
        raise CheckpointError(
            f"{where}: data ends at byte {end} of a {data_size}-byte data section: the file is truncated "
            "(download or save it again)"
        )
    return TensorInfo(name, dtype, tuple(shape), path, data_start + begin, data_start + end)


def _refuse_overlaps(path: Path, tensors: Any) -> None:
    previous: TensorInfo | None = None
    for info in sorted((t for t in tensors if t.end > t.start), key=lambda t: t.start):
        if previous is not None and info.start < previous.end:
            raise CheckpointError(f"{path}: tensors {previous.name!r} and {info.name!r} overlap in the file")
        previous = info


def read_config(path: Path, name: str) -> dict[str, Any]:
    """config.json of a Whisper checkpoint directory, or a CheckpointError saying what is wrong."""
    if not path.is_dir():
        raise CheckpointError(f"{name}: {path} is not a directory")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{name}: no config.json in {path}; is this a Hugging Face checkpoint directory?")
    config = parse_untrusted_json(read_untrusted_bytes(config_path), f"{name}: {config_path}")
    if not isinstance(config, dict) or config.get("model_type") != "whisper":
        found = config.get("model_type") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(f"{name}: config.json has model_type {found!r}, expected 'whisper'")
    return config


def weight_files(path: Path, allow_pickle: bool, name: str) -> tuple[str, list[Path]]:
    """Which weights a checkpoint has, in transformers' order: model.safetensors, else the shard index, else the
    safetensors files there are, else pickles (only if allowed). ("both" | "index" | "safetensors" | "pickle",
    files): "both" when model.safetensors and an index are there (transformers reads the first; vLLM loads the
    shards the index names), for the caller to check that they hold the same weights."""
    single, index = (path / DEFAULT_WEIGHTS).is_file(), (path / INDEX_NAME).is_file()
    if single and index:
        return "both", [path / DEFAULT_WEIGHTS, path / INDEX_NAME]
    if single:  # as transformers loads it; variants (model.fp32-*.safetensors) aside
        return "safetensors", [path / DEFAULT_WEIGHTS]
    if index:
        return "index", [path / INDEX_NAME]
    safetensors = sorted(p for p in path.glob("*.safetensors") if p.is_file())
    if safetensors:
        return "safetensors", safetensors
    pickles = sorted(p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    if not pickles:
        raise CheckpointError(f"{name}: no weights (*.safetensors) in {path}")
    if not allow_pickle:
        raise CheckpointError(
            f"{name}: only pickled weights ({', '.join(p.name for p in pickles)}) in {path}; pickles can "
            "run code when loaded. Convert them to safetensors, or pass --whisperq-allow-pickle if you trust them"
        )
    return "pickle", pickles


class CheckpointTensors:
    """A checkpoint directory's config and tensor headers; tensors are read on demand."""

    def __init__(self, path: Path, config: dict[str, Any], tensors: dict[str, TensorInfo],
                 weight_format: str, index: dict[str, str] | None = None) -> None:
        self.path = path
        self.config = config
        self.tensors = tensors
        self.weight_format = weight_format  # "safetensors" or "pickle"
        self.index = index  # tensor -> shard file name, when the checkpoint is sharded
        self._pickled: dict[Path, dict[str, Any]] = {}

    @classmethod
    def open(cls, path: Path, allow_pickle: bool = False, name: str | None = None) -> CheckpointTensors:
        """`name`: how messages call the checkpoint (the user's model spec); its path by default."""
        path = Path(path)
        config = read_config(path, name or str(path))
        kind, files = weight_files(path, allow_pickle, name or str(path))
        if kind == "both":
            single = cls(path, config, _merge(path, files[:1]), "safetensors")
            tensors, index = _sharded(path)
            _require_same_weights(single, cls(path, config, tensors, "safetensors", index), name or str(path))
            return single  # what transformers loads
        if kind == "index":
            tensors, index = _sharded(path)
            return cls(path, config, tensors, "safetensors", index)
        if kind == "safetensors":
            return cls(path, config, _merge(path, files), "safetensors")
        checkpoint = cls(path, config, {}, "pickle")
        for file in files:
            checkpoint._load_pickle(file)
        return checkpoint

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def names(self) -> Iterator[str]:
        return iter(self.tensors)

    def read(self, name: str) -> np.ndarray:
        """One tensor as a numpy array (BF16 widened to float32), read from disk now."""
        import numpy as np

        info = self.tensors.get(name)
        if info is None:
            raise CheckpointError(f"{self.path}: no tensor {name!r}")
        if self.weight_format == "pickle":
            return _torch_to_numpy(self._pickled[info.file][name])
        itemsize, np_dtype = DTYPES[info.dtype]
        array = np.empty(info.numel, dtype=np_dtype)
        try:
            with info.file.open("rb") as handle:
                handle.seek(info.start)
                got = handle.readinto(memoryview(array).cast("B"))
        except OSError as error:
            raise CheckpointError(f"{info.file}: tensor {name!r} cannot be read ({error.strerror or error})") from None
        if got != info.end - info.start:
            raise CheckpointError(f"{info.file}: tensor {name!r} is cut short ({got} of {info.end - info.start} bytes)")
        array = array.reshape(info.shape)
        if info.dtype == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array

    def _load_pickle(self, file: Path) -> None:
        """Only when the user allowed pickles: torch's weights_only loader, memory-mapped."""
        import torch

        try:
            try:
                state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as error:
                if "mmap can only be used" not in str(error):
                    raise
                state = torch.load(file, map_location="cpu", weights_only=True)  # the legacy (non-zip) format
        except Exception as error:  # torch raises many types for a bad pickle
            raise CheckpointError(f"{file}: cannot be read as a weights-only torch pickle ({error})") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"{file}: holds a {type(state).__name__}, expected a state dict")
        self._pickled[file] = state
        for name, tensor in state.items():
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointError(f"{file}: entry {name!r} is a {type(tensor).__name__}, not a tensor")
            if name in self.tensors:
                raise CheckpointError(f"{self.path}: tensor {name!r} is in both {self.tensors[name].file.name} and {file.name}")
            dtype = _TORCH_DTYPES.get(str(tensor.dtype).removeprefix("torch."), str(tensor.dtype))
            nbytes = tensor.numel() * tensor.element_size()
            self.tensors[name] = TensorInfo(name, dtype, tuple(tensor.shape), file, 0, nbytes)


_TORCH_DTYPES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64", "int64": "I64",
                 "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def _torch_to_numpy(tensor: Any) -> np.ndarray:
    import torch

    if tensor.dtype == torch.bfloat16 or tensor.dtype.is_floating_point and tensor.element_size() == 1:
        tensor = tensor.float()  # numpy has no bfloat16 or float8
    return tensor.numpy().copy()


def _require_same_weights(single: CheckpointTensors, sharded: CheckpointTensors, name: str) -> None:
    """model.safetensors and the shards its index names must hold the same tensors, value for value: loaders
    choose differently between them (transformers the single file, vLLM the index's shards), so a stale one
    means two loaders run two models, and the checks would see only one of them."""
    layout = {n: (i.dtype, i.shape) for n, i in single.tensors.items()}
    other = {n: (i.dtype, i.shape) for n, i in sharded.tensors.items()}
    problems = [f"{n}: only in {DEFAULT_WEIGHTS}" for n in sorted(set(layout) - set(other))]
    problems += [f"{n}: only in the shards" for n in sorted(set(other) - set(layout))]
    problems += [f"{n}: {layout[n][0]} {list(layout[n][1])} in {DEFAULT_WEIGHTS}, {other[n][0]} {list(other[n][1])} in "
                 f"{sharded.tensors[n].file.name}" for n in sorted(set(layout) & set(other)) if layout[n] != other[n]]
    if not problems:
        for tensor in sorted(layout):
            if single.read(tensor).tobytes() != sharded.read(tensor).tobytes():  # bit for bit, NaN included
                problems.append(f"{tensor}: other values in {DEFAULT_WEIGHTS} than in {sharded.tensors[tensor].file.name}")
                if len(problems) == 3:
                    break
    if problems:
        shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        raise CheckpointError(
            f"{name}: the checkpoint holds both {DEFAULT_WEIGHTS} and {INDEX_NAME}, and they disagree: {shown}. "
            f"transformers loads {DEFAULT_WEIGHTS}, vLLM the shards the index names: remove the stale one")


def _merge(path: Path, files: list[Path]) -> dict[str, TensorInfo]:
    tensors: dict[str, TensorInfo] = {}
    for file in files:
        for name, info in read_safetensors_header(file).items():
            if name in tensors:
                raise CheckpointError(f"{path}: tensor {name!r} is in both {tensors[name].file.name} and {file.name}")
            tensors[name] = info
    return tensors


def _sharded(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Shards named by model.safetensors.index.json, checked against what the shards hold."""
    index_path = path / INDEX_NAME
    index = parse_untrusted_json(read_untrusted_bytes(index_path), str(index_path))
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index_path}: no weight_map; the index names no shards")
    shard_names = sorted(set(map(str, weight_map.values())))
    for shard in shard_names:
        if Path(shard).name != shard or not shard.endswith(".safetensors"):
            raise CheckpointError(f"{index_path}: shard {shard!r} is not a safetensors file name in this directory")
        if not (path / shard).is_file():
            raise CheckpointError(f"{index_path}: shard {shard} is missing from {path} (incomplete download?)")
    tensors = _merge(path, [path / shard for shard in shard_names])
    misplaced = [f"{name} (index: {shard}, found: {tensors[name].file.name if name in tensors else 'nowhere'})"
                 for name, shard in weight_map.items() if name not in tensors or tensors[name].file.name != shard]
    unindexed = sorted(set(tensors) - set(weight_map))
    if misplaced or unindexed:
        problems = [f"{len(misplaced)} tensors not where the index says: {', '.join(misplaced[:5])}"] if misplaced else []
        problems += [f"{len(unindexed)} tensors missing from the index: {', '.join(unindexed[:5])}"] if unindexed else []
        raise CheckpointError(f"{index_path} does not match its shards: {'; '.join(problems)}")
    return tensors, {str(k): str(v) for k, v in weight_map.items()}
