"""What every Hugging Face text task shares: the tokenizer, and the token cache's key.

A model part subclasses :class:`HubTextTask` and adds how it loads its model, encodes
examples, computes its loss and metrics, and predicts.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tunewright.errors import ConfigError
from tunewright.plugins.models.hub_task import HubTask

IGNORE = -100  # the label of tokens a loss skips (cross-entropy's ignore_index)


class HubTextTask(HubTask):
    """A task on a Hugging Face checkpoint with a tokenizer."""

    def __init__(self, cfg):
        super().__init__(cfg)
        positions = self.position_limit()
        if positions is not None and cfg.max_length > positions:
            raise ConfigError(
                f"model.max_length={cfg.max_length}: {cfg.name_or_path} has {positions} positions; "
                f"use model.max_length={positions} or less"
            )

    def position_limit(self) -> int | None:
        """The longest input the checkpoint's position embeddings cover, from its config
        (``None`` for relative positions, as in T5, or where the config says nothing)."""
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(self.source, **self.from_base())
        config = getattr(config, "text_config", None) or config
        for name in ("max_position_embeddings", "n_positions"):
            if isinstance(getattr(config, name, None), int):
                return getattr(config, name)
        return None

    @property
    def tokenizer(self):
        from transformers import AutoTokenizer

        return self.loaded_preprocessor(AutoTokenizer)

    def preprocessors(self) -> list:
        return [self.tokenizer]

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
        return {
            "task": type(self).__name__,
            "max_length": self.cfg.max_length,
            "tokenizer": hashlib.sha256(described.encode()).hexdigest(),
        }
