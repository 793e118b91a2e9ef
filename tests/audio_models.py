"""A tiny random wav2vec2 checkpoint and synthetic labelled recordings for the tests.

Each recording is a short tone whose pitch is the label (220 Hz, 880 Hz, ...) under
noise, at 8 kHz, so resampling to the extractor's 16 kHz is always exercised and a few
steps of training can tell the labels apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RECORDING_RATE = 8000
PITCHES = (220.0, 880.0, 1760.0)


def tone(label: int, seconds: float, rng: np.random.Generator, rate: int = RECORDING_RATE) -> np.ndarray:
    """``seconds`` of the label's pitch at a random phase under 10% noise, as float32."""
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * PITCHES[label % len(PITCHES)] * t + rng.uniform(0, 2 * np.pi))
    return (wave + 0.1 * rng.standard_normal(len(t))).astype(np.float32)


def write_recordings(
    directory: Path, count: int, labels: list[str], seed: int = 0, suffix: str = ".wav"
) -> list[tuple[Path, str]]:
    """``count`` files of 0.3 to 0.6 s in ``directory``; returns ``(path, label)`` pairs, labels in turn."""
    import soundfile

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(count):
        path = directory / f"{i:03d}{suffix}"
        soundfile.write(path, tone(i % len(labels), rng.uniform(0.3, 0.6), rng), RECORDING_RATE)
        written.append((path, labels[i % len(labels)]))
    return written


def save_tiny_audio_model(directory: Path) -> Path:
    """A two-layer random wav2vec2 (width 32) with its 16 kHz feature extractor in ``directory``."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        vocab_size=32,
        initializer_range=0.2,
    )
    Wav2Vec2Model(config).save_pretrained(directory)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    ).save_pretrained(directory)
    return directory
