"""``data=ecommerce_reviews``: review sentences labelled negative/positive.

The Amazon, IMDB and Yelp files of Sentiment Labelled Sentences (Kotzias et al., KDD
2015, CC BY 4.0) ship with the package; see ``data/ATTRIBUTION.txt``. Amazon product
reviews are the default domain; ``data.domain=imdb`` or ``yelp`` gives the same task on
shifted text, for drift checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunewright import hookimpl
from tunewright.contracts import DataSource
from tunewright.data import DomainData, file_sha256, labelled_examples, split_given
from tunewright.errors import ConfigError
from tunewright.readers import read_separated_lines
from tunewright.schema import DataConfig, knob

DATA = Path(__file__).parent / "data"
DOMAIN_FILES = {"amazon": "amazon_cells_labelled.txt", "imdb": "imdb_labelled.txt", "yelp": "yelp_labelled.txt"}
LABEL_NAMES = ["negative", "positive"]


@dataclass
class ReviewsConfig(DataConfig):
    domain: str = knob("amazon", choices=("amazon", "imdb", "yelp"))  # products, movies, restaurants


class EcommerceReviews(DataSource):
    def __init__(self, cfg: ReviewsConfig):
        self.cfg = cfg

    def load(self) -> DomainData:
        if self.cfg.domain not in DOMAIN_FILES:
            raise ConfigError(f"data.domain: {self.cfg.domain!r} is not one of {', '.join(DOMAIN_FILES)}")
        path = DATA / DOMAIN_FILES[self.cfg.domain]
        rows = (
            (row, {"text": text}, {"0": "negative", "1": "positive"}.get(label, label))
            for row, text, label in read_separated_lines(path, "\t")
        )
        notes: list = []
        examples = labelled_examples(
            path, rows, LABEL_NAMES, self.cfg.cleaning.unknown_labels, notes, "train", self.cfg.label_map
        )
        splits = split_given({"train": examples}, self.cfg)
        return DomainData(splits, LABEL_NAMES, [{"path": path.name, "sha256": file_sha256(path)}], notes)


@hookimpl
def tunewright_register_datasets(registry):
    registry.add(
        "ecommerce_reviews",
        EcommerceReviews,
        schema=ReviewsConfig,
        description="review sentences, negative/positive: amazon (default), imdb, yelp (bundled, CC BY 4.0)",
    )
