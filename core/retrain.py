"""``tunewright monitor ... monitor.retrain=true``: a new run on the old data plus the batch.

When a labelled batch drifted enough that retraining is recommended, the run's own
dataset (read again through its data config) and the batch's labelled rows (for served
traffic, those that got feedback) are written to one
JSON-lines file in a new run folder, and that run trains with the old run's config,
every setting the same but the data. The two runs point at each other: the new
manifest's ``retrained_from`` names the old run and the drift report, the old
manifest's ``retrained_as`` lists the new runs.
"""

from __future__ import annotations

import json
from typing import Any

from omegaconf import OmegaConf

from tunewright.contracts import INPUT_FIELDS
from tunewright.errors import ConfigError
from tunewright.run_folder import RunFolder, atomic_write_text, new_run_id

RETRAIN_DATA = "retrain"  # the old run's folder of combined data, one file per new run


def retrain(
    old: RunFolder, batch: list[dict[str, Any]], report: dict[str, Any], label_names: list[str], plugins
) -> dict[str, Any]:
    """Train the new run; returns its id and test metrics."""
    from tunewright.pipeline import run_training

    batch = [example for example in batch if example.get("label") is not None]  # served rows without feedback
    if not batch:
        raise ConfigError(
            "monitor.retrain: the batch has no labels to learn from; label it, or monitor without retrain"
        )
    cfg = old.read_config()
    original = plugins.registries["datasets"].build(cfg.data).load()
    examples = [(e, original.label_names) for split in original.splits.values() for e in split] + [
        (e, label_names) for e in batch
    ]
    sensitive = list(cfg.data.sensitive_columns)
    run_id = new_run_id(cfg)
    folder = RunFolder(old.path.parent / run_id)
    path = old.path / RETRAIN_DATA / f"{run_id}.jsonl"
    atomic_write_text(path, "".join(json.dumps(_row(example, names, sensitive)) + "\n" for example, names in examples))
    jsonl = plugins.registries["datasets"].get("jsonl").schema  # the registered JSON-lines loader's options
    data = jsonl(
        kind="jsonl",
        path=str(path),
        labels=list(label_names),
        sensitive_columns=sensitive,
        image_column="image" if any("image" in e for e, _ in examples) else None,
        audio_column="audio" if any("audio" in e for e, _ in examples) else None,
        text_pair_column="text_pair" if any("text_pair" in e for e, _ in examples) else None,
        validation_fraction=cfg.data.validation_fraction,
        test_fraction=cfg.data.test_fraction,
        split_seed=cfg.data.split_seed,
    )
    cfg.data = OmegaConf.merge(OmegaConf.structured(data), {"cleaning": cfg.data.cleaning})
    cfg.paths.run_id = run_id
    cfg.paths.runs_dir = str(old.path.parent)
    results = run_training(cfg, plugins)
    origin = {"run_id": old.path.name, "drift_report": f"reports/drift-{report['name']}.json", "rows_added": len(batch)}
    folder.update_json("manifest.json", lambda manifest: manifest.update(retrained_from=origin))
    old.update_json("manifest.json", lambda manifest: manifest.setdefault("retrained_as", []).append(run_id))
    return {"run_id": run_id, "test": results.get("test")}


def _row(example: dict[str, Any], label_names: list[str], sensitive: list[str]) -> dict[str, Any]:
    """One JSON line: the input fields (an image or recording by its absolute path), label, groups."""
    row = {field: example[field] for field in INPUT_FIELDS if field in example}
    row["label"] = label_names[example["label"]]
    row.update({column: (example.get("sensitive") or {}).get(column) for column in sensitive})
    return row
