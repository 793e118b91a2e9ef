"""``MODEL_CARD.md``: the Hugging Face model-card format, rendered from the run's records.

Nothing in it is written by hand per run: the YAML header and every section come from
``config.yaml``, ``manifest.json``, ``results.json``, ``data_card.json``,
``reports/bias.json`` and the drift records, so ``tunewright card run=<folder>``
re-renders it after a later audit or monitoring. Sections follow *Model Cards for
Model Reporting* (Mitchell et al., 2019); what the records cannot know (intended and
out-of-scope use, licence, known limitations) comes from the ``card.*`` config.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from tunewright import hookimpl
from tunewright.embedded import hub_id
from tunewright.governance.bias_report import interval_text, upgrade_record
from tunewright.governance.mitigation import mitigation_summary
from tunewright.governance.policy import limit_text
from tunewright.markdown import md_code, md_paragraph, md_text
from tunewright.release_gate import release_sentence, verdict_words
from tunewright.run_folder import RunFolder, atomic_write_text
from tunewright.schema import CardConfig

CARD_FILE = "MODEL_CARD.md"
# The hub id of a base model tunewright ships inside a package.


@hookimpl
def tunewright_write_model_card(folder):
    return write_model_card(folder)


def write_model_card(folder: str | Path) -> Path:
    """Render ``MODEL_CARD.md`` in the run folder from its records; returns its path."""
    run_folder = RunFolder(folder)
    run_folder.read_config()  # a folder that holds no run is refused before it is locked
    path = run_folder.path / CARD_FILE
    with run_folder.locked("tunewright card", wait=True):
        atomic_write_text(path, render_model_card(run_folder))
    return path


def render_model_card(run_folder: RunFolder) -> str:
    cfg = OmegaConf.to_container(run_folder.read_config(), resolve=True)
    cfg["card"] = {**asdict(CardConfig()), **(cfg.get("card") or {})}  # runs from before card.* existed
    folder = run_folder.path
    records = {
        "results": run_folder.read_json("results.json") or {},
        "manifest": run_folder.read_json("manifest.json") or {},
        "data": run_folder.read_json("data_card.json") or {},
        "bias": run_folder.read_json("reports/bias.json"),
        "reference": run_folder.read_json("reports/drift_reference/profile.json"),
        "drift": [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("reports/drift-*.json"))],
    }
    sections = [
        _model_details(cfg, records),
        _uses(cfg),
        _training_data(records["data"]),
        _evaluation(records["results"], cfg["trainer"].get("early_stopping_metric", "accuracy")),
        _bias(records["bias"]),
        _drift(records["reference"], records["drift"], folder),
        _training_details(cfg, records),
        _limitations(cfg, records),
        _how_to_use(cfg, records, folder),
    ]
    title = f"# {md_text(base_model_id(cfg))} fine-tuned with {md_text(cfg['method']['kind'])} on {md_text(cfg['data']['kind'])}"
    return (
        f"---\n{yaml.safe_dump(_header(cfg, records, folder), sort_keys=False)}---\n\n{title}\n\n"
        + "\n\n".join(sections)
        + "\n"
    )


def base_model_id(cfg: dict[str, Any]) -> str:
    return hub_id(cfg["model"]["name_or_path"])


def _header(cfg: dict[str, Any], records: dict[str, Any], folder: Path) -> dict[str, Any]:
    test = records["results"].get("test") or {}
    named = {
        "accuracy": {"type": "accuracy"},
        "f1_macro": {"type": "f1", "name": "macro-F1"},
        "exact_match": {"type": "exact_match"},
        "perplexity": {"type": "perplexity"},
        "wer": {"type": "wer", "name": "word error rate"},
        "cer": {"type": "cer", "name": "character error rate"},
    }
    metrics = [{**named[key], "value": round(test[key], 4)} for key in named if key in test]
    pipeline_tag = task_record(cfg, records)["pipeline_tag"]
    header = {
        "base_model": base_model_id(cfg),
        "library_name": "peft" if (folder / "model" / "adapter_config.json").is_file() else "transformers",
        "license": cfg["card"]["license"] or "other",
        "datasets": [cfg["data"]["kind"]],
        "metrics": [m["type"] for m in metrics],
        "pipeline_tag": pipeline_tag,
        "tags": ["tunewright", cfg["method"]["kind"], cfg["data"]["kind"], *cfg["card"]["tags"]],
        "model-index": [
            {
                "name": records["results"].get("run_id") or cfg["paths"]["run_id"] or "tunewright-run",
                "results": [
                    {
                        "task": {"type": pipeline_tag},
                        "dataset": {"name": cfg["data"]["kind"], "type": cfg["data"]["kind"], "split": "test"},
                        "metrics": metrics,
                    }
                ],
            }
        ],
    }
    return header


def task_record(cfg: dict[str, Any], records: dict[str, Any]) -> dict[str, str]:
    """The task as the manifest records it (``pipeline_tag``, ``input_field``); for runs
    from before it did, what their model kind implies."""
    recorded = records["manifest"].get("task")
    if recorded:
        return recorded
    generative = cfg["model"]["kind"] in ("causal_lm", "seq2seq_lm")
    return {
        "kind": cfg["model"]["kind"],
        "pipeline_tag": "text-generation" if generative else "text-classification",
        "input_field": "text",
    }


def _model_details(cfg: dict[str, Any], records: dict[str, Any]) -> str:
    train = records["results"].get("train") or {}
    labels = records["data"].get("label_names") or []
    manifest = records["manifest"]
    reads_text = task_record(cfg, records)["input_field"] == "text"
    length = f", max length {cfg['model']['max_length']} tokens" if reads_text else ""
    lines = [
        "## Model details",
        "",
        f"- Base model: {md_code(base_model_id(cfg))} (task {md_code(cfg['model']['kind'])}{length})",
        f"- Method: {md_code(cfg['method']['kind'])}"
        + (
            f"; {train['trainable_parameters']:,} of {train['total_parameters']:,} parameters trained "
            f"({train['trainable_parameters'] / max(train['total_parameters'], 1):.2%})"
            if train
            else ""
        ),
        f"- Labels ({len(labels)}): {', '.join(map(md_text, labels))}"
        if labels
        else "- Labels: none; it answers with text",
        f"- Run: {md_code(records['results'].get('run_id', '?'))}, tunewright {manifest.get('libraries', {}).get('tunewright', '?')}, "
        f"config SHA-256 `{manifest.get('config_sha256', '?')[:12]}`",
    ]
    return "\n".join(lines)


def _uses(cfg: dict[str, Any]) -> str:
    card = cfg["card"]
    intended = (
        card["intended_use"] or "Not stated. Set `card.intended_use` to say who should use this model and for what."
    )
    out_of_scope = card["out_of_scope_use"] or "Not stated. Set `card.out_of_scope_use`."
    intended = md_paragraph(card["intended_use"]) if card["intended_use"] else intended
    out_of_scope = md_paragraph(card["out_of_scope_use"]) if card["out_of_scope_use"] else out_of_scope
    return f"## Intended use\n\n{intended}\n\n## Out-of-scope use\n\n{out_of_scope}"


def _training_data(data: dict[str, Any]) -> str:
    if not data:
        return "## Training data\n\nNo data card on record."
    rows = [
        f"| {md_text(split)} | {c['rows']} | " + ", ".join(f"{md_text(k)} {v}" for k, v in c["labels"].items()) + " |"
        for split, c in data.get("composition", {}).items()
    ]
    dropped = sum(step["rows_in"] - step["rows_out"] for step in data.get("cleaning", []))
    sources = ", ".join(f"{md_code(s['path'])} (SHA-256 {md_code(s['sha256'][:12])})" for s in data.get("sources", []))
    sensitive = ", ".join(map(md_text, data.get("sensitive_features") or {})) or "none declared"
    return "\n".join(
        [
            "## Training data",
            "",
            f"Dataset {md_code(data.get('dataset'))} from {sources or 'no recorded files'}. Cleaning dropped {dropped} rows "
            "(see `data_card.md` for every step and reason). Sensitive features: " + sensitive + ".",
            "",
            "| split | rows | labels |",
            "|---|---|---|",
            *rows,
        ]
    )


def _evaluation(results: dict[str, Any], metric: str) -> str:
    test = results.get("test")
    if not test:
        return "## Evaluation results\n\nThe run did not finish its test evaluation."
    rows = [f"| {name} | {value:.4f} |" for name, value in test.items()]
    train = results.get("train") or {}
    best = (
        f"\n\nBest validation {md_text(metric)} {train['best_metric']:.4f} at step {train['best_step']} "
        "(the weights this model holds when trainer.select_best is on)."
        if train.get("best_metric") is not None
        else ""
    )
    return (
        "\n".join(
            ["## Evaluation results", "", "On the held-out test split:", "", "| metric | value |", "|---|---|", *rows]
        )
        + best
    )


def _bias(bias: dict[str, Any] | None) -> str:
    if bias is None:
        return "## Bias audit\n\nNo bias audit ran for this model (`audit=none`). Its release is not cleared."
    bias = upgrade_record(bias)
    policy = bias["policy"]
    lines = [
        "## Bias audit",
        "",
        f"Policy `{md_text(policy['name'])}`{' (blocking)' if policy['blocking'] else ''}. "
        + md_text(release_sentence(bias["release"])),
    ]
    for name, audit in bias["audits"].items():
        lines += ["", f"### {md_text(name)}: {md_text(verdict_words(audit['verdict']))}", ""]
        if audit["checks"]:
            lines += ["| subject | check | value [interval] | limit | p | verdict |", "|---|---|---|---|---|---|"]
            lines += [
                f"| {md_text(c['subject'])} | {md_text(c['check'])} | {' '.join(filter(None, (_fmt(c['value'], '.4f'), interval_text(c.get('interval')))))} "
                f"| {md_text(limit_text(c['limits']))} | {_fmt(c['p_value'], '.3g')} | {md_text(verdict_words(c['verdict']))} |"
                for c in audit["checks"]
            ]
        lines += [f"- {md_text(reason)}" for reason in audit["reasons"] if audit["verdict"] != "pass"]
        lines += [
            f"- To settle {md_text(c['subject'])} {md_text(c['check'])}: {md_text(c['settle'])}"
            for c in audit["checks"]
            if c.get("settle")
        ]
        if audit["details"].get("mitigation"):
            lines += ["", mitigation_summary(audit["details"]["mitigation"])]
    comparison = bias.get("base_model_comparison")
    lines += [
        "",
        md_text(comparison["summary"])
        if comparison
        else "The base model was not audited, so no change from it is reported.",
    ]
    lines += ["", "Full report, with what each check means and the per-group table: `reports/bias.html`."]
    return "\n".join(lines)


def _drift(reference: dict[str, Any] | None, reports: list[dict[str, Any]], folder: Path) -> str:
    if reference is None:
        return "## Drift baseline and monitoring\n\nNo drift reference was recorded (`monitor=none`)."
    inputs = {"image": "images", "audio": "recordings"}.get(reference.get("input_field"), "texts")
    lines = [
        "## Drift baseline and monitoring",
        "",
        f"The reference profile holds {reference['rows']} held-out {inputs} with their "
        f"{'descriptors, embeddings and predictions' if reference.get('prediction_distribution') else 'descriptors and embeddings'} "
        "(`reports/drift_reference/`). "
        "Check new data against it with:",
        "",
        f"    tunewright monitor run={folder} data=csv data.path=<new batch>.csv",
        "",
    ]
    if reports:
        lines += ["| batch | rows | verdict | severity | retrain |", "|---|---|---|---|---|"]
        lines += [
            f"| {md_text(r['name'])} | {r['rows']} | {r['status']} | {r['severity']} | {'yes' if r['retrain_recommended'] else 'no'} |"
            for r in reports
        ]
    else:
        lines.append("No batch has been monitored yet.")
    return "\n".join(lines)


def _training_details(cfg: dict[str, Any], records: dict[str, Any]) -> str:
    trainer, train, manifest = cfg["trainer"], records["results"].get("train") or {}, records["manifest"]
    keys = (
        "strategy",
        "max_epochs",
        "batch_size",
        "gradient_accumulation_steps",
        "learning_rate",
        "weight_decay",
        "schedule",
        "warmup_ratio",
        "precision",
    )
    method = {k: v for k, v in cfg["method"].items() if k != "kind"}
    hardware = manifest.get("cuda") or manifest.get("platform", "?")
    lines = ["## Training details", "", "| setting | value |", "|---|---|"]
    lines += [f"| trainer.{k} | {md_text(trainer[k])} |" for k in keys]
    lines += [f"| method.{md_text(k)} | {md_text(v)} |" for k, v in method.items()]
    lines += [
        f"| seed | {cfg['seed']} |",
        f"| processes | {manifest.get('world_size', 1)} |",
        f"| hardware | {md_text(hardware)} |",
    ]
    if ran := manifest.get("precision"):
        lines += [f"| precision that ran | {md_text(ran['name'])} ({md_text(ran['reason'])}) |"]
    if train:
        speed = (
            f"{train['tokens_per_second']:.0f} tokens/s"
            if train["tokens_per_second"]
            else f"{train['samples_per_second']:.1f} examples/s"
        )
        lines += [f"| training time | {train['wall_seconds']:.1f} s, {train['steps']} steps, {speed} |"]
    return "\n".join(lines)


def _limitations(cfg: dict[str, Any], records: dict[str, Any]) -> str:
    rows = records["results"].get("data", {})
    lines = ["## Limitations", ""]
    if cfg["card"]["limitations"]:
        lines += [md_paragraph(cfg["card"]["limitations"]), ""]
    lines += [
        f"- Trained on {rows.get('train', '?')} examples and tested on {rows.get('test', '?')}: "
        "figures on other data will differ; monitor new data for drift.",
    ]
    if labels := records["data"].get("label_names"):
        lines.append(f"- It predicts only its labels ({', '.join(map(md_text, labels))}); any input gets one of them.")
    task = task_record(cfg, records)
    if task["input_field"] == "text":
        lines.append(f"- Texts longer than {cfg['model']['max_length']} tokens are truncated.")
        if records["bias"]:
            lines.append(
                "- The bias audits probe English templates and a fixed set of identity terms and names: passing "
                "them is evidence, not proof, of fair behaviour on your population."
            )
        else:
            lines.append("- No bias audit ran on this model: nothing is known of how it treats groups of people.")
    elif task["pipeline_tag"] == "automatic-speech-recognition":
        lines += [
            f"- Recordings are mixed down to mono, resampled and cut at {cfg['model']['max_seconds']} seconds; "
            f"transcripts spell only the checkpoint's vocabulary, cased as model.transcript_case="
            f"{md_text(cfg['model']['transcript_case'])} says, and words absent from the training transcripts "
            "(names, product and drug names) are the likeliest to be misspelt.",
            "- No audit judges how it treats groups of speakers: a transcript has no class probabilities.",
        ]
    elif task["input_field"] == "audio":
        lines += [
            f"- Recordings are mixed down to mono, resampled to the feature extractor's rate and cut at "
            f"{cfg['model']['max_seconds']} seconds; the text bias probes do not apply to an audio model, so only "
            "group metrics (from sensitive columns) can audit it."
        ]
    else:
        lines += [
            "- Images are resized and normalised by the checkpoint's image processor; the text bias probes do not "
            "apply to an image model, so only group metrics (from sensitive columns) can audit it."
        ]
    return "\n".join(lines)


def _how_to_use(cfg: dict[str, Any], records: dict[str, Any], folder: Path) -> str:
    example = {"image": "photo.jpg", "audio": "call.wav", "text": '"text to classify"'}[
        task_record(cfg, records)["input_field"]
    ]
    return "\n".join(
        [
            "## How to use",
            "",
            f"    tunewright predict run={folder} {example}",
            "",
            'or, in Python, `tunewright.load_run("<run folder>").predict([...])`. '
            "`tunewright export` writes a plain Hugging Face directory with this card as its README.",
        ]
    )


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)
