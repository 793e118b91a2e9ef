"""``data=finance_phrasebank``: financial news sentences, negative/neutral/positive.

Financial PhraseBank v1.0 (Malo et al., 2014) is licensed CC BY-NC-SA 3.0, so
tunewright never ships it: point ``data.path`` at your copy's folder (the one holding
``Sentences_50Agree.txt`` ... ``Sentences_AllAgree.txt``) and pick the annotator
agreement level.

    tunewright train data=finance_phrasebank data.path=~/data/FinancialPhraseBank-v1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tunewright import hookimpl
from tunewright.contracts import DataSource
from tunewright.data import DomainData, file_sha256, labelled_examples, split_given
from tunewright.errors import ConfigError
from tunewright.readers import read_separated_lines
from tunewright.schema import DataConfig, knob

LABEL_NAMES = ["negative", "neutral", "positive"]
AGREEMENT_FILES = {
    "50": "Sentences_50Agree.txt",
    "66": "Sentences_66Agree.txt",
    "75": "Sentences_75Agree.txt",
    "all": "Sentences_AllAgree.txt",
}
WHERE = (
    "Financial PhraseBank v1.0 (Malo et al. 2014, CC BY-NC-SA 3.0) is not bundled; download it from the "
    "authors' release (search 'FinancialPhraseBank-v1.0') and set data.path to the unpacked folder"
)


@dataclass
class PhraseBankConfig(DataConfig):
    path: Optional[str] = None  # the folder holding Sentences_*Agree.txt
    agreement: str = knob("all", choices=("50", "66", "75", "all"))  # share of annotators who agreed on the label


class FinancePhraseBank(DataSource):
    def __init__(self, cfg: PhraseBankConfig):
        self.cfg = cfg

    def load(self) -> DomainData:
        if not self.cfg.path:
            raise ConfigError(f"data.path: required. {WHERE}")
        if self.cfg.agreement not in AGREEMENT_FILES:
            raise ConfigError(f"data.agreement: {self.cfg.agreement!r} is not one of {', '.join(AGREEMENT_FILES)}")
        path = Path(self.cfg.path).expanduser() / AGREEMENT_FILES[self.cfg.agreement]
        if not path.is_file():
            raise ConfigError(f"data.path: {path} does not exist. {WHERE}")
        encoding = _detect_encoding(path)
        notes: list = []
        labelled = ((row, {"text": text}, label) for row, text, label in read_separated_lines(path, "@", encoding))
        examples = labelled_examples(
            path, labelled, LABEL_NAMES, self.cfg.cleaning.unknown_labels, notes, "train", self.cfg.label_map
        )
        return DomainData(
            split_given({"train": examples}, self.cfg),
            LABEL_NAMES,
            [{"path": path.name, "sha256": file_sha256(path)}],
            notes,
        )


def _detect_encoding(path: Path) -> str:
    """The original release is ISO-8859-1; some copies were re-encoded to UTF-8."""
    try:
        path.read_bytes().decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "latin-1"


@hookimpl
def tunewright_register_datasets(registry):
    registry.add(
        "finance_phrasebank",
        FinancePhraseBank,
        schema=PhraseBankConfig,
        description="financial news sentiment, 3 classes (your copy: CC BY-NC-SA, never bundled)",
    )
