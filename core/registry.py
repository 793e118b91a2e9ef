"""Named, config-validated parts that plugins register.

One :class:`Registry` per part family (models, methods, datasets, audits, monitors,
trackers). A plugin's registration hook receives the registry and calls
:meth:`Registry.add`; the registry remembers which plugin added each part so that
``tunewright plugins`` can say where everything came from and a duplicate name can
name both plugins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tunewright.contracts import missing_members
from tunewright.errors import ConfigError, PluginError


@dataclass(frozen=True)
class Part:
    """One registered part: how to build it, what config it takes, who added it."""

    name: str
    factory: Callable[..., Any]
    schema: type
    description: str
    plugin: str


class Registry:
    """The parts of one family, by name.

    :param family: the plural family name, e.g. ``"methods"``.
    :param config_group: the Hydra config group whose options select these parts,
        e.g. ``"method"``.
    :param base_schema: the dataclass every part's schema must extend.
    :param contract: the :mod:`tunewright.contracts` protocol every part implements.
    :param factory_is_class: True when the factory must be the part's class (audits and
        monitors: the pipeline reads what a part applies to before building it), so it
        is checked against the contract when it is registered.
    """

    def __init__(
        self, family: str, config_group: str, base_schema: type, contract: type, factory_is_class: bool = False
    ):
        self.family = family
        self.config_group = config_group
        self.base_schema = base_schema
        self.contract = contract
        self.factory_is_class = factory_is_class
        self._parts: dict[str, Part] = {}
        self._plugin: str = "<unknown>"

    def registering_for(self, plugin_name: str) -> Registry:
        """Attribute the following :meth:`add` calls to ``plugin_name``."""
        self._plugin = plugin_name
        return self

    def add(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        schema: type | None = None,
        description: str = "",
    ) -> None:
        """Register ``factory`` under ``name``.

        :param name: the part's name, used as ``kind`` in its config and as the default
            option name in the config group.
        :param factory: called with the part's config node (and family-specific
            arguments) to build the part.
        :param schema: a dataclass extending this registry's base schema; its fields are
            the part's options, validated by Hydra before anything is loaded.
        :param description: one line shown by ``tunewright plugins``.
        """
        schema = schema or self.base_schema
        if not (dataclasses.is_dataclass(schema) and issubclass(schema, self.base_schema)):
            raise PluginError(
                f"plugin {self._plugin!r} registered {self.family} part {name!r} with schema "
                f"{schema!r}, which does not extend {self.base_schema.__name__}"
            )
        if self.factory_is_class:
            self._check_class(name, factory)
        if name in self._parts:
            raise PluginError(
                f"{self.family} part {name!r} is registered twice: by plugin "
                f"{self._parts[name].plugin!r} and by plugin {self._plugin!r}"
            )
        self._parts[name] = Part(name, factory, schema, description, self._plugin)

    def remove(self, name: str) -> None:
        """Take back a part (a plugin that failed while registering loses what it added)."""
        self._parts.pop(name, None)

    def get(self, name: str) -> Part:
        """The part called ``name``; a :class:`ConfigError` lists the choices if absent."""
        try:
            return self._parts[name]
        except KeyError:
            raise ConfigError(
                f"{self.config_group}.kind: no {self.family} part named {name!r}; "
                f"registered: {', '.join(sorted(self._parts)) or '(none)'}"
            ) from None

    def build(self, cfg: Any, *args: Any, **kwargs: Any) -> Any:
        """Build the part named by ``cfg.kind`` from its config node."""
        return self.create(cfg.kind, cfg, *args, **kwargs)

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Build the part called ``name`` from ``args`` (its config node first) and check
        it against the family's contract."""
        part = self.get(name)
        built = part.factory(*args, **kwargs)
        missing = missing_members(built, self.contract)
        if missing:
            raise PluginError(
                f"{self.family} part {name!r} from plugin {part.plugin!r} built a {type(built).__name__} that lacks "
                f"{', '.join(missing)} of tunewright.contracts.{self.contract.__name__}; implement them, or subclass "
                f"{self.contract.__name__} to inherit the defaults of the optional ones"
            )
        return built

    def _check_class(self, name: str, factory: Any) -> None:
        if not isinstance(factory, type):
            raise PluginError(
                f"plugin {self._plugin!r} registered {self.family} part {name!r} with {factory!r}; a "
                f"{self.family} part's factory is its class, implementing tunewright.contracts.{self.contract.__name__}"
            )
        missing = missing_members(factory, self.contract)
        if missing:
            raise PluginError(
                f"plugin {self._plugin!r} registered {self.family} part {name!r}: {factory.__name__} lacks "
                f"{', '.join(missing)} of tunewright.contracts.{self.contract.__name__}; implement them, or subclass "
                f"{self.contract.__name__} to inherit the defaults"
            )

    def __iter__(self):
        return iter(self._parts.values())

    def __contains__(self, name: str) -> bool:
        return name in self._parts

    def names(self) -> list[str]:
        return sorted(self._parts)
