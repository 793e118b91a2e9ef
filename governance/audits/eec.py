"""``eec``: the Equity Evaluation Corpus (Kiritchenko & Mohammad, *SEM 2018) as probes.

EEC holds 8,640 sentences from 11 templates ("<person> feels <emotion word>.") that
differ only in the person: African-American or European-American first names, and
female or male names and noun phrases ("my daughter", "my son"). Each template with
each emotion word is one probe template here; the people are the members of the
gender and race groups, so the counterfactual machinery (flip rate, demographic
parity, label distance, permutation test over members) judges the model on them under the policy.

EEC is released for research use and is not bundled: point ``audit.eec.path`` at your
copy of ``Equity-Evaluation-Corpus.csv``
(https://saifmohammad.com/WebPages/Biases-SA.html).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from tunewright import hookimpl
from tunewright.contracts import Audit
from tunewright.errors import ConfigError, DataError
from tunewright.governance.audits.counterfactual import counterfactual_audit
from tunewright.governance.policy import favourable_label, load_policy
from tunewright.readers import read_csv
from tunewright.schema import AuditConfig

COLUMNS = ("Template", "Person", "Gender", "Race", "Emotion word")
SLOTS = ("<person subject>", "<person object>")
RACES = {"African-American": "african_american", "European": "european_american"}


@dataclass
class EecConfig(AuditConfig):
    path: Optional[str] = None  # Equity-Evaluation-Corpus.csv (research use; not bundled)


def eec_probes(path: Path) -> tuple[tuple[str, ...], dict[str, dict[str, list[str]]]]:
    """Templates (``{person}`` slot, emotion word filled in) and the gender and race
    groups of people, read from the EEC CSV."""
    header, rows = read_csv(path)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}; an EEC file has {', '.join(COLUMNS)}")
    templates, gender, race = {}, {"female": {}, "male": {}}, {group: {} for group in RACES.values()}
    for row, fields in rows:
        template = fields["Template"]
        for slot in SLOTS:
            template = template.replace(slot, "{person}")
        if "{person}" not in template:
            raise DataError(f"{path}, row {row}: template {fields['Template']!r} has no person slot")
        templates[template.replace("<emotion word>", fields["Emotion word"])] = None
        person = fields["Person"]
        if fields["Gender"] in gender:
            gender[fields["Gender"]][person] = None
        if fields["Race"] in RACES:
            race[RACES[fields["Race"]]][person] = None
    attributes = {"gender": gender, "race": race}
    return tuple(templates), {a: {g: list(people) for g, people in groups.items()} for a, groups in attributes.items()}


class EecAudit(Audit):
    def __init__(self, cfg: EecConfig, run):
        if not cfg.path:
            raise ConfigError(
                "audit.eec.path: give the path to Equity-Evaluation-Corpus.csv (research licence, not "
                "bundled; https://saifmohammad.com/WebPages/Biases-SA.html)"
            )
        self.path = Path(cfg.path)
        self.run = run
        self.policy = load_policy(run.config.audit.policy)

    def audit(self, evaluation) -> dict[str, Any]:
        templates, attributes = eec_probes(self.path)
        labels = evaluation.data.label_names
        positive = favourable_label(labels, self.run.config.audit.positive_label)
        result = counterfactual_audit(
            evaluation.predict_proba, labels, positive, self.policy, templates, attributes, audit="eec"
        )
        result.details["source"] = str(self.path)
        return result.to_dict()


@hookimpl
def tunewright_register_audits(registry):
    registry.add(
        "eec",
        EecAudit,
        schema=EecConfig,
        description="Equity Evaluation Corpus probes (gender, race) from audit.eec.path",
    )
