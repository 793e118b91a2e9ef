"""Every config option composes against its schema; bad overrides fail in one clear line."""

from __future__ import annotations

from importlib.resources import files

import pytest

from tunewright.cli import main
from tunewright.config import (
    check_overrides,
    compose_config,
    compose_service_config,
    compose_study_config,
    expand_sweeps,
)
from tunewright.errors import ConfigError
from tunewright.plugin_manager import get_plugins
from tunewright.search_space import check_space, read_space

CONF = files("tunewright.conf")
OPTIONS = sorted(
    (group.name, option.name.removesuffix(".yaml"))
    for group in CONF.iterdir()
    if group.is_dir() and not group.name.startswith("_")
    for option in group.iterdir()
    if option.name.endswith(".yaml")
)


def test_the_tree_has_every_design_group():
    groups = {group for group, _ in OPTIONS}
    assert {"model", "method", "data", "trainer", "audit", "monitor", "tracker", "paths", "experiment"} <= groups


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes(group, option):
    if group == "serve":  # tunewright serve's own group
        assert compose_service_config([f"serve={option}"], get_plugins()).serve is not None
        return
    if group in ("tune", "search"):  # tunewright tune's own groups; a bundled space fits its method
        node = compose_study_config([f"{group}={option}"], get_plugins())
        method = option if group == "search" and option not in ("common", "qlora") else "lora"
        space = {method: read_space(node.search.params)}
        assert space[method] and node.tune.trials > 0
        check_space(space, [], lambda overrides: compose_config(overrides, get_plugins()))
        return
    cfg = compose_config([f"{group}={option}"], get_plugins())
    if group not in ("experiment",):
        assert cfg[group] is not None


def test_default_config_is_the_embedded_minilm_with_lora():
    cfg = compose_config([], get_plugins())
    assert cfg.model.name_or_path == "embedded:all-MiniLM-L6-v2"
    assert cfg.method.kind == "lora"
    assert cfg.data.kind == "ecommerce_reviews"
    assert cfg.model.trust_remote_code is False


def test_experiment_overrides_global_keys():
    cfg = compose_config(["experiment=quick"], get_plugins())
    assert cfg.data.limit == 300
    assert cfg.trainer.max_epochs == 1


def test_sweep_expands_to_every_combination():
    combos = list(expand_sweeps(["method=lora,full", "trainer.max_epochs=1,2", "seed=3"]))
    assert len(combos) == 4
    assert ["method=full", "trainer.max_epochs=2", "seed=3"] in combos


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        (["trainer.max_epoch=1"], ["trainer.max_epoch", "max_epochs"]),
        (["method=lorx"], ["method=lorx", "full", "lora"]),
        (["trainer.max_epochs=abc"], ["trainer.max_epochs", "abc"]),
        (["method=full", "method.r=4"], ["method.r", "kind"]),
        (["+trainer.foo=1"], ["trainer.foo", "batch_size"]),
        (["tracker.names=[nope]"], ["tracker.names", "nope", "local"]),
        (["method=lora,nope"], ["method=nope", "lora"]),
    ],
)
def test_bad_overrides_name_the_key_and_the_choices(overrides, names):
    with pytest.raises(ConfigError) as caught:
        check_overrides(overrides, get_plugins())
    message = str(caught.value)
    assert "\n" not in message
    for name in names:
        assert name in message


def test_cli_reports_config_errors_in_one_line_before_loading(capsys, monkeypatch):
    loaded = []
    monkeypatch.setattr("tunewright.pipeline.run_training", lambda *a: loaded.append(a))
    assert main(["train", "trainer.max_epoch=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tunewright: trainer.max_epoch: unknown key")
    assert len(err.splitlines()) == 1
    assert loaded == []


def test_cli_prints_composed_config(capsys):
    assert main(["train", "--cfg", "job", "method=full", "trainer.max_epochs=1"]) == 0
    out = capsys.readouterr().out
    assert "kind: full" in out
    assert "max_epochs: 1" in out


def test_unknown_command_lists_commands(capsys):
    assert main(["trian"]) == 2
    assert "train, predict, monitor, serve, tune, card, export, studio, plugins" in capsys.readouterr().err


def test_train_help_lists_every_option_file_and_no_schemas(capsys):
    assert main(["train", "--help"]) == 0
    printed = capsys.readouterr().out
    conf = files("tunewright.conf")
    for group in ("model", "method", "data", "audit", "monitor", "tracker", "trainer"):
        options = sorted(p.name[: -len(".yaml")] for p in conf.joinpath(group).iterdir() if p.name.endswith(".yaml"))
        line = next(line for line in printed.splitlines() if line.strip().startswith(f"{group}:"))
        assert all(option in line for option in options), (group, line)
    assert "_schema" not in printed
