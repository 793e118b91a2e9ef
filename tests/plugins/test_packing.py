"""Sequence packing for decoder fine-tuning: packed rows give every example exactly the
logits and loss it has alone (no example sees another), with fewer padded tokens; the
combinations that cannot pack are refused with the reason."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from conftest import save_tiny_gpt2
from omegaconf import OmegaConf
from test_methods import tiny_config

from tunewright.errors import ConfigError
from tunewright.plugin_manager import get_plugins
from tunewright.plugins.models.causal_lm import IGNORE

EXAMPLES = [
    {"text": "where is my parcel", "response": "it ships tomorrow"},
    {"text": "hi", "response": "hello"},
    {"text": "cancel the order I placed yesterday evening", "response": "done"},
    {"text": "refund", "response": "your refund is on its way to the card you paid with"},
]


def task_for(directory, kind="causal_lm", **options):
    plugins = get_plugins()
    schema = plugins.registries["models"].get(kind).schema
    return plugins.registries["models"].build(
        OmegaConf.structured(schema(kind=kind, name_or_path=str(directory), **options))
    )


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def decoder(request, tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunewright.embedded import resolve_model_path

    directory = tmp_path_factory.mktemp(f"packing-{request.param}")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("embedded:all-MiniLM-L6-v2"), eos_token="[SEP]")
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(tiny_config(request.param, tokenizer.vocab_size)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_packed_rows_reproduce_each_example_alone(decoder):
    packed_task = task_for(decoder, packing=True, max_length=40)
    plain_task = task_for(decoder, max_length=40)
    model = packed_task.load_pretrained([])  # checks isolation on the loaded model
    model.eval()
    features = packed_task.encode(EXAMPLES)
    packed = packed_task.collate(features)
    plain = plain_task.collate(features)
    assert packed["input_ids"].shape[0] < len(EXAMPLES)  # examples share rows
    assert packed["input_ids"].numel() < plain["input_ids"].numel()  # with less padding
    with torch.no_grad():
        packed_logits = model(**{k: v for k, v in packed.items() if k != "labels"}).logits
        plain_logits = model(**{k: v for k, v in plain.items() if k != "labels"}).logits
    assert packed_task.loss_count(packed) == plain_task.loss_count(plain)
    torch.testing.assert_close(
        packed_task.loss_sum(packed_logits, packed), plain_task.loss_sum(plain_logits, plain), atol=1e-4, rtol=1e-4
    )
    # Each example's logits, found where it was packed (a block starts where positions restart), equal its logits alone.
    blocks = [
        (row, start)
        for row, positions in enumerate(packed["position_ids"].tolist())
        for start, position in enumerate(positions)
        if position == 0
    ]
    for index, feature in enumerate(features):
        length = len(feature["input_ids"])
        row, start = next(
            (r, s) for r, s in blocks if packed["input_ids"][r, s : s + length].tolist() == feature["input_ids"]
        )
        torch.testing.assert_close(
            packed_logits[row, start : start + length], plain_logits[index, :length], atol=1e-4, rtol=1e-4
        )
        assert packed["labels"][row, start].item() == IGNORE


def test_a_model_that_lets_packed_examples_mix_is_refused(decoder):
    class Leaky(torch.nn.Module):  # each position's logits sum every earlier token: it ignores position ids
        def forward(self, input_ids, position_ids=None):
            return SimpleNamespace(logits=torch.nn.functional.one_hot(input_ids, 8).float().cumsum(1))

    with pytest.raises(ConfigError, match="lets packed examples attend to each other"):
        task_for(decoder, packing=True, max_length=64)._check_packing_isolation(Leaky())


@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_methods_with_virtual_tokens_refuse_packing(decoder, method):
    plugins = get_plugins()
    task = task_for(decoder, packing=True, max_length=64)
    schema = plugins.registries["methods"].get(method).schema
    built = plugins.registries["methods"].build(OmegaConf.structured(schema(kind=method)))
    with pytest.raises(ConfigError, match="only the first packed example would see"):
        built.apply(task.load_pretrained([]), task)


def test_encoder_decoders_refuse_packing(tmp_path):
    with pytest.raises(ConfigError, match="packing=true is for decoders"):
        task_for(tmp_path, kind="seq2seq_lm", packing=True)


def test_a_packed_run_learns_what_an_unpacked_run_learns(tmp_path):
    """Same data, seed and steps, without dropout: packing changes the batches' layout,
    not the gradients, so both runs end at the same test loss."""
    import json

    from tunewright.cli import main

    save_tiny_gpt2(tmp_path / "gpt2", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    losses, throughput = {}, {}
    for packing, name in (("false", "plain"), ("true", "packed")):
        overrides = [
            "experiment=sft",
            f"model.name_or_path={tmp_path / 'gpt2'}",
            "model.max_length=96",
            f"model.packing={packing}",
            "model.generate_test_examples=0",
            "method=full",
            "data.limit=60",
            "trainer.max_epochs=1",
            "trainer.learning_rate=1e-3",
            "trainer.progress_bar=false",
            f"paths.runs_dir={tmp_path}",
            f"paths.run_id={name}",
        ]
        assert main(["train", *overrides]) == 0
        results = json.loads((tmp_path / name / "results.json").read_text())
        losses[packing], throughput[packing] = results["test"]["loss"], results["train"]["tokens_per_second"]
    assert losses["true"] == pytest.approx(losses["false"], abs=1e-3), losses
    assert throughput["true"] > 0
