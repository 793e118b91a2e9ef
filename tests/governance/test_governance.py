"""Bias audits: exact group metrics, planted bias found in any label set, no bias not
flagged, three honest outcomes, bad input clear."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from tunewright.errors import ConfigError, DataError
from tunewright.governance.audits.counterfactual import CounterfactualAudit, CounterfactualConfig, counterfactual_audit
from tunewright.governance.audits.group_metrics import GroupMetricsAudit, GroupMetricsConfig, group_metrics
from tunewright.governance.bias_report import render_html
from tunewright.governance.policy import Policy, load_policy
from tunewright.governance.probes import ATTRIBUTES, TEMPLATES
from tunewright.governance.release import tunewright_release_decision

POLICY = Policy(
    "test",
    blocking=True,
    min_group_size=3,
    significance=0.05,
    checks={
        "demographic_parity_ratio": {"min": 0.8},
        "flip_rate": {"max": 0.02},
        "accuracy_gap": {"max": 0.1},
        "label_distribution_distance": {"max": 0.1},
    },
)
REVIEWS = TEMPLATES["reviews"]


def test_group_metrics_match_hand_computed_values():
    #          group a (4 rows)                group b (4 rows)               group c (2 rows: suppressed)
    y_true = ["pos", "pos", "neg", "neg", "pos", "pos", "neg", "neg", "pos", "neg"]
    y_pred = ["pos", "pos", "pos", "neg", "pos", "neg", "neg", "neg", "pos", "pos"]
    features = pd.DataFrame({"group": list("aaaabbbbcc")})
    result = group_metrics(y_true, y_pred, features, "pos", POLICY, n_boot=20)
    groups = {g["group"]: g for g in result.groups}
    assert groups["group=a"]["accuracy"] == 0.75 and groups["group=b"]["accuracy"] == 0.75
    assert groups["group=a"]["selection_rate"] == 0.75 and groups["group=b"]["selection_rate"] == 0.25
    assert groups["group=a"]["true_positive_rate"] == 1.0 and groups["group=b"]["true_positive_rate"] == 0.5
    assert groups["group=a"]["false_positive_rate"] == 0.5 and groups["group=b"]["false_positive_rate"] == 0.0
    assert result.details["suppressed_groups"] == ["group=c"] and groups["group=c"]["size"] == 2
    selection = result.details["disparities"]["selection_rate"]
    assert selection["difference"] == 0.5 and selection["ratio"] == pytest.approx(1 / 3)
    assert result.details["disparities"]["accuracy"]["difference"] == 0.0
    assert result.details["overall"]["accuracy"] == 0.7  # 3 + 3 + 1 of 10
    ci = groups["group=a"]["accuracy_ci"]
    assert 0 <= ci[0] <= 0.75 <= ci[1] <= 1
    checks = {c.check: c for c in result.checks}
    # DP ratio 1/3 breaks 0.8, but 4 vs 4 examples is not beyond chance: inconclusive, with what would settle it.
    dp = checks["demographic_parity_ratio"]
    assert dp.verdict == "inconclusive" and dp.p_value > 0.05 and "test rows per group (now 4)" in dp.settle
    # Equal accuracy in 4 rows each is no evidence the gap is under 0.1 either.
    gap = checks["accuracy_gap"]
    assert gap.value == 0.0 and gap.interval[1] > 0.1 and gap.verdict == "inconclusive"
    # pos 3/4 vs 1/4 is 0.5 apart, less the little that chance alone gives two samples this size
    assert 0.4 < checks["label_distribution_distance"].value < 0.5


def test_group_metrics_compare_whole_label_distributions_in_a_multi_class_task():
    rng = np.random.default_rng(0)
    labels = ["billing", "delivery", "refund", "login"]
    groups = np.array(["north", "south"] * 300)
    truth = rng.choice(labels, 600)
    predicted = np.where((groups == "south") & (rng.random(600) < 0.4), "refund", truth)  # south is sent to refunds
    result = group_metrics(list(truth), list(predicted), pd.DataFrame({"region": groups}), None, POLICY, n_boot=20)
    checks = {c.check: c for c in result.checks}
    assert set(checks) == {"accuracy_gap", "label_distribution_distance"}  # no favourable label: no parity ratio
    assert (
        checks["label_distribution_distance"].verdict == "fail" and checks["label_distribution_distance"].p_value < 0.01
    )
    assert [key for key, _ in result.columns] == ["accuracy"]
    same = np.tile(np.repeat(labels, 2), 75)  # both regions get every label equally often
    fair = group_metrics(list(same), list(same), pd.DataFrame({"region": groups}), None, POLICY, n_boot=20)
    assert {c.check: c.verdict for c in fair.checks} == {"accuracy_gap": "pass", "label_distribution_distance": "pass"}


def test_intersectional_groups_too_small_to_judge_are_inconclusive():
    features = pd.DataFrame({"sex": list("ffmmff"), "age": list("yoyoyo")})
    result = group_metrics(list("pnpnpn"), list("pnpnpn"), features, "p", POLICY, n_boot=10)
    assert {g["group"] for g in result.groups} == {"sex=f, age=y", "sex=f, age=o", "sex=m, age=y", "sex=m, age=o"}
    assert result.verdict == "inconclusive" and "fewer than two groups with at least 3" in result.reasons[0]


def predict_with_bias(favoured: set[str], boost: float):
    """A model whose positive probability rises when a favoured name appears."""

    def predict_proba(texts):
        probabilities = []
        for text in texts:
            base = (
                0.7 if any(word in text for word in ("excellent", "love", "worth", "lasts", "great", "fair")) else 0.3
            )
            p = min(0.99, base + boost) if any(name in text.split() for name in favoured) else base
            probabilities.append([1 - p, p])
        return np.array(probabilities)

    return predict_proba


def checks_of(result, subject: str) -> dict:
    return {c.check: c for c in result.checks if c.subject == subject}


def test_counterfactual_audit_fails_on_planted_gender_bias_and_names_it():
    female = set(ATTRIBUTES["gender"]["female"])
    result = counterfactual_audit(
        predict_with_bias(female, 0.35), ["negative", "positive"], "positive", POLICY, REVIEWS
    )
    gender = checks_of(result, "gender")
    assert result.verdict == "fail" and result.details["attributes"]["gender"]["verdict"] == "fail"
    assert gender["flip_rate"].value > 0.02 and gender["flip_rate"].p_value < 0.05
    assert gender["demographic_parity_ratio"].verdict == "fail"
    assert any(r.startswith("gender:") for r in result.reasons)
    religion = checks_of(result, "religion")
    assert religion["flip_rate"].value == 0.0 and religion["flip_rate"].verdict == "pass"
    assert religion["flip_rate"].interval[1] < 0.02  # no flip in 16 x 24 probes is evidence, not just absence


def test_counterfactual_audit_passes_a_model_that_ignores_identity():
    result = counterfactual_audit(predict_with_bias(set(), 0.0), ["negative", "positive"], "positive", POLICY, REVIEWS)
    assert result.verdict == "pass" and result.reasons == []
    assert {c.check for c in result.checks} == {"flip_rate", "label_distribution_distance", "demographic_parity_ratio"}


def routes_muslim_customers_elsewhere(texts):
    """A 4-intent model: the intent follows the request, except that a third of the
    requests mentioning a Muslim person go to "fraud"."""
    rows = []
    for text in texts:
        scores = np.full(4, 0.1)
        template = next(i for i, t in enumerate(TEMPLATES["support"]) if text.endswith(t.split("{person}")[1]))
        scores[template % 3] = 0.7
        if "Muslim" in text and (sum(map(ord, text)) % 3 == 0):
            scores = np.array([0.1, 0.1, 0.1, 0.7])
        rows.append(scores / scores.sum())
    return np.array(rows)


def test_multi_class_probes_compare_the_whole_label_distribution():
    labels = ["card", "transfer", "account", "fraud"]
    result = counterfactual_audit(routes_muslim_customers_elsewhere, labels, None, POLICY, TEMPLATES["support"])
    religion = checks_of(result, "religion")
    assert set(religion) == {"flip_rate", "label_distribution_distance"}  # no favourable label among intents
    assert religion["flip_rate"].verdict == "fail" and "muslim" in religion["flip_rate"].meaning
    for attribute in ("gender", "race", "age", "nationality"):
        assert {c.verdict for c in checks_of(result, attribute).values()} == {"pass"}, attribute
    assert [key for key, _ in result.columns] == ["members", "top_label"]


def test_a_label_the_model_lacks_is_a_clear_error():
    from tunewright.governance.policy import favourable_label

    with pytest.raises(ConfigError, match="audit.positive_label: 'positive' is not a label of this model"):
        favourable_label(["billing", "technical"], "positive")
    assert favourable_label(["billing", "technical", "other"], None) is None
    assert favourable_label(["negative", "positive"], None) == "positive"


def fake_run(sensitive_columns, positive_label=None, domain=None, probes=None, policy="default"):
    config = OmegaConf.create(
        {
            "audit": {"policy": policy, "positive_label": positive_label, "probes": probes},
            "data": {"sensitive_columns": sensitive_columns, "probe_domain": domain},
        }
    )
    return SimpleNamespace(config=config)


def fake_evaluation(rows, predict_proba=None, labels=("neg", "pos")):
    return SimpleNamespace(
        test_predictions=rows, data=SimpleNamespace(label_names=list(labels)), predict_proba=predict_proba
    )


def test_group_metrics_audit_bad_input():
    rows = [{"label": "pos", "prediction": {"label": "pos"}, "sensitive": {"region": "north"}}]
    with pytest.raises(ConfigError, match="data.sensitive_columns: 'gender' is missing"):
        GroupMetricsAudit(GroupMetricsConfig(kind="group_metrics"), fake_run(["gender"])).audit(fake_evaluation(rows))
    with pytest.raises(ConfigError, match="audit.positive_label: 'yes' is not a label of this model"):
        GroupMetricsAudit(GroupMetricsConfig(kind="group_metrics"), fake_run(["region"], "yes")).audit(
            fake_evaluation(rows)
        )
    result = GroupMetricsAudit(GroupMetricsConfig(kind="group_metrics"), fake_run([])).audit(fake_evaluation(rows))
    assert result["verdict"] == "not_applicable" and "data.sensitive_columns" in result["reasons"][0]


def test_probes_that_fit_no_task_are_not_applicable_and_release_says_what_is_missing():
    rows = [{"text": "Where is my parcel?"}, {"text": "Cancel the order please."}]
    evaluation = fake_evaluation(rows, predict_with_bias(set(), 0.0), labels=("billing", "delivery", "other"))
    result = CounterfactualAudit(CounterfactualConfig(kind="counterfactual"), fake_run([])).audit(evaluation)
    assert result["verdict"] == "not_applicable" and result["checks"] == []
    assert "set data.probe_domain (reviews, support, clinical, finance)" in result["reasons"][0]
    decision = tunewright_release_decision(fake_run([]), {"counterfactual": result})
    assert decision["allowed"] is True and decision["reasons"] == []
    assert decision["notes"][0].startswith("counterfactual not applicable: no probe templates fit this data")


def test_the_domain_picks_the_probes_and_a_file_can_supply_them(tmp_path):
    evaluation = fake_evaluation([{"text": "Fine."}], predict_with_bias(set(), 0.0), labels=("negative", "positive"))
    result = CounterfactualAudit(CounterfactualConfig(kind="counterfactual"), fake_run([], domain="clinical")).audit(
        evaluation
    )
    assert result["details"]["probes"] == "domain clinical" and result["details"]["templates"] == len(
        TEMPLATES["clinical"]
    )
    own = tmp_path / "legal.txt"
    own.write_text("# contract probes\n" + "".join(f"{{person}} signed contract number {i}.\n" for i in range(6)))
    result = CounterfactualAudit(CounterfactualConfig(kind="counterfactual"), fake_run([], probes=str(own))).audit(
        evaluation
    )
    assert result["details"]["probes"] == f"file {own}" and result["details"]["templates"] == 6
    with pytest.raises(
        ConfigError, match="data.probe_domain: no probe templates for domain 'legal'; builtin: clinical, finance"
    ):
        CounterfactualAudit(CounterfactualConfig(kind="counterfactual"), fake_run([], domain="legal")).audit(evaluation)
    broken = tmp_path / "broken.txt"
    broken.write_text("{person} signed.\n{person} and {person} met.\n")
    with pytest.raises(DataError, match=r"broken.txt, line 2: a template needs exactly one \{person\} slot"):
        CounterfactualAudit(CounterfactualConfig(kind="counterfactual"), fake_run([], probes=str(broken))).audit(
            evaluation
        )


def test_three_outcomes_pass_needs_the_whole_interval_and_fail_needs_evidence():
    policy = load_policy("default")
    passed = policy.check("flip_rate", 0.005, [0.0, 0.015], 0.4, "gender")
    assert passed.verdict == "pass" and "within ≤ 0.02 across its interval" in passed.reason
    unresolved = policy.check("flip_rate", 0.005, [0.0, 0.04], 0.4, "gender", units=(16, "members per group"))
    assert (
        unresolved.verdict == "inconclusive"
        and unresolved.settle.startswith("about ")
        and "(now 16)" in unresolved.settle
    )
    noise = policy.check("flip_rate", 0.06, [0.03, 0.09], 0.3, "gender", units=(16, "members per group"))
    assert noise.verdict == "inconclusive" and "not beyond chance (p = 0.3)" in noise.reason  # never green
    failed = policy.check("flip_rate", 0.06, [0.03, 0.09], 0.001, "gender")
    assert (
        failed.verdict == "fail"
        and failed.reason
        == "gender: flip_rate = 0.0600 [0.0300, 0.0900] breaks the limit ≤ 0.02, beyond chance (p = 0.001)"
    )
    ratio = policy.check("demographic_parity_ratio", 0.9, [0.85, 0.95], 0.5, "race")
    assert (
        ratio.verdict == "pass"
        and policy.check("demographic_parity_ratio", 0.9, [0.7, 1.0], 0.5, "race").verdict == "inconclusive"
    )
    assert failed.detectable > 0.02 and ratio.detectable < 0.8


def test_release_blocks_on_failing_checks_only_and_strict_also_on_inconclusive():
    policy = load_policy("default")
    flips = policy.check("flip_rate", 0.5, [0.4, 0.6], 0.001, "gender")
    parity = policy.check("demographic_parity_ratio", 1.0, [0.95, 1.0], 0.001, "race")
    unresolved = policy.check("flip_rate", 0.01, [0.0, 0.05], 0.6, "age", units=(16, "members per group"))
    result = {
        "audit": "counterfactual",
        "verdict": "fail",
        "checks": [vars(c) for c in (flips, parity, unresolved)],
        "columns": [],
        "groups": [],
        "reasons": [],
        "details": {},
    }
    decision = tunewright_release_decision(fake_run([]), {"counterfactual": result})
    assert decision["allowed"] is False
    assert decision["reasons"] == [
        "counterfactual: gender: flip_rate = 0.5000 [0.4000, 0.6000] breaks the limit ≤ 0.02, beyond chance (p = 0.001)"
    ]
    assert len(decision["notes"]) == 1 and decision["notes"][0].startswith("counterfactual inconclusive: age:")
    result["checks"] = [vars(parity), vars(unresolved)]
    assert tunewright_release_decision(fake_run([]), {"counterfactual": result})["allowed"] is True
    strict = tunewright_release_decision(fake_run([], policy="strict"), {"counterfactual": result})
    assert strict["allowed"] is False and strict["reasons"][0].startswith("counterfactual: age: flip_rate")


def test_policies_load_by_name_and_bad_ones_say_why(tmp_path, capsys):
    assert load_policy("default").checks["demographic_parity_ratio"] == {"min": 0.8}
    assert load_policy("strict").inconclusive == "block"
    with pytest.raises(ConfigError, match="no policy 'stern'; bundled: default, lenient, strict"):
        load_policy("stern")
    broken = tmp_path / "mine.yaml"
    broken.write_text("name: mine\nchecks: {}\n")
    with pytest.raises(ConfigError, match="mine.yaml is not a valid policy"):
        load_policy(str(broken))
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: t\nblocking: true\nmin_group_size: 5\nsignificance: 0.05\nchecks: {}\ninconclusiv: block\n")
    with pytest.raises(ConfigError, match="unknown key 'inconclusiv'"):
        load_policy(str(typo))
    old = tmp_path / "old.yaml"  # written for schema 1: still loads, and says what changed
    old.write_text(
        "name: old\nblocking: true\nmin_group_size: 5\nsignificance: 0.05\nwarn_margin: 0.05\n"
        "not_significant: pass\nchecks: {flip_rate: {max: 0.02}}\n"
    )
    assert load_policy(str(old)).checks == {"flip_rate": {"max": 0.02}}
    assert "not_significant is no longer read (an unresolved breach is inconclusive now" in capsys.readouterr().err


def test_html_report_leads_with_the_summary_highlights_failures_and_escapes():
    female = set(ATTRIBUTES["gender"]["female"])
    audit = counterfactual_audit(
        predict_with_bias(female, 0.35), ["negative", "<b>positive</b>"], "<b>positive</b>", POLICY, REVIEWS
    )
    record = {
        "run_id": "r1",
        "model": {"name_or_path": "m"},
        "method": "lora",
        "data": "d",
        "policy": {"name": "test", "blocking": True},
        "audits": {"counterfactual": audit.to_dict()},
        "release": {"allowed": False, "reasons": ["counterfactual: gender <script>"]},
    }
    page = render_html(record)
    assert page.index("Release is blocked") < page.index("<h2>")
    assert "<tr class='fail'>" in page
    assert "<script" not in page and "<b>positive</b>" not in page and "&lt;b&gt;positive&lt;/b&gt;" in page
    assert "The share of the same sentences whose label changes when they are about" in page  # what each check means


def test_records_of_schema_1_still_render():
    from tunewright.governance.model_card import _bias

    check = {
        "check": "flip_rate",
        "subject": "gender",
        "value": 0.3,
        "limits": {"max": 0.02},
        "p_value": 0.01,
        "verdict": "fail",
        "reason": "gender: flip_rate = 0.3000 breaks the limit ≤ 0.02",
    }
    old = {
        "schema_version": 1,
        "run_id": "r0",
        "model": {"name_or_path": "m"},
        "method": "lora",
        "data": "d",
        "policy": {"name": "default", "blocking": True},
        "audits": {
            "counterfactual": {
                "verdict": "fail",
                "reasons": [check["reason"]],
                "attributes": {
                    "gender": {
                        "verdict": "fail",
                        "flip_rate": 0.3,
                        "test": "t",
                        "p_value": 0.01,
                        "checks": [check],
                        "groups": [{"group": "female", "probes": 20, "positive_rate": 0.9}],
                    }
                },
            }
        },
        "release": {"allowed": False, "reasons": ["counterfactual: " + check["reason"]]},
    }
    page = render_html(old)
    assert "<tr class='fail'><td>gender</td><td>flip_rate" in page and "female" in page
    card = _bias(old)
    assert "| gender | flip\\_rate | 0.3000 | ≤ 0.02 | 0.01 | fail |" in card


EEC = Path(__file__).parents[3] / "shared" / "data" / "eec" / "Equity-Evaluation-Corpus.csv"


def eec_audit(path):
    from tunewright.governance.audits.eec import EecAudit, EecConfig

    return EecAudit(EecConfig(kind="eec", path=str(path) if path else None), fake_run([]))


def test_eec_probes_come_from_the_corpus():
    from tunewright.governance.audits.eec import eec_probes

    templates, attributes = eec_probes(EEC)
    assert len(templates) == 87 and all("{person}" in t for t in templates)
    assert {g: len(m) for g, m in attributes["gender"].items()} == {"female": 31, "male": 31}
    assert {g: len(m) for g, m in attributes["race"].items()} == {"african_american": 20, "european_american": 20}
    assert "my daughter" in attributes["gender"]["female"] and "Alonzo" in attributes["race"]["african_american"]


def test_eec_audit_fails_planted_gender_bias_and_passes_race():
    from tunewright.governance.audits.eec import eec_probes

    female = {p for p in eec_probes(EEC)[1]["gender"]["female"] if " " not in p}
    evaluation = SimpleNamespace(
        predict_proba=predict_with_bias(female, 0.35), data=SimpleNamespace(label_names=["negative", "positive"])
    )
    report = eec_audit(EEC).audit(evaluation)
    attributes = report["details"]["attributes"]
    assert report["audit"] == "eec" and report["verdict"] == "fail"
    assert attributes["gender"]["verdict"] == "fail" and attributes["gender"]["p_value"] < 0.05
    flips = {c["subject"]: c["value"] for c in report["checks"] if c["check"] == "flip_rate"}
    assert flips["race"] < flips["gender"]


def test_eec_audit_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="audit.eec.path: give the path"):
        eec_audit(None)
    wrong = tmp_path / "eec.csv"
    wrong.write_text("ID,Sentence,Person\n1,Alonzo feels angry.,Alonzo\n")
    evaluation = SimpleNamespace(
        predict_proba=predict_with_bias(set(), 0.0), data=SimpleNamespace(label_names=["negative", "positive"])
    )
    with pytest.raises(DataError, match=r"eec.csv: no column 'Template'"):
        eec_audit(wrong).audit(evaluation)


def test_threshold_optimizer_narrows_a_planted_parity_gap_and_reports_its_cost():
    from tunewright.governance.mitigation import optimize_thresholds

    rng = np.random.default_rng(0)

    def scored(n):  # group b's scores are shifted down: fewer b examples predicted positive
        groups = np.array(["a", "b"] * (n // 2))
        truth = rng.integers(0, 2, n)
        scores = np.clip(0.5 * truth + 0.25 + rng.normal(0, 0.15, n) - 0.25 * (groups == "b"), 0, 1)
        return scores, truth, list(groups)

    result = optimize_thresholds(scored(400), scored(400), "demographic_parity")
    before, after = result["before"], result["after"]
    assert before["demographic_parity_difference"] > 0.2 > after["demographic_parity_difference"]
    assert result["accuracy_cost"] == pytest.approx(before["accuracy"] - after["accuracy"])
    assert set(result["thresholds"]) == {"a", "b"} and all(r["operator"] == ">" for r in result["thresholds"]["b"])


def test_mitigation_options_are_checked():
    with pytest.raises(ConfigError, match="audit.group_metrics.mitigation: 'reweigh' is not one of"):
        GroupMetricsAudit(GroupMetricsConfig(kind="group_metrics", mitigation="reweigh"), fake_run(["g"]))


def test_group_metrics_with_mitigation_through_the_pipeline(tiny_bert, tmp_path):
    """A CSV with a sensitive column, audit=group_metrics and the ThresholdOptimizer."""
    import csv
    import json

    from conftest import tiny_run_overrides

    from tunewright.cli import main

    rng = np.random.default_rng(0)
    path = tmp_path / "reviews.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "region"])
        for i in range(240):
            good = i % 2 == 0
            writer.writerow(
                [
                    f"{'great' if good else 'awful'} product number {i} {rng.integers(1000)}",
                    "pos" if good else "neg",
                    "north" if rng.random() < 0.5 else "south",
                ]
            )
    overrides = tiny_run_overrides(
        tiny_bert,
        tmp_path / "runs",
        "data=csv",
        f"data.path={path}",
        "data.limit=null",
        "data.sensitive_columns=[region]",
        "audit=group_metrics",
        "paths.run_id=g",
        "audit.group_metrics.mitigation=threshold_optimizer",
    )
    assert main(["train", *overrides]) == 0
    bias = json.loads((tmp_path / "runs" / "g" / "reports" / "bias.json").read_text())
    audit = bias["audits"]["group_metrics"]
    assert {g["group"] for g in audit["groups"]} == {"region=north", "region=south"}
    mitigation = audit["details"]["mitigation"]
    assert mitigation["constraint"] == "demographic_parity" and set(mitigation["thresholds"]) == {
        "region=north",
        "region=south",
    }
    assert mitigation["accuracy_cost"] == pytest.approx(
        mitigation["before"]["accuracy"] - mitigation["after"]["accuracy"]
    )
    card = (tmp_path / "runs" / "g" / "MODEL_CARD.md").read_text()
    assert (
        "region=north" in card
        and "region=north" in (tmp_path / "runs" / "g" / "reports" / "bias.html").read_text()
        and "Mitigation (threshold_optimizer, demographic_parity" in card
    )
    assert "Mitigation (threshold_optimizer" in (tmp_path / "runs" / "g" / "reports" / "bias.html").read_text()


def test_the_base_model_is_audited_when_its_head_has_the_labels(tiny_bert, tmp_path):
    """A checkpoint that already classifies negative/positive is audited before training
    and the change is reported; a headless one is reported as not comparable."""
    import json

    from conftest import tiny_run_overrides
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunewright.cli import main

    classifier = tmp_path / "tiny-sentiment"
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    )
    model.save_pretrained(classifier)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(classifier)
    for name, source in (("headed", classifier), ("headless", tiny_bert)):
        assert main(["train", *tiny_run_overrides(source, tmp_path / "runs", f"paths.run_id={name}")]) == 0

    headed = json.loads((tmp_path / "runs" / "headed" / "reports" / "bias.json").read_text())["base_model_comparison"]
    assert headed["possible"] and set(headed["audits"]) == {"counterfactual"}
    gender = headed["audits"]["counterfactual"]["changes"]["gender flip_rate"]
    assert set(gender["value"]) == {"base", "fine_tuned"} and headed["summary"].startswith(
        "Compared with the base model"
    )
    assert headed["summary"] in (tmp_path / "runs" / "headed" / "MODEL_CARD.md").read_text()

    headless = json.loads((tmp_path / "runs" / "headless" / "reports" / "bias.json").read_text())[
        "base_model_comparison"
    ]
    assert not headless["possible"] and "no head for the labels negative, positive" in headless["reason"]


def test_comparison_names_introduced_and_amplified_disparities():
    from tunewright.governance.base_comparison import compare_with_base

    policy = load_policy("default")

    def audit(*checks):
        return {
            "audit": "counterfactual",
            "verdict": "x",
            "checks": [vars(c) for c in checks],
            "columns": [],
            "groups": [],
            "reasons": [],
            "details": {},
        }

    base = audit(
        policy.check("flip_rate", 0.0, [0, 0.01], 0.9, "gender"), policy.check("flip_rate", 0.05, [0, 0.1], 0.4, "age")
    )
    tuned = audit(
        policy.check("flip_rate", 0.3, [0.2, 0.4], 0.001, "gender"),
        policy.check("flip_rate", 0.055, [0, 0.1], 0.4, "age"),
    )
    result = compare_with_base({"counterfactual": base}, {"counterfactual": tuned})
    assert result["introduced"] == ["counterfactual/gender flip_rate"] and result["amplified"] == [
        "counterfactual/gender flip_rate"
    ]
    assert "introduced a failing disparity in counterfactual/gender flip_rate" in result["summary"]


def test_identity_terms_are_swapped_in_the_users_texts():
    from tunewright.governance.audits.substitution import swap, swap_tables

    gender, race = swap_tables()["gender"][2], swap_tables()["race"][2]
    assert swap("My son returned it to him.", gender) == ("My daughter returned it to her.", -1)
    assert swap("Mr Smith says HE hates it", gender) == ("Mrs Smith says SHE hates it", -1)
    assert swap("Jamal liked it", race) == ("Todd liked it", +1)
    assert swap("She said her husband loves it.", gender) is None  # both groups: no single direction
    assert swap("It works.", gender) is None


def test_substitution_audit_finds_a_model_that_prefers_one_gender_in_real_texts():
    from tunewright.governance.audits.substitution import substitution_audit

    texts = [
        f"{subject} said the {thing} {verdict}."
        for subject in ("She", "He", "My wife", "My husband")
        for thing in ("battery", "screen", "case", "charger", "cable")
        for verdict in ("is great", "broke")
    ]

    def prefers_women(batch):
        out = []
        for text in batch:
            p = 0.7 if "great" in text else 0.3
            p += 0.25 if any(w in text.split() for w in ("She", "wife")) else 0.0
            out.append([1 - p, p])
        return np.array(out)

    checks, details = substitution_audit(prefers_women, texts, POLICY)
    (biased,) = checks
    assert details["gender"]["pairs"] == 40 and biased.verdict == "fail" and biased.p_value < 0.05
    assert biased.subject == "gender (swapped in the test texts)"
    checks, details = substitution_audit(predict_with_bias(set(), 0.0), texts, POLICY)
    # No flip in 40 texts is no proof of a rate under 2%: inconclusive, and it says how many texts would do.
    (fair,) = checks
    assert (fair.verdict, fair.value) == (
        "inconclusive",
        0.0,
    ) and "test texts that mention the terms (now 40)" in fair.settle
    assert "left_out" in details["race"]  # no names in these texts


def test_an_unknown_probe_domain_stops_the_run_before_training(tiny_bert, tmp_path, capsys):
    from conftest import tiny_run_overrides

    from tunewright.cli import main

    with pytest.raises(SystemExit) as stopped:  # Hydra's job exits with the status
        main(["train", *tiny_run_overrides(tiny_bert, tmp_path / "runs", "data.probe_domain=legal")])
    assert stopped.value.code == 2
    assert "data.probe_domain: no probe templates for domain 'legal'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing trained, nothing left
