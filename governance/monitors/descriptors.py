"""Cheap, telling numbers about each input, compared between reference and new data.

A shift in any of them is visible without the model. For texts: longer texts, another
alphabet, markup or numbers, or vocabulary the tokenizer does not know
(``subword_share``: the share of words it has no single token for, so they are split
or unknown). For images: another camera or resolution, darker or washed-out pictures,
another colour cast. For recordings: longer or shorter calls, another microphone or
line (sample rate, loudness, a duller or brighter sound: the spectral centroid), or more
dead air (the silent share).
"""

from __future__ import annotations

import re

import numpy as np

WORD = re.compile(r"\w+", re.UNICODE)
DESCRIPTORS = ("characters", "words", "mean_word_length", "non_letter_share", "uppercase_share", "subword_share")
IMAGE_DESCRIPTORS = (
    "width",
    "height",
    "aspect_ratio",
    "brightness",
    "contrast",
    "saturation",
    "red_share",
    "green_share",
    "blue_share",
)
AUDIO_DESCRIPTORS = ("seconds", "sample_rate", "loudness_dbfs", "silence_share", "spectral_centroid_hz")
THUMBNAIL = (64, 64)  # colour statistics are read from a thumbnail: as telling, far cheaper


def describe(task, inputs: list[str], questions: list[str] | None = None) -> dict[str, np.ndarray]:
    """The descriptors of ``inputs`` for the task's kind of input (texts, image or audio
    paths); with ``questions`` (a task's :attr:`~tunewright.contracts.Task.question_field`,
    such as a vision-language model's prompts), their text descriptors too, named
    ``question_<descriptor>``: users may start asking other things about the same images."""
    if task.input_field == "image":
        described = image_descriptors(inputs)
    elif task.input_field == "audio":
        described = audio_descriptors(inputs)
    else:
        described = text_descriptors(inputs, task.tokenizer)
    if questions is not None:
        asked = text_descriptors(questions, task.tokenizer)
        described |= {f"question_{name}": values for name, values in asked.items()}
    return described


def text_descriptors(texts: list[str], tokenizer) -> dict[str, np.ndarray]:
    """Each descriptor in :data:`DESCRIPTORS` as one value per text."""
    words = [WORD.findall(text) for text in texts]
    split_words = _words_without_single_token(sorted({w.lower() for ws in words for w in ws}), tokenizer)
    columns: dict[str, list[float]] = {name: [] for name in DESCRIPTORS}
    for text, text_words in zip(texts, words):
        visible = [c for c in text if not c.isspace()]
        letters = [c for c in visible if c.isalpha()]
        columns["characters"].append(len(text))
        columns["words"].append(len(text_words))
        columns["mean_word_length"].append(float(np.mean([len(w) for w in text_words])) if text_words else 0.0)
        columns["non_letter_share"].append(1 - len(letters) / len(visible) if visible else 0.0)
        columns["uppercase_share"].append(sum(c.isupper() for c in letters) / len(letters) if letters else 0.0)
        columns["subword_share"].append(
            sum(w.lower() in split_words for w in text_words) / len(text_words) if text_words else 0.0
        )
    return {name: np.asarray(values, dtype=float) for name, values in columns.items()}


def _words_without_single_token(words: list[str], tokenizer) -> set[str]:
    """The words ``tokenizer`` splits into several pieces or maps to its unknown token."""
    if not words:
        return set()
    pieces = tokenizer(words, add_special_tokens=False)["input_ids"]
    unknown = tokenizer.unk_token_id
    return {word for word, ids in zip(words, pieces) if len(ids) != 1 or ids[0] == unknown}


def image_descriptors(paths: list[str]) -> dict[str, np.ndarray]:
    """Each descriptor in :data:`IMAGE_DESCRIPTORS` as one value per image: its size in
    pixels and shape, mean brightness and its spread (contrast), mean saturation, and
    each colour channel's share of the total intensity (all in [0, 1] but the sizes)."""
    from tunewright.images import open_image

    columns: dict[str, list[float]] = {name: [] for name in IMAGE_DESCRIPTORS}
    for path in paths:
        image = open_image(path)
        width, height = image.size
        image.thumbnail(THUMBNAIL)
        pixels = np.asarray(image, dtype=float) / 255.0
        grey = pixels @ np.array([0.299, 0.587, 0.114])
        brightest, darkest = pixels.max(axis=2), pixels.min(axis=2)
        channels = pixels.reshape(-1, 3).sum(axis=0)
        shares = channels / channels.sum() if channels.sum() else np.full(3, 1 / 3)
        values = (
            width,
            height,
            width / height,
            grey.mean(),
            grey.std(),
            float(np.mean(np.where(brightest > 0, (brightest - darkest) / np.maximum(brightest, 1e-12), 0.0))),
            *shares,
        )
        for name, value in zip(IMAGE_DESCRIPTORS, values):
            columns[name].append(float(value))
    return {name: np.asarray(values, dtype=float) for name, values in columns.items()}


DESCRIBED_SECONDS = 60.0  # a recording is described by its first minute: as telling, bounded in cost
FRAME_SECONDS = 0.025  # loudness and silence are read per 25 ms frame, the usual speech frame
SILENCE_DBFS = -50.0  # a frame quieter than this (RMS, dB below full scale) counts as silent
FLOOR = 1e-10  # the power a digital silence is given, so its loudness is finite (-100 dBFS)


def audio_descriptors(paths: list[str]) -> dict[str, np.ndarray]:
    """Each descriptor in :data:`AUDIO_DESCRIPTORS` as one value per recording: its
    duration and native sample rate, its RMS loudness in dBFS, the share of its frames
    below :data:`SILENCE_DBFS`, and its spectral centroid (the power-weighted mean
    frequency) in Hz, all read from the mono mix at the file's own rate."""
    from tunewright.audio import soundfile

    sf = soundfile()
    columns: dict[str, list[float]] = {name: [] for name in AUDIO_DESCRIPTORS}
    for path in paths:
        with sf.SoundFile(path) as sound:
            rate, frames = sound.samplerate, sound.frames
            samples = sound.read(int(DESCRIBED_SECONDS * rate), dtype="float64", always_2d=True).mean(axis=1)
        size = max(int(FRAME_SECONDS * rate), 1)
        usable = (
            samples[: len(samples) // size * size]
            if len(samples) >= size
            else np.pad(samples, (0, size - len(samples)))
        )
        frame_power = np.maximum((usable.reshape(-1, size) ** 2).mean(axis=1), FLOOR)
        power = np.abs(np.fft.rfft(samples)) ** 2
        frequencies = np.fft.rfftfreq(len(samples), 1 / rate)
        values = (
            frames / rate,
            rate,
            10 * np.log10(max(float(np.mean(samples**2)), FLOOR)),
            float(np.mean(10 * np.log10(frame_power) < SILENCE_DBFS)),
            float((frequencies * power).sum() / power.sum()) if power.sum() > 0 else 0.0,
        )
        for name, value in zip(AUDIO_DESCRIPTORS, values):
            columns[name].append(float(value))
    return {name: np.asarray(values, dtype=float) for name, values in columns.items()}
