"""Reload a finished run and predict with it: ``tunewright.load_run(folder).predict([...])``."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from tunewright.contracts import Example
from tunewright.errors import RunFolderError
from tunewright.inference import predict_outputs
from tunewright.plugin_manager import get_plugins
from tunewright.precision import autocast_dtype, pick_device
from tunewright.run_folder import RunFolder


class Predictor:
    """A model with its task (tokenizer, predictions) and label names, ready for inference.

    The pipeline wraps the freshly trained model in one for audits and monitors;
    :func:`load_run` builds one from a run folder.
    """

    def __init__(self, task, model, label_names: list[str], batch_size: int, device, dtype=None):
        self.task = task
        self.model = model.to(device)
        self.label_names = label_names
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype  # the run's autocast dtype, so predictions match its evaluation

    def outputs(self, inputs: list[str | Example], embeddings: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits for ``inputs`` (texts, image paths for an image task, or examples such
        as ``{"text", "text_pair"}``) and, with ``embeddings=True``, one pooled hidden
        state per input."""
        examples = [value if isinstance(value, dict) else {self.task.input_field: value} for value in inputs]
        features = self.task.encode(examples)
        embed = self.task.embed if embeddings else None
        return predict_outputs(self.model, features, self.task.collate, self.batch_size, self.device, self.dtype, embed)

    def probabilities(self, inputs: list[str]) -> np.ndarray:
        """Class probabilities, one row per input, columns in ``label_names`` order."""
        return softmax(self.outputs(inputs)[0])

    def predict(self, inputs: list[str]) -> list[dict[str, Any]]:
        """``[{"label": name, "probabilities": {name: p, ...}}, ...]``, one per text (or
        image path); a generative task answers ``[{"response": text}, ...]``, a tagger
        ``[{"words", "tags", "entities"}, ...]``."""
        if isinstance(inputs, str):
            inputs = [inputs]
        own = self.task.predict_inputs(self.model, inputs, self.device)  # answers that are not one label each
        if own is not None:
            return own
        return self.task.predictions(self.outputs(inputs)[0], self.label_names)

    def chat(
        self,
        conversations: list[list[dict[str, str]]],
        max_new_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> list[str]:
        """The task's answers to chat conversations (a task that generates text); with
        ``on_text``, one conversation's answer is also handed over piece by piece."""
        return self.task.chat(self.model, conversations, self.device, max_new_tokens, on_text)

    def exclusive(self) -> contextlib.AbstractContextManager:
        """Held around work that uses :attr:`model` directly rather than through the
        methods above (a monitor's own passes): nothing for a model of its own; for a
        base several runs share (:mod:`~tunewright.shared_base`), the base, with this
        run's adapter active."""
        return contextlib.nullcontext()


def softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits).double(), dim=-1).numpy()


@dataclass
class RunParts:
    """A finished run's config and its parts, rebuilt from the run folder, before any weights load."""

    config: DictConfig
    task: Any
    method: Any
    label_names: list[str]


@dataclass
class LoadedRun:
    """A run's model rebuilt through its own model and method parts."""

    config: DictConfig
    task: Any
    method: Any
    model: torch.nn.Module
    label_names: list[str]


def read_parts(run_folder: RunFolder, trust_remote_code: bool = False) -> RunParts:
    """The run's task and method, built from its config, with its label names.

    Every file of ``model/`` is checked against the SHA-256 the manifest recorded. A run
    folder is data, not code: ``model.trust_remote_code`` from its own config is ignored,
    and code shipped in it runs only when the caller passes ``trust_remote_code=True``.
    """
    cfg = run_folder.read_config()
    if not run_folder.model_dir.is_dir():
        raise RunFolderError(f"{run_folder.path}: no model/ folder; did the run finish?")
    cfg.trainer.precision = precision_evaluated(cfg, run_folder)
    run_folder.verify_files("model")
    if trust_remote_code:
        warn_remote_code(run_folder.model_dir)
    cfg.model.trust_remote_code = trust_remote_code
    plugins = get_plugins()
    task = plugins.registries["models"].build(cfg.model)
    task.preprocessor_source = str(run_folder.model_dir)
    method = plugins.registries["methods"].build(cfg.method)
    return RunParts(cfg, task, method, task.read_label_names(run_folder.model_dir))


def load_model(run_folder: RunFolder, trust_remote_code: bool = False) -> LoadedRun:
    """Rebuild the trained model of ``run_folder`` (on the CPU); see :func:`read_parts`."""
    parts = read_parts(run_folder, trust_remote_code)
    model = parts.method.load(parts.task, parts.label_names, run_folder.model_dir)
    return LoadedRun(parts.config, parts.task, parts.method, model, parts.label_names)


def load_run(folder: str | Path, trust_remote_code: bool = False, merged: bool = False) -> Predictor:
    """A :class:`Predictor` for the run in ``folder``, on the device its config names
    (``trust_remote_code``: see :func:`read_parts`). With ``merged=True`` a method that
    can merge is folded into plain weights first: the same predictions, without the
    adapter's extra work per forward pass (what a service wants)."""
    run_folder = RunFolder(folder)
    return predictor_for(read_parts(run_folder, trust_remote_code), run_folder.model_dir, merged)


def predictor_for(parts: RunParts, model_dir: Path, merged: bool = False) -> Predictor:
    """A :class:`Predictor` for the run ``parts`` were read from, its weights from ``model_dir``."""
    model = parts.method.load(parts.task, parts.label_names, model_dir)
    if merged and parts.method.can_merge:
        model = parts.method.merge(model)
    return Predictor(parts.task, model, parts.label_names, *placement(parts.config))


def precision_evaluated(config: DictConfig, run_folder: RunFolder) -> str:
    """The precision to predict in: the one the run's evaluation and audits ran in, as
    its manifest records it, when ``trainer.precision=auto`` and this process computes on
    the same kind of device (``auto`` could mean another precision on this machine: a CPU
    with native bf16 against one without); the configured one otherwise."""
    recorded = (run_folder.read_json("manifest.json") or {}).get("precision") or {}
    configured = config.trainer.precision
    if configured == "auto" and recorded.get("device") == pick_device(config.trainer.device).type:
        return recorded["name"]
    return configured


def placement(config: DictConfig) -> tuple[int, torch.device, torch.dtype | None]:
    """The evaluation batch size, device and autocast dtype a run's config names."""
    device = pick_device(config.trainer.device)
    return config.trainer.eval_batch_size, device, autocast_dtype(config.trainer.precision, device)


def warn_remote_code(model_dir: Path) -> None:
    """Name the code files that ``trust_remote_code`` lets run."""
    files = sorted(str(path) for path in model_dir.rglob("*.py"))
    for name in ("config.json", "tokenizer_config.json", "preprocessor_config.json"):
        path = model_dir / name
        try:
            auto_map = json.loads(path.read_text(encoding="utf-8")).get("auto_map") if path.is_file() else None
        except (ValueError, UnicodeDecodeError, AttributeError):
            auto_map = None
        if auto_map:
            files.append(f"{path} auto_map: {json.dumps(auto_map)}")
    named = "; ".join(files) or "code the checkpoint names on the hub"
    print(f"tunewright: WARNING: trust_remote_code=true runs code from {named}", file=sys.stderr)
