"""The engine's exception types: each names where the problem is."""

from __future__ import annotations


class BrewnetError(Exception):
    """Base of every error the engine raises on bad input."""


class WiringError(BrewnetError, ValueError):
    """A net is wired wrongly: names the layer (and blob, when one is involved)."""

    def __init__(self, message: str, layer: str | None = None, blob: str | None = None) -> None:
        super().__init__(message)
        self.layer = layer
        self.blob = blob


class PrototxtError(BrewnetError, ValueError):
    """A text prototxt could not be parsed: names file, line and column."""

    def __init__(self, path: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{path}:{line}:{column}: {message}")
        self.path = path
        self.line = line
        self.column = column
        self.message = message


class ModelFileError(BrewnetError, ValueError):
    """A binary model file (.caffemodel, .binaryproto, .solverstate, .h5) is unreadable."""
