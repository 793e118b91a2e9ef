"""``data=audio_folder``: recordings sorted into one folder per label.

    calls/                        calls/
      complaint/001.wav   or        train/complaint/001.wav
      greeting/002.flac             validation/...   test/...

(the layout of :mod:`.labelled_folders`). Every file is decoded once while loading (an
unreadable, empty or more-than-stereo file fails before training with its path named)
and its duration recorded for the data card.

    tunewright train model=audio_classification model.name_or_path=facebook/wav2vec2-base \\
        data=audio_folder data.path=calls
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunewright import hookimpl
from tunewright.audio import AUDIO_SUFFIXES, check_audio
from tunewright.plugins.datasets.labelled_folders import LabelledFolders, LabelledFoldersConfig


@dataclass
class AudioFolderConfig(LabelledFoldersConfig):
    pass


class AudioFolder(LabelledFolders):
    field = "audio"
    suffixes = AUDIO_SUFFIXES
    noun = "audio files"

    def checked(self, path: Path, where: str) -> dict:
        return {"seconds": round(check_audio(path, where).seconds, 3)}


@hookimpl
def tunewright_register_datasets(registry):
    registry.add(
        "audio_folder",
        AudioFolder,
        schema=AudioFolderConfig,
        description="recordings in one folder per label (optionally train/validation/test folders)",
    )
