"""The docs keep step with the code: every hookspec is documented with its full signature,
and the output the README and docs show is what the commands print."""

from __future__ import annotations

import contextlib
import inspect
from pathlib import Path

import pytest

from tunewright import hookspecs

DOCS = Path(__file__).parents[2] / "docs"
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
    test_command = "bash scripts/setup.sh && .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/python -m pytest"
    assert test_command in readme and test_command in ci
    assert "bash scripts/setup.sh && .venv/bin/tunewright train" in readme


def documented_train_commands() -> list[tuple[str, list[str]]]:
    """Every ``tunewright train`` command in a code block of the method and model pages,
    continuation lines joined, as (page, overrides)."""
    import shlex

    commands = []
    for page in sorted([DOCS / "methods.md", *(DOCS / "methods").glob("*.md"), *(DOCS / "models").glob("*.md")]):
        text = page.read_text(encoding="utf-8").replace("\\\n", " ")
        for block in text.split("```")[1::2]:
            for line in block.splitlines():
                if line.strip().startswith("tunewright train"):
                    words = shlex.split(line, comments=True)
                    commands.append((page.name, words[2:]))
    return commands


@pytest.mark.parametrize(("page", "overrides"), documented_train_commands())
def test_documented_train_commands_compose(page, overrides):
    """The commands the docs give are accepted as written: every group option and key
    exists and every value fits its schema."""
    from tunewright.config import compose_config
    from tunewright.plugin_manager import get_plugins

    assert compose_config(overrides, get_plugins()) is not None


def test_every_method_and_model_has_a_page():
    from tunewright.plugin_manager import get_plugins

    registries = get_plugins().registries
    pages = {path.stem for path in (DOCS / "methods").glob("*.md")} | {
        path.stem for path in (DOCS / "models").glob("*.md")
    }
    overview = (DOCS / "methods.md").read_text(encoding="utf-8")
    for name in registries["methods"].names():
        assert name in pages, f"docs/methods/{name}.md is missing"
    for name in registries["models"].names():
        assert f"`{name}`" in overview, f"docs/methods.md does not list model={name}"


def shown_outputs() -> list[tuple[str, str, str]]:
    """Every ``$ tunewright ...`` line in a code block of the README and the docs, with
    the line the page shows it printing, as (page, command, shown line). Illustrations
    (a ``<placeholder>`` in the command, ``...`` in what it shows) are not literal
    output and are left to the tests of their feature."""
    examples = []
    for page in sorted([DOCS.parent / "README.md", *DOCS.rglob("*.md")]):
        for block in page.read_text(encoding="utf-8").split("```")[1::2]:
            lines = block.splitlines()
            for position, line in enumerate(lines[:-1]):
                literal = "<" not in line and "..." not in lines[position + 1]
                if line.startswith("$ tunewright ") and literal:
                    examples.append((page.name, line[2:], lines[position + 1]))
    return examples


@pytest.mark.parametrize(("page", "command", "shown"), shown_outputs())
def test_shown_output_is_what_the_command_prints(page, command, shown, capsys):
    import shlex

    from tunewright.cli import main

    with contextlib.suppress(SystemExit):  # Hydra's job exits with the status
        main(shlex.split(command)[1:])
    captured = capsys.readouterr()
    printed = (captured.err or captured.out).splitlines()
    assert printed[:1] == [shown], f"{page}: {command}"


def summary_labels(lines: list[str]) -> list[str]:
    """The labels of a ``tunewright train`` summary, in order ("run folder", "bias
    audit", ...); the blocked-by lines under the audit line come and go with its verdict."""
    return [line.split(":")[0] for line in lines if line.strip() and not line.startswith("  blocked by:")]


def test_the_readme_shows_the_train_summary_as_it_is_printed(tiny_bert, tmp_path, capsys):
    from conftest import tiny_run_overrides

    from tunewright.cli import main

    readme = (DOCS.parent / "README.md").read_text()
    shown = readme.split("It prints:\n\n```\n", 1)[1].split("```", 1)[0].splitlines()
    assert main(["train", *tiny_run_overrides(tiny_bert, tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert summary_labels(shown) == summary_labels(printed)
    width = len("trainable parameters: ")  # values start in one column
    assert all(line[width - 1] == " " and line[width] != " " for line in shown + printed if not line.startswith("  "))
