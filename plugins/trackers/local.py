"""``local``: the run folder's ``metrics.jsonl``, one JSON line per logged step or evaluation.

Always active: the run folder is the complete record and needs no account anywhere.
"""

from __future__ import annotations

from tunewright import hookimpl
from tunewright.contracts import Tracker


class LocalTracker(Tracker):
    """Appends lifecycle metrics to ``<run folder>/metrics.jsonl``."""

    def __init__(self, run):
        self.folder = run.folder

    @hookimpl
    def tunewright_train_step_end(self, run, step, metrics):
        self.folder.append_metrics({"event": "train", "step": step, **metrics})

    @hookimpl
    def tunewright_eval_end(self, run, split, step, metrics):
        self.folder.append_metrics({"event": "eval", "split": split, "step": step, **metrics})


@hookimpl
def tunewright_register_trackers(registry):
    registry.add("local", lambda cfg, run: LocalTracker(run), description="metrics.jsonl in the run folder (always on)")
