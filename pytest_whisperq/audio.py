"""Audio loading without torchaudio/torchcodec: soundfile to decode, scipy to resample."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pytest_whisperq.errors import AudioError

TARGET_RATE = 16_000
MAX_SECONDS = 30.0  # one Whisper window; longer input is rejected, not silently cut


def to_mono_16k(samples: np.ndarray, rate: int, source: str = "audio") -> np.ndarray:
    """Mix down to mono float32 and resample to 16 kHz (polyphase, exact ratio)."""
    samples = np.asarray(samples)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    elif samples.ndim != 1:
        raise AudioError(f"{source}: expected 1-D or 2-D (frames, channels) samples, got shape {samples.shape}")
    if samples.size == 0:
        raise AudioError(f"{source}: no samples")
    if rate <= 0:
        raise AudioError(f"{source}: invalid sample rate {rate}")
    samples = samples.astype(np.float32, copy=False)
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{source}: contains NaN or infinite samples")
    if rate != TARGET_RATE:
        from scipy.signal import resample_poly

        ratio = Fraction(TARGET_RATE, rate)
        samples = resample_poly(samples, ratio.numerator, ratio.denominator).astype(np.float32)
    return samples


def load_audio(source: Path | BinaryIO, label: str | None = None) -> np.ndarray:
    """Decode an audio file (a path or an open binary file) to mono float32 at 16 kHz."""
    import soundfile

    label = label or str(source)
    try:
        samples, rate = soundfile.read(source if not isinstance(source, Path) else str(source),
                                       dtype="float32", always_2d=False)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise AudioError(f"{label}: cannot decode audio ({error}); use WAV/FLAC/OGG") from None
    return to_mono_16k(samples, rate, label)


def check_duration(samples: np.ndarray, source: str, max_seconds: float = MAX_SECONDS) -> None:
    seconds = len(samples) / TARGET_RATE
    if seconds > max_seconds:
        raise AudioError(
            f"{source}: {seconds:.1f} s of audio is longer than Whisper's {max_seconds:.0f} s window; "
            "split it into segments of at most 30 s (long-form chunking is not supported)"
        )
