"""Plugins arrive through real entry points, are listed with their origin, can be
blocked, fail loudly, and can never register the same name twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import make_distribution, tiny_run_overrides
from plugin_guides import build, pip_install

from tunewright.contracts import Method
from tunewright.errors import PluginError
from tunewright.registry import Registry
from tunewright.schema import MethodConfig


def tunewright(args: list[str], pythonpath: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(pythonpath), **env}
    return subprocess.run(
        [sys.executable, "-m", "tunewright", *args], capture_output=True, text=True, env=environment, timeout=600
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    pip_install(build("writing-plugins.md", tmp_path_factory.mktemp("guide")), root)  # the guide's own package
    presets = root / "bitfit_presets"
    (presets / "conf" / "method").mkdir(parents=True)
    (presets / "__init__.py").write_text(
        "from tunewright import hookimpl\n\n"
        "@hookimpl\n"
        "def tunewright_config_searchpath():\n"
        "    return ['pkg://bitfit_presets.conf']\n"
    )
    (presets / "conf" / "__init__.py").write_text("")
    (presets / "conf" / "method" / "bitfit_small.yaml").write_text(
        "defaults:\n  - bitfit_schema\n  - _self_\ntrain_head: false\n"
    )
    make_distribution(root, "bitfit-presets", {"bitfit_presets": "bitfit_presets"})
    return root


def test_entry_point_plugin_is_listed_with_its_distribution(site):
    result = tunewright(["plugins"], site)
    assert result.returncode == 0, result.stderr
    assert "bitfit  [tunewright-bitfit 0.1]" in result.stdout
    assert "methods: bitfit" in result.stdout
    assert "tunewright.plugins.methods.peft_methods  [builtin]" in result.stdout


def test_entry_point_method_is_chosen_by_name_and_trains(site, tiny_bert, tmp_path):
    result = tunewright(["train", *tiny_run_overrides(tiny_bert, tmp_path, "method=bitfit")], site)
    assert result.returncode == 0, result.stderr
    (run_folder,) = tmp_path.iterdir()
    results = json.loads((run_folder / "results.json").read_text())
    assert "kind: bitfit" in (run_folder / "config.yaml").read_text()
    train = results["train"]
    assert 0 < train["trainable_parameters"] < train["total_parameters"] / 10


def test_plugin_config_searchpath_adds_presets(site):
    result = tunewright(["train", "--cfg", "job", "method=bitfit_small"], site)
    assert result.returncode == 0, result.stderr
    assert "kind: bitfit\n  train_head: false" in result.stdout


def test_entry_point_method_options_are_validated(site):
    result = tunewright(["train", "method=bitfit", "method.train_hed=false"], site)
    assert result.returncode == 2
    assert "method.train_hed: unknown key; valid keys: kind, train_head" in result.stderr


def test_a_broken_plugin_is_left_out_with_one_warning_and_the_cli_goes_on(tmp_path, tiny_bert):
    (tmp_path / "broken_plugin.py").write_text("import not_a_module_anywhere\n")
    make_distribution(tmp_path, "broken-dist", {"broken": "broken_plugin"})
    (tmp_path / "bad_config_plugin.py").write_text(
        "from tunewright import hookimpl\n\n@hookimpl\ndef tunewright_config_searchpath():\n"
        "    return ['pkg://no_such_package_here.conf']\n"
    )
    make_distribution(tmp_path, "bad-config-dist", {"bad_config": "bad_config_plugin"})
    result = tunewright(["plugins"], tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 2 and "Traceback" not in result.stderr
    assert warnings[0].startswith(
        "tunewright: WARNING: plugin 'broken' from distribution broken-dist 0.1 (entry point "
        "'broken_plugin') failed to import: No module named 'not_a_module_anywhere'; it is left out"
    )
    assert warnings[0].endswith("set TUNEWRIGHT_DISABLE_PLUGINS=broken to silence this")
    assert (
        "plugin 'bad_config' from distribution bad-config-dist 0.1 names a config folder that cannot be read"
        in warnings[1]
    )
    assert "broken  [broken-dist 0.1]\n    LEFT OUT: " in result.stdout and "methods: full" in result.stdout

    trained = tunewright(["train", *tiny_run_overrides(tiny_bert, tmp_path / "runs", "audit=none")], tmp_path)
    assert trained.returncode == 0, trained.stderr  # commands that do not need the plugin work

    debug = tunewright(["plugins"], tmp_path, TUNEWRIGHT_DEBUG="1")
    assert "Traceback" in debug.stderr and "not_a_module_anywhere" in debug.stderr
    blocked = tunewright(["plugins"], tmp_path, TUNEWRIGHT_DISABLE_PLUGINS="broken,bad_config")
    assert blocked.returncode == 0 and blocked.stderr == ""
    assert "broken" not in blocked.stdout


def test_builtin_plugins_can_be_blocked(tmp_path):
    result = tunewright(["plugins"], tmp_path, TUNEWRIGHT_DISABLE_PLUGINS="tunewright.plugins.methods.full")
    assert result.returncode == 0
    assert "methods: full" not in result.stdout
    assert "methods: ia3, lora, prompt, qlora" in result.stdout


def test_duplicate_part_names_name_both_plugins():
    registry = Registry("methods", "method", MethodConfig, Method)
    registry.registering_for("first-plugin").add("same", object)
    with pytest.raises(PluginError, match="by plugin 'first-plugin' and by plugin 'second-plugin'"):
        registry.registering_for("second-plugin").add("same", object)


def test_a_schema_must_extend_the_family_base():
    @dataclass
    class Unrelated:
        x: int = 1

    registry = Registry("methods", "method", MethodConfig, Method)
    with pytest.raises(PluginError, match="does not extend MethodConfig"):
        registry.registering_for("p").add("odd", object, schema=Unrelated)
