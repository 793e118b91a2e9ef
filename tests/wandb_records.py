"""Read the records of an offline W&B run (``run-<id>.wandb``) back, for assertions.

The file is a LevelDB-style log: a 7-byte header (``:W&B``, magic, version), then
32 KiB blocks of records, each with a 7-byte header (CRC, length, type: full, first,
middle, last); each record is a serialized ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import struct
from pathlib import Path

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    records, pending, offset = [], b"", HEADER
    while offset + HEADER <= len(data):
        room = BLOCK - offset % BLOCK
        if room < HEADER:
            offset += room
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + HEADER])
        payload = data[offset + HEADER : offset + HEADER + length]
        offset += HEADER + length
        if kind == 0 and length == 0:
            offset += BLOCK - offset % BLOCK if offset % BLOCK else 0
            continue
        pending = payload if kind in (FULL, FIRST) else pending + payload
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records
