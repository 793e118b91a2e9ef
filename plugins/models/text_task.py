"""What every Hugging Face text task shares: the tokenizer, and the token cache's key.

A model part subclasses :class:`HubTextTask` and adds how it loads its model, encodes
examples, computes its loss and metrics, and predicts.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tunewright.plugins.models.hub_task import HubTask

IGNORE = -100  # the label of tokens a loss skips (cross-entropy's ignore_index)


class HubTextTask(HubTask):
    """A task on a Hugging Face checkpoint with a tokenizer."""

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
        return {"task": type(self).__name__, "max_length": self.cfg.max_length,
                "tokenizer": hashlib.sha256(described.encode()).hexdigest()}  # fmt: skip
