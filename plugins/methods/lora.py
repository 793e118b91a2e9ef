"""``method=lora``: low-rank adapters through PEFT; ``model/`` holds only the adapter
(and the task head), loadable with ``peft.PeftModel.from_pretrained``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from tunewright import hookimpl
from tunewright.schema import MethodConfig

# PEFT calls a transformers method that transformers 5 deprecates; nothing a user can act on.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


@dataclass
class LoraConfig(MethodConfig):
    r: int = 8  # adapter rank; higher: more trainable weights, more memory
    alpha: int = 16  # scaling is alpha / r (alpha / sqrt(r) with rslora)
    dropout: float = 0.1
    # Module names to adapt; "all-linear" adapts every linear layer but the output head.
    target_modules: Any = "all-linear"
    use_dora: bool = False  # weight-decomposed LoRA: a little better, slower steps
    use_rslora: bool = False  # rank-stabilised scaling, for high ranks
    modules_to_save: Optional[list[str]] = None  # extra modules trained in full


class Lora:
    def __init__(self, cfg: LoraConfig):
        self.cfg = cfg

    def apply(self, model, task):
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        target = self.cfg.target_modules
        peft_config = PeftLoraConfig(
            task_type=task.peft_task_type,
            r=self.cfg.r,
            lora_alpha=self.cfg.alpha,
            lora_dropout=self.cfg.dropout,
            target_modules=target if isinstance(target, str) else list(target),
            use_dora=self.cfg.use_dora,
            use_rslora=self.cfg.use_rslora,
            modules_to_save=list(self.cfg.modules_to_save) if self.cfg.modules_to_save else None,
        )
        return get_peft_model(model, peft_config)

    def save(self, model, directory: Path) -> None:
        model.save_pretrained(directory, safe_serialization=True)

    def load(self, task, label_names: list[str], directory: Path):
        from peft import PeftModel

        return PeftModel.from_pretrained(task.load_pretrained(label_names), str(directory))

    @staticmethod
    def merge(model):
        """Fold each adapter into its base weight (W + B A * scale): a plain transformers model."""
        return model.merge_and_unload()


@hookimpl
def tunewright_register_methods(registry):
    registry.add("lora", Lora, schema=LoraConfig, description="low-rank adapters (PEFT), DoRA and rsLoRA options")
