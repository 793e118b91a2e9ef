"""Methods through PEFT: ``lora`` (with DoRA and rsLoRA), ``qlora``, ``ia3`` and ``prompt``.

All share one shape: build a PEFT config for the task's PEFT task type, wrap the model
with ``get_peft_model`` (which also trains and saves the task head), save only the
adapter (``model/`` loads with ``peft.PeftModel.from_pretrained``), and, where the
maths allows (LoRA, IA3: both are linear in the weights), merge into a plain model.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

from tunewright import hookimpl
from tunewright.contracts import Method
from tunewright.errors import ConfigError
from tunewright.plugins.methods.trained_weights import require_unpacked_text
from tunewright.schema import MethodConfig, knob

# PEFT calls a transformers method that transformers 5 deprecates; nothing a user can act on.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


class PeftMethod(Method):
    """Save and load for every PEFT method; subclasses build the PEFT config."""

    def __init__(self, cfg):
        self.cfg = cfg

    def peft_config(self, task, model):
        raise NotImplementedError

    def apply(self, model, task):
        from peft import get_peft_model

        return get_peft_model(model, self.peft_config(task, model))

    @staticmethod
    def modules_to_save(task, extra=None) -> list[str] | None:
        """Modules PEFT trains and saves in full: the user's ``extra``, and the task head
        when PEFT has no task type that knows it (image classifiers)."""
        names = [*(extra or []), *((task.head_modules or ()) if task.peft_task_type is None else ())]
        return names or None

    def save(self, model, directory: Path) -> None:
        model.save_pretrained(directory, safe_serialization=True)

    def load(self, task, label_names: list[str], directory: Path):
        from peft import PeftModel

        return PeftModel.from_pretrained(task.load_pretrained(label_names, **self.load_options()), str(directory))

    shares_base = True  # a PeftModel holds several adapters and switches between them

    def load_beside(self, model, directory: Path, name: str) -> None:
        model.load_adapter(str(directory), adapter_name=name)

    def activate(self, model, name: str) -> None:
        model.set_adapter(name)


class MergeablePeftMethod(PeftMethod):
    can_merge = True

    def merge(self, model):
        """Fold the adapter into the base weights: a plain transformers model."""
        return model.merge_and_unload()


@dataclass
class LoraConfig(MethodConfig):
    r: int = knob(8, low=1)  # adapter rank; higher: more trainable weights, more memory
    alpha: int = knob(16, low=1)  # scaling is alpha / r (alpha / sqrt(r) with rslora)
    dropout: float = knob(0.1, low=0, high=1, high_open=True)
    # Module names to adapt; "all-linear" adapts every linear layer but the output head (a
    # network without any, such as ResNet: every convolution; a vision-language model: its
    # language model's).
    target_modules: Any = "all-linear"
    use_dora: bool = False  # weight-decomposed LoRA: a little better, slower steps
    use_rslora: bool = False  # rank-stabilised scaling, for high ranks
    modules_to_save: Optional[list[str]] = None  # extra modules trained in full


class Lora(MergeablePeftMethod):
    def peft_config(self, task, model):
        from peft import LoraConfig as PeftLoraConfig

        target = self.cfg.target_modules
        heads = list(task.head_modules or ())
        if target == "all-linear" and task.adapted_module:
            target = [
                name for name in linear_layers_outside(model, heads) if name.startswith(task.adapted_module + ".")
            ]
        elif target == "all-linear":
            outside = linear_layers_outside(model, heads)
            if not outside:
                target = convolutions(model)  # a convolutional network (ResNet): adapt every convolution
            elif heads:  # the head trains in full: every other linear layer is named (PEFT's own
                target = outside  # expansion would list a head named lm_head, which its save takes for an embedding)
        return PeftLoraConfig(
            task_type=task.peft_task_type,
            r=self.cfg.r,
            lora_alpha=self.cfg.alpha,
            lora_dropout=self.cfg.dropout,
            target_modules=target if isinstance(target, str) else list(target),
            use_dora=self.cfg.use_dora,
            use_rslora=self.cfg.use_rslora,
            modules_to_save=self.modules_to_save(task, self.cfg.modules_to_save),
        )


def linear_layers_outside(model, heads: list[str]) -> list[str]:
    """Names of the ``nn.Linear`` layers that are not inside one of the ``heads`` modules."""
    from torch import nn

    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and not any(name == h or name.startswith(h + ".") for h in heads)
    ]


def convolutions(model) -> list[str]:
    from torch import nn

    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


@dataclass
class QLoraConfig(LoraConfig):
    default_learning_rate: ClassVar[float] = 2e-4  # the QLoRA paper's rate for its 4-bit runs
    compute_dtype: str = knob("bfloat16", choices=("bfloat16", "float16"))  # the dtype 4-bit weights are computed in


class QLora(Lora):
    """LoRA on a 4-bit NF4-quantised base (Dettmers et al., 2023): CUDA and bitsandbytes only.

    Checked when the method is built, before any model is loaded."""

    def __init__(self, cfg: QLoraConfig):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "method=qlora quantises the base model with bitsandbytes, which needs a CUDA GPU; "
                "this machine has none. Use method=lora"
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError("method=qlora needs bitsandbytes: pip install bitsandbytes")
        if cfg.compute_dtype not in ("bfloat16", "float16"):
            raise ConfigError(f"method.compute_dtype: {cfg.compute_dtype!r} is not one of bfloat16, float16")
        super().__init__(cfg)

    def load_options(self) -> dict[str, Any]:
        import torch
        from transformers import BitsAndBytesConfig

        return {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=getattr(torch, self.cfg.compute_dtype),
            )
        }

    def apply(self, model, task):
        from peft import prepare_model_for_kbit_training

        return super().apply(prepare_model_for_kbit_training(model), task)

    can_merge = False  # a 4-bit base cannot take merged weights


@dataclass
class IA3Config(MethodConfig):
    default_learning_rate: ClassVar[float] = 3e-3  # T-Few's rate for (IA)^3 vectors
    target_modules: Any = None  # default: PEFT's choice per model family (keys, values, feed-forward)
    feedforward_modules: Any = None


class IA3(MergeablePeftMethod):
    """(IA)^3 (Liu et al., 2022): learned rescaling vectors on keys, values and feed-forward."""

    def peft_config(self, task, model):
        from peft import IA3Config as PeftIA3Config

        def names(value):
            return None if value is None else (value if isinstance(value, str) else list(value))

        targets, feedforward = names(self.cfg.target_modules), names(self.cfg.feedforward_modules)
        if targets is None:
            targets, feedforward = ia3_defaults(model)
        return PeftIA3Config(
            task_type=task.peft_task_type,
            target_modules=targets,
            feedforward_modules=feedforward,
            modules_to_save=self.modules_to_save(task),
        )


# Keys, values and feed-forward outputs by module name, for models PEFT has no IA3
# defaults for (ViT, CLIP, ...): the first set whose names the model has is used.
IA3_NAME_SETS = (
    (["k_proj", "v_proj", "fc2"], ["fc2"]),  # ViT, CLIP, and other q/k/v-projection families
    (["key", "value", "output.dense"], ["output.dense"]),  # BERT-style blocks (DeiT, ...)
    (["k_proj", "v_proj", "feed_forward.output_dense"], ["feed_forward.output_dense"]),  # wav2vec2, HuBERT
)


def ia3_defaults(model) -> tuple[list[str] | None, list[str] | None]:
    """``(target_modules, feedforward_modules)`` for ``model``: PEFT's own choice (``None``)
    where it has one, else the first of :data:`IA3_NAME_SETS` the model has, else a
    clear error (ResNet and other convolutional networks)."""
    from peft.utils import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as KNOWN

    if model.config.model_type in KNOWN:
        return None, None
    module_names = [name for name, _ in model.named_modules()]
    for targets, feedforward in IA3_NAME_SETS:
        if all(any(name.endswith(target) for name in module_names) for target in targets):
            return targets, feedforward
    raise ConfigError(
        f"method=ia3 has no default modules for {model.config.model_type} models; set "
        "method.target_modules and method.feedforward_modules (module names), or use method=lora"
    )


@dataclass
class PromptConfig(MethodConfig):
    default_learning_rate: ClassVar[float] = 3e-2  # a few embeddings learn slowly: PEFT's prompt-tuning rate
    num_virtual_tokens: int = knob(16, low=1)  # trained embeddings prepended to every input; longer: more capacity


class Prompt(PeftMethod):
    """Prompt tuning (Lester et al., 2021): trained input embeddings; nothing to merge."""

    def peft_config(self, task, model):
        from peft import PromptTuningConfig

        require_unpacked_text(task, "prompt", "prepends virtual tokens to")
        return PromptTuningConfig(task_type=task.peft_task_type, num_virtual_tokens=self.cfg.num_virtual_tokens)


@hookimpl
def tunewright_register_methods(registry):
    registry.add("lora", Lora, schema=LoraConfig, description="low-rank adapters (PEFT), DoRA and rsLoRA options")
    registry.add("qlora", QLora, schema=QLoraConfig, description="LoRA on a 4-bit base (CUDA + bitsandbytes)")
    registry.add("ia3", IA3, schema=IA3Config, description="(IA)^3 rescaling vectors (PEFT)")
    registry.add("prompt", Prompt, schema=PromptConfig, description="prompt tuning: trained virtual tokens (PEFT)")
