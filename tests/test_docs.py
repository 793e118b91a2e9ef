"""The docs keep step with the code: every hookspec is documented with its full signature."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tunewright import hookspecs

DOCS = Path(__file__).parents[1] / "docs"
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("tunewright_"))


def docs_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in DOCS.rglob("*.md"))


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature(hook):
    signature = f"{hook}{inspect.signature(getattr(hookspecs, hook))}"
    assert signature in docs_text(), f"docs/ lacks `{signature}`"


def test_firstresult_hooks_are_marked_in_the_docs():
    text = docs_text()
    for hook in HOOKS:
        options = getattr(getattr(hookspecs, hook), "tunewright_spec", {})
        if options.get("firstresult"):
            line = next(line for line in text.splitlines() if f"{hook}(" in line)
            assert "firstresult" in line, hook


def test_readme_gives_the_two_commands_ci_runs():
    readme = (DOCS.parent / "README.md").read_text()
    ci = (DOCS.parent / ".ci" / "run").read_text()
    test_command = "bash scripts/setup.sh && .venv/bin/python -m pytest"
    assert test_command in readme and test_command in ci
    assert "bash scripts/setup.sh && .venv/bin/tunewright train" in readme
