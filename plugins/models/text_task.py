"""What every Hugging Face text task shares: the tokenizer, and the files beside the weights.

A model part subclasses :class:`HubTextTask` and adds how it loads its model, encodes
examples, computes its loss and metrics, and predicts.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from tunewright.embedded import resolve_model_path
from tunewright.schema import ModelConfig

LABELS_FILE = "labels.json"


def quiet_transformers() -> None:
    """transformers prints load reports and progress bars; the run prints its own summary."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


class HubTextTask:
    """A task on a Hugging Face checkpoint (hub id or local directory) with a tokenizer."""

    head_is_new = True  # the task head starts untrained, so every method trains it

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg
        self.source = resolve_model_path(cfg.name_or_path)
        self.tokenizer_source = self.source  # a run's model/ folder when reloading
        self._tokenizer = None

    def prepare(self, examples: list[dict[str, Any]], label_names: list[str]) -> list[dict[str, Any]]:
        """Examples as this task trains on them (a generative task turns labels into answers)."""
        return examples

    # ------------------------------------------------------------------ loading

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            quiet_transformers()
            from_base = self.tokenizer_source == self.source
            self._tokenizer = AutoTokenizer.from_pretrained(
                self.tokenizer_source,
                revision=self.cfg.revision if from_base else None,
                trust_remote_code=self.cfg.trust_remote_code,
            )
        return self._tokenizer

    def cache_identity(self) -> dict[str, Any]:
        """What tokenisation depends on, for the token cache's key (computed once: hashing
        the tokenizer is the costly part)."""
        if getattr(self, "_cache_identity", None) is None:
            self._cache_identity = self._identity()
        return self._cache_identity

    def _identity(self) -> dict[str, Any]:
        if self.tokenizer.is_fast:  # its JSON, less the truncation and padding state encoding sets
            state = json.loads(self.tokenizer.backend_tokenizer.to_str())
            state.pop("truncation", None)
            state.pop("padding", None)
        else:
            state = sorted(self.tokenizer.get_vocab().items())
        described = json.dumps([type(self.tokenizer).__name__, state], sort_keys=True)
        return {"task": type(self).__name__, "max_length": self.cfg.max_length,
                "tokenizer": hashlib.sha256(described.encode()).hexdigest()}  # fmt: skip

    def pretrained_label_names(self) -> list[str] | None:
        """The labels the checkpoint's own head predicts, or ``None`` when it has none
        (transformers' placeholder names ``LABEL_0``, ``LABEL_1``, ...)."""
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(self.source, revision=self.cfg.revision, trust_remote_code=self.cfg.trust_remote_code)
        names = [str(config.id2label[i]) for i in sorted(config.id2label)] if config.id2label else []
        return None if all(re.fullmatch(r"LABEL_\d+", name) for name in names) else names

    def save_artifacts(self, directory: Path, label_names: list[str]) -> None:
        """Save what inference needs besides the weights: tokenizer and label names."""
        self.tokenizer.save_pretrained(directory)
        (directory / LABELS_FILE).write_text(json.dumps({"label_names": label_names}) + "\n")

    @staticmethod
    def read_label_names(directory: Path) -> list[str]:
        return json.loads((directory / LABELS_FILE).read_text())["label_names"]

