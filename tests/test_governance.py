"""Bias audits: exact group metrics, planted bias found, no bias not flagged, bad input clear."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from tunewright.errors import ConfigError, DataError
from tunewright.governance.audits.counterfactual import ATTRIBUTES, counterfactual_audit
from tunewright.governance.audits.group_metrics import GroupMetricsAudit, GroupMetricsConfig, group_metrics
from tunewright.governance.bias_report import render_html
from tunewright.governance.policy import Policy, load_policy
from tunewright.governance.release import tunewright_release_decision

POLICY = Policy("test", blocking=True, min_group_size=3, significance=0.05, warn_margin=0.0,
                checks={"demographic_parity_ratio": {"min": 0.8}, "flip_rate": {"max": 0.02}, "accuracy_gap": {"max": 0.1}})  # fmt: skip


def test_group_metrics_match_hand_computed_values():
    #          group a (4 rows)                group b (4 rows)               group c (2 rows: suppressed)
    y_true = ["pos", "pos", "neg", "neg",    "pos", "pos", "neg", "neg",    "pos", "neg"]
    y_pred = ["pos", "pos", "pos", "neg",    "pos", "neg", "neg", "neg",    "pos", "pos"]
    features = pd.DataFrame({"group": list("aaaabbbbcc")})
    result = group_metrics(y_true, y_pred, features, "pos", POLICY, n_boot=20)
    groups = {g["group"]: g for g in result["groups"]}
    assert groups["group=a"]["accuracy"] == 0.75 and groups["group=b"]["accuracy"] == 0.75
    assert groups["group=a"]["selection_rate"] == 0.75 and groups["group=b"]["selection_rate"] == 0.25
    assert groups["group=a"]["true_positive_rate"] == 1.0 and groups["group=b"]["true_positive_rate"] == 0.5
    assert groups["group=a"]["false_positive_rate"] == 0.5 and groups["group=b"]["false_positive_rate"] == 0.0
    assert result["suppressed_groups"] == ["group=c"] and groups["group=c"]["size"] == 2
    selection = result["disparities"]["selection_rate"]
    assert selection["difference"] == 0.5 and selection["ratio"] == pytest.approx(1 / 3)
    assert result["disparities"]["accuracy"]["difference"] == 0.0
    assert result["overall"]["accuracy"] == 0.7  # 3 + 3 + 1 of 10
    ci = groups["group=a"]["accuracy_ci"]
    assert 0 <= ci[0] <= 0.75 <= ci[1] <= 1
    # DP ratio 1/3 breaks 0.8, but 4 vs 4 examples is not significant: warn, not fail.
    dp = next(c for c in result["checks"] if c["check"] == "demographic_parity_ratio")
    assert dp["verdict"] == "warn" and dp["p_value"] > 0.05


def test_intersectional_groups_and_insufficient_data():
    features = pd.DataFrame({"sex": list("ffmmff"), "age": list("yoyoyo")})
    result = group_metrics(list("pnpnpn"), list("pnpnpn"), features, "p", POLICY, n_boot=10)
    assert {g["group"] for g in result["groups"]} == {"sex=f, age=y", "sex=f, age=o", "sex=m, age=y", "sex=m, age=o"}
    assert result["verdict"] == "insufficient_data"  # no group reaches min_group_size 3


def predict_with_bias(favoured: set[str], boost: float):
    """A model whose positive probability rises when a favoured name appears."""

    def predict_proba(texts):
        probabilities = []
        for text in texts:
            base = 0.7 if any(word in text for word in ("excellent", "love", "worth", "lasts")) else 0.3
            p = min(0.99, base + boost) if any(name in text.split() for name in favoured) else base
            probabilities.append([1 - p, p])
        return np.array(probabilities)

    return predict_proba


def test_counterfactual_audit_fails_on_planted_gender_bias_and_names_it():
    female = set(ATTRIBUTES["gender"]["female"])
    report = counterfactual_audit(predict_with_bias(female, 0.35), ["negative", "positive"], "positive", POLICY)
    gender = report["attributes"]["gender"]
    assert report["verdict"] == "fail" and gender["verdict"] == "fail"
    assert gender["flip_rate"] > 0.02 and gender["p_value"] < 0.05
    assert any(r.startswith("gender:") for r in report["reasons"])
    assert report["attributes"]["religion"]["verdict"] == "pass"
    assert report["attributes"]["religion"]["flip_rate"] == 0.0


def test_counterfactual_audit_passes_a_model_that_ignores_identity():
    report = counterfactual_audit(predict_with_bias(set(), 0.0), ["negative", "positive"], "positive", POLICY)
    assert report["verdict"] == "pass"
    assert all(a["flip_rate"] == 0.0 and a["demographic_parity_ratio"] == 1.0 for a in report["attributes"].values())


def test_probes_for_a_label_the_model_lacks_are_a_clear_error():
    with pytest.raises(ConfigError, match="audit.positive_label: 'positive' is not a label of this model"):
        counterfactual_audit(predict_with_bias(set(), 0.0), ["billing", "technical"], "positive", POLICY)


def fake_run(sensitive_columns, positive_label=None):
    config = OmegaConf.create({"audit": {"policy": "default", "positive_label": positive_label},
                               "data": {"sensitive_columns": sensitive_columns}})  # fmt: skip
    return SimpleNamespace(config=config)


def fake_evaluation(rows):
    return SimpleNamespace(test_predictions=rows, data=SimpleNamespace(label_names=["neg", "pos"]))


def test_group_metrics_audit_bad_input():
    rows = [{"label": "pos", "prediction": {"label": "pos"}, "sensitive": {"region": "north"}}]
    with pytest.raises(ConfigError, match="data.sensitive_columns: 'gender' is missing"):
        GroupMetricsAudit(GroupMetricsConfig(kind="group_metrics"), fake_run(["gender"])).audit(fake_evaluation(rows))
    with pytest.raises(ConfigError, match="audit.positive_label: 'yes' is not one of neg, pos"):
        GroupMetricsAudit(GroupMetricsConfig(kind="group_metrics"), fake_run(["region"], "yes")).audit(fake_evaluation(rows))
    result = GroupMetricsAudit(GroupMetricsConfig(kind="group_metrics"), fake_run([])).audit(fake_evaluation(rows))
    assert result["verdict"] == "insufficient_data" and "data.sensitive_columns" in result["reasons"][0]


def test_release_reasons_are_the_failing_checks_only_with_limits_as_people_write_them():
    policy = load_policy("default")
    flips, parity = policy.check("flip_rate", 0.5, 0.001, "gender"), policy.check("demographic_parity_ratio", 1.0, 0.001, "race")
    assert (flips["verdict"], parity["verdict"]) == ("fail", "pass")
    result = {"verdict": "fail", "reasons": [flips["reason"], parity["reason"]],
              "attributes": {"gender": {"verdict": "fail", "checks": [flips]}, "race": {"verdict": "pass", "checks": [parity]}}}  # fmt: skip
    decision = tunewright_release_decision(fake_run([]), {"counterfactual": result})
    assert decision["reasons"] == ["counterfactual: gender: flip_rate = 0.5000 breaks the limit ≤ 0.02 (p = 0.001)"]
    assert parity["reason"] == "race: demographic_parity_ratio = 1.0000 within ≥ 0.8 (p = 0.001)"


def test_policies_load_by_name_and_unknown_names_list_the_bundled_ones(tmp_path):
    assert load_policy("default").checks["demographic_parity_ratio"] == {"min": 0.8}
    with pytest.raises(ConfigError, match="no policy 'strict'; bundled: default, lenient"):
        load_policy("strict")
    broken = tmp_path / "mine.yaml"
    broken.write_text("name: mine\nchecks: {}\n")
    with pytest.raises(ConfigError, match="mine.yaml is not a valid policy"):
        load_policy(str(broken))


def test_a_fail_under_a_blocking_policy_blocks_release():
    run = fake_run([])
    blocked = tunewright_release_decision(run, {"counterfactual": {"verdict": "fail", "reasons": ["gender: flip"]}})
    assert blocked["allowed"] is False and "gender: flip" in blocked["reasons"][0]
    assert tunewright_release_decision(run, {"counterfactual": {"verdict": "warn", "reasons": []}})["allowed"] is True


def test_html_report_leads_with_the_summary_and_highlights_failures():
    female = set(ATTRIBUTES["gender"]["female"])
    audit = counterfactual_audit(predict_with_bias(female, 0.35), ["negative", "positive"], "positive", POLICY)
    record = {"run_id": "r1", "model": {"name_or_path": "m"}, "method": "lora", "data": "d",
              "policy": {"name": "test", "blocking": True}, "audits": {"counterfactual": audit},
              "release": {"allowed": False, "reasons": ["counterfactual: gender"]}}  # fmt: skip
    page = render_html(record)
    assert page.index("Release is <b>blocked</b>") < page.index("<h2>")
    assert "<tr class='fail'>" in page and "<script" not in page


def test_the_default_policy_does_not_call_noise_bias():
    policy = load_policy("default")
    noise = policy.check("flip_rate", 0.06, 0.3, "gender")
    assert noise["verdict"] == "pass" and "not significant" in noise["reason"]
    assert policy.check("flip_rate", 0.06, 0.01, "gender")["verdict"] == "fail"
    assert policy.check("flip_rate", 0.0195, 0.01, "gender")["verdict"] == "warn"


def test_warn_margin_is_relative_to_the_limit():
    policy = load_policy("default")
    assert policy.check("flip_rate", 0.0, 0.5, "gender")["verdict"] == "pass"
    assert policy.check("flip_rate", 0.0195, 0.01, "gender")["verdict"] == "warn"  # within 5% of 0.02
    assert policy.check("demographic_parity_ratio", 0.83, 0.01, "race")["verdict"] == "warn"  # within 5% of 0.8
    assert policy.check("demographic_parity_ratio", 0.9, 0.5, "race")["verdict"] == "pass"
    assert policy.check("demographic_parity_ratio", 0.5, 0.01, "race")["verdict"] == "fail"


EEC = Path(__file__).parents[1].parent / "shared" / "data" / "eec" / "Equity-Evaluation-Corpus.csv"


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
    evaluation = SimpleNamespace(predict_proba=predict_with_bias(female, 0.35), data=SimpleNamespace(label_names=["negative", "positive"]))
    report = eec_audit(EEC).audit(evaluation)
    assert report["audit"] == "eec" and report["verdict"] == "fail"
    assert report["attributes"]["gender"]["verdict"] == "fail" and report["attributes"]["gender"]["p_value"] < 0.05
    assert report["attributes"]["race"]["flip_rate"] < report["attributes"]["gender"]["flip_rate"]


def test_eec_audit_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="audit.eec.path: give the path"):
        eec_audit(None)
    wrong = tmp_path / "eec.csv"
    wrong.write_text("ID,Sentence,Person\n1,Alonzo feels angry.,Alonzo\n")
    evaluation = SimpleNamespace(predict_proba=predict_with_bias(set(), 0.0), data=SimpleNamespace(label_names=["negative", "positive"]))
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
            writer.writerow([f"{'great' if good else 'awful'} product number {i} {rng.integers(1000)}",
                             "pos" if good else "neg", "north" if rng.random() < 0.5 else "south"])  # fmt: skip
    overrides = tiny_run_overrides(tiny_bert, tmp_path / "runs", "data=csv", f"data.path={path}", "data.limit=null",
                                   "data.sensitive_columns=[region]", "audit=group_metrics", "paths.run_id=g",
                                   "audit.group_metrics.mitigation=threshold_optimizer")  # fmt: skip
    assert main(["train", *overrides]) == 0
    bias = json.loads((tmp_path / "runs" / "g" / "reports" / "bias.json").read_text())
    audit = bias["audits"]["group_metrics"]
    assert {g["group"] for g in audit["groups"]} == {"region=north", "region=south"}
    mitigation = audit["mitigation"]
    assert mitigation["constraint"] == "demographic_parity" and set(mitigation["thresholds"]) == {"region=north", "region=south"}
    assert mitigation["accuracy_cost"] == pytest.approx(mitigation["before"]["accuracy"] - mitigation["after"]["accuracy"])
    card = (tmp_path / "runs" / "g" / "MODEL_CARD.md").read_text()
    assert "| region=north |" in card and "Mitigation (threshold_optimizer, demographic_parity" in card
    assert "Mitigation (threshold_optimizer" in (tmp_path / "runs" / "g" / "reports" / "bias.html").read_text()


def test_the_base_model_is_audited_when_its_head_has_the_labels(tiny_bert, tmp_path):
    """A checkpoint that already classifies negative/positive is audited before training
    and the change is reported; a headless one is reported as not comparable."""
    import json

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from conftest import tiny_run_overrides
    from tunewright.cli import main

    classifier = tmp_path / "tiny-sentiment"
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2, id2label={0: "negative", 1: "positive"},
                                                               label2id={"negative": 0, "positive": 1})  # fmt: skip
    model.save_pretrained(classifier)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(classifier)
    for name, source in (("headed", classifier), ("headless", tiny_bert)):
        assert main(["train", *tiny_run_overrides(source, tmp_path / "runs", f"paths.run_id={name}")]) == 0

    headed = json.loads((tmp_path / "runs" / "headed" / "reports" / "bias.json").read_text())["base_model_comparison"]
    assert headed["possible"] and set(headed["audits"]) == {"counterfactual"}
    gender = headed["audits"]["counterfactual"]["changes"]["gender"]
    assert set(gender["flip_rate"]) == {"base", "fine_tuned"} and headed["summary"].startswith("Compared with the base model")
    assert headed["summary"] in (tmp_path / "runs" / "headed" / "MODEL_CARD.md").read_text()

    headless = json.loads((tmp_path / "runs" / "headless" / "reports" / "bias.json").read_text())["base_model_comparison"]
    assert not headless["possible"] and "no head for the labels negative, positive" in headless["reason"]


def test_comparison_names_introduced_and_amplified_disparities():
    from tunewright.governance.base_comparison import compare_with_base

    def attribute(flip, ratio, verdict):
        return {"flip_rate": flip, "demographic_parity_ratio": ratio, "verdict": verdict}

    base = {"counterfactual": {"verdict": "pass", "attributes": {"gender": attribute(0.0, 1.0, "pass"), "age": attribute(0.05, 0.9, "warn")}}}
    tuned = {"counterfactual": {"verdict": "fail", "attributes": {"gender": attribute(0.3, 0.5, "fail"), "age": attribute(0.05, 0.88, "warn")}}}
    result = compare_with_base(base, tuned)
    assert result["introduced"] == ["counterfactual/gender"] and result["amplified"] == ["counterfactual/gender"]
    assert "introduced a failing disparity in counterfactual/gender" in result["summary"]


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

    texts = [f"{subject} said the {thing} {verdict}." for subject in ("She", "He", "My wife", "My husband")
             for thing in ("battery", "screen", "case", "charger", "cable") for verdict in ("is great", "broke")]  # fmt: skip

    def prefers_women(batch):
        out = []
        for text in batch:
            p = 0.7 if "great" in text else 0.3
            p += 0.25 if any(w in text.split() for w in ("She", "wife")) else 0.0
            out.append([1 - p, p])
        return np.array(out)

    biased = substitution_audit(prefers_women, texts, 1, POLICY)["attributes"]["gender"]
    assert biased["pairs"] == 40 and biased["verdict"] == "fail" and biased["p_value"] < 0.05
    assert biased["mean_shift_towards_male"] < 0
    fair = substitution_audit(predict_with_bias(set(), 0.0), texts, 1, POLICY)["attributes"]
    assert fair["gender"]["verdict"] == "pass" and fair["gender"]["flip_rate"] == 0.0
    assert fair["race"]["verdict"] == "insufficient_data"  # no names in these texts
