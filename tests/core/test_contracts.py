"""Every part is checked against its contract in tunewright.contracts, and the layers
depend in one direction: plugins and governance build on the core, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tunewright import contracts
from tunewright.errors import PluginError
from tunewright.plugin_manager import get_plugins
from tunewright.registry import Registry
from tunewright.schema import AuditConfig, ModelConfig

ROOT = Path(__file__).resolve().parents[2]


def test_every_builtin_part_implements_its_contract():
    plugins = get_plugins()
    assert {family: registry.contract for family, registry in plugins.registries.items()} == {
        "models": contracts.Task,
        "methods": contracts.Method,
        "datasets": contracts.DataSource,
        "audits": contracts.Audit,
        "monitors": contracts.Monitor,
        "trackers": contracts.Tracker,
    }
    for family in ("audits", "monitors"):  # checked as classes when registered
        for part in plugins.registries[family]:
            assert contracts.missing_members(part.factory, plugins.registries[family].contract) == []
    for part in plugins.registries["methods"]:
        assert contracts.Method in part.factory.__mro__, part.name


def test_a_part_missing_members_is_refused_with_their_names():
    class HalfTask:  # a task written without the contract: no defaults to inherit
        def __init__(self, cfg):
            self.cfg = cfg

        def encode(self, examples):
            return examples

    registry = Registry("models", "model", ModelConfig, contracts.Task)
    registry.registering_for("acme-plugin").add("half", HalfTask)
    with pytest.raises(PluginError) as caught:
        registry.create("half", {"kind": "half"})
    message = str(caught.value)
    assert "models part 'half' from plugin 'acme-plugin'" in message
    assert "collate, collate_train" in message and "loss_sum" in message and "encode," not in message
    assert "subclass Task" in message


def test_an_audit_is_registered_as_its_class():
    registry = Registry("audits", "audit", AuditConfig, contracts.Audit, factory_is_class=True)
    with pytest.raises(PluginError, match="a audits part's factory is its class|factory is its class"):
        registry.registering_for("p").add("odd", lambda cfg, run: None)

    class NoInputs:
        def audit(self, evaluation):
            return {}

    with pytest.raises(PluginError, match="NoInputs lacks inputs, needs_probabilities"):
        registry.add("odd", NoInputs)

    class Subclassed(contracts.Audit):
        def audit(self, evaluation):
            return {}

    registry.add("fine", Subclassed)  # the contract's defaults: texts only, needs probabilities
    assert registry.get("fine").factory.inputs == ("text",) and registry.get("fine").factory.needs_probabilities


def test_optional_members_have_explicit_defaults():
    class Minimal(contracts.Task):
        pass

    task = Minimal()
    assert task.cache_identity() is None and task.evaluate(None, [], 1, "cpu", None) is None
    assert task.predict_inputs(None, [], "cpu") is None and not task.packs_examples
    assert task.class_probabilities and task.head_modules is None and not task.generates

    class Method(contracts.Method):
        pass

    assert Method().load_options() == {} and not Method.can_merge
    with pytest.raises(NotImplementedError, match="cannot merge"):
        Method().merge(None)


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_core_imports_no_plugin_and_no_governance_module():
    """The core reaches plugins and governance only through the registries and hooks
    (plugin_manager.BUILTIN_PLUGINS names the builtins as strings, not imports)."""
    offending = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / "core").rglob("*.py"))
        for module in imported_modules(path)
        if module.startswith(("tunewright.plugins", "tunewright.governance"))
    }
    assert not offending, "\n".join(sorted(offending))


def test_governance_imports_no_model_method_or_dataset_plugin():
    """Governance judges any task through the contracts, so it knows no builtin task."""
    offending = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / "governance").rglob("*.py"))
        for module in imported_modules(path)
        if module.startswith("tunewright.plugins")
    }
    assert not offending, "\n".join(sorted(offending))


def test_the_layering_test_sees_an_offending_import(tmp_path):
    (tmp_path / "bad.py").write_text("from tunewright.governance.model_card import write_model_card\n")
    assert "tunewright.governance.model_card" in imported_modules(tmp_path / "bad.py")
