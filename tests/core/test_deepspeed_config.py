"""Resolving DeepSpeed JSONs against tunewright's trainer config (no DeepSpeed needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import tiny_run_overrides
from omegaconf import OmegaConf

from tunewright.errors import ConfigError
from tunewright.schema import TrainerConfig
from tunewright.zero.config import BUNDLED, resolve

# What the HF integration's documentation shows for ZeRO-3 (optimizer and scheduler "auto").
HF_STYLE_ZERO3 = {
    "fp16": {"enabled": "auto", "loss_scale": 0},
    "bf16": {"enabled": "auto"},
    "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"}},
    "scheduler": {
        "type": "WarmupLR",
        "params": {"warmup_min_lr": "auto", "warmup_max_lr": "auto", "warmup_num_steps": "auto"},
    },
    "zero_optimization": {
        "stage": 3,
        "offload_optimizer": {"device": "cpu", "pin_memory": True},
        "reduce_bucket_size": "auto",
        "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": "auto",
    },
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "train_batch_size": "auto",
    "train_micro_batch_size_per_gpu": "auto",
}


def trainer(**overrides):
    return OmegaConf.structured(TrainerConfig(learning_rate=2e-4, **overrides))


def write(tmp_path, config, name="ds.json"):
    path = tmp_path / name
    path.write_text(json.dumps(config) if not isinstance(config, str) else config)
    return str(path)


def test_every_bundled_config_resolves_to_tunewrights_values():
    assert set(BUNDLED) == {"zero1", "zero2", "zero3", "zero2_offload", "zero3_offload"}
    for name in BUNDLED:
        resolved = resolve(name, trainer(batch_size=8, gradient_accumulation_steps=4, max_grad_norm=0.5), 2, "bf16")
        config = resolved.config
        assert config["train_micro_batch_size_per_gpu"] == 8
        assert config["gradient_accumulation_steps"] == 4
        assert config["train_batch_size"] == 8 * 4 * 2
        assert config["gradient_clipping"] == 0.5
        assert config["bf16"]["enabled"] is True and config["fp16"]["enabled"] is False
        assert resolved.stage == int(name[4])
        assert "auto" not in json.dumps(config)
        if "offload" in name:  # DeepSpeed's CPU Adam, with tunewright's AdamW values
            assert config["optimizer"]["params"] == {
                "lr": 2e-4,
                "betas": [0.9, 0.999],
                "eps": 1e-8,
                "weight_decay": 0.01,
            }
        else:  # tunewright's own torch AdamW, which DeepSpeed wraps
            assert not resolved.builds_optimizer and config["zero_allow_untested_optimizer"] is True


def test_an_hf_style_config_is_accepted_and_its_auto_scheduler_gives_way_to_tunewrights(tmp_path):
    resolved = resolve(write(tmp_path, HF_STYLE_ZERO3), trainer(), 4, "fp16")
    assert "scheduler" not in resolved.config
    assert any("WarmupLR" in note and "trainer.schedule" in note for note in resolved.notes)
    assert resolved.config["fp16"] == {"enabled": True, "loss_scale": 0}
    zero = resolved.config["zero_optimization"]
    assert "reduce_bucket_size" not in zero and "stage3_prefetch_bucket_size" not in zero  # DeepSpeed's defaults
    record = resolved.record()
    assert record["origin"] == str(tmp_path / "ds.json") and len(record["sha256"]) == 64


def test_offloading_without_an_optimizer_section_gets_deepspeeds_adamw(tmp_path):
    config = {"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}}
    resolved = resolve(write(tmp_path, config), trainer(weight_decay=0.0), 1, "fp32")
    assert resolved.builds_optimizer and resolved.config["optimizer"]["params"]["weight_decay"] == 0.0
    assert any("CPU Adam" in note for note in resolved.notes)


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"train_micro_batch_size_per_gpu": 8}, ["train_micro_batch_size_per_gpu=8", "trainer.batch_size=16"]),
        ({"train_batch_size": 64}, ["train_batch_size=64", "16 x 1 x 2 = 32"]),
        ({"gradient_clipping": 0.3}, ["gradient_clipping=0.3", "trainer.max_grad_norm=1.0"]),
        ({"bf16": {"enabled": True}}, ["bf16.enabled=true", "trainer.precision, which computes in fp32"]),
        ({"optimizer": {"type": "AdamW", "params": {"lr": 1e-5}}}, ["optimizer.params.lr=1e-05", "0.0002"]),
        ({"optimizer": {"type": "Lion", "params": {}}}, ['optimizer.type="Lion"', "AdamW"]),
        (
            {"scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 100}}},
            ["scheduler.params.warmup_num_steps", "trainer.warmup_ratio"],
        ),
        ({"zero_optimization": {"stage": 3, "sub_group_size": "auto"}}, ["zero_optimization.sub_group_size"]),
        ({"zero_optimization": 3}, ["zero_optimization must be a JSON object"]),
    ],
)
def test_a_value_that_contradicts_the_trainer_config_names_both(tmp_path, config, words):
    path = write(tmp_path, config)
    with pytest.raises(ConfigError) as raised:
        resolve(path, trainer(), 2, "fp32")
    message = str(raised.value)
    assert message.startswith(path) and "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"train_batch_size": 8,\n  "zero_optimization": {stage: 2}}', ["not valid JSON", "line 2, column 25"]),
        ("[1, 2]", ["a DeepSpeed config is a JSON object, not a list"]),
    ],
)
def test_a_malformed_file_is_named_with_where_it_breaks(tmp_path, content, words):
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as raised:
        resolve(path, trainer(), 1, "fp32")
    assert str(raised.value).startswith(path)
    for word in words:
        assert word in str(raised.value)


def test_a_missing_file_lists_the_bundled_configs(tmp_path):
    with pytest.raises(ConfigError, match=r"'zero4' is neither a bundled config \(zero1, zero2, "):
        resolve("zero4", trainer(), 1, "fp32")


def test_without_deepspeed_the_run_stops_before_anything_loads_with_the_install_command(tiny_bert, tmp_path):
    """DeepSpeed made unimportable: one line with the install command, no run folder."""
    overrides = tiny_run_overrides(tiny_bert, tmp_path / "runs", "trainer=deepspeed")
    code = (
        "import sys; sys.modules['deepspeed'] = None\n"
        "from tunewright.cli import main\n"
        f"sys.exit(main(['train', *{overrides!r}]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "trainer.strategy=deepspeed needs DeepSpeed" in result.stderr
    assert "pip install --no-build-isolation -e '.[deepspeed]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
