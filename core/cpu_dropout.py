"""Dropout for training on the CPU whose random mask costs a third of PyTorch's.

PyTorch's CPU dropout draws one number per element from a sequential Mersenne Twister
(``aten::bernoulli_``): in a LoRA step on all-MiniLM-L6-v2 on the 2-core development
machine that was 21.7% of the step, nearly as much as every other non-matmul operator
together (``benchmarks/step_profile.py trainer.dropout_kernel=native``). :class:`CpuDropout`
draws one 64-bit number for every four elements and keeps an element when its 16-bit
lane clears a threshold, so the keep probability is ``1 - p`` rounded to a multiple of
1/65,536 (p=0.1 keeps 0.899994 instead of 0.9) and kept values are scaled by its exact
inverse, so expectations are unchanged. The numbers come from the default generator,
like PyTorch's dropout, so a seeded run repeats and a resumed run continues exactly.

Dropout inside fused attention (``scaled_dot_product_attention(dropout_p=...)``) is not
a module and keeps PyTorch's kernel. On other devices, in evaluation, and for in-place
dropout the module is PyTorch's own.
"""

from __future__ import annotations

import torch

LANES = 65536  # the values one 16-bit lane takes


class CpuDropout(torch.nn.Dropout):
    """:class:`torch.nn.Dropout` with the cheaper mask on the CPU (see the module docstring)."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.inplace or inputs.device.type != "cpu" or not 0.0 < self.p < 1.0:
            return super().forward(inputs)
        dropped = round(self.p * LANES)
        count = inputs.numel()
        words = torch.empty((count + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
        # Lanes are uniform over [-32768, 32767]: P(lane >= dropped - 32768) = 1 - dropped / 65536.
        keep = words.view(torch.int16)[:count].view(inputs.shape) >= dropped - LANES // 2
        scale = LANES / (LANES - dropped)
        if inputs.dtype in (torch.float32, torch.float64):
            # One multiply forward and one backward by a scaled mask: a third less time
            # than multiplying by the boolean mask and the scale separately.
            return inputs * keep.to(inputs.dtype).mul_(scale)
        # bf16/fp16: a scaled mask would round the scale itself (1/0.9 to 1.109 in bf16),
        # shrinking every kept value alike; scaling each product rounds without bias.
        return inputs * keep * scale


def use_cpu_dropout(model: torch.nn.Module) -> int:
    """Replace every plain :class:`torch.nn.Dropout` in ``model`` (the model's own and a
    tuning method's, such as LoRA's) by a :class:`CpuDropout` of the same probability;
    returns how many were replaced. Dropout has no weights, so nothing saved changes."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Dropout:
                setattr(parent, name, CpuDropout(child.p, child.inplace).train(child.training))
                replaced += 1
    return replaced
