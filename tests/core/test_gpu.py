"""The CUDA paths, run for real on a machine with a GPU (skipped, with the reason, without).

QLoRA runs in ``test_methods.py``'s conformance table whenever CUDA is present; here the
trainer's own CUDA choices: bf16 autocast under ``precision=auto``, fused AdamW, the
MFU estimate, and evaluation in the training precision.
"""

from __future__ import annotations

import pytest
import torch
from toy import Linear, features, make_trainer

from tunewright.precision import autocast_dtype

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_auto_precision_is_bf16_or_fp16_on_cuda():
    dtype = autocast_dtype("auto", torch.device("cuda"))
    assert dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def test_training_on_cuda_uses_fused_adamw_and_autocast_and_learns(tmp_path, monkeypatch):
    seen = {}
    original = torch.optim.AdamW

    def recording(*args, **kwargs):
        optimizer = original(*args, **kwargs)
        seen["fused"] = optimizer.defaults.get("fused")
        return optimizer

    monkeypatch.setattr(torch.optim, "AdamW", recording)
    trainer, hook = make_trainer(tmp_path, Linear(), device="cuda", precision="auto", max_epochs=3)
    assert trainer.dtype in (torch.bfloat16, torch.float16)
    train = features(96)
    before, _ = trainer.evaluate(train)
    result = trainer.fit(train, features(32, seed=1))
    after, _ = trainer.evaluate(train)
    assert seen["fused"] is True
    assert result.completed and after["accuracy"] > before["accuracy"]
    steps = [kwargs["metrics"] for name, kwargs in hook.calls if name == "tunewright_train_step_end"]
    assert steps and all(metric["peak_memory_mb"] >= metric["memory_mb"] > 0 for metric in steps)
