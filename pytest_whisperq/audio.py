"""Audio loading without torchaudio/torchcodec: soundfile to decode, scipy to resample."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pytest_whisperq.errors import AudioError

TARGET_RATE = 16_000
MAX_SECONDS = 30.0  # one Whisper window: longer evaluation audio is decoded long-form; calibration audio must fit
MIN_RATE = 8_000  # telephone speech; below it the consonants are gone and upsampling cannot bring them back
SILENT_RMS_DBFS = -60.0  # quieter than this holds no speech a reference text could describe
CLIP_LEVEL = 0.99  # of full scale: a flat top at or above it is clipping
MAX_CLIPPED_FRACTION = 0.01  # of samples; the shipped speech has at most 0.009 %


def to_mono_16k(samples: np.ndarray, rate: int, source: str = "audio") -> np.ndarray:
    """Mix down to mono float32 and resample to 16 kHz (polyphase, exact ratio)."""
    samples = np.asarray(samples)
    if samples.ndim not in (1, 2):
        raise AudioError(f"{source}: expected 1-D or 2-D (frames, channels) samples, got shape {samples.shape}")
    if samples.size == 0:
        raise AudioError(f"{source}: no samples")
    if rate < MIN_RATE:
        raise AudioError(f"{source}: sample rate {rate} Hz is below {MIN_RATE} Hz (telephone speech); "
                         "speech recognition needs at least that: use the original recording")
    if np.issubdtype(samples.dtype, np.integer):
        samples = samples / float(np.iinfo(samples.dtype).max)
    samples = samples.astype(np.float32, copy=False)
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{source}: contains NaN or infinite samples")
    check_clipping(samples, source)
    if samples.ndim == 2:  # channels are averaged, as every Whisper front end does
        samples = samples.mean(axis=1)
    check_not_silent(samples, source)
    if rate != TARGET_RATE:
        from scipy.signal import resample_poly

        ratio = Fraction(TARGET_RATE, rate)
        samples = resample_poly(samples, ratio.numerator, ratio.denominator).astype(np.float32)
    return samples


def clipped_fraction(samples: np.ndarray) -> float:
    """Share of samples on a flat top at or above CLIP_LEVEL of full scale (any channel)."""
    frames = samples.reshape(len(samples), -1)
    flat = (np.abs(frames[1:]) >= CLIP_LEVEL) & (frames[1:] == frames[:-1])
    return float(flat.sum()) / frames.size if frames.size else 0.0


def check_clipping(samples: np.ndarray, source: str) -> None:
    fraction = clipped_fraction(samples)
    if fraction > MAX_CLIPPED_FRACTION:
        raise AudioError(f"{source}: clipped: {fraction:.1%} of samples sit flat at full scale (limit "
                         f"{MAX_CLIPPED_FRACTION:.0%}); the recording is distorted and its WER would measure the "
                         "distortion: record it again at a lower level, or remove it from the data")


def rms_dbfs(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def check_not_silent(samples: np.ndarray, source: str) -> None:
    level = rms_dbfs(samples)
    if level < SILENT_RMS_DBFS:
        raise AudioError(f"{source}: silent: RMS {level:.1f} dBFS (limit {SILENT_RMS_DBFS:.0f} dBFS) yet it has a "
                         "reference text; the file is empty, muted or not the one the text describes")


def load_audio(source: Path | BinaryIO, label: str | None = None) -> np.ndarray:
    """Decode an audio file (a path or an open binary file) to mono float32 at 16 kHz."""
    import soundfile

    label = label or str(source)
    try:
        samples, rate = soundfile.read(source if not isinstance(source, Path) else str(source),
                                       dtype="float32", always_2d=False)
    except (RuntimeError, OSError, soundfile.LibsndfileError) as error:
        raise AudioError(f"{label}: cannot decode audio ({error}); use WAV/FLAC/OGG") from None
    return to_mono_16k(samples, rate, label)


def check_duration(samples: np.ndarray, source: str, max_seconds: float = MAX_SECONDS) -> None:
    seconds = len(samples) / TARGET_RATE
    if seconds > max_seconds:
        raise AudioError(
            f"{source}: {seconds:.1f} s of audio is longer than Whisper's {max_seconds:.0f} s window, which calibration "
            "feeds whole (a longer clip would be cut and no longer match its text); split it into segments of at most "
            f"{max_seconds:.0f} s, or leave it out of the calibration data"
        )
