"""Compose and validate the run config, and explain what is wrong in one line.

Hydra's own messages are accurate but long and do not list what would have been valid.
:func:`check_overrides` composes the config for every combination a command line asks
for (sweeps included) before anything is loaded, and turns a failure into a
:class:`~tunewright.errors.ConfigError` such as::

    trainer.max_epoch: unknown key; valid keys: batch_size, device, eval_batch_size, ...
    method=lorx: no such option; choices: full, lora
    trainer.max_epochs=abc: expected int, got 'abc'
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException, ValidationError

from tunewright.errors import ConfigError
from tunewright.schema import (
    SCHEMA_SUFFIX,
    SINGLE_CHOICE_FAMILIES,
    SearchConfig,
    ServeConfig,
    ServeLogConfig,
    ServeMonitorConfig,
    StudioConfig,
    TuneConfig,
    check_values,
    group_schemas,
)

CONFIG_MODULE = "tunewright.conf"
PRIMARY_CONFIG = "train"
SERVICE_CONFIG = "serve"
STUDY_CONFIG = "tune"
STUDIO_CONFIG = "studio"
NOT_TRAIN_GROUPS = ("hydra", "serve", "tune", "search")  # composed by tunewright serve and tune
MAX_CHECKED_COMBINATIONS = 256


def hydra_overrides(plugins) -> list[str]:
    """What every Hydra composition needs from the plugins: their schemas in the
    ConfigStore (stored on first need) and the ``hydra.searchpath`` override that adds
    the config folders they ship."""
    plugins.store_schemas()
    extra = plugins.config_searchpath()
    return [f"hydra.searchpath=[{','.join(extra)}]"] if extra else []


def compose_config(overrides: list[str], plugins) -> DictConfig:
    """Compose ``train.yaml`` with ``overrides`` and validate it against the registries."""
    cfg = _compose(PRIMARY_CONFIG, overrides, plugins)
    validate(cfg, plugins)
    return cfg


def compose_service_config(overrides: list[str], plugins) -> DictConfig:
    """Compose ``serve.yaml`` (the ``serve`` group) with ``overrides``, as strictly as a run's."""
    cfg = _compose(SERVICE_CONFIG, overrides, plugins)
    nodes = (
        ("serve", cfg.serve, ServeConfig),
        ("serve.log", cfg.serve.log, ServeLogConfig),
        ("serve.monitor", cfg.serve.monitor, ServeMonitorConfig),
    )
    for path, node, schema in nodes:
        _reject_unknown_keys(path, node, schema)
    check_values("serve", cfg.serve, ServeConfig)
    return cfg


def compose_study_config(overrides: list[str], plugins) -> DictConfig:
    """Compose ``tune.yaml`` (the ``tune`` and ``search`` groups) with ``overrides``, as
    strictly as a run's; the search space's own entries are checked by :mod:`.tuning`."""
    cfg = _compose(STUDY_CONFIG, overrides, plugins)
    _reject_unknown_keys("tune", cfg.tune, TuneConfig)
    _reject_unknown_keys("search", cfg.search, SearchConfig)
    check_values("tune", cfg.tune, TuneConfig)
    return cfg


def compose_studio_config(overrides: list[str], plugins) -> DictConfig:
    """Compose ``studio.yaml`` with ``overrides``, as strictly as a run's."""
    cfg = _compose(STUDIO_CONFIG, overrides, plugins)
    _reject_unknown_keys("studio", cfg.studio, StudioConfig)
    check_values("studio", cfg.studio, StudioConfig)
    return cfg


def _compose(primary: str, overrides: list[str], plugins) -> DictConfig:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(version_base=None, config_module=CONFIG_MODULE):
            return compose(primary, overrides=hydra_overrides(plugins) + list(overrides))
    except Exception as error:
        raise explain(error) from error
    finally:
        GlobalHydra.instance().clear()


def group_options(plugins) -> dict[str, list[str]]:
    """Each ``tunewright train`` config group's options (the files of ``conf/`` and of
    plugins' config folders), without the schemas every option file builds on (and
    without ``serve``, ``tune`` and ``search``, which ``tunewright serve`` and ``tunewright
    tune`` compose)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(version_base=None, config_module=CONFIG_MODULE):
            loader = GlobalHydra.instance().config_loader()
            overrides = hydra_overrides(plugins)
            groups = loader.get_group_options("", results_filter=None, config_name=PRIMARY_CONFIG, overrides=overrides)
            return {
                group: sorted(
                    o
                    for o in loader.get_group_options(group, config_name=PRIMARY_CONFIG, overrides=overrides)
                    if not o.endswith(SCHEMA_SUFFIX)
                )
                for group in sorted(groups)
                if group not in NOT_TRAIN_GROUPS
                and loader.get_group_options(group, config_name=PRIMARY_CONFIG, overrides=overrides)
            }
    finally:
        GlobalHydra.instance().clear()


def expand_sweeps(overrides: list[str]) -> Iterable[list[str]]:
    """Every single-run override list a sweep (``method=lora,full``) stands for."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException as error:
        raise explain(error) from None
    choices = []
    for override in parsed:
        key = override.get_key_element()
        if override.is_sweep_override():
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([override.input_line])
    return (list(combination) for combination in itertools.product(*choices))


def check_overrides(overrides: list[str], plugins) -> None:
    """Compose every combination ``overrides`` asks for; raise the first error."""
    for combination in itertools.islice(expand_sweeps(overrides), MAX_CHECKED_COMBINATIONS):
        compose_config(combination, plugins)


def validate(cfg: DictConfig, plugins) -> None:
    """Checks Hydra cannot make: parts exist, no node holds keys its schema lacks, every
    knob lies in its stated range; then an unset ``trainer.learning_rate`` becomes the
    method's own default, so the run records the rate it trains at."""
    for family in SINGLE_CHOICE_FAMILIES:
        registry = plugins.registries[family]
        node = cfg[registry.config_group]
        part = registry.get(node.kind)
        _reject_unknown_keys(registry.config_group, node, part.schema)
        check_values(registry.config_group, node, part.schema)
    for group, schema in group_schemas(plugins.registries).items():
        _reject_unknown_keys(group, cfg[group], schema)
        check_values(group, cfg[group], schema)
    if cfg.trainer.learning_rate is None:
        cfg.trainer.learning_rate = plugins.registries["methods"].get(cfg.method.kind).schema.default_learning_rate
    for family in ("audits", "monitors", "trackers"):
        registry = plugins.registries[family]
        for name in cfg[registry.config_group].names:
            if name not in registry:
                raise ConfigError(
                    f"{registry.config_group}.names: no {family} part named {name!r}; "
                    f"registered: {', '.join(registry.names()) or '(none)'}"
                )


def _reject_unknown_keys(path: str, node: DictConfig, schema: type) -> None:
    valid = {f.name for f in dataclasses.fields(schema)}
    for key in node:
        if key not in valid:
            raise ConfigError(f"{path}.{key}: unknown key; valid keys: {', '.join(sorted(valid))}")


def explain(error: Exception) -> ConfigError:
    """One line naming the offending key or option and what would be valid."""
    if isinstance(error, MissingConfigException) and error.options is not None:
        group = (error.missing_cfg_file or "").rpartition("/")[0]
        choice = (error.missing_cfg_file or "").rpartition("/")[2]
        options = sorted(o for o in error.options if not o.endswith(SCHEMA_SUFFIX))
        return ConfigError(f"{group}={choice}: no such option; choices: {', '.join(options)}")
    if isinstance(error, OverrideParseException):
        line = str(error).splitlines()[0]
        if "LexerNoViableAltException" in line:  # a character Hydra's grammar does not allow unquoted
            override = line.split(": ", 1)[-1]
            key, _, value = override.partition("=")
            return ConfigError(f"{override}: Hydra cannot read this value unquoted; quote it: {key}='{value}'")
        return ConfigError(line)
    cause = error.__cause__ if isinstance(error, ConfigCompositionException) else error
    if isinstance(cause, OmegaConfBaseException) and cause.full_key:
        parent = cause.parent_node
        if isinstance(cause, ValidationError):
            return ConfigError(f"{cause.full_key}: {_first_line(cause.msg)}")
        if isinstance(parent, DictConfig) and not parent._is_missing():
            valid = ", ".join(sorted(str(k) for k in parent))
            return ConfigError(f"{cause.full_key}: unknown key; valid keys: {valid}")
        return ConfigError(f"{cause.full_key}: {_first_line(cause.msg)}")
    return ConfigError(_first_line(str(error)))


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else "invalid config"
