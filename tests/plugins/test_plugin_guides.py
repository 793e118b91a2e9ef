"""Each plugin guide's code blocks are a complete package: assembled from the page, they
match the worked example kept in the repository, install with pip, and train."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import tiny_run_overrides
from plugin_guides import BLOCK, DOCS, ROOT, build, guide_files, pip_install


def tunewright(args: list[str], site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "tunewright", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_the_domain_guide_is_the_example_package_file_for_file():
    files = guide_files("writing-a-domain-plugin.md")
    example = ROOT / "examples"
    tracked = subprocess.run(
        ["git", "ls-files", "tunewright-support-tickets"], cwd=example, capture_output=True, text=True
    )
    expected = sorted(tracked.stdout.split()) or sorted(
        str(p.relative_to(example)) for p in (example / "tunewright-support-tickets").rglob("*") if p.is_file()
    )
    assert sorted(files) == expected
    for path, content in files.items():
        assert content == (example / path).read_text(encoding="utf-8"), f"{path} differs from the guide"


def test_the_bitfit_guide_is_the_example_module():
    files = guide_files("writing-plugins.md")
    assert sorted(files) == ["tunewright-bitfit/pyproject.toml", "tunewright-bitfit/tunewright_bitfit.py"]
    assert files["tunewright-bitfit/tunewright_bitfit.py"] == (DOCS / "examples" / "tunewright_bitfit.py").read_text()


def test_shown_repository_files_are_shown_whole():
    shown = [
        (path, content)
        for page in sorted(DOCS.rglob("*.md"))
        for kind, path, content in BLOCK.findall(page.read_text(encoding="utf-8"))
        if kind == "same as"
    ]
    assert [path for path, _ in shown] == ["plugins/trackers/local.py"]
    for path, content in shown:
        assert content.strip("\n") == (ROOT / path).read_text(encoding="utf-8").strip("\n"), path


def test_the_domain_package_built_from_the_guide_installs_registers_and_trains(tiny_bert, tmp_path):
    site = tmp_path / "site"
    pip_install(build("writing-a-domain-plugin.md", tmp_path / "guide"), site)
    listed = tunewright(["plugins"], site)
    assert "support_tickets  [tunewright-support-tickets 0.1.0]" in listed.stdout, listed.stderr
    assert "WARNING" not in listed.stderr

    runs = tmp_path / "runs"
    overrides = [o for o in tiny_run_overrides(tiny_bert, runs) if not o.startswith("data.")]
    result = tunewright(["train", "data=support_tickets", *overrides], site)
    assert result.returncode == 0, result.stderr
    (folder,) = runs.iterdir()
    card = json.loads((folder / "data_card.json").read_text())
    assert card["label_names"] == ["billing", "technical", "account"]
    signoff = next(step for step in card["cleaning"] if step["step"] == "strip_signoff")
    assert signoff["rows_changed"] > 10
    assert sum(c["rows"] for c in card["composition"].values()) == 45
    assert "validation_fraction: 0.2" in (folder / "config.yaml").read_text()  # the plugin's own option file


def test_a_package_without_its_config_packages_is_left_out_and_the_cli_goes_on(tmp_path):
    """The mistake the guide warns of: conf/ without __init__.py files."""
    package = build("writing-a-domain-plugin.md", tmp_path / "guide")
    for init in package.rglob("conf/**/__init__.py"):
        init.unlink()
    (package / "tunewright_support_tickets" / "conf" / "__init__.py").unlink(missing_ok=True)
    pyproject = package / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"tunewright_support_tickets.conf", "tunewright_support_tickets.conf.data"', "")
    )
    site = tmp_path / "site"
    pip_install(package, site)
    listed = tunewright(["plugins"], site)
    assert listed.returncode == 0
    warnings = [line for line in listed.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "'support_tickets' from distribution tunewright-support-tickets 0.1.0" in warnings[0]
    assert "TUNEWRIGHT_DISABLE_PLUGINS=support_tickets" in warnings[0]
    assert "LEFT OUT" in listed.stdout and "methods: full" in listed.stdout
