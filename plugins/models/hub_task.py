"""What every task on a Hugging Face checkpoint shares, whatever its input: where the
checkpoint is, the label names the run saves beside the weights, and the labels the
checkpoint's own head already predicts.

Text tasks add a tokenizer (:class:`~tunewright.plugins.models.text_task.HubTextTask`),
image tasks an image processor (:mod:`tunewright.plugins.models.image_classification`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tunewright.contracts import Task
from tunewright.embedded import resolve_model_path
from tunewright.schema import ModelConfig

LABELS_FILE = "labels.json"


def quiet_transformers() -> None:
    """transformers prints load reports and progress bars; the run prints its own summary."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


class HubTask(Task):
    """A task on a Hugging Face checkpoint (hub id or local directory)."""

    head_is_new = True  # the task head starts untrained, so every method trains it
    input_field = "text"  # the example field a prediction is made from (a text, an image path)

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg
        self.source = resolve_model_path(cfg.name_or_path)
        # Where the tokenizer or image processor is read from: a run's model/ folder when reloading.
        self.preprocessor_source = self.source

    def prepare(self, examples: list[dict], label_names: list[str]) -> list[dict]:
        """Examples as this task trains on them (a generative task turns labels into answers)."""
        return examples

    def from_base(self) -> dict:
        """``from_pretrained`` arguments for files read from the checkpoint or a run folder."""
        reading_base = self.preprocessor_source == self.source
        return {
            "revision": self.cfg.revision if reading_base else None,
            "trust_remote_code": self.cfg.trust_remote_code,
        }

    def load_with(self, auto_class, source: str | Path | None = None, **options):
        """``auto_class.from_pretrained`` on the checkpoint, or on a saved full fine-tune at
        ``source``; ``options`` are the task's and the method's (a quantisation config)."""
        quiet_transformers()
        return auto_class.from_pretrained(
            str(source or self.source),
            revision=None if source else self.cfg.revision,
            trust_remote_code=self.cfg.trust_remote_code,
            **options,
        )

    def pretrained_label_names(self) -> list[str] | None:
        """The labels the checkpoint's own head predicts, or ``None`` when it has none
        (transformers' placeholder names ``LABEL_0``, ``LABEL_1``, ...)."""
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(
            self.source, revision=self.cfg.revision, trust_remote_code=self.cfg.trust_remote_code
        )
        names = [str(config.id2label[i]) for i in sorted(config.id2label)] if config.id2label else []
        return None if all(re.fullmatch(r"LABEL_\d+", name) for name in names) else names

    def loaded_preprocessor(self, auto_class):
        """``auto_class.from_pretrained`` (a tokenizer, an image processor) on
        :attr:`preprocessor_source`, loaded once per source."""
        cache = self.__dict__.setdefault("_preprocessors", {})
        key = (auto_class.__name__, str(self.preprocessor_source))
        if key not in cache:
            quiet_transformers()
            cache[key] = auto_class.from_pretrained(self.preprocessor_source, **self.from_base())
        return cache[key]

    def preprocessors(self) -> list:
        """What turns inputs into model inputs (a tokenizer, an image processor), saved
        beside the weights."""
        raise NotImplementedError

    def save_artifacts(self, directory: Path, label_names: list[str]) -> None:
        """Save what inference needs besides the weights: the preprocessors and label names."""
        for preprocessor in self.preprocessors():
            preprocessor.save_pretrained(directory)
        (directory / LABELS_FILE).write_text(json.dumps({"label_names": label_names}) + "\n")

    @staticmethod
    def read_label_names(directory: Path) -> list[str]:
        return json.loads((directory / LABELS_FILE).read_text())["label_names"]
