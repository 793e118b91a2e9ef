"""``method=freeze``: train only the top ``method.top_k`` transformer blocks and the head.

The cheapest way to adapt a model whose lower layers already encode what the domain
needs; memory for optimizer state falls with the share of frozen weights. ``model/``
holds only the trained weights (``trained.safetensors``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tunewright import hookimpl
from tunewright.errors import ConfigError
from tunewright.plugins.methods.trained_weights import TrainedWeightsMethod, train_only_head, transformer_blocks
from tunewright.schema import MethodConfig, knob


@dataclass
class FreezeConfig(MethodConfig):
    default_learning_rate: ClassVar[float] = 1e-4  # whole blocks train: nearer full fine-tuning's rate than LoRA's
    top_k: int = knob(2, low=1)  # blocks trained, counted from the top; more: better fit, more memory


class Freeze(TrainedWeightsMethod):
    def apply(self, model, task):
        blocks = transformer_blocks(model)
        if not blocks:
            raise ConfigError(f"method=freeze: {type(model).__name__} lists no transformer blocks (_no_split_modules)")
        if not 0 <= self.cfg.top_k <= len(blocks):
            raise ConfigError(f"method.top_k={self.cfg.top_k}: the model has {len(blocks)} blocks")
        train_only_head(model, task)
        for block in blocks[len(blocks) - self.cfg.top_k :]:
            for parameter in block.parameters():
                parameter.requires_grad_(True)
        return model

    can_merge = True

    @staticmethod
    def merge(model):
        """A partly frozen model is a plain model: nothing to merge."""
        return model


@hookimpl
def tunewright_register_methods(registry):
    registry.add("freeze", Freeze, schema=FreezeConfig, description="train the top K blocks and the head only")
