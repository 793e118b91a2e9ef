"""``method=full``: every weight is trained; ``model/`` holds the whole model in safetensors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from tunewright import hookimpl
from tunewright.contracts import Method
from tunewright.schema import MethodConfig


class FullFineTuning(Method):
    can_merge = True

    def __init__(self, cfg: MethodConfig):
        self.cfg = cfg

    def apply(self, model, task):
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model

    def save(self, model, directory: Path) -> None:
        model.save_pretrained(directory, safe_serialization=True)

    def load(self, task, label_names: list[str], directory: Path):
        return task.load_pretrained(label_names, source=directory)

    @staticmethod
    def merge(model):
        """Already a plain model: nothing to merge."""
        return model


@dataclass
class FullConfig(MethodConfig):
    # Every weight moves, so a much smaller step than an adapter's (BERT's own recipe:
    # 2e-5 to 5e-5); LoRA's 1e-3 would wreck the pre-trained weights.
    default_learning_rate: ClassVar[float] = 5e-5


@hookimpl
def tunewright_register_methods(registry):
    registry.add("full", FullFineTuning, schema=FullConfig, description="train every weight")
