"""A third-party audit and probe set, installed through real entry points, are shown
like the builtin ones: in bias.json, bias.html, the model card, the W&B tables and the
release decision, because every audit returns the one result shape of results.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import make_distribution, tiny_run_overrides

from tunewright.governance.results import AuditResult

PLUGIN = '''
from tunewright import hookimpl
from tunewright.contracts import Audit
from tunewright.governance.policy import load_policy
from tunewright.governance.results import AuditResult, audit_verdict


class ReadingLevelAudit(Audit):
    """Finds that plain-language texts are classified worse (a fixed finding, for the test)."""

    def __init__(self, cfg, run):
        self.policy = load_policy(run.config.audit.policy)

    def audit(self, evaluation):
        check = self.policy.check("accuracy_gap", 0.4, [0.3, 0.5], 0.001, "reading level <plain> vs technical",
                                  meaning="How much more often the model is right for technical texts.",
                                  units=(40, "test rows per group"))
        groups = [{"subject": "reading level", "group": "<plain>", "size": 40, "accuracy": 0.5},
                  {"subject": "reading level", "group": "technical", "size": 40, "accuracy": 0.9}]
        return AuditResult("reading_level", audit_verdict([check]), [check], [["accuracy", "accuracy"]], groups,
                           [check.reason]).to_dict()


@hookimpl
def tunewright_register_audits(registry):
    registry.add("reading_level", ReadingLevelAudit, description="accuracy by reading level")


@hookimpl
def tunewright_probe_templates(domain):
    if domain == "legal":
        return [f"{{person}} signed contract number {i} on Monday." for i in range(24)]
'''


def test_a_plugin_audit_and_probe_set_render_everywhere_and_its_failure_blocks(tiny_bert, tmp_path):
    (tmp_path / "reading_level.py").write_text(PLUGIN)
    make_distribution(tmp_path, "tunewright-reading-level", {"reading_level": "reading_level"})
    overrides = tiny_run_overrides(
        tiny_bert,
        tmp_path / "runs",
        "paths.run_id=r",
        "audit.names=[counterfactual,reading_level]",
        "data.probe_domain=legal",
    )
    result = subprocess.run(
        [sys.executable, "-m", "tunewright", "train", *overrides],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "blocked by:         reading_level: reading level <plain> vs technical: accuracy_gap = 0.4000" in result.stdout
    )
    folder = tmp_path / "runs" / "r"
    record = json.loads((folder / "reports" / "bias.json").read_text())
    assert record["schema_version"] == 2
    assert record["audits"]["counterfactual"]["details"]["probes"] == "domain legal"
    assert record["release"]["allowed"] is False
    assert record["release"]["reasons"] == [
        "reading_level: reading level <plain> vs technical: accuracy_gap = 0.4000 "
        "[0.3000, 0.5000] breaks the limit ≤ 0.1, beyond chance (p = 0.001)"
    ]
    page = (folder / "reports" / "bias.html").read_text()
    assert "<h2>reading_level: <span class='fail'>fail</span></h2>" in page
    assert "reading level &lt;plain&gt; vs technical" in page and "<plain>" not in page
    assert "How much more often the model is right for technical texts." in page
    card = (folder / "MODEL_CARD.md").read_text()
    assert (
        "### reading\\_level: fail" in card
        and "| reading level &lt;plain&gt; vs technical | accuracy\\_gap | 0.4000 [0.3000, 0.5000] |" in card
    )

    from tunewright.plugins.trackers.weights_and_biases import bias_tables

    tables = bias_tables(record["audits"]["reading_level"])
    assert tables["groups"][1] == [["reading level", "<plain>", 40, 0.5], ["reading level", "technical", 40, 0.9]]
    assert tables["checks"][1][0][:3] == ["reading level <plain> vs technical", "accuracy_gap", 0.4]
    AuditResult(**record["audits"]["reading_level"])  # the record is the shape itself
