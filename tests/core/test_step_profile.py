"""The step profile's arithmetic, on a real profiler trace of known operations: each
operator's time lands in one share, whole ranges keep their own Python, and the shares
add up to the wall time."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile, record_function

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "step_profile.py"
spec = importlib.util.spec_from_file_location("step_profile", SCRIPT)
step_profile = importlib.util.module_from_spec(spec)
spec.loader.exec_module(step_profile)


def test_operators_land_in_their_shares_and_the_shares_add_up():
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        torch.mm(a, b)  # outside any step: not counted
        with record_function("tw.step"):
            with record_function("tw.collate"):
                batch = torch.stack([a, b])
            torch.mm(a, b)
            torch.empty(10_000).bernoulli_(0.5)
            torch.relu(batch)
            with record_function("tw.clip"):
                torch.mm(a, b)  # inside clipping: clipping's, not matmul's
    events = profiler.events()
    step = next(event for event in events if event.name == "tw.step")
    mm_in_step = [e for e in events if e.name == "aten::mm" and step_profile.inside_step(e)]
    assert len(mm_in_step) == 2

    spent = step_profile.shares(events, step.cpu_time_total)

    direct_mm = next(e for e in mm_in_step if step_profile.range_of(e) is None)
    assert spent["matmul"] == pytest.approx(direct_mm.self_cpu_time_total)
    assert spent["dropout random numbers"] > 0 and spent["other tensor ops"] > 0
    clip = next(e for e in events if e.name == "tw.clip")
    assert spent["clipping"] == pytest.approx(clip.cpu_time_total)
    collate = next(e for e in events if e.name == "tw.collate")
    assert spent["collation"] == pytest.approx(collate.cpu_time_total)
    assert sum(spent.values()) == pytest.approx(step.cpu_time_total)
    assert set(spent) <= set(step_profile.ORDER)
