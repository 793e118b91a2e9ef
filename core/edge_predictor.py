"""Predict with an ONNX export on onnxruntime: no PyTorch, no transformers.

An export made by ``tunewright export run=<folder> format=onnx`` holds ``model.onnx``,
what prepares its inputs (a text classifier's ``tokenizer.json``, an image classifier's
``preprocessor_config.json``) and ``edge.json`` (label names, the input kind, the
figures measured when it was checked). This module needs only numpy, onnxruntime and
tokenizers (text) or Pillow (images), so it runs where PyTorch is too large to install::

    from tunewright.edge_predictor import open_export

    open_export("runs/<id>/export-onnx-int8").predict(["Battery died in a day."])
    # [{'label': 'negative', 'probabilities': {'negative': 0.97, 'positive': 0.03}}]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

EDGE_FILE = "edge.json"
GRAPH_FILE = "model.onnx"
PROCESSOR_FILE = "preprocessor_config.json"


class TextInputs:
    """Token ids, attention mask and segment ids from the export's ``tokenizer.json``,
    truncated and padded as the run's tokenizer does."""

    def __init__(self, folder: Path, record: dict[str, Any]):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(record["max_length"])
        self.tokenizer.enable_padding(pad_id=record["pad_token_id"], pad_token=record["pad_token"])

    def feed(self, chunk: list[str | dict[str, str]]) -> dict[str, np.ndarray]:
        given = [(v["text"], v["text_pair"]) if isinstance(v, dict) else v for v in chunk]
        return self.arrays(self.tokenizer.encode_batch(given))

    @staticmethod
    def arrays(encodings) -> dict[str, np.ndarray]:
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }


class ImageInputs:
    """``pixel_values`` as the checkpoint's image processor makes them (its saved
    ``preprocessor_config.json``: resize to a height and width or by the shortest edge,
    centre crop, rescale, normalise), with Pillow and numpy."""

    def __init__(self, folder: Path, record: dict[str, Any]):
        self.cfg = json.loads((folder / PROCESSOR_FILE).read_text(encoding="utf-8"))
        size = self.cfg.get("size") or {}
        if self.cfg.get("do_resize", True) and not ({"height", "width"} <= set(size) or "shortest_edge" in size):
            raise ValueError(
                f"{folder / PROCESSOR_FILE}: size={size} is neither a height and width nor a shortest edge, "
                "the resizes the edge runtime makes"
            )

    def pixels(self, path: str) -> np.ndarray:
        from PIL import Image

        from tunewright.images import open_image

        cfg, image = self.cfg, open_image(path)
        if cfg.get("do_resize", True):
            size, (width, height) = cfg["size"], image.size
            if "shortest_edge" in size:
                short, long = sorted((width, height))
                edge = size["shortest_edge"]
                new = (edge, int(edge * long / short))
                width, height = new if width <= height else new[::-1]
            else:
                width, height = size["width"], size["height"]
            image = image.resize((width, height), Image.Resampling(cfg.get("resample", 2)))
        array = np.asarray(image, dtype=np.float32)
        if cfg.get("do_center_crop"):
            crop = cfg["crop_size"]
            top, left = (array.shape[0] - crop["height"]) // 2, (array.shape[1] - crop["width"]) // 2
            array = array[top : top + crop["height"], left : left + crop["width"]]
        if cfg.get("do_rescale", True):
            array = array * np.float32(cfg.get("rescale_factor", 1 / 255))
        if cfg.get("do_normalize", True):
            array = (array - np.array(cfg["image_mean"], np.float32)) / np.array(cfg["image_std"], np.float32)
        return array.transpose(2, 0, 1)

    def feed(self, chunk: list[str]) -> dict[str, np.ndarray]:
        return {"pixel_values": np.stack([self.pixels(str(path)) for path in chunk]).astype(np.float32)}


INPUTS = {"text": TextInputs, "image": ImageInputs}  # edge.json's "input": what the graph is fed from


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities along the last axis, one row per input (or per word)."""
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


class EdgeGraph:
    """An export's graph on onnxruntime, with its ``edge.json`` record."""

    def __init__(self, folder: str | Path, batch_size: int = 32):
        import onnxruntime

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

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's logits for one prepared batch (inputs it does not take are left out)."""
        return self.session.run(None, {name: value for name, value in feed.items() if name in self.inputs})[0]


class EdgePredictor(EdgeGraph):
    """A classifier's ONNX export, with the :class:`~tunewright.predictor.Predictor`
    answers: ``predict`` gives a label and probabilities per text (or text pair, or
    image path)."""

    def __init__(self, folder: str | Path, batch_size: int = 32):
        super().__init__(folder, batch_size)
        self.input_field: str = self.record.get("input", "text")
        self.prepare = INPUTS[self.input_field](self.folder, self.record)

    def logits(self, inputs: list[str | dict[str, str]]) -> np.ndarray:
        """One row of class logits per text (or ``{"text", "text_pair"}``, or image path), in order."""
        rows = []
        for start in range(0, len(inputs), self.batch_size):
            rows.append(self.run(self.prepare.feed(inputs[start : start + self.batch_size])))
        return np.concatenate(rows).astype(np.float64)

    def probabilities(self, inputs: list[str | dict[str, str]]) -> np.ndarray:
        return softmax(self.logits(inputs))

    def answers(self, probabilities: np.ndarray) -> list[dict[str, Any]]:
        """``{"label", "probabilities": {name: p}}`` per row of class probabilities."""
        return [
            {
                "label": self.label_names[int(row.argmax())],
                "probabilities": {name: float(p) for name, p in zip(self.label_names, row)},
            }
            for row in probabilities
        ]

    def predict(self, inputs: list[str | dict[str, str]]) -> list[dict[str, Any]]:
        if isinstance(inputs, str):
            inputs = [inputs]
        return self.answers(self.probabilities(inputs))


class EdgeTagger(EdgeGraph):
    """A tagger's ONNX export: ``predict`` splits each text on whitespace and gives each
    word's tag (its first token's) and the entities, as the run's ``predict`` does."""

    input_field = "text"

    def __init__(self, folder: str | Path, batch_size: int = 32):
        super().__init__(folder, batch_size)
        self.prepare = TextInputs(self.folder, self.record)

    def word_probabilities(self, texts: list[str]) -> list[np.ndarray]:
        """Per text, one row of tag probabilities per word that fits in ``max_length``."""
        answers = []
        for start in range(0, len(texts), self.batch_size):
            words = [text.split() for text in texts[start : start + self.batch_size]]
            encodings = self.prepare.tokenizer.encode_batch(words, is_pretokenized=True)
            logits = self.run(TextInputs.arrays(encodings)).astype(np.float64)
            for row, encoding in zip(logits, encodings):
                ids = encoding.word_ids
                first = [j for j, w in enumerate(ids) if w is not None and (j == 0 or ids[j - 1] != w)]
                answers.append(softmax(row[first]))
        return answers

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        from tunewright.entities import entities

        if isinstance(texts, str):
            texts = [texts]
        answers = []
        for text, probabilities in zip(texts, self.word_probabilities(texts)):
            words = text.split()
            tags = [self.label_names[int(i)] for i in probabilities.argmax(axis=1)]
            tags += ["O"] * (len(words) - len(tags))  # words cut by max_length
            answers.append({"words": words, "tags": tags, "entities": entities(words, tags)})
        return answers


def open_export(folder: str | Path) -> EdgePredictor | EdgeTagger:
    """The predictor for the ONNX export in ``folder``: a classifier's or a tagger's."""
    answers = json.loads((Path(folder) / EDGE_FILE).read_text(encoding="utf-8")).get("answers", "label")
    return EdgeTagger(folder) if answers == "tags" else EdgePredictor(folder)


def is_edge_export(folder: str | Path) -> bool:
    return (Path(folder) / EDGE_FILE).is_file() and (Path(folder) / GRAPH_FILE).is_file()
