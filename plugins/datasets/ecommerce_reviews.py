"""``data=ecommerce_reviews``: Amazon review sentences labelled negative/positive.

The 1000 Amazon sentences of Sentiment Labelled Sentences (Kotzias et al., KDD 2015,
CC BY 4.0) ship with the package; see ``data/ATTRIBUTION.txt`` beside this module.
"""

from __future__ import annotations

from pathlib import Path

from tunewright import hookimpl
from tunewright.data import (
    DomainData,
    file_sha256,
    read_tab_labelled_lines,
    stratified_split,
    stratified_subset,
)
from tunewright.schema import DataConfig

BUNDLED_FILE = Path(__file__).parent / "data" / "amazon_cells_labelled.txt"
LABEL_NAMES = ["negative", "positive"]


class EcommerceReviews:
    def __init__(self, cfg: DataConfig):
        self.cfg = cfg

    def load(self) -> DomainData:
        examples = read_tab_labelled_lines(BUNDLED_FILE)
        if self.cfg.limit is not None:
            examples = stratified_subset(examples, self.cfg.limit, self.cfg.split_seed)
        splits = stratified_split(
            examples, self.cfg.validation_fraction, self.cfg.test_fraction, self.cfg.split_seed
        )
        source = {"path": BUNDLED_FILE.name, "sha256": file_sha256(BUNDLED_FILE)}
        return DomainData(splits, LABEL_NAMES, [source])


@hookimpl
def tunewright_register_datasets(registry):
    registry.add(
        "ecommerce_reviews",
        EcommerceReviews,
        description="Amazon review sentences, negative/positive (bundled, CC BY 4.0)",
    )
