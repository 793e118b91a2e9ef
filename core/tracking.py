"""Start and stop the configured trackers around a run or a monitoring command.

A tracker part's factory gets its node of the ``tracker`` config (``tracker.wandb``)
and the :class:`~tunewright.run.Run`, and returns an object whose hook implementations
are registered for as long as the run lasts (a :class:`~tunewright.contracts.Tracker`);
its ``close()`` is called at the end, success or failure.
"""

from __future__ import annotations

from typing import Any

from tunewright.run import Run
from tunewright.schema import part_options


def start_trackers(run: Run, plugins) -> list[Any]:
    """Register each configured tracker (``local`` always) for the length of the run."""
    registry = plugins.registries["trackers"]
    names = ["local", *(name for name in run.config.tracker.names if name != "local")]
    trackers = []
    for name in names:
        tracker = registry.create(name, part_options(run.config.tracker, registry, name), run)
        plugins.manager.register(tracker, name=f"tracker:{name}:{run.run_id}")
        trackers.append(tracker)
    return trackers


def stop_trackers(trackers: list[Any], plugins) -> None:
    """Unregister the trackers and let each close (finish uploads, flush files)."""
    for tracker in trackers:
        plugins.manager.unregister(tracker)
        tracker.close()
