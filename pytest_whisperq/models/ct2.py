"""Reader for CTranslate2's `model.bin` (binary format version 6).

ctranslate2 itself can write this format but not read it back. The layout (see
`ctranslate2/specs/model_spec.py`, `_serialize`) is little-endian:

    u32 version, str spec_name, u32 spec_revision,
    u32 n_variables, n x (str name, u8 rank, rank x u32 dim, u8 dtype_id, u32 nbytes, bytes),
    u32 n_aliases,   n x (str alias, str target)

where `str` is a u16 length (including a trailing NUL) followed by UTF-8 bytes and the NUL.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pytest_whisperq.errors import ConversionError

SUPPORTED_VERSION = 6
# ctranslate2's _dtype_to_type_id order; bfloat16 has no numpy dtype and is not expected here.
_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
}


@dataclass
class Ct2Model:
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)

    def scalar(self, name: str) -> int | float:
        value = self.variables[name]
        if value.shape != ():
            raise ConversionError(f"{name} is not a scalar (shape {value.shape})")
        return value.item()


class _Cursor:
    def __init__(self, data: memoryview, path: Path) -> None:
        self.data = data
        self.offset = 0
        self.path = path

    def take(self, size: int) -> memoryview:
        end = self.offset + size
        if size < 0 or end > len(self.data):
            raise ConversionError(
                f"{self.path}: truncated CTranslate2 model (wanted {size} bytes at offset "
                f"{self.offset}, file has {len(self.data)}); re-download the package"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        length = self.unpack("H")
        raw = bytes(self.take(length))
        if length == 0 or raw[-1] != 0:
            raise ConversionError(f"{self.path}: malformed string at offset {self.offset}")
        return raw[:-1].decode("utf-8")


def read_ct2_model(path: Path) -> Ct2Model:
    """Read every variable of a CTranslate2 model file into numpy arrays (copies)."""
    path = Path(path)
    data = memoryview(path.read_bytes())
    cursor = _Cursor(data, path)
    version = cursor.unpack("I")
    if version != SUPPORTED_VERSION:
        raise ConversionError(
            f"{path}: CTranslate2 binary version {version}, only {SUPPORTED_VERSION} is supported"
        )
    spec_name = cursor.string()
    revision = cursor.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(cursor.unpack("I")):
        name = cursor.string()
        shape = tuple(cursor.unpack("I") for _ in range(cursor.unpack("B")))
        type_id = cursor.unpack("B")
        nbytes = cursor.unpack("I")
        if type_id not in _DTYPES:
            raise ConversionError(f"{path}: variable {name} has unsupported dtype id {type_id}")
        dtype = _DTYPES[type_id]
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes != expected:
            raise ConversionError(
                f"{path}: variable {name} declares {nbytes} bytes but shape {shape} of "
                f"{dtype} needs {expected}"
            )
        variables[name] = np.frombuffer(cursor.take(nbytes), dtype=dtype).reshape(shape).copy()
    aliases = {}
    for _ in range(cursor.unpack("I")):
        alias = cursor.string()
        aliases[alias] = cursor.string()
    if cursor.offset != len(data):
        raise ConversionError(
            f"{path}: {len(data) - cursor.offset} unexpected trailing bytes after the model"
        )
    return Ct2Model(spec_name, revision, variables, aliases)
