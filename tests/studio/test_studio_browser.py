"""The studio in a real browser: Debian's Chromium driven by Playwright, against
``tunewright studio`` started as a user starts it.

One walk through the pages a domain expert uses: a malformed upload shows its error next
to the column fields, a good one is previewed and mapped, the data card comes before
training, a tiny run trains, and the results shown are the run folder's own. A
screenshot of each page is saved (in ``$TUNEWRIGHT_SCREENSHOTS`` when set: docs/studio.md
shows the ones a run of this test produced).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port

from tunewright.release_gate import release_sentence

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
# As root on a closed network: no sandbox, and no background calls that would be refused.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BUNDLED_SENTENCES = Path(__file__).parents[2] / "plugins" / "datasets" / "data" / "amazon_cells_labelled.txt"


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory, tiny_bert):
    """``tunewright studio`` on a free loopback port, with its own workspace holding the
    tiny model in its ``models/`` folder."""
    workspace = tmp_path_factory.mktemp("workspace")
    shutil.copytree(tiny_bert, workspace / "models" / "tiny-bert")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tunewright", "studio", f"studio.workspace={workspace}", f"studio.port={port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.5)
    else:
        pytest.fail("the studio did not answer within 120 s")
    yield url, workspace
    process.terminate()  # SIGTERM stops the app as Ctrl-C does: its jobs stopped, exit status 0
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 0 and f"tunewright studio: {url}" in output, output


@pytest.fixture(scope="module")
def page(studio_url):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), "install Debian's chromium (scripts/setup.sh does, as root)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(studio_url[0])
        yield page
        browser.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = Path(os.environ.get("TUNEWRIGHT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def reviews_csv(path: Path) -> Path:
    """200 of the bundled review sentences, with a region column for the audit."""
    lines = BUNDLED_SENTENCES.read_text(encoding="utf-8").splitlines()[:200]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "sentiment", "region"])
        for i, line in enumerate(lines):
            text, label = line.rsplit("\t", 1)
            writer.writerow([text, "positive" if label.strip() == "1" else "negative", ("north", "south")[i % 2]])
    return path


def choose(page, element_id: str, option: str) -> None:
    """Pick ``option`` in a Gradio drop-down."""
    page.locator(f"#{element_id} input").click()
    page.get_by_role("option", name=re.compile("^" + re.escape(option))).first.click()


def test_a_domain_expert_goes_from_an_upload_to_an_audited_model(page, studio_url, screenshots, tmp_path):
    from playwright.sync_api import expect

    workspace = studio_url[1]
    broken = tmp_path / "broken.csv"
    broken.write_text('review,sentiment\n"fine",positive\n"never closed,negative\n', encoding="utf-8")
    page.locator("#upload input[type=file]").set_input_files(str(broken))
    error = page.locator("#data-error")
    error.get_by_text("broken.csv, row 3: a quote opened in this row is never closed").wait_for()
    assert page.locator("#text-column input").input_value() == ""  # nothing of a malformed file is mapped
    page.screenshot(path=str(screenshots / "data-error.png"), full_page=True)

    page.locator("#upload input[type=file]").set_input_files(str(reviews_csv(tmp_path / "reviews.csv")))
    page.locator("#preview").get_by_text("sentiment").first.wait_for()
    assert page.locator("#data-error").inner_text().strip() == ""  # the good file cleared the error
    assert page.locator("#text-column input").input_value() == "review"  # guessed from the name
    assert page.locator("#label-column input").input_value() == "sentiment"
    page.locator("#check-data").click()
    page.locator("#data-card").get_by_text("Labels per split").wait_for()
    card = page.locator("#data-card").inner_text()
    assert "reviews.csv" in card and "negative" in card and "positive" in card
    page.screenshot(path=str(screenshots / "data.png"), full_page=True)

    page.get_by_role("tab", name="2. Configure").click()
    choose(page, "model", "bert")
    page.get_by_text("Advanced").click()
    choose(page, "checkpoint", "tiny-bert")
    page.locator("#extra textarea").fill("model.max_length=32\ndata.probe_domain=reviews")
    page.locator("#limit input").fill("80")
    page.locator("#limit input").press("Enter")
    command = page.locator("#command")
    command.get_by_text("data.probe_domain=reviews").wait_for()
    shown = command.inner_text()
    checkpoint = workspace / "models" / "tiny-bert"
    for part in ("tunewright train model=bert", f"model.name_or_path={checkpoint}", "data.label_column=sentiment"):
        assert part in shown
    page.screenshot(path=str(screenshots / "configure.png"), full_page=True)

    page.get_by_role("tab", name="3. Train").click()
    page.locator("#start").click()
    page.locator("#train-status").get_by_text("Finished").wait_for(timeout=180_000)
    page.screenshot(path=str(screenshots / "train.png"), full_page=True)

    (run,) = (workspace / "runs").iterdir()
    results = json.loads((run / "results.json").read_text())
    bias = json.loads((run / "reports" / "bias.json").read_text())
    page.get_by_role("tab", name="4. Results").click()
    metrics = page.locator("#metrics")
    metrics.get_by_text(f"{results['test']['accuracy']:.4f}").first.wait_for()
    assert f"{results['test']['f1_macro']:.4f}" in metrics.inner_text()
    verdicts = page.locator("#bias").inner_text()
    assert release_sentence(bias["release"]) in verdicts
    verdict = bias["audits"]["counterfactual"]["verdict"].replace("_", " ")
    assert f"counterfactual: {verdict}" in verdicts
    assert "Confusion matrix on the test split" in page.locator("#confusion").inner_text()
    page.locator("#try-text textarea").fill("Works great, I love it.")
    page.locator("#try").click()
    for label in ("positive", "negative"):  # the model's probabilities for the run's own labels
        expect(page.locator("#try-output")).to_contain_text(label, timeout=60_000)  # the model loads first
    page.screenshot(path=str(screenshots / "results.png"), full_page=True)

    page.get_by_role("tab", name="5. Tune, serve, monitor, export").click()
    page.locator("#export").click()  # the run's release is allowed: it exports, and is offered as a zip
    expect(page.locator("#download")).to_contain_text(f"{run.name}-hf", timeout=120_000)
    assert ".zip" in page.locator("#download").inner_text()
    assert (workspace / "exports" / f"{run.name}-hf" / "adapter_model.safetensors").is_file()
    page.screenshot(path=str(screenshots / "operate.png"), full_page=True)

    page.get_by_role("tab", name="6. History").click()
    page.locator("#refresh").click()
    expect(page.locator("#history")).to_contain_text(run.name, timeout=30_000)
    page.screenshot(path=str(screenshots / "history.png"), full_page=True)
    assert sorted(p.name for p in screenshots.glob("*.png")) == [
        "configure.png",
        "data-error.png",
        "data.png",
        "history.png",
        "operate.png",
        "results.png",
        "train.png",
    ]
