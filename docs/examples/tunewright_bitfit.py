"""A complete third-party tuning-method plugin: BitFit (Ben Zaken et al., 2022).

BitFit trains only the bias terms (and, by default, the task head). Install a package
holding this module with the entry point::

    [project.entry-points.tunewright]
    bitfit = "tunewright_bitfit"

and ``tunewright train method=bitfit method.train_head=true`` works; ``tunewright
plugins`` lists it with its distribution. The test suite runs this exact file.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunewright import hookimpl
from tunewright.contracts import Method
from tunewright.schema import MethodConfig


@dataclass
class BitFitConfig(MethodConfig):
    train_head: bool = True  # also train the classification head (needed for a new task)


class BitFit(Method):
    """Freeze every weight matrix; leave biases (and the head) trainable."""

    def __init__(self, cfg: BitFitConfig):
        self.cfg = cfg

    def apply(self, model, task):
        head = model.base_model_prefix
        for name, parameter in model.named_parameters():
            is_head = not name.startswith(head + ".")
            parameter.requires_grad_(name.endswith(".bias") or (self.cfg.train_head and is_head))
        return model

    def save(self, model, directory):
        model.save_pretrained(directory, safe_serialization=True)

    def load(self, task, label_names, directory):
        return task.load_pretrained(label_names, source=directory)

    can_merge = True  # export merged=true: the model already is plain weights

    def merge(self, model):
        return model


@hookimpl
def tunewright_register_methods(registry):
    registry.add("bitfit", BitFit, schema=BitFitConfig, description="train bias terms only")
