"""The search space of ``tunewright tune``: what each trial varies, checked before any trains.

A space is the ``search.params`` node: config keys nested as in the run config, each
leaf a spec such as ``{type: float, low: 1e-4, high: 1e-2, log: true}`` or
``{type: categorical, choices: [8, 16, 32]}``. :func:`read_space` turns it into
:class:`Param` objects and rejects a malformed spec, naming it; :func:`check_space`
composes the run config at the space's corners, so a key the run config lacks
(``method.rank``) or a bound it refuses (``trainer.max_epochs.low=0``) is an error
naming the key before the first trial. When several methods are searched
(``method=lora,ia3``), the method is itself a choice and each method's parameters are
named ``<method>/<key>``, since a learning rate means different things to each.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tunewright.errors import ConfigError

KINDS = ("float", "int", "categorical")
SPEC_KEYS = {"type", "low", "high", "log", "step", "choices"}
METHOD_PARAM = "method"  # the Optuna parameter naming the method, when several are searched


@dataclass(frozen=True)
class Param:
    """One searched config key and how its values are drawn."""

    key: str  # the run config key, e.g. trainer.learning_rate
    kind: str  # float, int or categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    method: str | None = None  # set when several methods are searched: the method this belongs to

    @property
    def name(self) -> str:
        """The parameter's name in the study."""
        return f"{self.method}/{self.key}" if self.method else self.key

    def suggest(self, trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def corners(self) -> list[Any]:
        """The values that bound this parameter: its ends, or every choice."""
        if self.kind == "categorical":
            return list(self.choices)
        return [int(self.low), int(self.high)] if self.kind == "int" else [self.low, self.high]


def read_space(params: DictConfig, method: str | None = None) -> list[Param]:
    """The parameters of a ``search.params`` node (``method``: see :class:`Param`)."""
    found: list[Param] = []

    def walk(node: DictConfig, path: str) -> None:
        if "type" in node:
            found.append(_param(path, node, method))
            return
        for key, value in node.items():
            if not isinstance(value, DictConfig):
                raise ConfigError(
                    f"search.params.{path}{'.' if path else ''}{key}: give a spec such as "
                    "{type: float, low: 0.0, high: 0.3} or {type: categorical, choices: [...]}"
                )
            walk(value, f"{path}.{key}" if path else str(key))

    walk(params, "")
    return found


def _param(key: str, spec: DictConfig, method: str | None) -> Param:
    where = f"search.params.{key}"
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key; valid keys: {', '.join(sorted(SPEC_KEYS))}")
    kind = spec.get("type")
    if kind not in KINDS:
        raise ConfigError(f"{where}.type={kind!r}: must be one of {', '.join(KINDS)}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not choices or any(isinstance(c, (DictConfig, dict)) for c in choices):
            raise ConfigError(f"{where}.choices: give a list of one or more plain values")
        return Param(key, kind, choices=tuple(OmegaConf.to_container(choices)), method=method)
    low, high = spec.get("low"), spec.get("high")
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low >= high:
        raise ConfigError(f"{where}: give numbers low < high (got low={low!r}, high={high!r})")
    if spec.get("log") and low <= 0:
        raise ConfigError(f"{where}.low={low!r}: a log-uniform range needs low > 0")
    if kind == "int" and (int(low) != low or int(high) != high):
        raise ConfigError(f"{where}: an int range needs whole-number bounds (got {low!r}, {high!r})")
    return Param(key, kind, float(low), float(high), bool(spec.get("log")), spec.get("step"), method=method)


def override(key: str, value: Any) -> str:
    """``key=value`` as a Hydra override (a choice such as ``[query,value]`` passes as written)."""
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    return f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"


def check_space(spaces: dict[str, list[Param]], base: list[str], compose) -> None:
    """Compose the run config at each space's corners (every low, every high, each
    choice in turn) with ``compose(overrides)``; a failure is the run config's own error
    (the key, what it accepts), said to come from the search space."""
    for method, params in spaces.items():
        corners = [param.corners() for param in params]
        for position in range(max((len(values) for values in corners), default=0)):
            overrides = [
                override(param.key, values[min(position, len(values) - 1)]) for param, values in zip(params, corners)
            ]
            try:
                compose([*base, f"method={method}", *overrides])
            except ConfigError as error:
                raise ConfigError(f"search space for method={method}: {error}") from None


def trial_overrides(trial, spaces: dict[str, list[Param]]) -> tuple[str, list[str], dict[str, Any]]:
    """The trial's method, its config overrides and the values drawn, by config key."""
    methods = list(spaces)
    method = trial.suggest_categorical(METHOD_PARAM, methods) if len(methods) > 1 else methods[0]
    values = {param.key: param.suggest(trial) for param in spaces[method]}
    return method, [f"method={method}", *itertools.starmap(override, values.items())], values
