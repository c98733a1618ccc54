"""The plugin's own error types: every failure a user can cause ends in one of these."""

from __future__ import annotations


class WhisperqError(Exception):
    """Base class: a problem the user can fix; the message says what and how."""


class ConfigError(WhisperqError):
    """An option or ini value is invalid."""


class ModelResolutionError(WhisperqError):
    """A model spec names nothing loadable (missing dir, bad hub id, offline miss)."""


class DownloadError(WhisperqError):
    """A package could not be fetched from the registry, or its hash did not match."""


class CheckpointError(WhisperqError):
    """A checkpoint on disk is malformed, incomplete or unsafe to load."""


class ConversionError(WhisperqError):
    """A CTranslate2 model could not be converted to a Hugging Face checkpoint."""


class AudioError(WhisperqError):
    """An audio file cannot be decoded or is unusable (too long, empty)."""


class DataError(WhisperqError):
    """An evaluation data set is missing, empty or inconsistent."""


class BackendError(WhisperqError):
    """A backend failed to load a model or to transcribe."""


class QuantizeError(WhisperqError):
    """The base model could not be quantized (missing llm-compressor, bad calibration data)."""


class CacheError(WhisperqError):
    """A cache entry is damaged or does not match its key."""
