"""Saving and reloading only what a method trained, for methods implemented in the project.

``model/trained.safetensors`` holds the trainable parameters by name (the method's
own modules, the blocks it unfroze, the task head); reloading builds the base model,
applies the method again (same modules, same names) and loads them, refusing a file
whose names do not match.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tunewright.checkpoint import CheckpointError, load_trainable_state, trainable_state, trained_tensors
from tunewright.contracts import Method
from tunewright.errors import ConfigError

TRAINED_FILE = "trained.safetensors"


def save_trained(model: torch.nn.Module, directory: Path) -> None:
    Path(directory).mkdir(parents=True, exist_ok=True)
    save_file({name: t.contiguous() for name, t in trainable_state(model).items()}, str(Path(directory) / TRAINED_FILE))


def load_trained(model: torch.nn.Module, directory: Path) -> torch.nn.Module:
    path = Path(directory) / TRAINED_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory}: no {TRAINED_FILE}; was the model saved by this method?")
    state = load_file(str(path))
    expected = set(trained_tensors(model))
    if set(state) != expected:
        unknown = sorted(set(state) - expected)[:3]
        raise CheckpointError(f"{path}: its weights do not fit the model (unknown: {', '.join(unknown) or 'none'})")
    load_trainable_state(model, state)
    return model


class TrainedWeightsMethod(Method):
    """Save and load for a method implemented here: ``apply`` marks (or adds) what trains,
    ``save`` keeps only that, ``load`` applies the method to a fresh base and loads it."""

    def __init__(self, cfg):
        self.cfg = cfg

    def save(self, model, directory: Path) -> None:
        save_trained(model, directory)

    def load(self, task, label_names: list[str], directory: Path):
        return load_trained(self.apply(task.load_pretrained(label_names), task), directory)


def train_only_head(model: torch.nn.Module, task) -> None:
    """Freeze the backbone; leave a new task head trainable (a pre-trained language-model
    head, often tied to the embeddings, stays frozen)."""
    head = head_parameter_names(model, task) if task.head_is_new else set()
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in head)


def head_parameter_names(model: torch.nn.Module, task) -> set[str]:
    """The task head's parameters, which a new task must always train: those under the
    task's ``head_modules`` where it names them (image classifiers), otherwise those
    outside the pre-trained backbone (``classifier.*``, ``score.*``)."""
    heads = task.head_modules
    if heads:
        return {name for name, _ in model.named_parameters() if any(name.startswith(head + ".") for head in heads)}
    prefix = getattr(model, "base_model_prefix", "")
    if not prefix:
        return set()
    return {name for name, _ in model.named_parameters() if not name.startswith(prefix + ".")}


def transformer_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's repeated blocks in order (``BertLayer``, ``LlamaDecoderLayer``, ...),
    from transformers' ``_no_split_modules``."""
    from tunewright.sharding import block_classes

    names = block_classes(model)
    return [module for module in model.modules() if type(module).__name__ in names]


def require_unpacked_text(task, method: str, adds: str) -> None:
    """Methods that put trained vectors before the input (prompt, prefix) need a text
    input, and one example per row: only the first of several packed examples would
    see them. ``adds`` says what the method puts there."""
    if task.input_field != "text":
        raise ConfigError(
            f"method={method} {adds} a text model's input; model={task.cfg.kind} reads "
            f"{task.input_field}s. Use method=lora, ia3, adapter, freeze or full"
        )
    if task.packs_examples:
        raise ConfigError(
            f"method={method} {adds} the input, which only the first packed example would see; set model.packing=false"
        )
