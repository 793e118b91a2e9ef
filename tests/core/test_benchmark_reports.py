"""The arithmetic of the speed benchmarks' reports: the step profile on a real profiler
trace of known operations (each operator's time lands in one share, whole ranges keep
their own Python, the shares add up to the wall time), and compile time against steady
steps."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile, record_function

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "step_profile.py"


def load_benchmark(name: str):
    """A script from benchmarks/ as a module (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPT.with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


step_profile = load_benchmark("step_profile")


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


def test_compile_cost_separates_compile_time_from_steady_steps():
    compile_cost = load_benchmark("compile_cost")
    eager = [0.2] * 10
    compiled = [30.0, 0.1, 5.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]  # a compile, one recompile, then 0.1 s
    result = compile_cost.summary(eager, compiled)
    assert result["first_step_s"] == 30.0 and result["slow_steps"] == 2
    assert result["compile_overhead_s"] == pytest.approx(29.9 + 4.9)
    assert result["steady_speedup"] == pytest.approx(2.0)
    assert result["break_even_steps"] == pytest.approx(34.8 / 0.1)  # steps of 0.1 s saved each
    assert compile_cost.summary(eager, [1.0] + [0.3] * 9)["break_even_steps"] == float("inf")
