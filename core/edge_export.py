"""``tunewright export run=<folder> format=onnx [quantize=int8]``: a small artifact for the edge,
checked before it ships.

The method is merged into plain weights, the model exported with PyTorch's own ONNX
exporter (``torch.onnx.export(dynamo=True)``, dynamic batch and length) and, with
``quantize=int8``, its weights quantised by onnxruntime (dynamic int8). Before the
export stands, the artifact answers the run's whole test split on onnxruntime
(:class:`~tunewright.edge_predictor.EdgePredictor`, the runtime a device uses) beside
the merged PyTorch model: accuracy and macro-F1 of both, how often they agree, the
largest probability difference, the artifact's size and its batch-1 and batch-32
speed on this CPU. A drop beyond ``max_metric_drop`` (a share: 0.01 is one point)
refuses the export unless ``accept_drop="<reason>"`` is given; the figures, and that
reason, go into the export's ``edge.json``, its model card and the run's manifest. The
release gate holds as for every export (``override="<reason>"`` for a blocked run).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tunewright.artifact_audit import audit_artifact
from tunewright.edge_predictor import EDGE_FILE, GRAPH_FILE, EdgePredictor, EdgeTagger, open_export
from tunewright.entities import entity_scores
from tunewright.errors import ReleaseBlockedError, TunewrightError, first_line
from tunewright.markdown import md_table
from tunewright.predictor import predictor_for, read_parts
from tunewright.release_gate import release_sentence, verdict_words
from tunewright.run_folder import RunFolder

QUANTIZATIONS = ("int8",)


def export_onnx(
    run_folder: RunFolder,
    staging: Path,
    quantize: str | None,
    accept_drop: str | None,
    max_metric_drop: float,
    trust_remote_code: bool,
    override: str | None,
) -> dict[str, Any]:
    """Write the artifact into ``staging`` and check it; returns what ``edge.json`` records.
    ``override`` is the reason the user gave to export a blocked release, which also lets an
    artifact through that its own audits block."""
    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise TunewrightError(
            f"format=onnx needs {', '.join(missing)}: pip install 'tunewright[edge]' (scripts/setup.sh installs it)"
        )
    parts = read_parts(run_folder, trust_remote_code)
    kind = parts.config.model.kind
    if parts.task.edge_answers is None:
        raise TunewrightError(
            f"format=onnx: model={kind} is not exported to ONNX yet (text and image classifiers, CLIP and taggers are); "
            "export the Hugging Face directory instead (merged=true), which llama.cpp, vLLM or optimum take"
        )
    if not parts.method.can_merge:
        raise TunewrightError(
            f"format=onnx: method={parts.config.method.kind} cannot be merged into plain weights, which the "
            "ONNX graph is made of; tune with a method that merges (lora, ia3, freeze, full) to export for the edge"
        )
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise TunewrightError(f"quantize={quantize!r}: one of {', '.join(QUANTIZATIONS)}, or leave it out for fp32")
    torch_model = predictor_for(parts, run_folder.model_dir, merged=True)
    graph = staging / GRAPH_FILE
    _export_graph(torch_model, staging / "model-fp32.onnx" if quantize else graph, kind)
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(staging / "model-fp32.onnx", graph, weight_type=QuantType.QInt8)
        (staging / "model-fp32.onnx").unlink()
    parts.task.save_artifacts(staging, parts.label_names)
    field = parts.task.input_field
    record = {
        "format": "onnx",
        "quantize": quantize,
        "run": str(run_folder.path.resolve()),
        "label_names": parts.label_names,
        "input": field,
        "answers": parts.task.edge_answers,
        **(_tokenizer_record(parts) if field == "text" else {}),
    }
    (staging / EDGE_FILE).write_text(json.dumps(record))
    try:
        artifact = open_export(staging)
    except ValueError as error:  # a preprocessing the edge runtime does not make
        raise TunewrightError(f"format=onnx: {first_line(error)}; export the Hugging Face directory instead") from error
    test_rows = _test_rows(run_folder)
    if parts.task.edge_answers == "tags":  # no class probabilities, so no audit applies (as for the run)
        checked, shipped_rows = check_tagger(torch_model, artifact, test_rows), None
    else:
        checked, probabilities = check_artifact(
            torch_model, artifact, _test_inputs(test_rows, field), parts.label_names
        )
        shipped_rows = [{**row, "prediction": a} for row, a in zip(test_rows, artifact.answers(probabilities))]
    record["check"] = {**checked, "size_bytes": graph.stat().st_size, "max_metric_drop": max_metric_drop}
    drop = max(checked["pytorch"][m] - checked["artifact"][m] for m in checked["pytorch"])
    if drop > max_metric_drop:
        if not accept_drop:
            raise TunewrightError(
                f"export: the ONNX{' ' + quantize if quantize else ''} artifact scores {drop:.4f} below the PyTorch "
                f"model on the test split (accuracy {checked['artifact']['accuracy']:.4f} against "
                f"{checked['pytorch']['accuracy']:.4f}; max_metric_drop={max_metric_drop}); export without "
                'quantize, or ship it anyway with accept_drop="<reason>"'
            )
        record["check"]["drop_accepted"] = accept_drop
    shipped = audit_artifact(run_folder, parts.task, artifact, shipped_rows) if shipped_rows else None
    if shipped is not None:
        record["audit"] = shipped
        if not shipped["release"]["allowed"]:
            if not override:
                instead = "export without quantize, or ship it anyway" if quantize else "to ship it anyway, pass"
                raise ReleaseBlockedError(
                    f"export: the ONNX{' ' + quantize if quantize else ''} artifact's own bias audits block its "
                    f"release: {'; '.join(shipped['release']['reasons'])}; {instead} "
                    'with override="<your reason>" (it is recorded)'
                )
            shipped["override"] = override
    (staging / EDGE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _tokenizer_record(parts) -> dict[str, Any]:
    """What the edge runtime's tokenizer needs besides ``tokenizer.json``."""
    tokenizer = parts.task.tokenizer
    return {
        "max_length": parts.config.model.max_length,
        "pad_token_id": tokenizer.pad_token_id,
        "pad_token": tokenizer.pad_token,
    }


TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # what a text classifier's tokenizer gives


def _export_graph(predictor, path: Path, kind: str) -> None:
    """The merged model as an ONNX graph to logits: from token ids (any batch and
    length) or from pixel values (any batch, the processor's height and width)."""
    import torch

    module, batch, shapes = _traced_inputs(predictor)
    with _quiet_exporter():
        try:
            program = torch.onnx.export(
                module.eval(),
                kwargs=batch,
                dynamo=True,
                dynamic_shapes=shapes,
                input_names=list(batch),
                output_names=["logits"],
                verbose=False,
            )
        except Exception as error:  # torch.export's own message (the cause) says what it could not trace
            raise TunewrightError(
                f"format=onnx: PyTorch's ONNX exporter could not export model={kind}: "
                f"{first_line(error.__cause__ or error)}; "
                "export the Hugging Face directory instead (merged=true)"
            ) from error
    program.save(str(path))


def _traced_inputs(predictor) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The module to trace (the logits alone), a sample batch and its dynamic axes."""
    import tempfile

    import torch
    from PIL import Image

    inner, rows = predictor.model, torch.export.Dim("batch")
    if predictor.task.input_field == "image":
        with tempfile.TemporaryDirectory() as scratch:  # two sample images of unlike sizes
            paths = [Path(scratch, f"{n}.png") for n in (24, 40)]
            for path, side in zip(paths, (24, 40)):
                Image.new("RGB", (side, side + 8), (120, 60, 30)).save(path)
            sample = predictor.task.collate(predictor.task.encode([{"image": str(p)} for p in paths]))
        # What else a batch carries is the same in every batch (CLIP's label prompts): constants of the graph.
        fixed = {name: value for name, value in sample.items() if name != "pixel_values"}

        class ImageLogits(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = inner

            def forward(self, pixel_values):
                return self.inner(pixel_values=pixel_values, **fixed).logits

        return ImageLogits(), {"pixel_values": sample["pixel_values"]}, {"pixel_values": {0: rows}}

    class TextLogits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            return self.inner(**{name: value for name, value in given.items() if value is not None}).logits

    features = predictor.task.encode([{"text": "a short example"}, {"text": "a somewhat longer example text"}])
    batch = {name: value for name, value in predictor.task.collate(features).items() if name in TEXT_INPUTS}
    length = torch.export.Dim("sequence")
    return TextLogits(), batch, {name: {0: rows, 1: length} for name in batch}


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's progress lines and its notes on operators this model does not use
    (torchvision's) are not the user's concern; its errors still are."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def _test_rows(run_folder: RunFolder) -> list[dict[str, Any]]:
    """The run's test split as it was scored, every example with its true label's name."""
    path = run_folder.path / "test_predictions.jsonl"
    if not path.is_file():
        raise TunewrightError(f"{path}: missing; the run's test split is what an ONNX export is checked on")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _test_inputs(rows: list[dict[str, Any]], field: str) -> list[tuple[str | dict[str, str], str]]:
    """Each test example's input (``field``'s value, or a text pair) and its true label."""
    return [
        ({"text": row["text"], "text_pair": row["text_pair"]} if "text_pair" in row else row[field], row["label"])
        for row in rows
    ]


def check_artifact(
    torch_model, artifact: EdgePredictor, rows, label_names: list[str]
) -> tuple[dict[str, Any], np.ndarray]:
    """The artifact beside the PyTorch model on the same inputs: metrics, agreement, the
    largest probability difference and the artifact's speed; and the artifact's
    probabilities, which its audits then read."""
    from sklearn.metrics import accuracy_score, f1_score

    inputs, truth = [value for value, _ in rows], [label for _, label in rows]
    reference, shipped = torch_model.probabilities(inputs), artifact.probabilities(inputs)

    def metrics(probabilities: np.ndarray) -> dict[str, float]:
        predicted = [label_names[i] for i in probabilities.argmax(axis=1)]
        return {
            "accuracy": float(accuracy_score(truth, predicted)),
            "f1_macro": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        }

    return {
        "test_rows": len(rows),
        "pytorch": metrics(reference),
        "artifact": metrics(shipped),
        "agreement": float(np.mean(reference.argmax(axis=1) == shipped.argmax(axis=1))),
        "max_probability_difference": float(np.abs(reference - shipped).max()),
        **_speed(artifact, inputs),
    }, shipped


def check_tagger(torch_model, artifact: EdgeTagger, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A tagger's artifact beside the PyTorch model on the test texts: word accuracy and
    entity F1 of both, the share of words tagged alike, and the artifact's speed."""
    texts = [" ".join(row["words"]) for row in rows]
    truth = [row["tags"] for row in rows]
    reference = [answer["tags"] for answer in torch_model.predict(texts)]
    shipped = [answer["tags"] for answer in artifact.predict(texts)]

    def metrics(predicted: list[list[str]]) -> dict[str, float]:
        pairs = [(p, t) for ps, ts in zip(predicted, truth) for p, t in zip(ps, ts)]
        return {
            "accuracy": float(np.mean([p == t for p, t in pairs])),
            "entity_f1": entity_scores(truth, predicted)["entity_f1"],
        }

    alike = [a == b for xs, ys in zip(reference, shipped) for a, b in zip(xs, ys)]
    return {
        "test_rows": len(rows),
        "pytorch": metrics(reference),
        "artifact": metrics(shipped),
        "agreement": float(np.mean(alike)),
        "test_words": len(alike),
        **_speed(artifact, texts),
    }


def _speed(artifact: EdgePredictor | EdgeTagger, inputs: list) -> dict[str, float]:
    """Batch-1 latency (p50, p95 over up to 50 inputs) and batch-32 throughput on this CPU."""
    singles = []
    for value in inputs[:50]:
        began = time.perf_counter()
        artifact.predict([value])
        singles.append(time.perf_counter() - began)
    sample = (inputs * (256 // max(len(inputs), 1) + 1))[:256]
    began = time.perf_counter()
    artifact.predict(sample)
    return {
        "batch1_p50_ms": float(np.percentile(singles, 50) * 1000),
        "batch1_p95_ms": float(np.percentile(singles, 95) * 1000),
        "batch32_inputs_per_s": len(sample) / (time.perf_counter() - began),
    }


METRIC_NAMES = {"accuracy": "accuracy", "f1_macro": "macro-F1", "entity_f1": "entity F1"}


def _compared(check: dict[str, Any]) -> str:
    if "test_words" in check:  # a tagger's answers are compared word by word
        return f"{check['test_words']} words in {check['test_rows']} test texts"
    return f"{check['test_rows']} test inputs"


def deployment_section(record: dict[str, Any]) -> str:
    """The model card's "Deployment artifact" section: what ships and how it was checked."""
    check = record["check"]
    rows = [
        ["format", f"ONNX{', ' + record['quantize'] + ' weights' if record['quantize'] else ', fp32'}"],
        ["size", f"{check['size_bytes'] / 2**20:.1f} MiB"],
        *(
            [f"test {METRIC_NAMES[name]} (PyTorch → artifact)", f"{value:.4f} → {check['artifact'][name]:.4f}"]
            for name, value in check["pytorch"].items()
        ),
        ["same prediction as PyTorch", f"{check['agreement']:.2%} of {_compared(check)}"],
        *(
            [["largest probability difference", f"{check['max_probability_difference']:.2e}"]]
            if "max_probability_difference" in check
            else []
        ),
        ["batch-1 latency p50 / p95", f"{check['batch1_p50_ms']:.1f} / {check['batch1_p95_ms']:.1f} ms"],
        ["batch-32 throughput", f"{check['batch32_inputs_per_s']:.0f} inputs/s"],
    ]
    if check.get("drop_accepted"):
        rows.append(["shipped despite a drop beyond max_metric_drop", check["drop_accepted"]])
    audit = record.get("audit")
    if audit is not None:
        for name, verdict in audit["verdicts"].items():
            before = audit["run_verdicts"].get(name, "not run")
            rows.append([f"{name} audit (run → artifact)", f"{verdict_words(before)} → {verdict_words(verdict)}"])
        rows.append(["release of the artifact", release_sentence(audit["release"])])
        if audit.get("override"):
            rows.append(["shipped despite its audits", audit["override"]])
    return "\n## Deployment artifact\n\n" + md_table(["", "measured on this export"], rows) + "\n"
