"""Caffe/glog-style log lines for the command line: `I1123 12:09:11.123456 brewnet] message`."""

from __future__ import annotations

import logging
import sys
import time


class GlogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname[0]
        t = time.localtime(record.created)
        micros = int((record.created % 1) * 1e6)
        stamp = time.strftime("%m%d %H:%M:%S", t)
        return f"{level}{stamp}.{micros:06d} {record.name}] {record.getMessage()}"


def setup_logging(level: int = logging.INFO) -> None:
    """Route the engine's loggers to stderr in glog format (idempotent)."""
    root = logging.getLogger("brewnet")
    if any(getattr(h, "_brewnet", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(GlogFormatter())
    handler._brewnet = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
