"""Find, load and register every plugin, builtin or third-party, the same way.

Builtin features are the modules in :data:`BUILTIN_PLUGINS`; third-party packages
declare an entry point in the group ``tunewright``::

    [project.entry-points.tunewright]
    my_plugin = "my_package.tunewright_plugin"

Setting ``TUNEWRIGHT_DISABLE_PLUGINS=name,other`` blocks plugins by name (a builtin's
name is its module path, an entry point's name is the entry point's).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import os
from dataclasses import dataclass, field

import pluggy

from tunewright import hookspecs, schema
from tunewright.errors import PluginError
from tunewright.registry import Registry

ENTRY_POINT_GROUP = "tunewright"
CONFIG_PACKAGE = "pkg://tunewright.conf"
DISABLE_ENV = "TUNEWRIGHT_DISABLE_PLUGINS"

BUILTIN_PLUGINS = (
    "tunewright.plugins.models.sequence_classification",
    "tunewright.plugins.models.causal_lm",
    "tunewright.plugins.models.seq2seq_lm",
    "tunewright.plugins.models.token_classification",
    "tunewright.plugins.models.image_classification",
    "tunewright.plugins.models.clip",
    "tunewright.plugins.methods.full",
    "tunewright.plugins.methods.peft_methods",
    "tunewright.plugins.methods.freeze",
    "tunewright.plugins.methods.adapter",
    "tunewright.plugins.methods.prefix",
    "tunewright.plugins.datasets.ecommerce_reviews",
    "tunewright.plugins.datasets.banking77",
    "tunewright.plugins.datasets.files",
    "tunewright.plugins.datasets.image_folder",
    "tunewright.plugins.datasets.hub_datasets",
    "tunewright.plugins.datasets.finance_phrasebank",
    "tunewright.plugins.datasets.medical_abstracts",
    "tunewright.plugins.trackers.local",
    "tunewright.plugins.trackers.weights_and_biases",
    "tunewright.governance.audits.counterfactual",
    "tunewright.governance.audits.group_metrics",
    "tunewright.governance.audits.eec",
    "tunewright.governance.monitors.default",
    "tunewright.governance.release",
)

# family -> (config group, base schema of its parts)
FAMILIES: dict[str, tuple[str, type]] = {
    "models": ("model", schema.ModelConfig),
    "methods": ("method", schema.MethodConfig),
    "datasets": ("data", schema.DataConfig),
    "audits": ("audit", schema.AuditConfig),
    "monitors": ("monitor", schema.MonitorConfig),
    "trackers": ("tracker", schema.TrackerConfig),
}


@dataclass
class PluginInfo:
    """What ``tunewright plugins`` shows for one plugin."""

    name: str
    source: str  # "builtin" or "<distribution> <version>"
    registers: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Plugins:
    """The loaded plugin manager, the registries it filled and where each plugin came from."""

    manager: pluggy.PluginManager
    registries: dict[str, Registry]
    infos: dict[str, PluginInfo]

    @property
    def hook(self):
        return self.manager.hook

    def config_searchpath(self) -> list[str]:
        """Extra Hydra search-path entries that plugins asked for, in load order."""
        return [entry for entries in self.hook.tunewright_config_searchpath() for entry in entries]


def blocked_plugin_names() -> set[str]:
    return {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}


def _import_builtin(module_name: str):
    try:
        return importlib.import_module(module_name)
    except Exception as error:
        raise PluginError(f"builtin plugin {module_name!r} failed to import: {error}") from error


def _load_entry_point(entry_point: importlib.metadata.EntryPoint):
    dist = entry_point.dist
    source = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
    try:
        return entry_point.load(), source
    except Exception as error:
        raise PluginError(
            f"plugin {entry_point.name!r} from distribution {source} "
            f"(entry point {entry_point.value!r}) failed to import: {error}"
        ) from error


def _discover(blocked: set[str]):
    """Yield ``(name, plugin object, source)`` for every plugin that is not blocked."""
    for module_name in BUILTIN_PLUGINS:
        if module_name not in blocked:
            yield module_name, _import_builtin(module_name), "builtin"
    seen: set[str] = set()
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name in blocked or entry_point.name in seen:
            continue
        seen.add(entry_point.name)
        plugin, source = _load_entry_point(entry_point)
        yield entry_point.name, plugin, source


def _register_parts(manager: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> dict[str, Registry]:
    """Call each plugin's registration hooks with a registry attributed to that plugin."""
    registries = {}
    for family, (group, base_schema) in FAMILIES.items():
        registry = Registry(family, group, base_schema)
        hook = getattr(manager.hook, f"tunewright_register_{family}")
        # One call per plugin, so each part is attributed to the plugin that added it.
        for impl in hook.get_hookimpls():
            before = set(registry.names())
            impl.function(registry.registering_for(impl.plugin_name))
            added = sorted(set(registry.names()) - before)
            if added:
                infos[impl.plugin_name].registers.setdefault(family, []).extend(added)
        registries[family] = registry
    return registries


def load_plugins() -> Plugins:
    """Load every plugin, fill the registries and store their schemas for Hydra."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    for name, plugin, source in _discover(blocked_plugin_names()):
        try:
            manager.register(plugin, name=name)
        except pluggy.PluginValidationError as error:
            raise PluginError(f"plugin {name!r} ({source}) has an invalid hook: {error}") from error
        infos[name] = PluginInfo(name, source)
    registries = _register_parts(manager, infos)
    plugins = Plugins(manager, registries, infos)
    schema.store_schemas(registries, option_files([CONFIG_PACKAGE, *plugins.config_searchpath()]))
    return plugins


def option_files(searchpath: list[str]) -> set[tuple[str, str]]:
    """``(group, option)`` for every ``<group>/<option>.yaml`` in the ``pkg://`` entries."""
    found = set()
    for entry in searchpath:
        if not entry.startswith("pkg://"):
            continue
        try:
            root = importlib.resources.files(entry[len("pkg://") :].replace("/", "."))
        except ModuleNotFoundError:
            raise PluginError(f"config search path {entry!r}: no such package") from None
        for group in root.iterdir():
            if group.is_dir():
                found.update((group.name, f.name[: -len(".yaml")]) for f in group.iterdir() if f.name.endswith(".yaml"))
    return found


_loaded: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide :class:`Plugins`, loaded on first use."""
    global _loaded
    if _loaded is None:
        _loaded = load_plugins()
    return _loaded
