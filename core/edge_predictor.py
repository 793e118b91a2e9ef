"""Predict with an ONNX export on onnxruntime: no PyTorch, no transformers.

An export made by ``tunewright export run=<folder> format=onnx`` holds ``model.onnx``,
the tokenizer (``tokenizer.json``) and ``edge.json`` (label names, maximum length, the
padding token, the figures measured when it was checked). This module needs only
numpy, onnxruntime and tokenizers, so it runs where PyTorch is too large to install::

    from tunewright.edge_predictor import EdgePredictor

    EdgePredictor("runs/<id>/export-onnx-int8").predict(["Battery died in a day."])
    # [{'label': 'negative', 'probabilities': {'negative': 0.97, 'positive': 0.03}}]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

EDGE_FILE = "edge.json"
GRAPH_FILE = "model.onnx"


class EdgePredictor:
    """A text classifier's ONNX export, with the :class:`~tunewright.predictor.Predictor`
    answers: ``predict`` gives a label and probabilities per text (or text pair)."""

    input_field = "text"

    def __init__(self, folder: str | Path, batch_size: int = 32):
        import onnxruntime
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.record = json.loads((self.folder / EDGE_FILE).read_text(encoding="utf-8"))
        self.label_names: list[str] = self.record["label_names"]
        self.batch_size = batch_size
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # its notes on graph optimisation are not the user's concern
        self.session = onnxruntime.InferenceSession(
            str(self.folder / GRAPH_FILE), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {node.name for node in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.record["max_length"])
        self.tokenizer.enable_padding(pad_id=self.record["pad_token_id"], pad_token=self.record["pad_token"])

    def logits(self, inputs: list[str | dict[str, str]]) -> np.ndarray:
        """One row of class logits per text (or ``{"text", "text_pair"}``), in order."""
        rows = []
        for start in range(0, len(inputs), self.batch_size):
            chunk = inputs[start : start + self.batch_size]
            given = [(v["text"], v["text_pair"]) if isinstance(v, dict) else v for v in chunk]
            encodings = self.tokenizer.encode_batch(given)
            feed = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            rows.append(self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0])
        return np.concatenate(rows).astype(np.float64)

    def probabilities(self, inputs: list[str | dict[str, str]]) -> np.ndarray:
        logits = self.logits(inputs)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, inputs: list[str | dict[str, str]]) -> list[dict[str, Any]]:
        if isinstance(inputs, str):
            inputs = [inputs]
        return [
            {
                "label": self.label_names[int(row.argmax())],
                "probabilities": {name: float(p) for name, p in zip(self.label_names, row)},
            }
            for row in self.probabilities(inputs)
        ]


def is_edge_export(folder: str | Path) -> bool:
    return (Path(folder) / EDGE_FILE).is_file() and (Path(folder) / GRAPH_FILE).is_file()
