"""Tiny random wav2vec2 checkpoints (an encoder, a CTC transcriber) and synthetic
labelled recordings for the tests.

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


def tiny_wav2vec2_config(vocab_size: int = 32, **options):
    """A two-layer wav2vec2 of width 32 whose encoder makes 800 frames a second at 16 kHz."""
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        vocab_size=vocab_size,
        initializer_range=0.2,
        **options,
    )


def save_feature_extractor(directory: Path) -> None:
    from transformers import Wav2Vec2FeatureExtractor

    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    ).save_pretrained(directory)


def save_tiny_audio_model(directory: Path) -> Path:
    """A random wav2vec2 encoder with its 16 kHz feature extractor in ``directory``."""
    import torch
    from transformers import Wav2Vec2Model

    torch.manual_seed(0)
    Wav2Vec2Model(tiny_wav2vec2_config()).save_pretrained(directory)
    save_feature_extractor(directory)
    return directory


# The spoken word of each pitch in the speech-recognition tests (upper case, as the vocabulary).
WORDS = ("LOW", "HIGH", "TOP")
CTC_VOCABULARY = ["<pad>", "<unk>", "|", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ'"]


def save_tiny_ctc_model(directory: Path) -> Path:
    """A random wav2vec2 with a CTC head over upper-case letters, its character
    tokenizer (blank: ``<pad>``) and feature extractor in ``directory``."""
    import json

    import torch
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2ForCTC

    directory.mkdir(parents=True, exist_ok=True)
    vocabulary = directory / "vocab.json"
    vocabulary.write_text(json.dumps({token: i for i, token in enumerate(CTC_VOCABULARY)}))
    tokenizer = Wav2Vec2CTCTokenizer(str(vocabulary), bos_token=None, eos_token=None)
    torch.manual_seed(0)
    # Layer-normed feature encoder, as the wav2vec2 checkpoints that take an attention mask
    # have: a clip's transcript does not depend on the clips padded beside it.
    config = tiny_wav2vec2_config(len(CTC_VOCABULARY), pad_token_id=tokenizer.pad_token_id, feat_extract_norm="layer")
    Wav2Vec2ForCTC(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    save_feature_extractor(directory)
    return directory


WHISPER_SPECIAL_TOKENS = (
    "<|startoftranscript|>",
    "<|en|>",  # the first of Whisper's languages, in its order (the tokenizer counts on it)
    "<|zh|>",
    "<|de|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
)


def byte_alphabet() -> list[str]:
    """GPT-2's byte-level alphabet: one printable character per byte, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(shifted)) for b in range(256)]


def save_tiny_whisper(directory: Path) -> Path:
    """A random one-layer Whisper (width 32, 16 mel bins, 1-second window) with a
    byte-level tokenizer (no merges: a token per byte, plus Whisper's special tokens,
    English transcription prefix) and its feature extractor in ``directory``."""
    import json

    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(byte_alphabet())}))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    end = "<|endoftext|>"
    tokenizer = WhisperTokenizer(
        str(directory / "vocab.json"),
        str(directory / "merges.txt"),
        unk_token=end,
        bos_token=end,
        eos_token=end,
        pad_token=end,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(WHISPER_SPECIAL_TOKENS)})
    tokenizer.set_prefix_tokens(language="en", task="transcribe", predict_timestamps=False)
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=16,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=50,  # 100 mel frames: one second at a 10 ms hop
        max_target_positions=64,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
    )
    WhisperForConditionalGeneration(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    WhisperFeatureExtractor(feature_size=16, sampling_rate=16000, chunk_length=1, hop_length=160).save_pretrained(
        directory
    )
    return directory
