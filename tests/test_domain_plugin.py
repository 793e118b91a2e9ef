"""The domain-plugin walkthrough's example package installs with pip and trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import tiny_run_overrides

EXAMPLE = Path(__file__).parents[1] / "examples" / "tunewright-support-tickets"


def test_example_domain_package_installs_registers_and_trains(tiny_bert, tmp_path):
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(EXAMPLE)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}

    listed = subprocess.run([sys.executable, "-m", "tunewright", "plugins"], capture_output=True, text=True, env=env)
    assert "support_tickets  [tunewright-support-tickets 0.1.0]" in listed.stdout, listed.stderr

    runs = tmp_path / "runs"
    overrides = [o for o in tiny_run_overrides(tiny_bert, runs) if not o.startswith("data.")]
    result = subprocess.run(
        [sys.executable, "-m", "tunewright", "train", "data=support_tickets", *overrides],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (folder,) = runs.iterdir()
    card = json.loads((folder / "data_card.json").read_text())
    assert card["label_names"] == ["billing", "technical", "account"]
    signoff = next(step for step in card["cleaning"] if step["step"] == "strip_signoff")
    assert signoff["rows_changed"] > 10
    assert sum(c["rows"] for c in card["composition"].values()) == 45
    assert "validation_fraction: 0.2" in (folder / "config.yaml").read_text()  # the plugin's own option file
