"""The search space of ``tunewright tune``: what each trial varies, checked before any trains.

A space is the ``search.params`` node: config keys nested as in the run config, each
leaf a one-line spec, ``float 1e-4 1e-2 log``, ``int 1 5`` or ``choice 8 16 32``, so
that one override replaces it (``search.params.method.r="choice 4 8"``).
:func:`read_space` turns it into :class:`Param` objects and rejects a malformed spec,
naming it; :func:`check_space`
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

import yaml
from omegaconf import DictConfig

from tunewright.errors import ConfigError

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
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(value, DictConfig):
                walk(value, where)
            else:
                found.append(parse_spec(where, value, method))

    walk(params, "")
    return found


def parse_spec(key: str, spec: Any, method: str | None = None) -> Param:
    """``float LOW HIGH [log] [step=S]``, ``int LOW HIGH [log] [step=S]`` or ``choice A B ...``."""
    where = f"search.params.{key}={spec!r}"
    words = str(spec).split()
    kind = words[0] if words else ""
    if kind == "choice":
        if len(words) < 2:
            raise ConfigError(f"{where}: give one or more values after 'choice'")
        return Param(key, "categorical", choices=tuple(_value(word) for word in words[1:]), method=method)
    if kind not in ("float", "int") or len(words) < 3:
        raise ConfigError(f"{where}: {SPEC_GRAMMAR}")
    try:
        low, high = (float(word) for word in words[1:3])
    except ValueError:
        raise ConfigError(f"{where}: LOW and HIGH must be numbers; {SPEC_GRAMMAR}") from None
    options = words[3:]
    log = "log" in options
    steps = [option.removeprefix("step=") for option in options if option.startswith("step=")]
    if any(o != "log" and not o.startswith("step=") for o in options):
        raise ConfigError(f"{where}: {SPEC_GRAMMAR}")
    if low > high:
        raise ConfigError(f"{where}: LOW must not exceed HIGH")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log-uniform range needs LOW > 0")
    if kind == "int" and (int(low) != low or int(high) != high):
        raise ConfigError(f"{where}: an int range needs whole-number bounds")
    step = float(steps[0]) if steps else None
    return Param(key, kind, low, high, log, step, method=method)


SPEC_GRAMMAR = "write 'float LOW HIGH [log] [step=S]', 'int LOW HIGH [log] [step=S]' or 'choice A B ...'"


def _value(word: str) -> Any:
    """A choice as YAML reads it (8, 0.5, true, cosine); a list such as ``[query,value]``
    stays as written, and passes to the run config as that override."""
    value = yaml.safe_load(word)
    return value if isinstance(value, (bool, int, float, str)) else word


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
