"""The CPU dropout kernel: PyTorch's dropout in distribution, cheaper in random numbers."""

from __future__ import annotations

import math

import pytest
import torch

from tests.toy import Linear, make_trainer
from tunewright.cpu_dropout import LANES, CpuDropout, use_cpu_dropout


def keep_probability(p: float) -> float:
    return 1 - round(p * LANES) / LANES


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keeps_its_share_of_every_lane_and_preserves_the_mean(p):
    torch.manual_seed(0)
    count = 400_000
    output = CpuDropout(p)(torch.ones(count))
    kept = output != 0
    scale = 1 / keep_probability(p)
    assert torch.allclose(output[kept], torch.full_like(output[kept], scale))
    tolerance = 5 * math.sqrt(p * (1 - p) / (count / 4))  # five standard errors of one lane's share
    for lane in range(4):  # each 16-bit quarter of the 64-bit draws is uniform on its own
        assert abs(kept[lane::4].float().mean().item() - keep_probability(p)) < tolerance
    assert abs(output.mean().item() - 1) < 5 * math.sqrt((scale - 1) / count)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_scales_each_kept_value_without_a_rounded_scale(dtype):
    torch.manual_seed(0)
    inputs = (torch.rand(400_000) + 0.5).to(dtype)  # values spread over a binade and a half
    output = CpuDropout(0.1)(inputs)
    assert output.dtype == dtype
    kept = output != 0
    ratio = (output[kept].double() / inputs[kept].double()).mean().item()
    # Rounding each product averages out; a scale rounded once into a bf16 mask would be
    # 1.109375 against 1.111118, 0.16% low for every kept value.
    assert ratio == pytest.approx(1 / keep_probability(0.1), rel=2e-4)


def test_masks_repeat_with_the_seed_and_differ_between_draws():
    dropout = CpuDropout(0.3)
    torch.manual_seed(7)
    first, second = dropout(torch.ones(1000)), dropout(torch.ones(1000))
    torch.manual_seed(7)
    assert torch.equal(dropout(torch.ones(1000)), first)
    assert not torch.equal(first, second)


def test_gradient_flows_through_kept_elements_only():
    inputs = torch.randn(64, 48, requires_grad=True)
    output = CpuDropout(0.25)(inputs)
    output.sum().backward()
    expected = (output != 0).float() / keep_probability(0.25)
    assert torch.equal(inputs.grad, expected)


def test_evaluation_other_probabilities_and_in_place_use_pytorchs_dropout():
    inputs = torch.randn(8, 8)
    assert torch.equal(CpuDropout(0.5).eval()(inputs), inputs)
    assert torch.equal(CpuDropout(0.0)(inputs), inputs)
    assert torch.equal(CpuDropout(1.0)(inputs), torch.zeros_like(inputs))
    torch.manual_seed(1)
    native = torch.nn.functional.dropout(inputs.clone(), 0.5, True, inplace=True)
    torch.manual_seed(1)
    assert torch.equal(CpuDropout(0.5, inplace=True)(inputs.clone()), native)


def test_replaces_the_models_and_the_adapters_dropout_and_changes_nothing_saved(tiny_bert):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3)
    model = get_peft_model(base, LoraConfig(r=4, lora_dropout=0.1, target_modules=["query", "value"]))
    model.eval()
    ids = torch.randint(5, 1000, (2, 9))
    before, keys = model(input_ids=ids).logits, set(model.state_dict())
    plain = sum(type(module) is torch.nn.Dropout for module in model.modules())

    assert use_cpu_dropout(model) == plain > 4  # 2 layers x (LoRA on query and value, hidden, output) + ...
    assert not any(type(module) is torch.nn.Dropout for module in model.modules())
    assert all(not module.training for module in model.modules() if isinstance(module, CpuDropout))
    assert torch.equal(model(input_ids=ids).logits, before)
    assert set(model.state_dict()) == keys


@pytest.mark.parametrize(("kernel", "expected"), [("auto", CpuDropout), ("native", torch.nn.Dropout)])
def test_the_trainer_uses_the_cpu_kernel_unless_told_not_to(tmp_path, kernel, expected):
    trainer, _ = make_trainer(tmp_path, Linear(dropout=0.2), dropout_kernel=kernel)
    assert type(trainer.model.dropout) is expected
