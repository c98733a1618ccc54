"""The CTranslate2 reader on small synthetic files written in ctranslate2's own layout."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from pytest_whisperq.errors import ConversionError
from pytest_whisperq.models.ct2 import read_ct2_model


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str], version: int = 6,
              type_ids: dict[str, int] | None = None) -> Path:
    type_of = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("int32"): 3,
               np.dtype("float16"): 4}
    out = struct.pack("<I", version) + _string("WhisperSpec") + struct.pack("<I", 3)
    out += struct.pack("<I", len(variables))
    for name, array in variables.items():
        out += _string(name) + struct.pack("<B", array.ndim) + b"".join(struct.pack("<I", d) for d in array.shape)
        type_id = (type_ids or {}).get(name, type_of[array.dtype])
        out += struct.pack("<B", type_id) + struct.pack("<I", array.nbytes) + array.tobytes()
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _string(alias) + _string(target)
    path.write_bytes(out)
    return path


def test_reads_arrays_scalars_and_aliases(tmp_path):
    weight = np.arange(6, dtype=np.float16).reshape(2, 3)
    path = write_ct2(tmp_path / "m.bin", {"a/weight": weight, "a/flag": np.array(1, dtype=np.int8)},
                     {"b/weight": "a/weight"})
    model = read_ct2_model(path)
    assert model.spec_name == "WhisperSpec" and model.spec_revision == 3
    assert np.array_equal(model.variables["a/weight"], weight) and model.variables["a/weight"].dtype == np.float16
    assert model.scalar("a/flag") == 1
    assert model.aliases == {"b/weight": "a/weight"}


def test_truncated_file_is_a_clear_error(tmp_path):
    path = write_ct2(tmp_path / "m.bin", {"w": np.zeros((64, 64), dtype=np.float16)}, {})
    path.write_bytes(path.read_bytes()[:-5000])
    with pytest.raises(ConversionError, match="truncated"):
        read_ct2_model(path)


def test_unknown_version_and_dtype_and_trailing_bytes_are_rejected(tmp_path):
    with pytest.raises(ConversionError, match="version 5"):
        read_ct2_model(write_ct2(tmp_path / "v.bin", {}, {}, version=5))
    with pytest.raises(ConversionError, match="dtype id 9"):
        read_ct2_model(write_ct2(tmp_path / "d.bin", {"w": np.zeros(2, np.float16)}, {}, type_ids={"w": 9}))
    path = write_ct2(tmp_path / "t.bin", {}, {})
    path.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(ConversionError, match="trailing"):
        read_ct2_model(path)


def test_size_that_disagrees_with_shape_is_rejected(tmp_path):
    path = write_ct2(tmp_path / "m.bin", {"w": np.zeros(4, dtype=np.float32)}, {}, type_ids={"w": 4})
    with pytest.raises(ConversionError, match="declares 16 bytes"):
        read_ct2_model(path)
