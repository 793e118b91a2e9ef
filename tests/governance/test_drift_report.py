"""The drift summary page reads honestly: under-powered and near-threshold shifts are
inconclusive (amber, with what would settle them), never a plain "no drift", and
every column that moved is pictured inline, reference against batch."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from tunewright.governance.monitors.default import judge
from tunewright.governance.monitors.drift import _layer, _shift, histogram
from tunewright.governance.monitors.drift_report import outcome, render_html

SETTINGS = SimpleNamespace(effect_size=0.1)


def test_a_large_shift_that_is_not_significant_is_inconclusive_not_no_drift():
    large_but_noisy = _shift(0.2, 0.3, SETTINGS, 0.01)
    assert (large_but_noisy["drifted"], large_but_noisy["inconclusive"]) == (False, True)
    assert outcome(large_but_noisy).startswith(
        "inconclusive: larger than the threshold, but not significant (p ≥ 0.01)"
    )
    near = _shift(0.001, 0.09, SETTINGS, 0.01)  # significant, at 90% of the effect size
    assert near["inconclusive"] and outcome(near) == "inconclusive: significant and close to the threshold"
    small = _shift(0.001, 0.02, SETTINGS, 0.01)
    assert not small["inconclusive"] and outcome(small) == "no drift: significant, but smaller than the threshold"
    drifted = _shift(0.001, 0.3, SETTINGS, 0.01)
    assert drifted["drifted"] and not drifted["inconclusive"]


def layers_with(column: dict) -> dict:
    quiet = {"score": 0.5, "threshold": 0.55, "drifted": False, "inconclusive": False, "method": "model"}
    return {
        "descriptors": _layer({"length <b>": column}, 0.1),
        "embeddings": quiet,
        "predictions": {"available": False, "drifted": False, "reason": "no probabilities"},
        "performance": {"available": False, "drifted": False, "reason": "the batch has no labels"},
    }


def test_an_inconclusive_layer_is_a_note_and_its_column_is_pictured():
    rng = np.random.default_rng(0)
    column = _shift(0.2, 0.3, SETTINGS, 0.01, histogram=histogram(rng.normal(0, 1, 200), rng.normal(0.5, 1, 40)))
    verdict = judge(layers_with(column))
    assert verdict["status"] == "no_drift" and verdict["inconclusive_layers"] == ["descriptors"]
    assert verdict["notes"] == [
        "descriptors inconclusive: length <b> (effect 0.300, p=0.2); near the limits of size or "
        "significance, a larger batch would settle it"
    ]
    window = {"index": 0, "start_row": 0, "rows": 40, "layers": layers_with(column), **verdict}
    report = {"name": "batch", "run_id": "r", "rows": 40, "reference": {"rows": 200}, "windows": [window], **verdict}
    page = render_html(report, [])
    assert "<tr class='inconclusive'><td>· length &lt;b&gt;</td>" in page
    assert page.count("<svg") == 1 and "<title>descriptors: length &lt;b&gt;</title>" in page
    assert "<script" not in page and "length <b>" not in page
    assert "descriptors inconclusive: length &lt;b&gt;" in page


def test_windows_show_each_layer_score_over_time():
    windows = []
    for index, score in enumerate((0.51, 0.58, 0.74)):
        layers = layers_with(_shift(0.5, 0.01, SETTINGS, 0.01))
        layers["embeddings"] = {
            "score": score,
            "threshold": 0.6,
            "drifted": score > 0.6,
            "inconclusive": False,
            "method": "model",
        }
        windows.append({"index": index, "start_row": 100 * index, "rows": 100, "layers": layers, **judge(layers)})
    report = {
        "name": "log",
        "run_id": "r",
        "rows": 300,
        "reference": {"rows": 200},
        "windows": windows,
        "status": "drift",
        "drift_detected": True,
        "severity": "low",
        "retrain_recommended": False,
        "reasons": [],
        "notes": [],
    }
    page = render_html(report, [])
    assert "<title>embeddings score by window</title>" in page and "threshold 0.6" in page
    assert page.count("<circle") >= 3 and "window 2: 0.740" in page
