"""Several runs of one base model in one process: the base loaded once, each run's
adapter beside it, the right one switched on per batch.

Runs share a base when their method says it can (``Method.shares_base``: the PEFT
methods) and they were tuned with the same model config, method kind and number of
labels, so their weights fit one base: LoRA runs for three customer-service queues
cost one base model plus three small adapters instead of three models. A shared base
computes with the adapter beside the weights rather than merged into them, so each
forward pass does the adapter's small extra work; ``serve.share_base=false`` trades
the memory back for that speed.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path

from omegaconf import OmegaConf

from tunewright.predictor import Predictor, RunParts, placement, predictor_for, read_parts
from tunewright.run_folder import RunFolder

FIRST_ADAPTER = "default"  # the name PEFT gives the adapter a model is loaded with


class SharedBase:
    """One loaded base with several runs' adapters; one of them active at a time.

    Every use holds :attr:`lock` with its adapter active, so batches of different runs
    take turns on the base and never compute with another run's adapter.
    """

    def __init__(self, model, method):
        self.model = model
        self.method = method
        self.lock = threading.RLock()  # re-entered: predict() calls outputs()
        self.active = FIRST_ADAPTER

    @contextlib.contextmanager
    def using(self, adapter: str):
        with self.lock:
            if self.active != adapter:
                self.method.activate(self.model, adapter)
                self.active = adapter
            yield


class AdapterPredictor(Predictor):
    """One run's predictor on a :class:`SharedBase`: its own task, labels and precision,
    the shared model, its own adapter switched on for every call."""

    def __init__(self, base: SharedBase, adapter: str, parts: RunParts):
        super().__init__(parts.task, base.model, parts.label_names, *placement(parts.config))
        self.base = base
        self.adapter = adapter

    def exclusive(self) -> contextlib.AbstractContextManager:
        return self.base.using(self.adapter)

    def outputs(self, inputs, embeddings: bool = False):
        with self.exclusive():
            return super().outputs(inputs, embeddings)

    def predict(self, inputs):
        with self.exclusive():
            return super().predict(inputs)

    def chat(self, conversations, max_new_tokens=None, on_text=None):
        with self.exclusive():
            return super().chat(conversations, max_new_tokens, on_text)


def base_identity(parts: RunParts) -> str | None:
    """What runs must have in common to share a base, as one string; ``None`` for a
    method that cannot share one."""
    if not parts.method.shares_base:
        return None
    return json.dumps(
        {
            "model": OmegaConf.to_container(parts.config.model, resolve=True),
            "method": parts.config.method.kind,
            "labels": len(parts.label_names),
            "load_options": repr(sorted(parts.method.load_options().items())),
        },
        sort_keys=True,
        default=str,
    )


def load_runs(folders: list[Path], trust_remote_code: bool, share_base: bool) -> dict[Path, Predictor]:
    """A predictor for each run folder. With ``share_base``, runs whose base is the same
    (:func:`base_identity`) load it once; every other run loads on its own, merged where
    its method merges (the same predictions, less work per forward pass)."""
    parts = {folder: read_parts(RunFolder(folder), trust_remote_code) for folder in folders}
    groups: dict[str, list[Path]] = {}
    for folder, part in parts.items():
        identity = base_identity(part) if share_base else None
        groups.setdefault(identity or str(folder), []).append(folder)
    predictors: dict[Path, Predictor] = {}
    for members in groups.values():
        if len(members) == 1:
            predictors[members[0]] = predictor_for(parts[members[0]], RunFolder(members[0]).model_dir, merged=True)
            continue
        first = parts[members[0]]
        model = first.method.load(first.task, first.label_names, RunFolder(members[0]).model_dir)
        base = SharedBase(model, first.method)
        predictors[members[0]] = AdapterPredictor(base, FIRST_ADAPTER, first)
        for number, folder in enumerate(members[1:], start=1):
            adapter = f"run{number}"
            first.method.load_beside(model, RunFolder(folder).model_dir, adapter)
            predictors[folder] = AdapterPredictor(base, adapter, parts[folder])
    return predictors
