"""``counterfactual``: does the prediction change when only an identity term changes?

Probe sentences fill the ``{person}`` slot of templates that fit the run's domain
(``governance/probes.py``) with every member of every group of each attribute:
perceived gender and race through first names, religion, age and nationality through
identity phrases. Where the run's own test texts mention gendered words or the
audit's names, they are also rewritten with the other group's terms
(``substitution.py``), the first-choice probe: the domain's own language. When neither
fits (no domain, no identity terms in the texts), the audit is ``not_applicable`` and
says what evidence is missing; it never judges a model on sentences from another task.

Per attribute, for any label set:

* ``flip_rate``: per template, the share of one group's probes whose label would have
  to change for the sentence to be labelled alike for both groups (the total-variation
  distance of their label shares), averaged over templates, for the most different
  pair of groups, less what chance gives two samples of members that size; the plain
  flip rates between and within groups (what individual names do) are in the details;
* ``label_distribution_distance``: the total-variation distance between two groups'
  predicted-label distributions (the share of predictions that would have to change
  to make them alike), for the most different pair, less the distance chance alone
  gives two samples of that size (the bootstrap's estimate of the bias);
* ``demographic_parity_ratio`` (binary tasks, or a named ``audit.positive_label``):
  the lowest group's rate of that label over the highest's, as fairlearn defines it.

Intervals come from a two-way bootstrap over members and templates (which also
estimates the chance part of each distance, taken off); the p-value from permuting
members between groups (``statistics.py``), so a model that reacts to individual
names without favouring a group is not called biased; the policy turns value,
interval and p into ``fail``, ``pass`` or ``inconclusive``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from tunewright import hookimpl
from tunewright.contracts import Audit
from tunewright.governance import statistics
from tunewright.governance.policy import Policy, favourable_label, load_policy
from tunewright.governance.probes import ATTRIBUTES, probe_templates
from tunewright.governance.results import AuditResult, Check, audit_verdict, not_applicable, worst
from tunewright.schema import AuditConfig


def _fill(template: str, member: str) -> str:
    text = template.format(person=member)
    return text[0].upper() + text[1:]


def counterfactual_audit(
    predict_proba: Callable[[list[str]], np.ndarray],
    label_names: list[str],
    positive: str | None,
    policy: Policy,
    templates: tuple[str, ...],
    attributes: dict[str, dict[str, list[str]]] = ATTRIBUTES,
    audit: str = "counterfactual",
) -> AuditResult:
    """Score every probe with ``predict_proba`` (texts -> probabilities per class) and
    judge each attribute against ``policy``."""
    positive_index = label_names.index(positive) if positive is not None else None
    cells = [
        (a, g, m, t)
        for a, groups in attributes.items()
        for g, members in groups.items()
        for m, member in enumerate(members)
        for t in range(len(templates))
    ]
    texts = [_fill(templates[t], attributes[a][g][m]) for a, g, m, t in cells]
    probabilities = np.asarray(predict_proba(texts), dtype=float)
    grid: dict[str, dict[str, np.ndarray]] = {}
    for (a, g, m, t), row in zip(cells, probabilities):
        groups = grid.setdefault(a, {})
        if g not in groups:
            groups[g] = np.zeros((len(attributes[a][g]), len(templates), len(label_names)))
        groups[g][m, t] = row
    result = AuditResult(
        audit,
        "pass",
        columns=_columns(positive),
        details={"templates": len(templates), "positive_label": positive, "attributes": {}},
    )
    for attribute, groups in grid.items():
        checks, rows, detail = judge_attribute(attribute, groups, label_names, positive_index, policy)
        result.checks += checks
        result.groups += rows
        result.details["attributes"][attribute] = detail
    result.verdict = audit_verdict(result.checks)
    result.reasons = [c.reason for c in result.checks if c.verdict != "pass"]
    return result


def _columns(positive: str | None) -> list[list[str]]:
    columns = [["members", "members"], ["top_label", "most predicted label"]]
    return columns + ([["positive_rate", f"rate of {positive}"]] if positive is not None else [])


def judge_attribute(
    attribute: str, groups: dict[str, np.ndarray], label_names: list[str], positive: int | None, policy: Policy
) -> tuple[list[Check], list[dict[str, Any]], dict[str, Any]]:
    """The checks, group rows and details of one attribute from its probabilities
    (group -> members x templates x classes)."""
    predicted = {g: p.argmax(axis=2) for g, p in groups.items()}
    rows = []
    for group, labels in predicted.items():
        shares = np.bincount(labels.ravel(), minlength=len(label_names)) / labels.size
        top = int(shares.argmax())
        row = {
            "subject": attribute,
            "group": group,
            "size": int(labels.size),
            "members": len(labels),
            "top_label": f"{label_names[top]} ({shares[top]:.0%})",
        }
        if positive is not None:
            row["positive_rate"] = float(shares[positive])
        rows.append(row)
    members = min(len(p) for p in groups.values())
    smallest = min(p.size for p in predicted.values())
    detail: dict[str, Any] = {"groups": list(groups), "members_per_group": members}
    if smallest < policy.min_group_size or members < 2:
        reason = f"{attribute}: a group has {smallest} probes or {members} members; at least {policy.min_group_size} probes and 2 members are needed"
        check = Check(
            attribute, "flip_rate", None, {}, None, None, "inconclusive", "", reason, "more members in every group"
        )
        return [check], rows, {**detail, "verdict": "inconclusive"}
    stats = statistics.grid_statistics(predicted, len(label_names), positive)
    units = (members, "members per group")
    flip_a, flip_b = stats.flip_pair
    dist_a, dist_b = stats.distance_pair
    # One test per attribute: members permuted on their mean probabilities (finer than
    # labels, so it has the power); the values are label distances less their chance part.
    p_value = statistics.member_permutation_test({g: p.mean(axis=1) for g, p in groups.items()})
    flip, flip_interval = statistics.debiased(stats.flip_rate, policy.confidence, smallest)
    distance, distance_interval = statistics.debiased(stats.distance, policy.confidence, smallest)
    judged = [
        policy.check(
            "flip_rate",
            flip,
            flip_interval,
            p_value,
            attribute,
            units=units,
            meaning=(
                f"The share of the same sentences whose label changes when they are about {flip_b} instead of {flip_a}, "
                f"beyond chance; individual names alone change {stats.within:.1%} of labels within a group."
            ),
        ),
        policy.check(
            "label_distribution_distance",
            distance,
            distance_interval,
            p_value,
            attribute,
            units=units,
            meaning=f"The share of {dist_a} and {dist_b} probes' predictions that would have to change to make "
            "the two groups' labels alike, beyond chance (0: alike).",
        ),
    ]
    if stats.parity_ratio is not None:
        favoured = label_names[positive]
        judged.append(
            policy.check(
                "demographic_parity_ratio",
                float(stats.parity_ratio[0]),
                statistics.interval(stats.parity_ratio, policy.confidence, smallest),
                p_value,
                attribute,
                units=units,
                meaning=f"The least favoured group gets {favoured!r} at this fraction of the most favoured group's rate (1: equal).",
            )
        )
    checks = [c for c in judged if c]
    detail.update(
        test=f"{statistics.ROUNDS} permutations of {sum(len(p) for p in groups.values())} members between groups",
        p_value=p_value,
        between_group_flip_rate=stats.between,
        within_group_flip_rate=stats.within,
        verdict=audit_verdict(checks),
    )
    return checks, rows, detail


@dataclass
class CounterfactualConfig(AuditConfig):
    substitute_in_data: bool = True  # also swap identity terms inside the test texts (gender words, names)


class CounterfactualAudit(Audit):
    def __init__(self, cfg: CounterfactualConfig, run):
        from tunewright.plugin_manager import get_plugins

        self.cfg = cfg
        self.run = run
        self.policy = load_policy(run.config.audit.policy)
        # Built before training: an unknown probe domain or a broken template file stops the run first.
        self.probes = probe_templates(get_plugins(), run.config.audit.probes, run.config.data.get("probe_domain"))

    def audit(self, evaluation) -> dict[str, Any]:
        labels = evaluation.data.label_names
        positive = favourable_label(labels, self.run.config.audit.positive_label)
        chosen = self.probes
        if chosen is not None:
            result = counterfactual_audit(evaluation.predict_proba, labels, positive, self.policy, chosen[0])
            result.details["probes"] = chosen[1]
        else:
            result = not_applicable(
                "counterfactual",
                "no probe templates fit this data: set data.probe_domain (reviews, support, "
                "clinical, finance) or audit.probes=<file of templates with {person}>",
            )
        if self.cfg.substitute_in_data:
            self._substitute(result, evaluation, labels, positive)
        return result.to_dict()

    def _substitute(self, result: AuditResult, evaluation, labels: list[str], positive: Optional[str]) -> None:
        """Add the checks of the test texts rewritten with the other group's terms; an
        attribute too few texts mention is left out, with the reason in the details."""
        from tunewright.governance.audits.substitution import substitution_audit

        texts = [row["text"] for row in evaluation.test_predictions]
        checks, details = substitution_audit(evaluation.predict_proba, texts, self.policy)
        result.details["data_substitution"] = details
        if not checks:
            return
        if result.verdict == "not_applicable":
            result.reasons = []
        result.checks += checks
        result.verdict = worst([result.verdict, audit_verdict(checks)])
        result.reasons += [c.reason for c in checks if c.verdict != "pass"]


@hookimpl
def tunewright_register_audits(registry):
    registry.add(
        "counterfactual",
        CounterfactualAudit,
        schema=CounterfactualConfig,
        description="identity-term probes fit to the domain, and swaps in the test texts: flip rate, label distance, parity",
    )
