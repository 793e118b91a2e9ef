"""``method=full``: every weight is trained; ``model/`` holds the whole model in safetensors."""

from __future__ import annotations

from pathlib import Path

from tunewright import hookimpl
from tunewright.schema import MethodConfig


class FullFineTuning:
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


@hookimpl
def tunewright_register_methods(registry):
    registry.add("full", FullFineTuning, description="train every weight")
