"""Turn a `ModelSpec` into a local checkpoint directory that is safe to load."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pytest_whisperq.cache import Cache
from pytest_whisperq.errors import ModelResolutionError
from pytest_whisperq.models.builtin import BUILTINS, materialize
from pytest_whisperq.models.spec import ModelSpec
from pytest_whisperq.models.tensors import PICKLE_SUFFIXES, CheckpointTensors
# What a Whisper checkpoint needs from the hub; pickled weights only when allowed.
HUB_FILES = ("*.json", "*.safetensors", "*.txt", "*.tiktoken")
# Other precisions of the same weights (openai/whisper-large-v3 ships model.fp32-0000N-of-00002.safetensors
# and model.safetensors.index.fp32.json beside model.safetensors): not what loaders read, gigabytes to fetch.
HUB_VARIANTS = ("model.*.safetensors", "*.index.*.json")


@dataclass(frozen=True)
class ResolvedModel:
    spec: ModelSpec
    path: Path
    revision: str | None = None  # the commit a hub revision resolved to
    # The checkpoint as resolution read and validated it: the format checks reuse it instead of reading
    # the weights again. An allowed legacy (non-zip) pickle cannot be memory-mapped, so its weights stay in
    # memory for the run; the format checks would hold them for the run anyway.
    checkpoint: CheckpointTensors | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.spec.raw} ({self.path})" if self.spec.kind != "local" else str(self.path)


def resolve(spec: ModelSpec, cache: Cache, allow_pickle: bool = False) -> ResolvedModel:
    if spec.kind == "quantize":  # made by the session from the base, not found anywhere
        raise ModelResolutionError(
            "'quantize' names the W4A16 checkpoint made from the base, not a model to fetch: "
            "run python -m pytest_whisperq quantize BASE OUT, or pytest without --whisperq-model"
        )
    if spec.kind == "builtin":
        return ResolvedModel(spec, materialize(BUILTINS[spec.value], cache))
    if spec.kind == "hub":
        path, commit = _download_from_hub(spec, allow_pickle)
        return ResolvedModel(spec, path, commit, validate_checkpoint_dir(path, allow_pickle, spec.raw))
    path = Path(spec.value)
    return ResolvedModel(spec, path, checkpoint=validate_checkpoint_dir(path, allow_pickle, spec.raw))


def validate_checkpoint_dir(path: Path, allow_pickle: bool, name: str) -> CheckpointTensors:
    """A loadable Whisper checkpoint: config.json of model_type whisper and weights that read cleanly
    (safetensors headers that agree with the files; pickles only if allowed, and weights-only), so a
    truncated download or a booby-trapped pickle stops here, named, not inside a library's loader."""
    # config, then every header; allowed pickles read by torch's weights-only loader, which runs no code
    return CheckpointTensors.open(path, allow_pickle, name)


def _download_from_hub(spec: ModelSpec, allow_pickle: bool) -> tuple[Path, str | None]:
    """The real hub path: `snapshot_download`, which honours HF_HUB_OFFLINE and HF_HOME."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    patterns = list(HUB_FILES) + (["*" + s for s in PICKLE_SUFFIXES] if allow_pickle else [])
    revision = spec.revision or "main"
    # huggingface_hub still calls the API for a commit-hash revision when HF_HUB_OFFLINE is set;
    # local_files_only makes it read the cache, which is what the switch means.
    offline = bool(constants.HF_HUB_OFFLINE)
    try:
        path = Path(snapshot_download(spec.value, revision=revision, allow_patterns=patterns,
                                      ignore_patterns=list(HUB_VARIANTS), local_files_only=offline))
    except GatedRepoError:
        raise ModelResolutionError(f"{spec.raw}: the repository is gated; log in (HF_TOKEN) with access to it") from None
    except RepositoryNotFoundError:
        raise ModelResolutionError(f"{spec.raw}: no such model repository on the hub (or it is private: set HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise ModelResolutionError(f"{spec.raw}: revision {revision!r} does not exist in {spec.value}") from None
    except LocalEntryNotFoundError:
        raise ModelResolutionError(
            f"{spec.raw}: not in the local Hugging Face cache and the hub cannot be reached (offline: "
            "HF_HUB_OFFLINE is set or the network is down). Download it once with network access, or "
            "pass a local directory"
        ) from None
    except OSError as error:  # network errors surface as OSError subclasses (requests/httpx)
        raise ModelResolutionError(f"{spec.raw}: could not download from the hub: {error}") from None
    commit = path.name if path.parent.name == "snapshots" else None
    return path, commit
