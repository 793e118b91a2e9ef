"""The :class:`Run` handed to every lifecycle and governance hook."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from tunewright.run_folder import RunFolder


@dataclass
class Run:
    """One training run: its resolved config, its folder and this process's place in it."""

    run_id: str
    config: DictConfig
    folder: RunFolder
    rank: int = 0
    world_size: int = 1

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0
