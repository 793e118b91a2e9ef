"""``data=served``: what ``tunewright serve`` answered, read back from its traffic log.

Every replica's shards in ``<run>/served/`` (or ``data.path``), each served text with
the feedback label given for it through ``POST /v1/feedback`` (unlabelled otherwise),
in the order served. ``tunewright monitor run=<folder> data=served`` fills in the run's
own ``served/`` folder, so a service's traffic is monitored like any batch. A torn
last line (a crash mid-write) is skipped with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tunewright import hookimpl
from tunewright.contracts import TEXT_FIELDS, DataSource, Example
from tunewright.data import DomainData, file_sha256, split_given
from tunewright.errors import DataError
from tunewright.schema import DataConfig
from tunewright.traffic_log import read_traffic


@dataclass
class ServedConfig(DataConfig):
    path: Optional[str] = None  # a served/ folder; tunewright monitor fills in the run's own


class ServedTraffic(DataSource):
    def __init__(self, cfg: ServedConfig):
        self.cfg = cfg

    def load(self) -> DomainData:
        if not self.cfg.path:
            raise DataError("data=served: name the traffic with data.path=<run>/served (tunewright monitor does)")
        folder = Path(self.cfg.path)
        records, labels, files = read_traffic(folder)
        if any("text" not in record for record in records):
            raise DataError(
                f"{folder}: served images are logged by digest only, so they cannot be monitored from the log"
            )
        label_names = sorted(set(labels.values()))
        examples: list[Example] = [
            {
                **{name: record[name] for name in TEXT_FIELDS if name in record},
                "label": label_names.index(labels[record["request_id"]]) if record["request_id"] in labels else None,
            }
            for record in records
        ]
        sources = [{"path": str(path), "sha256": file_sha256(path)} for path in files]
        return DomainData(split_given({"train": examples}, self.cfg), label_names, sources)


@hookimpl
def tunewright_register_datasets(registry):
    registry.add(
        "served", ServedTraffic, schema=ServedConfig, description="what tunewright serve answered, with feedback labels"
    )
