"""Audio files as examples: checked when data loads, decoded when a batch is built.

An audio example is ``{"audio": "/absolute/path.wav", "seconds": 3.2, "label": 1}``.
Loaders check every file once (:func:`check_audio`: it exists, decodes, holds samples,
is mono or stereo), so a bad file fails before training with its file and row named;
tasks decode batches with :func:`load_audio`, which mixes stereo down to mono and
resamples to the feature extractor's rate.

Decoding is libsndfile's (through ``soundfile``: WAV, FLAC, OGG/Vorbis, Opus, MP3) and
resampling scipy's polyphase filter, so no second PyTorch build (torchaudio) and no
FFmpeg (torchcodec) is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from tunewright.errors import ConfigError, DataError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")
MAX_CHANNELS = 2  # stereo is averaged to mono; more channels (a microphone array) are refused


def soundfile():
    """The ``soundfile`` module, or a one-line error saying how to install it."""
    try:
        import soundfile
    except ImportError:
        raise ConfigError("audio needs soundfile: pip install 'tunewright[audio]' (scripts/setup.sh does)") from None
    return soundfile


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`check_audio` measured about one file."""

    seconds: float
    sample_rate: int
    channels: int


def check_audio(path: Path, where: str) -> AudioInfo:
    """``path`` exists, decodes to the end, holds at least one sample and has one or two
    channels; otherwise a :class:`DataError` that starts with ``where`` (the file and row
    that named it)."""
    sf = soundfile()
    if not path.is_file():
        raise DataError(f"{where}: no audio file {path}")
    try:
        with sf.SoundFile(path) as sound:
            channels, rate = sound.channels, sound.samplerate
            frames = sum(len(block) for block in sound.blocks(blocksize=65536, dtype="float32", always_2d=True))
    except (
        sf.LibsndfileError,
        RuntimeError,
        TypeError,
        ValueError,
    ) as error:  # decoded to the end: truncation fails here
        raise DataError(f"{where}: {path} is not a readable audio file ({error})") from None
    if frames == 0:
        raise DataError(f"{where}: {path} holds no samples (an empty recording)")
    if channels > MAX_CHANNELS:
        raise DataError(
            f"{where}: {path} has {channels} channels; give mono or stereo files (stereo is averaged to mono)"
        )
    return AudioInfo(frames / rate, rate, channels)


def load_audio(path: str, sample_rate: int, max_seconds: float | None = None) -> np.ndarray:
    """The file's samples as float32 mono at ``sample_rate``, at most ``max_seconds`` long
    (the start of a longer file)."""
    sf = soundfile()
    with sf.SoundFile(path) as sound:
        frames = -1 if max_seconds is None else int(round(max_seconds * sound.samplerate))
        samples = sound.read(frames, dtype="float32", always_2d=True)
        native = sound.samplerate
    return resample(samples.mean(axis=1), native, sample_rate)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``samples`` at ``to_rate``: scipy's polyphase filter (anti-aliased, exact ratio)."""
    if from_rate == to_rate:
        return samples.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    common = gcd(from_rate, to_rate)
    return resample_poly(samples, to_rate // common, from_rate // common).astype(np.float32)
