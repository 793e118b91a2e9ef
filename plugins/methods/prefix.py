"""``method=prefix``: prefix tuning (Li & Liang, 2021) for any model that takes a cache.

Every attention layer gets ``method.num_virtual_tokens`` trained key and value vectors
that each token can attend to, as if a trained prefix preceded the input; the model's
own weights stay frozen (the task head trains). PEFT's prefix tuning refuses
encoder classifiers under transformers 5 (it looks for a ``past_key_values``
argument that BERT now calls ``cache``); this implementation hands the prefixes to any
model as a pre-filled ``DynamicCache``, so encoders (BERT, RoBERTa, MiniLM) and
decoder classifiers (GPT-2, LLaMA) both work. ``model/`` holds the prefixes and head.
Prefixes extend the input, so they cannot be merged into the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from tunewright import hookimpl
from tunewright.plugins.methods.trained_weights import TrainedWeightsMethod, require_unpacked_text, train_only_head
from tunewright.schema import MethodConfig, knob


@dataclass
class PrefixConfig(MethodConfig):
    default_learning_rate: ClassVar[float] = 1e-2  # PEFT's prefix-tuning rate
    num_virtual_tokens: int = knob(16, low=1)  # prefix length per layer; longer: more capacity, longer attention


class PrefixTuned(nn.Module):
    """A frozen model whose attention layers all see a trained key/value prefix."""

    def __init__(self, model: nn.Module, num_virtual_tokens: int):
        super().__init__()
        self.model = model
        config = model.config
        self.layers = config.num_hidden_layers
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        # (layer, key/value, heads, prefix tokens, head dim), small so attention starts near the original.
        self.prefix = nn.Parameter(torch.randn(self.layers, 2, heads, num_virtual_tokens, head_dim) * 0.02)

    @property
    def config(self):
        return self.model.config

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        from transformers.cache_utils import DynamicCache

        batch = input_ids.shape[0]
        cache = DynamicCache(config=self.model.config)
        for layer in range(self.layers):
            keys, values = (self.prefix[layer, i].unsqueeze(0).expand(batch, -1, -1, -1) for i in (0, 1))
            cache.update(keys, values, layer)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        prefix_mask = attention_mask.new_ones(batch, self.prefix.shape[3])
        return self.model(
            input_ids=input_ids,
            attention_mask=torch.cat([prefix_mask, attention_mask], dim=1),
            cache=cache,
            use_cache=False,
            **kwargs,
        )


class Prefix(TrainedWeightsMethod):
    def apply(self, model, task):
        require_unpacked_text(task, "prefix", "adds trained attention keys and values before")
        if task.generates:  # PEFT's prefix tuning supports generation
            from peft import PrefixTuningConfig, get_peft_model

            config = PrefixTuningConfig(task_type=task.peft_task_type, num_virtual_tokens=self.cfg.num_virtual_tokens)
            return get_peft_model(model, config)
        train_only_head(model, task)
        return PrefixTuned(model, self.cfg.num_virtual_tokens)


@hookimpl
def tunewright_register_methods(registry):
    registry.add(
        "prefix",
        Prefix,
        schema=PrefixConfig,
        description="trained key/value prefixes in every attention layer (encoders and decoders)",
    )
