"""Reload a finished run and predict with it: ``tunewright.load_run(folder).predict([...])``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunewright.errors import RunFolderError
from tunewright.plugin_manager import get_plugins
from tunewright.run_folder import RunFolder
from tunewright.trainer import autocast_dtype, pick_device, predict_outputs


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

    def outputs(self, texts: list[str], embeddings: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits for ``texts`` and, with ``embeddings=True``, mean-pooled hidden states."""
        features = self.task.encode([{"text": text} for text in texts])
        return predict_outputs(self.model, features, self.task.collate, self.batch_size, self.device, self.dtype,
                               embeddings=embeddings)  # fmt: skip

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Class probabilities, one row per text, columns in ``label_names`` order."""
        return softmax(self.outputs(texts)[0])

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """``[{"label": name, "probabilities": {name: p, ...}}, ...]``, one per text."""
        if isinstance(texts, str):
            texts = [texts]
        return self.task.predictions(self.outputs(texts)[0], self.label_names)


def softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits).double(), dim=-1).numpy()


def load_run(folder: str | Path) -> Predictor:
    """Rebuild the model of the run in ``folder`` through its own model and method parts."""
    run_folder = RunFolder(folder)
    cfg = run_folder.read_config()
    if not run_folder.model_dir.is_dir():
        raise RunFolderError(f"{run_folder.path}: no model/ folder; did the run finish?")
    plugins = get_plugins()
    task = plugins.registries["models"].build(cfg.model)
    task.tokenizer_source = str(run_folder.model_dir)
    method = plugins.registries["methods"].build(cfg.method)
    label_names = task.read_label_names(run_folder.model_dir)
    model = method.load(task, label_names, run_folder.model_dir)
    device = pick_device(cfg.trainer.device)
    dtype = autocast_dtype(cfg.trainer.precision, device)
    return Predictor(task, model, label_names, cfg.trainer.eval_batch_size, device, dtype)
