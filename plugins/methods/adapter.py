"""``method=adapter``: bottleneck adapters (Houlsby et al., 2019; Pfeiffer et al., 2021).

A small down-projection, non-linearity and up-projection is added after a sublayer's
output projection, before its residual connection: ``y + up(act(down(y)))``. The
up-projection starts at zero, so training starts from the pre-trained model exactly.
``method.placement=houlsby`` adds one after attention and one after the feed-forward
layer of every block; ``pfeiffer`` only after the feed-forward layer (half the
weights, about the same quality). Works for encoder, decoder, encoder-decoder and ViT
blocks: the output projections are found by name (table below). The backbone stays
frozen; adapters and the task head train; ``model/`` holds only those weights.
Adapters are non-linear, so they cannot be merged into the base weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tunewright import hookimpl
from tunewright.errors import ConfigError
from tunewright.plugins.methods.trained_weights import TrainedWeightsMethod, train_only_head
from tunewright.schema import MethodConfig, knob

# Output projections by family, matched as the end of a module's name.
ATTENTION_OUTPUTS = (
    "attention.output.dense",  # BERT, RoBERTa, MiniLM
    "attention.o_proj",  # ViT
    "attn.c_proj",  # GPT-2
    "self_attn.o_proj",  # LLaMA, Mistral, Qwen
    "SelfAttention.o",  # T5 (self-attention)
    "EncDecAttention.o",  # T5 (cross-attention)
    "self_attn.out_proj",  # BART, CLIP
    "attention.out_proj",  # wav2vec2, HuBERT, WavLM
)
FEED_FORWARD_OUTPUTS = (
    "output.dense",  # BERT (the attention's output.dense is excluded below)
    "mlp.c_proj",  # GPT-2
    "mlp.down_proj",  # LLaMA, Mistral, Qwen
    "DenseReluDense.wo",  # T5
    "fc2",  # BART, CLIP, ViT
    "feed_forward.output_dense",  # wav2vec2, HuBERT, WavLM
)
PLACEMENTS = {"houlsby": ATTENTION_OUTPUTS + FEED_FORWARD_OUTPUTS, "pfeiffer": FEED_FORWARD_OUTPUTS}


@dataclass
class AdapterConfig(MethodConfig):
    placement: str = knob(
        "houlsby", choices=("houlsby", "pfeiffer")
    )  # houlsby: after attention and feed-forward; pfeiffer: after feed-forward only
    reduction_factor: int = knob(16, low=1)  # bottleneck = hidden size / this; smaller: more weights, better fit
    activation: str = knob("gelu", choices=("gelu", "relu"))


class Bottleneck(nn.Module):
    """A wrapped output projection followed by a residual bottleneck adapter."""

    def __init__(self, projection: nn.Module, width: int, bottleneck: int, activation: str):
        super().__init__()
        self.projection = projection
        self.down = nn.Linear(width, bottleneck)
        self.activation = nn.GELU() if activation == "gelu" else nn.ReLU()
        self.up = nn.Linear(bottleneck, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    @property
    def weight(self) -> torch.Tensor:
        """The wrapped projection's weight (T5 reads its output layer's dtype from it)."""
        return self.projection.weight

    def forward(self, hidden: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        output = self.projection(hidden, *args, **kwargs)
        return output + self.up(self.activation(self.down(output)))


def output_width(module: nn.Module) -> int | None:
    """Output features of a ``Linear`` or of GPT-2's ``Conv1D`` (``nf``)."""
    if isinstance(module, nn.Linear):
        return module.out_features
    return getattr(module, "nf", None)


def adapter_targets(model: nn.Module, placement: str) -> list[str]:
    suffixes = PLACEMENTS[placement]
    targets = []
    for name, module in model.named_modules():
        if output_width(module) is None or not any(name.endswith(s) for s in suffixes):
            continue
        if placement == "pfeiffer" and name.endswith("attention.output.dense"):
            continue
        targets.append(name)
    return targets


class Adapter(TrainedWeightsMethod):
    def __init__(self, cfg: AdapterConfig):
        if cfg.placement not in PLACEMENTS:
            raise ConfigError(f"method.placement: {cfg.placement!r} is not one of {', '.join(PLACEMENTS)}")
        if cfg.activation not in ("gelu", "relu"):
            raise ConfigError(f"method.activation: {cfg.activation!r} is not one of gelu, relu")
        super().__init__(cfg)

    def apply(self, model, task):
        targets = adapter_targets(model, self.cfg.placement)
        if not targets:
            raise ConfigError(
                f"method=adapter: no output projections found in {type(model).__name__}; known names: "
                + ", ".join(PLACEMENTS[self.cfg.placement])
            )
        train_only_head(model, task)
        for name in targets:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            projection = getattr(parent, child)
            width = output_width(projection)
            bottleneck = max(1, width // self.cfg.reduction_factor)
            reference = next(projection.parameters())
            adapter = Bottleneck(projection, width, bottleneck, self.cfg.activation).to(
                reference.device, reference.dtype
            )
            setattr(parent, child, adapter)
        return model


@hookimpl
def tunewright_register_methods(registry):
    registry.add(
        "adapter",
        Adapter,
        schema=AdapterConfig,
        description="bottleneck adapters (Houlsby or Pfeiffer) after attention and/or feed-forward",
    )
