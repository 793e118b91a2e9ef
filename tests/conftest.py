"""Shared fixtures: offline hub, tiny models built from configs, isolated plugin state."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A 2-layer random BERT with MiniLM's tokenizer, saved like any local checkpoint."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from tunewright.embedded import resolve_model_path

    directory = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("embedded:all-MiniLM-L6-v2"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_gpt2(directory: Path, **config) -> Path:
    """A 2-layer random GPT-2 with MiniLM's tokenizer ([SEP] as end of sequence), saved in
    ``directory``; ``config`` overrides GPT2Config fields (dropout, say)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config

    from tunewright.embedded import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("embedded:all-MiniLM-L6-v2"), eos_token="[SEP]")
    torch.manual_seed(0)
    sizes = {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 128}
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    model = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=tokenizer.vocab_size, **sizes, **ids, **config))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


def tiny_run_overrides(model_dir, runs_dir, *extra: str) -> list[str]:
    """Overrides for a seconds-long run of the tiny model on a slice of the bundled data."""
    return [
        "model=bert",
        f"model.name_or_path={model_dir}",
        "model.max_length=32",
        "data.limit=60",
        "trainer.max_epochs=1",
        "trainer.progress_bar=false",
        f"paths.runs_dir={runs_dir}",
        *extra,
    ]


def tiny_lm_overrides(model_dir, runs_dir, run_id: str, *extra: str) -> list[str]:
    """Overrides for a seconds-long SFT run of the tiny GPT-2 on a slice of the bundled data."""
    return [
        "experiment=sft",
        f"model.name_or_path={model_dir}",
        "model.max_length=48",
        "model.max_new_tokens=4",
        "data.limit=40",
        "trainer.max_epochs=1",
        "trainer.progress_bar=false",
        f"paths.runs_dir={runs_dir}",
        f"paths.run_id={run_id}",
        *extra,
    ]


def make_distribution(root: Path, dist: str, entry_points: dict[str, str]) -> None:
    """A minimal installed distribution: a dist-info folder importlib.metadata finds on sys.path."""
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[tunewright]\n{lines}")


SLOW_STEPS = """
import time
from tunewright import hookimpl

@hookimpl
def tunewright_train_step_end(run, step, metrics):
    time.sleep({seconds})  # slow enough to be killed, or joined, mid-run
"""


def slow_steps_plugin(root: Path, seconds: float) -> Path:
    """A folder to put on PYTHONPATH: an installed plugin that sleeps after every step."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "slow_steps.py").write_text(SLOW_STEPS.format(seconds=seconds))
    make_distribution(root, "slow-steps", {"slow_steps": "slow_steps"})
    return root


def with_pythonpath(folder: Path) -> dict[str, str]:
    """This process's environment with ``folder`` first on PYTHONPATH, keeping what was there."""
    import os

    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


def write_csv(path: Path, rows: list[dict]) -> Path:
    """``rows`` as a CSV file with a header of the first row's keys; returns ``path``."""
    import csv

    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def free_port() -> int:
    """A loopback port nothing listens on, for a server a test starts."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


TESTS = Path(__file__).parent  # toy.py and the other helpers torchrun workers import


def torchrun(script: str, *args: str, nproc: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
    """``script`` in ``nproc`` processes under torch's launcher (Gloo on this CPU)."""
    environment = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", script, *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )
