"""Customer-support tickets routed to queues: a complete tunewright domain plugin.

It registers the dataset ``support_tickets`` with

* its own label map: the help desk's queue codes (``BILL``, ``TECH``, ``ACCT``) become
  readable label names;
* its own cleaning rule, run before tunewright's shared cleaning: e-mail signatures,
  addresses and ticket numbers are cut, so the model learns from the request itself;
* a config option file, ``data=support_tickets``, shipped in ``conf/``.

It reads the help desk's CSV export (``data.path``), or the small sample that ships
with the package when no path is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tunewright import hookimpl
from tunewright.contracts import DataSource
from tunewright.data import DomainData, file_sha256, labelled_examples, require_two_classes, split_given
from tunewright.readers import read_csv, require_columns
from tunewright.schema import DataConfig

SAMPLE = Path(__file__).parent / "sample_tickets.csv"
QUEUES = {"BILL": "billing", "TECH": "technical", "ACCT": "account"}
# "-- Sent from my phone", "Regards, Dana (dana@...)", "Thanks! ticket #123": everything from there on.
SIGNOFF = re.compile(r"\s*(--|regards,|best,|thanks!).*$", re.IGNORECASE)


@dataclass
class SupportTicketsConfig(DataConfig):
    path: Optional[str] = None  # the help desk's CSV export; the bundled sample when null
    message_column: str = "message"
    queue_column: str = "queue"


def strip_signoff(message: str) -> str:
    """The request without its sign-off, signature, address or ticket number."""
    return SIGNOFF.sub("", message)


class SupportTickets(DataSource):
    def __init__(self, cfg: SupportTicketsConfig):
        self.cfg = cfg

    def load(self) -> DomainData:
        path = Path(self.cfg.path) if self.cfg.path else SAMPLE
        header, rows = read_csv(path)
        require_columns(
            path, header, {"message_column": self.cfg.message_column, "queue_column": self.cfg.queue_column}
        )
        messages = [(row, fields[self.cfg.message_column], fields[self.cfg.queue_column]) for row, fields in rows]
        cleaned = [(row, {"text": strip_signoff(text)}, QUEUES.get(code, code)) for row, text, code in messages]
        changed = sum(before[1] != after[1]["text"] for before, after in zip(messages, cleaned))
        notes = [
            {
                "split": "train",
                "step": "strip_signoff",
                "rows_in": len(rows),
                "rows_out": len(rows),
                "rows_changed": changed,
                "reason": "signatures, addresses and ticket numbers cut",
            }
        ]
        labels = list(QUEUES.values())
        examples = labelled_examples(path, cleaned, labels, self.cfg.cleaning.unknown_labels, notes, "train")
        require_two_classes(path, self.cfg.queue_column, examples, labels)
        splits = split_given({"train": examples}, self.cfg)
        return DomainData(splits, labels, [{"path": path.name, "sha256": file_sha256(path)}], notes)


@hookimpl
def tunewright_register_datasets(registry):
    registry.add(
        "support_tickets",
        SupportTickets,
        schema=SupportTicketsConfig,
        description="support tickets routed to billing, technical and account queues",
    )


@hookimpl
def tunewright_config_searchpath():
    return ["pkg://tunewright_support_tickets.conf"]
