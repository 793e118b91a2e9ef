"""Find, load and register every plugin, builtin or third-party, the same way.

Builtin features are the modules in :data:`BUILTIN_PLUGINS`; third-party packages
declare an entry point in the group ``tunewright``::

    [project.entry-points.tunewright]
    my_plugin = "my_package.tunewright_plugin"

Setting ``TUNEWRIGHT_DISABLE_PLUGINS=name,other`` blocks plugins by name (a builtin's
name is its module path, an entry point's name is the entry point's).

A third-party plugin that fails (its import, its hooks, its registration or its config
folder) is left out with one warning naming it, its distribution and the fix, so
every command that does not need it goes on working; a broken builtin is an error.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import os
import sys
import traceback
from dataclasses import dataclass, field

import pluggy

from tunewright import contracts, hookspecs, schema
from tunewright.errors import PluginError, debugging, first_line
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
    "tunewright.plugins.models.audio_classification",
    "tunewright.plugins.models.speech_recognition",
    "tunewright.plugins.models.vision_language",
    "tunewright.plugins.methods.full",
    "tunewright.plugins.methods.peft_methods",
    "tunewright.plugins.methods.freeze",
    "tunewright.plugins.methods.adapter",
    "tunewright.plugins.methods.prefix",
    "tunewright.plugins.datasets.ecommerce_reviews",
    "tunewright.plugins.datasets.banking77",
    "tunewright.plugins.datasets.files",
    "tunewright.plugins.datasets.image_folder",
    "tunewright.plugins.datasets.audio_folder",
    "tunewright.plugins.datasets.hub_datasets",
    "tunewright.plugins.datasets.finance_phrasebank",
    "tunewright.plugins.datasets.medical_abstracts",
    "tunewright.plugins.datasets.served",
    "tunewright.plugins.trackers.local",
    "tunewright.plugins.trackers.weights_and_biases",
    "tunewright.governance.probes",
    "tunewright.governance.audits.counterfactual",
    "tunewright.governance.audits.group_metrics",
    "tunewright.governance.audits.eec",
    "tunewright.governance.monitors.default",
    "tunewright.governance.release",
    "tunewright.governance.bias_report",
    "tunewright.governance.model_card",
)

# family -> (config group, base schema of its parts, their contract, whether the factory is the class)
FAMILIES: dict[str, tuple[str, type, type, bool]] = {
    "models": ("model", schema.ModelConfig, contracts.Task, False),
    "methods": ("method", schema.MethodConfig, contracts.Method, False),
    "datasets": ("data", schema.DataConfig, contracts.DataSource, False),
    "audits": ("audit", schema.AuditConfig, contracts.Audit, True),
    "monitors": ("monitor", schema.MonitorConfig, contracts.Monitor, True),
    "trackers": ("tracker", schema.TrackerConfig, contracts.Tracker, False),
}


@dataclass
class PluginInfo:
    """What ``tunewright plugins`` shows for one plugin."""

    name: str
    source: str  # "builtin" or "<distribution> <version>"
    registers: dict[str, list[str]] = field(default_factory=dict)
    problem: str | None = None  # why a broken third-party plugin was left out


@dataclass
class Plugins:
    """The loaded plugin manager, the registries it filled and where each plugin came from."""

    manager: pluggy.PluginManager
    registries: dict[str, Registry]
    infos: dict[str, PluginInfo]
    searchpath: list[str] = field(default_factory=list)
    schemas_stored: bool = False

    @property
    def hook(self):
        return self.manager.hook

    def config_searchpath(self) -> list[str]:
        """Extra Hydra search-path entries that plugins asked for (and that exist), in load order."""
        return list(self.searchpath)

    def store_schemas(self) -> None:
        """Put every schema into Hydra's ConfigStore, once: only commands that compose a
        config need them, so ``predict`` and ``export`` skip the work."""
        if not self.schemas_stored:
            schema.store_schemas(self.registries, option_files([CONFIG_PACKAGE, *self.searchpath]))
            self.schemas_stored = True


def blocked_plugin_names() -> set[str]:
    return {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}


def _import_builtin(module_name: str):
    try:
        return importlib.import_module(module_name)
    except Exception as error:
        raise PluginError(f"builtin plugin {module_name!r} failed to import: {error}") from error


class _Loading:
    """The plugins being loaded, and what to do when a third-party one fails."""

    def __init__(self):
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}

    def fail(self, name: str, what: str, error: BaseException) -> None:
        """Leave plugin ``name`` out with one warning, or raise if it is a builtin."""
        info = self.infos.setdefault(name, PluginInfo(name, "unknown distribution"))
        if info.source == "builtin":
            raise PluginError(f"builtin plugin {name!r}: {what}: {error}") from error
        first = first_line(error)
        info.problem, info.registers = f"{what}: {first}", {}
        if self.manager.get_plugin(name) is not None:
            self.manager.unregister(name=name)
        if debugging():
            traceback.print_exception(error, file=sys.stderr)
        print(
            f"tunewright: WARNING: plugin {name!r} from {info.source} {what}: {first}; it is left out. Fix or "
            f"uninstall it, or set {DISABLE_ENV}={name} to silence this",
            file=sys.stderr,
        )

    def discover(self, blocked: set[str]):
        """Register every plugin that is not blocked."""
        for module_name in BUILTIN_PLUGINS:
            if module_name not in blocked:
                self.register(module_name, _import_builtin(module_name), "builtin")
        seen: set[str] = set()
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name in blocked or entry_point.name in seen:
                continue
            seen.add(entry_point.name)
            dist = entry_point.dist
            source = f"distribution {dist.name} {dist.version}" if dist is not None else "an unknown distribution"
            self.infos[entry_point.name] = PluginInfo(entry_point.name, source)
            try:
                plugin = entry_point.load()
            except Exception as error:
                self.fail(entry_point.name, f"(entry point {entry_point.value!r}) failed to import", error)
                continue
            self.register(entry_point.name, plugin, source)

    def register(self, name: str, plugin, source: str) -> None:
        self.infos[name] = self.infos.get(name) or PluginInfo(name, source)
        try:
            self.manager.register(plugin, name=name)
        except pluggy.PluginValidationError as error:
            self.fail(name, "has an invalid hook", error)

    def register_parts(self) -> dict[str, Registry]:
        """Call each plugin's registration hooks with a registry attributed to that plugin;
        a plugin whose registration fails loses every part it added."""
        registries = {family: Registry(family, *spec) for family, spec in FAMILIES.items()}
        for family, registry in registries.items():
            hook = getattr(self.manager.hook, f"tunewright_register_{family}")
            # One call per plugin, so each part is attributed to the plugin that added it.
            for impl in hook.get_hookimpls():
                before = set(registry.names())
                try:
                    impl.function(registry.registering_for(impl.plugin_name))
                except Exception as error:
                    for name in set(registry.names()) - before:
                        registry.remove(name)
                    self.fail(impl.plugin_name, f"failed to register its {family}", error)
                    continue
                added = sorted(set(registry.names()) - before)
                if added:
                    self.infos[impl.plugin_name].registers.setdefault(family, []).extend(added)
        return registries

    def drop_parts_of_failed(self, registries: dict[str, Registry]) -> None:
        """Remove what a plugin registered before it failed (in a later family, or in its config folder)."""
        failed = {name for name, info in self.infos.items() if info.problem}
        for registry in registries.values():
            for part in [part for part in registry if part.plugin in failed]:
                registry.remove(part.name)

    def config_searchpath(self) -> list[str]:
        """Each plugin's ``pkg://`` config folders, checked: a missing package leaves its plugin out."""
        entries = []
        for impl in reversed(self.manager.hook.tunewright_config_searchpath.get_hookimpls()):  # pluggy's call order
            try:
                asked = list(impl.function())
                for entry in asked:
                    if entry.startswith("pkg://"):
                        _config_package(entry)
            except Exception as error:
                self.fail(impl.plugin_name, "names a config folder that cannot be read", error)
                continue
            entries.extend(asked)
        return entries


def _config_package(entry: str):
    try:
        return importlib.resources.files(entry[len("pkg://") :].replace("/", "."))
    except ModuleNotFoundError:
        raise PluginError(
            f"config search path {entry!r}: no such package (does its folder hold an __init__.py?)"
        ) from None


def load_plugins() -> Plugins:
    """Load every plugin and fill the registries."""
    loading = _Loading()
    loading.discover(blocked_plugin_names())
    registries = loading.register_parts()
    searchpath = loading.config_searchpath()
    loading.drop_parts_of_failed(registries)
    return Plugins(loading.manager, registries, loading.infos, searchpath)


def option_files(searchpath: list[str]) -> set[tuple[str, str]]:
    """``(group, option)`` for every ``<group>/<option>.yaml`` in the ``pkg://`` entries."""
    found = set()
    for entry in searchpath:
        if not entry.startswith("pkg://"):
            continue
        root = _config_package(entry)
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
