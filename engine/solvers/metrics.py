"""A JSON-lines metrics file per run: one object per iteration, test and snapshot.

The editor's plots and users' notebooks read it (`pandas.read_json(path, lines=True)`).
Each line is flushed as it is written, so a crashed run keeps what it logged.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict


class JsonlMetricsWriter:
    """Solver observer writing `{"kind": "iteration"|"test"|"snapshot", ...}` records."""

    def __init__(self, path: str) -> None:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115  (kept open for the run)
        self._t0 = time.time()

    def _write(self, record: dict) -> None:
        record["wall_time"] = round(time.time() - self._t0, 6)
        self._file.write(json.dumps(record, allow_nan=True) + "\n")
        self._file.flush()

    def on_iteration(self, solver, record) -> None:
        data = asdict(record)
        data.pop("gradient_stats", None)
        self._write({"kind": "iteration", **data})

    def on_test(self, solver, record) -> None:
        self._write({"kind": "test", **asdict(record)})

    def on_snapshot(self, solver, paths) -> None:
        self._write({"kind": "snapshot", "iteration": solver.iter, "model": paths[0], "state": paths[1]})

    def close(self) -> None:
        self._file.close()


def read_metrics(path: str) -> list[dict]:
    """All records of a metrics file (a truncated last line from a crash is skipped)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
